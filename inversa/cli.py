"""`inversa ...` subcommands. Thin: parse, call the library, print.

Each subcommand registers itself through an `add_<name>_parser(sub)` function below; users'
errors (`UserError`, missing files) are printed as one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys

from inversa.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inversa", description="Imaging inverse problems with pretrained diffusion priors."
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # --- subcommands (one block each; keep them thin) ---
    # [cli:restore]
    # [cli:models]
    # [cli:train]
    # [cli:eval]
    # [cli:app]
    # [cli:distill]
    return parser


def _version() -> str:
    from inversa import __version__

    return f"inversa {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"inversa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inversa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

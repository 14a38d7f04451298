"""`inversa ...` subcommands. Thin: parse, call the library, print. One module per subcommand, each
with `register(subparsers, common)` (its arguments) and `run(args)` (its action).

Users' errors (`UserError`, missing files) are printed as one line and exit with code 2, as are a bare
`inversa` or `inversa models` (usage). `-q/--quiet` (or TQDM_DISABLE=1) silences progress bars and notes;
`--json` (restore, models list, solvers) prints one JSON document on stdout instead of text.
"""

from __future__ import annotations

import os
import sys

from inversa.cli import app, distill, eval_distill, evaluate, models, restore, solvers, train
from inversa.cli.common import Parser, common_options, parse_params, quiet, version
from inversa.errors import UserError

SUBCOMMANDS = (restore, solvers, models, train, evaluate, app, distill, eval_distill)
__all__ = ["build_parser", "main", "parse_params"]


def build_parser() -> Parser:
    parser = Parser(prog="inversa", description="Imaging inverse problems with pretrained diffusion priors.")
    parser.add_argument("--version", action="version", version=version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    common = common_options()
    for command in SUBCOMMANDS:
        command.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # bare `inversa` or `inversa models`: usage, exit 2
        usage = getattr(args, "usage", None) or parser.format_usage
        print(usage().rstrip() + "\n" + ("inversa: error: a command is required (see --help)" if args.command is None
                                          else f"inversa {args.command}: error: an action is required (see --help)"),
              file=sys.stderr)
        return 2
    args.progress = not quiet(args)
    if not args.progress:  # libraries that read the environment (diffusers, huggingface_hub, tqdm defaults)
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"inversa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inversa {args.command}: interrupted", file=sys.stderr)
        return 130


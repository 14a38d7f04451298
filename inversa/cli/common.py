"""What every subcommand shares: the one-line-error parser, the common options, --param parsing."""

from __future__ import annotations

import argparse
import os

from inversa.errors import UserError


class RegistryHelp(argparse.HelpFormatter):
    """Help texts may say `{solvers}`: the registered solvers, in registry order, read only when help is
    printed (the registry imports torch, which `inversa --version` and argument errors need not)."""

    def _get_help_string(self, action):
        text = super()._get_help_string(action)
        if text and "{solvers}" in text:
            from inversa.solvers import SOLVERS

            text = text.replace("{solvers}", ", ".join(SOLVERS))
        return text


class Parser(argparse.ArgumentParser):
    """Argument errors as one line (no usage dump), exit code 2; help lists the registered solvers."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", RegistryHelp)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes (after its name): -q/--quiet."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notes (also: TQDM_DISABLE=1)")
    return common


def parse_params(items: list[str]) -> dict:
    from inversa.solvers.registry import parse_value

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param {item!r} must look like KEY=VALUE")
        out[key] = parse_value(value)
    return out


def version() -> str:
    from inversa import __version__

    return f"inversa {__version__}"


def quiet(args) -> bool:
    return bool(getattr(args, "quiet", False)) or os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")

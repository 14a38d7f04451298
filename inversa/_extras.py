"""Optional dependencies, imported only where used, with a one-line message naming the extra."""

from __future__ import annotations

import importlib

from inversa.errors import UserError


def require(module: str, extra: str, purpose: str):
    """Import `module` or raise one UserError: "<purpose> needs <module>: pip install 'inversa[<extra>]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{purpose} needs the {module} package, which is not installed: "
                        f"pip install 'inversa[{extra}]'") from None

"""A solver's parameters, declared once: the keyword arguments of its `__init__` and of the
`__init__` of each class above it that it forwards `**kwargs` to (DPS -> Solver). Types come from the
annotations (`float | None`, `int`, `bool`, `str`), else from the default's type. The lookup by
solver name, the checks and the listings are in `inversa.params`."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

_KINDS = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None)}


@dataclass(frozen=True)
class Param:
    """One keyword parameter of a solver: its name, default and accepted kinds ('float', 'None', ...)."""

    name: str
    default: object
    kinds: tuple[str, ...]  # empty: any value

    def describe(self) -> str:
        kinds = " or ".join(kind_word(k) for k in self.kinds) or "any value"
        return f"{self.name}={self.default!r} ({kinds})"

    def accepts(self, value) -> bool:
        if not self.kinds:
            return True
        for kind in self.kinds:
            t = _KINDS[kind]
            if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
            if t is int and isinstance(value, int) and not isinstance(value, bool):
                return True
            if t not in (int, float) and isinstance(value, t):
                return True
        return False


def kind_word(kind: str) -> str:
    return {"float": "a number", "int": "an integer", "bool": "true/false", "str": "text", "None": "none"}[kind]


def _kinds(annotation, default) -> tuple[str, ...]:
    """Accepted kinds from a (string) annotation, else from the default's type."""
    if annotation is inspect.Parameter.empty:
        return (type(default).__name__,) if type(default).__name__ in _KINDS and default is not None else ()
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = tuple(p.strip() for p in text.replace("Optional[", "").rstrip("]").split("|"))
    return parts if all(p in _KINDS for p in parts) else ()


def declared_params(cls: type) -> list[Param]:
    """Keyword parameters of `cls.__init__` and of the parents it forwards **kwargs to (the one
    declaration of a solver's parameters; `terms` is the registry's, not a user parameter)."""
    out: dict[str, Param] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        forwards = False
        for p in list(inspect.signature(init).parameters.values())[1:]:
            if p.kind is p.VAR_KEYWORD:
                forwards = True
            elif p.name not in ("prior", "terms") and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty:
                out.setdefault(p.name, Param(p.name, p.default, _kinds(p.annotation, p.default)))
        if not forwards:
            break
    return list(out.values())

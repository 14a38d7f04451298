"""Solver parameters read off the solver classes: what `inversa solvers` lists and what `--param`
is checked against before any model is loaded.

A solver's parameters are the keyword arguments of its `__init__` and of the `__init__` of each
class above it that it forwards `**kwargs` to (DPS -> Solver): declared once, there. A composition
(CMI-DPS: a guidance term on a base solver) takes `base`, the term's parameters and those of the base
solver named by `base`. Types come from the
annotations (`float | None`, `int`, `bool`, `str`); a value of the wrong kind, or a name no class
declares, is one `UserError` naming it and what is accepted.
"""

from __future__ import annotations

import inspect

from inversa.errors import UserError
from inversa.solvers.params import Param, kind_word, declared_params


__all__ = ["Param", "declared_params", "solver_params", "check_solver_params", "format_solvers", "solvers_json"]


def solver_classes() -> dict[str, type]:
    from inversa.solvers.registry import SOLVERS

    return dict(SOLVERS)


def solver_params(name: str, base: str | None = None) -> list[Param]:
    """The parameters `make_solver(name, prior, **params)` accepts (with `base` for composed solvers)."""
    from inversa.solvers.registry import solver_key

    classes = solver_classes()
    key = solver_key(name)
    if key not in classes:
        raise UserError(f"unknown solver {name!r}; accepted: {', '.join(classes)}")
    entry = classes[key]
    if isinstance(entry, type):
        return declared_params(entry)
    base_key = solver_key(base if base is not None else entry.default_base)
    params = [Param("base", entry.default_base, ("str",)), *declared_params(entry.term)]
    renames = getattr(entry.term, "base_renames", {})
    shadowed = set(renames.values())
    if base_key in entry.bases():
        names = {p.name for p in params}
        params += [p for p in declared_params(classes[base_key]) if p.name not in names and p.name not in shadowed]
    return params


def check_solver_params(name: str, params: dict | None) -> dict:
    """`params` unchanged if every name is a parameter of solver `name` and every value of its kind;
    else one UserError naming the bad one and what is accepted."""
    params = dict(params or {})
    spec = {p.name: p for p in solver_params(name, params.get("base"))}
    for key, value in params.items():
        if key not in spec:
            accepted = ", ".join(spec) or "none (it takes no parameters)"
            raise UserError(f"unknown parameter {key!r} for solver {name}; accepted: {accepted}")
        if not spec[key].accepts(value):
            raise UserError(f"parameter {key}={value!r} for solver {name}: expected "
                            f"{' or '.join(kind_word(k) for k in spec[key].kinds)}")
    return params


def format_solvers() -> str:
    """The `inversa solvers` listing: each solver, its summary line and parameters with defaults."""
    lines = []
    for key, cls in solver_classes().items():
        lines.append(f"{key}: {summary_line(cls)}")
        params = solver_params(key)
        base = next((p for p in params if p.name == "base"), None)
        for p in params:
            lines.append(f"    {p.describe()}")
        if base is not None:
            lines.append(f"    (and the parameters of the solver named by base; shown: base={base.default!r})")
        if not params:
            lines.append("    (no parameters)")
    return "\n".join(lines)


def summary_line(cls: type) -> str:
    """The first sentence of a class docstring."""
    text = " ".join((inspect.getdoc(cls) or cls.__name__).split("\n\n")[0].split())
    for stop in (". ", ": "):
        text = text.split(stop)[0]
    return text.rstrip(".:")


def solvers_json() -> list[dict]:
    """The same listing as data (`inversa solvers --json`)."""
    return [{"name": key, "class": getattr(cls, "__name__", None) or cls.term.__name__, "summary": summary_line(cls),
             "parameters": [{"name": p.name, "default": p.default if _jsonable(p.default) else repr(p.default),
                             "kinds": list(p.kinds)} for p in solver_params(key)]}
            for key, cls in solver_classes().items()]


def _jsonable(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))

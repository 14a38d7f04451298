"""Solvers by name, as the CLI, the evaluator and the UI select them.

A method registers itself with a decorator in its own file; `inversa/solvers/__init__.py` imports
each method file once (one line per method), which fills `SOLVERS` in that order:

    @register("my-method")
    class MyMethod(Solver): ...

A guidance term registers as a composition: `@register("cmi-dps", composes="ca-dps")` on a
`GuidanceTerm` makes `make_solver("cmi-dps", prior, base="dps", eta=0.1, **base_params)` build the
base solver with the term on top (any registered gradient-guided base; `composes` names the default).
"""

from __future__ import annotations

from inversa.errors import UserError

SOLVERS: dict[str, object] = {}  # name -> Solver subclass, or Composition (a term on a base solver)


class Composition:
    """A registered `GuidanceTerm` on top of a gradient-guided base solver (`base`, by name)."""

    def __init__(self, name: str, term: type, default_base: str):
        self.name, self.term, self.default_base = name, term, default_base
        self.__doc__ = term.__doc__
        for attr in ("label", "summary", "cost", "cost_up_to"):
            setattr(self, attr, getattr(term, attr, None))

    def bases(self) -> list[str]:
        """The registered solvers a term can sit on: gradient-guided, not compositions."""
        return [k for k, v in SOLVERS.items() if isinstance(v, type) and getattr(v, "guided", False)]

    def base_class(self, base: str | None) -> type:
        key = solver_key(base if base is not None else self.default_base)
        if key not in self.bases():
            raise UserError(f"{self.name} base {base!r} is not a gradient-guided solver; accepted: {', '.join(self.bases())}")
        return SOLVERS[key]

    def __call__(self, prior, *, base: str | None = None, **params):
        from inversa.solvers.params import declared_params

        own = {p.name for p in declared_params(self.term)}
        renames = getattr(self.term, "base_renames", {})  # the term's names for base parameters it shadows
        term = self.term(**{k: v for k, v in params.items() if k in own})
        Base = self.base_class(base)
        base_params = {k: v for k, v in params.items() if k not in own}
        base_params.update({new: getattr(term, old) for old, new in renames.items()})
        solver = Base(prior, terms=(term,), **base_params)
        solver.name = self.name  # the run is named after the composition (set once, at construction)
        return solver


def solver_names(kind: str = "pixel", *, priorless: bool = True) -> list[str]:
    """The registered names whose solvers run on priors of `kind`, in registration order: "pixel" (compositions
    included) or "latent" (a UNet over autoencoder latents: the solvers with `latent = True`); with `priorless`
    also those that need no prior (the naive inverse), which fit both."""
    return [k for k, v in SOLVERS.items() if (priorless and not getattr(v, "needs_prior", True))
            or (getattr(v, "needs_prior", True) and getattr(v, "latent", False) == (kind == "latent"))]


def solver_key(name) -> str:
    """A solver name as the registry spells it (case and _ / - do not matter)."""
    return str(name).lower().replace("_", "-")


def register(name: str, *, composes: str | None = None):
    """Class decorator: add a solver (or, with `composes`, a guidance term on that default base) to `SOLVERS`."""

    def add(cls):
        if name in SOLVERS:
            raise ValueError(f"solver name {name!r} is registered twice")
        SOLVERS[name] = Composition(name, cls, composes) if composes else cls
        if composes is None:
            cls.name = name
        return cls

    return add


def make_solver(name: str, prior=None, **params):
    """`make_solver("dps", prior, scale=0.5)`; unknown names give one line listing the accepted ones."""
    key = solver_key(name)
    if key not in SOLVERS:
        raise UserError(f"unknown solver {name!r}; accepted: {', '.join(SOLVERS)}")
    if getattr(SOLVERS[key], "needs_prior", True) and prior is None:
        raise UserError(f"solver {name!r} needs a prior")
    return SOLVERS[key](prior, **params)


def parse_value(text: str):
    """A method parameter typed on a command line or in the UI: int, float, true/false/none, or text."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)

"""The solver contract, for every registered solver (and CMI on every gradient-guided base): seeds
give identical results, image i never depends on its batch-mates, super-resolution shapes, NFE/VJP
per step as each class declares (`cost`), `params()` before any call, complete JSON-able run
metadata, and no solver attribute changed by a call (per-call state lives in the context).

In float64: batch-mates then agree to 1e-9. In float32 the batched convolutions' rounding (1e-7) is
amplified by the iterative inner solvers (CG, Lanczos) of a random-weight network to 1e-4..1e-2,
which would hide a real dependence behind a loose tolerance."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from inversa import operators as ops
from inversa.solvers.params import declared_params
from inversa.pretrained import load_prior
from inversa.solvers import SOLVERS, make_solver
from inversa.solvers.registry import Composition, solver_names

STEPS = 3
CASES = [(name, None) for name in solver_names("pixel")] + [
    ("cmi-dps", base) for entry in SOLVERS.values() if isinstance(entry, Composition) for base in entry.bases()
    if base != entry.default_base
]
IDS = [name if base is None else f"{name}-on-{base}" for name, base in CASES]


@pytest.fixture(scope="module")
def prior(tiny_model_dir):
    return load_prior(str(tiny_model_dir), dtype=torch.float64)


@pytest.fixture(scope="module")
def problem():
    """Three clean 16x16 images and their noisy x2 super-resolution measurements (8x8)."""
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    op = ops.SuperResolution(2, noise=ops.GaussianNoise(0.05))
    return op, op.measure(x, generator=torch.Generator().manual_seed(1))


def _solver(name, base, prior):
    entry = SOLVERS[name]
    params = {} if base is None else {"base": base}
    return make_solver(name, prior if getattr(entry, "needs_prior", True) else None, **params)


def _run(solver, y, op, seeds):
    return solver(y, op, generator=[torch.Generator().manual_seed(s) for s in seeds], num_steps=STEPS, progress=False)


def _state(solver) -> dict:
    """The solver's attributes and its terms' (deep copies of plain values; the prior by identity)."""
    own = {k: (v if k == "prior" else copy.deepcopy(v)) for k, v in vars(solver).items() if k != "terms"}
    for i, term in enumerate(getattr(solver, "terms", ())):
        own.update({f"term{i}.{k}": copy.deepcopy(v) for k, v in vars(term).items()})
    return own


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a is b if not isinstance(a, (int, float, str, bool, tuple, list, dict, type(None))) else a == b


@pytest.mark.parametrize(("name", "base"), CASES, ids=IDS)
def test_contract(name, base, prior, problem):
    op, y = problem
    solver = _solver(name, base, prior)

    before = solver.params()  # readable before any call
    assert isinstance(before, dict)
    json.dumps(before)
    entry = SOLVERS[name]
    declared = declared_params(entry.base_class(base)) if isinstance(entry, Composition) else declared_params(entry)
    shadowed = set(getattr(getattr(entry, "term", None), "base_renames", {}).values())
    missing = [p.name for p in declared if p.name not in before and p.name not in shadowed]
    assert not missing, f"params() lacks declared parameters {missing}"

    state = _state(solver)
    a = _run(solver, y[:2], op, [0, 1])
    after = _state(solver)
    changed = [k for k in state if not _same(state[k], after.get(k))] + [k for k in after if k not in state]
    assert not changed, f"a call changed solver attributes {changed} (per-call state belongs in the context)"
    assert solver.params() == before

    assert a.x.shape == (2, 3, 16, 16) and a.x.dtype == torch.float64  # SR x2: 8x8 -> 16x16
    assert torch.isfinite(a.x).all() and a.x.min() >= 0 and a.x.max() <= 1

    b = _run(solver, y[:2], op, [0, 1])
    assert torch.equal(a.x, b.x), "the same seeds gave different images"

    # image 1 with seed 1 is the same alone and next to a different batch-mate (float rounding of batched convs aside)
    alone = _run(solver, y[1:2], op, [1])
    mate = _run(solver, torch.stack([y[2], y[1]]), op, [7, 1])
    for other in (alone.x[0], mate.x[1]):
        assert torch.allclose(a.x[1], other, atol=1e-9), (a.x[1] - other).abs().max()

    meta = a.metadata
    json.dumps(meta)  # plain values only
    assert meta["solver"] == name and meta["nfe"] == a.nfe and meta["vjp"] == a.vjp
    assert set(before) <= set(meta), f"run metadata lacks {sorted(set(before) - set(meta))}"
    changed = [k for k, v in before.items() if meta[k] != v and v is not None]  # None: resolved per call (recorded)
    assert not changed, f"run metadata changes params() {changed}"
    if getattr(entry, "needs_prior", True):
        for key in ("sampler", "num_steps", "start", "clip_x0", "prior", "seconds"):
            assert key in meta, f"metadata lacks {key!r}"

    if base is None:  # the declared cost is the default configuration's
        nfe, vjp = entry.cost
        steps = meta.get("num_steps", STEPS)
        if entry.cost_up_to:  # an upper bound: inner solvers may stop early
            assert a.nfe <= nfe * steps and a.vjp <= vjp * steps, (a.nfe, a.vjp)
        else:
            assert (a.nfe, a.vjp) == (nfe * steps, vjp * steps), (a.nfe, a.vjp)

"""Solvers by name, as the CLI, the evaluator and the UI select them."""

from __future__ import annotations

import torch

from inversa.errors import UserError
from inversa.solvers.base import SolverOutput
from inversa.solvers.c_dps import CDPS
from inversa.solvers.ca_dps import CADPS
from inversa.solvers.cmi_dps import CMIDPS
from inversa.solvers.ddnm import DDNM
from inversa.solvers.ddrm import DDRM
from inversa.solvers.diffpir import DiffPIR
from inversa.solvers.dps import DPS
from inversa.solvers.pigdm import PiGDM


class Naive:
    """The operator's simple inverse (bicubic upsampling, the blurred image, an interpolated fill):
    the baseline every solver must beat. Needs no prior."""

    name = "naive"

    def __init__(self, prior=None, **_):
        pass

    def __call__(self, y, operator, *, generator=None, num_steps=0, callback=None, progress=False, **_):
        with torch.no_grad():
            x = operator.naive_inverse(y).clamp(0, 1)
        return SolverOutput(x=x, nfe=0, vjp=0, metadata={"solver": "naive", "nfe": 0, "vjp": 0})


SOLVERS: dict[str, type] = {"dps": DPS, "ca-dps": CADPS, "cmi-dps": CMIDPS, "c-dps": CDPS, "ddrm": DDRM, "ddnm": DDNM,
                           "pigdm": PiGDM, "diffpir": DiffPIR, "naive": Naive}


def make_solver(name: str, prior=None, **params):
    """`make_solver("dps", prior, scale=0.5)`; unknown names give one line listing the accepted ones."""
    key = name.lower().replace("_", "-")
    if key not in SOLVERS:
        raise UserError(f"unknown solver {name!r}; accepted: {', '.join(SOLVERS)}")
    if key != "naive" and prior is None:
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

"""How to invert: one shared sampling loop (`base.Solver`), one file per method.

Each method file registers itself (`@register(name)`, `registry.py`); importing it here, one line
per method, puts it in `SOLVERS` (in this order), the CLI, the evaluator and the web UI."""

from inversa.solvers import dps, ca_dps, cmi_dps, c_dps, ddrm, ddnm, pigdm, diffpir, mcg, dsg, daps, naive  # noqa: F401, I001 (registration order)
from inversa.solvers import latent_dps  # noqa: F401, I001
from inversa.solvers import psld  # noqa: F401, I001
from inversa.solvers import lc_dps  # noqa: F401, I001
from inversa.solvers.base import Context, GuidanceTerm, Solver, SolverOutput, StepState
from inversa.solvers.c_dps import CDPS
from inversa.solvers.ca_dps import CADPS
from inversa.solvers.cmi_dps import CMI, information_gradient, mutual_information
from inversa.solvers.dps import DPS
from inversa.solvers.registry import SOLVERS, make_solver, register

__all__ = ["CADPS", "CDPS", "CMI", "Context", "DPS", "GuidanceTerm", "SOLVERS", "Solver", "SolverOutput", "StepState",
           "information_gradient", "make_solver", "mutual_information", "register"]

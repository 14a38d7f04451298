"""How to invert: one shared sampling loop (`base.Solver`), one file per method."""

from inversa.solvers.base import Solver, SolverOutput, StepState
from inversa.solvers.c_dps import CDPS
from inversa.solvers.ca_dps import CADPS
from inversa.solvers.cmi_dps import CMIDPS, information_gradient, mutual_information
from inversa.solvers.dps import DPS
from inversa.solvers.registry import SOLVERS, make_solver

__all__ = ["CADPS", "CDPS", "CMIDPS", "DPS", "SOLVERS", "Solver", "SolverOutput", "StepState", "information_gradient",
           "make_solver", "mutual_information"]

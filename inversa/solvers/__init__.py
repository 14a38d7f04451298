"""How to invert: one shared sampling loop (`base.Solver`), one file per method."""

from inversa.solvers.base import Solver, SolverOutput, StepState
from inversa.solvers.dps import DPS
from inversa.solvers.registry import SOLVERS, make_solver

__all__ = ["DPS", "SOLVERS", "Solver", "SolverOutput", "StepState", "make_solver"]

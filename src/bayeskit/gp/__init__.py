"""Gaussian processes: kernels and exact regression (sparse models arrive with issue 4)."""

from bayeskit.gp.exact import GPR
from bayeskit.gp.kernels import Kernel, Matern, SquaredExponential
from bayeskit.gp.sgpr import SGPR

__all__ = ["GPR", "SGPR", "Kernel", "Matern", "SquaredExponential"]

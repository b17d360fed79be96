"""Gaussian processes: kernels and exact regression (sparse models arrive with issue 4)."""

from bayeskit.gp.exact import GPR
from bayeskit.gp.kernels import Kernel, Matern, SquaredExponential

__all__ = ["GPR", "Kernel", "Matern", "SquaredExponential"]

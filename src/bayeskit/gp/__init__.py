"""Gaussian processes: kernels, exact GPR, SGPR and SVGP (Gaussian likelihood so far)."""

from bayeskit.gp.exact import GPR
from bayeskit.gp.kernels import Kernel, Matern, SquaredExponential
from bayeskit.gp.sgpr import SGPR
from bayeskit.gp.svgp import SVGP

__all__ = ["GPR", "SGPR", "SVGP", "Kernel", "Matern", "SquaredExponential"]

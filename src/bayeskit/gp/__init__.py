"""Gaussian processes: kernels (more models arrive with the GP issue)."""

from bayeskit.gp.kernels import Kernel, SquaredExponential

__all__ = ["Kernel", "SquaredExponential"]

"""Gaussian processes: kernels, likelihoods, exact GPR, SGPR and SVGP."""

from bayeskit.gp.exact import GPR
from bayeskit.gp.kernels import Kernel, Matern, SquaredExponential
from bayeskit.gp.likelihoods import Bernoulli, Gaussian, Poisson, StudentT
from bayeskit.gp.sgpr import SGPR
from bayeskit.gp.svgp import SVGP

__all__ = ["GPR", "SGPR", "SVGP", "Kernel", "Matern", "SquaredExponential", "Bernoulli",
           "Gaussian", "Poisson", "StudentT"]

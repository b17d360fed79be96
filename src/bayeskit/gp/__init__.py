"""Gaussian processes: kernels, likelihoods, exact GPR, SGPR, SVGP and the Pólya-gamma
augmented SVGP (binary and binomial) and its multi-class logistic-softmax counterpart."""

from bayeskit.gp import inducing
from bayeskit.gp.augmented import PolyaGammaSVGP
from bayeskit.gp.exact import GPR
from bayeskit.gp.kernels import (
    Kernel,
    Linear,
    Matern,
    Periodic,
    Product,
    RationalQuadratic,
    Scale,
    SquaredExponential,
    Sum,
)
from bayeskit.gp.likelihoods import Bernoulli, Gaussian, Poisson, StudentT
from bayeskit.gp.means import ConstantMean, LinearMean, ZeroMean
from bayeskit.gp.multiclass import LogisticSoftmaxSVGP
from bayeskit.gp.posterior import GPPosterior, as_posterior
from bayeskit.gp.sgpr import SGPR
from bayeskit.gp.svgp import SVGP

__all__ = ["GPR", "SGPR", "SVGP", "PolyaGammaSVGP", "LogisticSoftmaxSVGP", "GPPosterior",
           "as_posterior", "inducing",
           "Kernel", "Matern", "SquaredExponential", "RationalQuadratic", "Periodic", "Linear",
           "Scale", "Sum", "Product", "ZeroMean", "ConstantMean", "LinearMean", "Bernoulli",
           "Gaussian", "Poisson", "StudentT"]

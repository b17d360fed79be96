"""MCMC: Pólya-gamma Gibbs samplers (layer 1 and 2) and their scikit-learn estimators."""

from bayeskit.mcmc.gibbs import BinomialRegressionData, GibbsResult, gibbs_steps, run_gibbs
from bayeskit.mcmc.laplace import (
    binomial_log_posterior,
    independence_metropolis,
    laplace_approximation,
)

__all__ = ["BinomialRegressionData", "GibbsResult", "gibbs_steps", "run_gibbs",
           "binomial_log_posterior", "laplace_approximation", "independence_metropolis",
           "PolyaGammaLogisticRegression", "polynomial_basis", "PolyaGammaGPClassifier",
           "gp_classification_gibbs"]


def __getattr__(name):  # the estimators import scikit-learn only when asked for
    if name in ("PolyaGammaLogisticRegression", "polynomial_basis"):
        from bayeskit.mcmc import logistic

        return getattr(logistic, name)
    if name in ("PolyaGammaGPClassifier", "gp_classification_gibbs"):
        from bayeskit.mcmc import gpc

        return getattr(gpc, name)
    raise AttributeError(name)

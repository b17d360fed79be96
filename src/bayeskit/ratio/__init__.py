"""Density ratios and divergences between distributions known by samples or densities."""

from bayeskit.ratio.adversarial import adversarial_kl_minimisation
from bayeskit.ratio.estimators import (
    KLIEP,
    ULSIF,
    ClassifierDensityRatio,
    check_samples,
    estimate_js,
    estimate_kl,
    nwj_lower_bound,
)
from bayeskit.ratio.fdivergences import (
    MonteCarloEstimate,
    amari_alpha,
    conjugate,
    jensen_shannon,
    kl_forward,
    kl_reverse,
    monte_carlo_f_divergence,
    monte_carlo_kl,
    pearson,
    squared_hellinger,
    total_variation,
)
from bayeskit.ratio.variational import variational_f_divergence

__all__ = ["KLIEP", "ULSIF", "ClassifierDensityRatio", "check_samples", "estimate_kl",
           "estimate_js", "nwj_lower_bound",
           "MonteCarloEstimate", "amari_alpha", "conjugate", "jensen_shannon", "kl_forward",
           "kl_reverse", "monte_carlo_f_divergence", "monte_carlo_kl", "pearson",
           "squared_hellinger", "total_variation", "variational_f_divergence",
           "adversarial_kl_minimisation"]

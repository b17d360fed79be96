"""Density ratios and divergences between distributions known by samples or densities."""

from bayeskit.ratio.estimators import ULSIF, ClassifierDensityRatio, check_samples, estimate_kl
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

__all__ = ["ULSIF", "ClassifierDensityRatio", "check_samples", "estimate_kl",
           "MonteCarloEstimate", "amari_alpha", "conjugate", "jensen_shannon", "kl_forward",
           "kl_reverse", "monte_carlo_f_divergence", "monte_carlo_kl", "pearson",
           "squared_hellinger", "total_variation"]

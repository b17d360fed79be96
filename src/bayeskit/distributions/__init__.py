"""Distributions (layer 1 functions and layer 2 ``torch.distributions`` objects)."""

from bayeskit.distributions.flows import Flow, fit_flow
from bayeskit.distributions.polyagamma import (
    PolyaGamma,
    polya_gamma_cdf,
    polya_gamma_log_cdf,
    polya_gamma_log_prob,
    polya_gamma_mean,
    polya_gamma_variance,
    sample_polya_gamma,
)

__all__ = [
    "Flow",
    "fit_flow",
    "PolyaGamma",
    "polya_gamma_cdf",
    "polya_gamma_log_cdf",
    "polya_gamma_log_prob",
    "polya_gamma_mean",
    "polya_gamma_variance",
    "sample_polya_gamma",
]

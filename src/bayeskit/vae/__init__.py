"""Variational autoencoders as modular amortised inference (reference 07).

Encoders and decoders (:mod:`bayeskit.vae.modules`), the model with its objectives
(:mod:`bayeskit.vae.objectives`: ELBO with analytic / Monte Carlo / density-ratio KL, IWAE,
importance-sampled log-likelihood) and training (:mod:`bayeskit.vae.train`).
"""

from bayeskit.vae.modules import (
    BernoulliDecoder,
    CategoricalDecoder,
    FlowEncoder,
    GaussianDecoder,
    GaussianEncoder,
    RelaxedCategoricalEncoder,
)
from bayeskit.vae.objectives import VAE, DensityRatioKL, check_data
from bayeskit.vae.train import TrainingDivergedError, evaluate, fit

__all__ = ["VAE", "DensityRatioKL", "GaussianEncoder", "FlowEncoder",
           "RelaxedCategoricalEncoder", "BernoulliDecoder", "GaussianDecoder",
           "CategoricalDecoder", "fit", "evaluate", "check_data", "TrainingDivergedError"]

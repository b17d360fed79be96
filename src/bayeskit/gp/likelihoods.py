"""Likelihoods ``p(y | f)`` with variational expectations ``E_{N(f | m, v)}[log p(y | f)]``.

Closed forms where they exist (Gaussian; Poisson with the log link), Gauss-Hermite
quadrature otherwise (``num_points``, default 20), exact for polynomials of degree
``2 * num_points - 1`` in ``f``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from bayeskit.gp.kernels import inverse_positive, positive

__all__ = ["Likelihood", "Gaussian", "Bernoulli", "Poisson", "StudentT", "gauss_hermite"]

F64 = torch.float64


def gauss_hermite(num_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``x`` and weights ``w`` with ``E_{N(0,1)}[g(z)] ~ sum w_i g(x_i)``."""
    x, w = np.polynomial.hermite_e.hermegauss(num_points)
    return torch.as_tensor(x, dtype=F64), torch.as_tensor(w / w.sum(), dtype=F64)


class Likelihood(nn.Module):
    """Base class: ``log_prob(y, f)``; quadrature for the expectations unless overridden."""

    def __init__(self, num_points: int = 20):
        super().__init__()
        self.num_points = num_points

    def _quad(self, fn, mean, var):
        x, w = gauss_hermite(self.num_points)
        f = mean.unsqueeze(-1) + var.clamp_min(0).sqrt().unsqueeze(-1) * x.to(mean.dtype)
        return (fn(f) * w.to(mean.dtype)).sum(-1)

    def variational_expectations(self, y, mean, var):
        return self._quad(lambda f: self.log_prob(y.unsqueeze(-1), f), mean, var)

    def predict_mean(self, mean, var):
        """``E[y]`` under ``f ~ N(mean, var)``."""
        return self._quad(self.conditional_mean, mean, var)


class Gaussian(Likelihood):
    """``y ~ N(f, variance)``."""

    def __init__(self, variance: float = 0.1):
        super().__init__()
        self.raw_variance = nn.Parameter(inverse_positive(variance))

    @property
    def variance(self):
        return positive(self.raw_variance)

    def log_prob(self, y, f):
        return -0.5 * torch.log(2 * math.pi * self.variance) - 0.5 * (y - f) ** 2 / self.variance

    def variational_expectations(self, y, mean, var):
        s2 = self.variance
        return -0.5 * torch.log(2 * math.pi * s2) - 0.5 * ((y - mean) ** 2 + var) / s2

    def conditional_mean(self, f):
        return f

    def predict_mean(self, mean, var):
        return mean


class Bernoulli(Likelihood):
    """``y in {0, 1}``, ``P(y = 1 | f) = sigmoid(f)`` (``link="logit"``) or ``Phi(f)``."""

    def __init__(self, link: str = "logit", num_points: int = 20):
        super().__init__(num_points)
        if link not in ("logit", "probit"):
            raise ValueError(f"link must be 'logit' or 'probit', got {link!r}")
        self.link = link

    def _log_p1(self, f):
        return (torch.nn.functional.logsigmoid(f) if self.link == "logit"
                else torch.special.log_ndtr(f))

    def log_prob(self, y, f):
        return torch.where(y > 0.5, self._log_p1(f), self._log_p1(-f))

    def conditional_mean(self, f):
        return torch.exp(self._log_p1(f))

    def predict_mean(self, mean, var):
        if self.link == "probit":  # exact: Phi(m / sqrt(1 + v))
            return torch.special.ndtr(mean / torch.sqrt(1 + var))
        return super().predict_mean(mean, var)


class Poisson(Likelihood):
    """``y ~ Poisson(exp(f))``; closed-form variational expectations."""

    def log_prob(self, y, f):
        return y * f - torch.exp(f) - torch.lgamma(y + 1)

    def variational_expectations(self, y, mean, var):
        return y * mean - torch.exp(mean + var / 2) - torch.lgamma(y + 1)

    def conditional_mean(self, f):
        return torch.exp(f)

    def predict_mean(self, mean, var):
        return torch.exp(mean + var / 2)


class StudentT(Likelihood):
    """``y ~ StudentT(df, loc=f, scale)`` (robust regression); quadrature expectations."""

    def __init__(self, df: float = 3.0, scale: float = 1.0, num_points: int = 20):
        super().__init__(num_points)
        self.df = df
        self.raw_scale = nn.Parameter(inverse_positive(scale))

    @property
    def scale(self):
        return positive(self.raw_scale)

    def log_prob(self, y, f):
        return torch.distributions.StudentT(self.df, f, self.scale).log_prob(y)

    def conditional_mean(self, f):
        return f

    def predict_mean(self, mean, var):
        return mean

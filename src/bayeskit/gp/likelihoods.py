"""Likelihoods ``p(y | f)`` with variational expectations ``E_{N(f | m, v)}[log p(y | f)]``.

Closed forms where they exist (Gaussian; Poisson with the log link), Gauss-Hermite
quadrature otherwise (``num_points``, default 20), exact for polynomials of degree
``2 * num_points - 1`` in ``f``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bayeskit.distributions.gaussian import gauss_hermite_expectation
from bayeskit.errors import ArgumentValueError
from bayeskit.gp.kernels import inverse_positive, positive
from bayeskit.validation import as_int, as_scalar, check_choice

__all__ = ["Likelihood", "Gaussian", "Bernoulli", "Poisson", "StudentT"]


class Likelihood(nn.Module):
    """Base class: ``log_prob(y, f)``, ``conditional_mean(f)``, ``conditional_variance(f)``;
    Gauss-Hermite quadrature (:func:`bayeskit.distributions.gaussian.gauss_hermite_expectation`)
    for the expectations unless a subclass has a closed form."""

    def __init__(self, num_points: int = 20):
        super().__init__()
        self.num_points = as_int(num_points, "num_points", positive=True)

    def _quad(self, fn, mean, var):
        return gauss_hermite_expectation(fn, mean, var, self.num_points)

    def check_targets(self, y: torch.Tensor) -> torch.Tensor:
        """Refuse targets outside the likelihood's support (default: any finite value)."""
        return y

    def variational_expectations(self, y, mean, var):
        return self._quad(lambda f: self.log_prob(y.unsqueeze(-1), f), mean, var)

    def predict_mean(self, mean, var):
        """``E[y]`` under ``f ~ N(mean, var)``."""
        return self._quad(self.conditional_mean, mean, var)

    def predict_mean_and_var(self, mean, var) -> tuple[torch.Tensor, torch.Tensor]:
        """``E[y]`` and ``Var[y] = E[Var(y | f)] + Var(E[y | f])`` under ``f ~ N(mean,
        var)``."""
        m = self.predict_mean(mean, var)
        second = self._quad(lambda f: self.conditional_mean(f) ** 2
                            + self.conditional_variance(f), mean, var)
        return m, (second - m * m).clamp_min(0)


class Gaussian(Likelihood):
    """``y ~ N(f, variance)``.

    Examples:
        >>> mean, var = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
        >>> mean, var = Gaussian(variance=0.5).predict_mean_and_var(mean, var)
        >>> float(var[0])  # latent variance plus noise
        1.5
    """

    def __init__(self, variance: float = 0.1):
        super().__init__()
        v = as_scalar(variance, "variance", low=1e-6, low_open=True)
        self.raw_variance = nn.Parameter(inverse_positive(v))

    @property
    def variance(self):
        return positive(self.raw_variance)

    def conditional_variance(self, f):
        return self.variance.to(f.dtype).expand(f.shape)

    def predict_mean_and_var(self, mean, var):
        return mean, var + self.variance.to(var.dtype)

    def log_prob(self, y, f):
        s2 = self.variance.to(f.dtype)
        return -0.5 * torch.log(2 * math.pi * s2) - 0.5 * (y - f) ** 2 / s2

    def variational_expectations(self, y, mean, var):
        s2 = self.variance.to(mean.dtype)
        return -0.5 * torch.log(2 * math.pi * s2) - 0.5 * ((y - mean) ** 2 + var) / s2

    def conditional_mean(self, f):
        return f

    def predict_mean(self, mean, var):
        return mean


class Bernoulli(Likelihood):
    """``y in {0, 1}``, ``P(y = 1 | f) = sigmoid(f)`` (``link="logit"``) or ``Phi(f)``.

    Examples:
        >>> zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
        >>> p = Bernoulli().predict_mean(zero, one)  # E[sigmoid(f)], f ~ N(0, 1)
        >>> round(float(p[0]), 4)
        0.5
        >>> p = Bernoulli(link="probit").predict_mean(one, one)  # Phi(1 / sqrt 2)
        >>> round(float(p[0]), 4)
        0.7602
    """

    def __init__(self, link: str = "logit", num_points: int = 20):
        super().__init__(num_points)
        self.link = check_choice(link, "link", ("logit", "probit"))

    def check_targets(self, y):
        if y.numel() and not bool(((y == 0) | (y == 1)).all()):
            bad = y[(y != 0) & (y != 1)][:3].tolist()
            raise ArgumentValueError(f"y must hold labels 0 or 1 for a Bernoulli likelihood, "
                                     f"got e.g. {bad}; encode the two classes as 0 and 1")
        return y

    def conditional_variance(self, f):
        p = self.conditional_mean(f)
        return p * (1 - p)

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
    """``y ~ Poisson(exp(f))``; closed-form variational expectations.

    Examples:
        >>> zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
        >>> Poisson().predict_mean(zero, one)  # E[exp(f)] = exp(1/2)
        tensor([1.6487], dtype=torch.float64)
    """

    def check_targets(self, y):
        if y.numel() and not bool(((y >= 0) & (y == torch.round(y))).all()):
            raise ArgumentValueError("y must hold non-negative whole counts for a Poisson "
                                     f"likelihood, got minimum {float(y.min()):.4g}")
        return y

    def conditional_variance(self, f):
        return torch.exp(f)

    def predict_mean_and_var(self, mean, var):
        m = torch.exp(mean + var / 2)  # Var = E[e^f] + Var(e^f) (log-normal moments)
        return m, m + m * m * torch.expm1(var)

    def log_prob(self, y, f):
        return y * f - torch.exp(f) - torch.lgamma(y + 1)

    def variational_expectations(self, y, mean, var):
        return y * mean - torch.exp(mean + var / 2) - torch.lgamma(y + 1)

    def conditional_mean(self, f):
        return torch.exp(f)

    def predict_mean(self, mean, var):
        return torch.exp(mean + var / 2)


class StudentT(Likelihood):
    """``y ~ StudentT(df, loc=f, scale)`` (robust regression); quadrature expectations.

    Examples:
        >>> zero = torch.tensor([0.0], dtype=torch.float64)
        >>> lp = StudentT(df=3.0).log_prob(zero, zero)  # log Gamma(2)/(Gamma(1.5) sqrt(3 pi))
        >>> round(float(lp[0]), 4)
        -1.0009
    """

    def __init__(self, df: float = 3.0, scale: float = 1.0, num_points: int = 20):
        super().__init__(num_points)
        self.df = as_scalar(df, "df", positive=True)
        self.raw_scale = nn.Parameter(inverse_positive(as_scalar(scale, "scale",
                                                                 low=1e-6, low_open=True)))

    @property
    def scale(self):
        return positive(self.raw_scale)

    def log_prob(self, y, f):
        return torch.distributions.StudentT(self.df, f, self.scale.to(f.dtype)).log_prob(y)

    def conditional_variance(self, f):
        v = (self.scale ** 2 * self.df / (self.df - 2) if self.df > 2
             else torch.tensor(float("inf"), dtype=torch.float64))
        return v.to(f.dtype).expand(f.shape)

    def conditional_mean(self, f):
        return f

    def predict_mean(self, mean, var):
        return mean

"""Closed-form acquisition functions (minimisation): log expected improvement and the
lower confidence bound. Both take ``X`` ``[B, 1, D]`` (or ``[B, D]``) and return ``[B]``
values to *maximise*, differentiable in ``X``.
"""

from __future__ import annotations

import math

import torch

from bayeskit.errors import ShapeError
from bayeskit.gp.posterior import as_posterior
from bayeskit.validation import as_scalar

__all__ = ["log_h", "LogExpectedImprovement", "UpperConfidenceBound"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def log_h(z: torch.Tensor) -> torch.Tensor:
    """``log(phi(z) + z Phi(z))``, accurate for very negative ``z`` too.

    For ``z < -1``: ``phi(z) + z Phi(z) = phi(z) (1 - |z| m(|z|))`` with the Mills ratio
    ``m(t) = Phi(-t) / phi(t) = sqrt(pi / 2) erfcx(t / sqrt(2))`` (no cancellation in
    ``Phi``); for large ``|z|``, ``1 - t m(t) ~ 1 / t^2`` keeps its relative accuracy because
    ``erfcx`` does.
    """
    # each branch sees only inputs in its own range, so neither produces NaN (or a NaN
    # gradient that torch.where would multiply by zero and keep)
    zd = z.clamp_min(-1.0)
    direct = torch.log(torch.exp(-0.5 * zd * zd - _LOG_SQRT_2PI) + zd * torch.special.ndtr(zd))
    t = (-z).clamp_min(1.0)
    tm = t.clamp_max(1e4)
    mills = math.sqrt(math.pi / 2) * torch.special.erfcx(tm / math.sqrt(2))
    tail = -0.5 * tm * tm - _LOG_SQRT_2PI + torch.log1p(-tm * mills)
    # beyond |z| ~ 1e4 the log1p argument loses its last digits; use the asymptote there
    tail = torch.where(t > 1e4, -0.5 * t * t - _LOG_SQRT_2PI - 2 * torch.log(t), tail)
    return torch.where(z < -1, tail, direct)


def _points(X, post) -> torch.Tensor:
    X = post.check_inputs(X)
    X = X[:, None, :] if X.dim() == 2 else X
    if X.dim() != 3 or X.shape[1] != 1:
        raise ShapeError(f"analytic acquisitions score one point per batch: X must be "
                         f"[B, 1, D], got {tuple(X.shape)}")
    return X


class LogExpectedImprovement:
    """``log E[max(best_f - f(x), 0)]`` under the posterior of ``f`` (Ament et al. 2023's
    log-EI idea: the log keeps gradients alive where EI underflows).

    Examples:
        >>> from bayeskit.gp import GPR
        >>> X = torch.linspace(-1, 2, 6, dtype=torch.float64)[:, None]
        >>> acq = LogExpectedImprovement(GPR(X, X[:, 0] ** 2), best_f=0.0)
        >>> acq(torch.zeros(3, 1, 1, dtype=torch.float64)).shape
        torch.Size([3])
    """

    def __init__(self, model, best_f: float | None = None):
        self.post = as_posterior(model)
        if best_f is None:
            with torch.no_grad():
                best_f = float(self.post.mean(self.post.train_inputs).min())
        self.best_f = as_scalar(best_f, "best_f")

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        mean, var = self.post.mean_and_variance(_points(X, self.post))
        var = var.clamp_min(1e-30)  # a noise-free observed point: sd -> 0, not NaN
        sd = var.sqrt()[:, 0]
        z = (self.best_f - mean[:, 0]) / sd
        return sd.log() + log_h(z)


class UpperConfidenceBound:
    """``-(mu(x) - sqrt(beta) sd(x))``: the negated lower confidence bound (for
    minimisation), larger is better.

    Examples:
        >>> from bayeskit.gp import GPR
        >>> X = torch.tensor([[-1.0], [0.0], [0.5], [1.5]], dtype=torch.float64)
        >>> ucb = UpperConfidenceBound(GPR(X, torch.sin(3 * X[:, 0]), noise_variance=1e-3))
        >>> ucb(torch.tensor([[[0.2]], [[1.0]]], dtype=torch.float64)).shape  # [B, q=1, D] -> [B]
        torch.Size([2])
    """

    def __init__(self, model, beta: float = 4.0):
        self.beta = as_scalar(beta, "beta", nonnegative=True)
        self.post = as_posterior(model)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        mean, var = self.post.mean_and_variance(_points(X, self.post))
        var = var.clamp_min(1e-30)  # a noise-free observed point: sd -> 0, not NaN
        return -(mean[:, 0] - math.sqrt(self.beta) * var.sqrt()[:, 0])

"""f-divergences ``D_f[p || q] = E_q[f(p(x) / q(x))]``, written as functions of ``log u``.

Working with ``log u = log p - log q`` keeps every estimator finite where the ratio under-
or overflows. Each generator has ``f(1) = 0``; the ``self_normalized`` variants add a
multiple of ``u - 1`` (zero in expectation under ``q``) so that also ``f'(1) = 0``, which
lowers the Monte Carlo variance (as in TFP's ``tfp.vi``). The Jensen-Shannon generator here
gives the standard ``JS = KL(p||m)/2 + KL(q||m)/2`` with ``m = (p + q)/2`` (at most log 2).

Examples:
    >>> import torch
    >>> p = torch.distributions.Normal(1.0, 1.0); q = torch.distributions.Normal(0.0, 2.0)
    >>> float(torch.distributions.kl_divergence(p, q))  # the reference's 0.44314718
    0.4431471824645996
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bayeskit.errors import ArgumentTypeError, NonFiniteError, ShapeError
from bayeskit.validation import as_scalar, as_tensor, check_choice

__all__ = ["kl_forward", "kl_reverse", "jensen_shannon", "pearson", "squared_hellinger",
           "total_variation", "amari_alpha", "MonteCarloEstimate", "monte_carlo_f_divergence",
           "monte_carlo_kl", "conjugate"]


def _logu(logu) -> torch.Tensor:
    """The generators' argument: a real floating tensor (kept as is, with its graph: the
    variational bounds differentiate through it) or array-like (converted; NaN/inf allowed,
    ``log r = -inf`` is a valid value)."""
    if isinstance(logu, torch.Tensor) and logu.is_floating_point():
        return logu
    return as_tensor(logu, "logu", dtype=torch.float64, finite=False)


def kl_forward(logu: torch.Tensor, self_normalized: bool = False) -> torch.Tensor:
    """``f(u) = u log u``: ``D_f = KL[p || q]``.

    Examples:
        >>> logu = torch.log(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))  # log r
        >>> kl_forward(logu)  # u log u
        tensor([-0.3466,  0.0000,  1.3863], dtype=torch.float64)
    """
    logu = _logu(logu)
    u = torch.exp(logu)
    return u * logu + ((1 - u) if self_normalized else 0)


def kl_reverse(logu: torch.Tensor, self_normalized: bool = False) -> torch.Tensor:
    """``f(u) = -log u``: ``D_f = KL[q || p]``.

    Examples:
        >>> logu = torch.log(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))  # log r
        >>> kl_reverse(logu)  # -log u
        tensor([ 0.6931,  0.0000, -0.6931], dtype=torch.float64)
    """
    logu = _logu(logu)
    return -logu + ((torch.expm1(logu)) if self_normalized else 0)


def jensen_shannon(logu: torch.Tensor) -> torch.Tensor:
    """``f(u) = (u log u - (1 + u) log((1 + u) / 2)) / 2``: the Jensen-Shannon divergence.

    Already self-normalised (``f'(1) = 0``).

    Examples:
        >>> logu = torch.log(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))  # log r
        >>> jensen_shannon(logu)
        tensor([0.0425, 0.0000, 0.0849], dtype=torch.float64)
    """
    logu = _logu(logu)
    u = torch.exp(logu)
    log1pu = torch.nn.functional.softplus(logu)  # log(1 + u), stable
    return 0.5 * (u * logu - (1 + u) * (log1pu - math.log(2)))


def pearson(logu: torch.Tensor) -> torch.Tensor:
    """``f(u) = (u - 1)^2``: Pearson chi-square.

    Examples:
        >>> logu = torch.log(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))  # log r
        >>> pearson(logu)
        tensor([0.2500, 0.0000, 1.0000], dtype=torch.float64)
    """
    logu = _logu(logu)
    return torch.expm1(logu) ** 2


def squared_hellinger(logu: torch.Tensor) -> torch.Tensor:
    """``f(u) = (sqrt(u) - 1)^2``: ``D_f = 2 H^2`` with ``H^2 = 1 - int sqrt(p q)``.

    Examples:
        >>> logu = torch.log(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))  # log r
        >>> squared_hellinger(logu)
        tensor([0.0858, 0.0000, 0.1716], dtype=torch.float64)
    """
    logu = _logu(logu)
    return torch.expm1(0.5 * logu) ** 2


def total_variation(logu: torch.Tensor) -> torch.Tensor:
    """``f(u) = |u - 1| / 2``: total variation distance.

    Examples:
        >>> logu = torch.log(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))  # log r
        >>> total_variation(logu)
        tensor([0.2500, 0.0000, 0.5000], dtype=torch.float64)
    """
    logu = _logu(logu)
    return 0.5 * torch.expm1(logu).abs()


def amari_alpha(logu: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """Amari's alpha family ``f(u) = (u^alpha - 1 - alpha (u - 1)) / (alpha (alpha - 1))``.

    ``alpha -> 1`` gives forward KL and ``alpha -> 0`` reverse KL (self-normalised forms).

    Examples:
        >>> logu = torch.log(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))  # log r
        >>> amari_alpha(logu, alpha=0.5)  # 2 (sqrt u - 1)^2: twice the squared Hellinger
        tensor([0.1716, -0.0000, 0.3431], dtype=torch.float64)
    """
    logu = _logu(logu)
    alpha = as_scalar(alpha, "alpha")
    if alpha == 1:
        return kl_forward(logu, self_normalized=True)
    if alpha == 0:
        return kl_reverse(logu, self_normalized=True)
    return (torch.expm1(alpha * logu) - alpha * torch.expm1(logu)) / (alpha * (alpha - 1))


def conjugate(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Convex conjugate ``f*(t) = sup_u (t u - f(u))`` of a generator, for variational bounds
    ``D_f[p || q] >= E_p[T(x)] - E_q[f*(T(x))]`` (Nguyen, Wainwright & Jordan 2010).

    Examples:
        >>> f_star = conjugate("kl_forward")  # f*(t) = exp(t - 1)
        >>> f_star(torch.tensor([1.0], dtype=torch.float64))
        tensor([1.], dtype=torch.float64)
    """
    table = {
        "kl_forward": lambda t: torch.exp(t - 1),
        "kl_reverse": lambda t: -1 - torch.log(-t),  # domain t < 0
        "pearson": lambda t: t + t * t / 4,
        "total_variation": lambda t: t,  # domain |t| <= 1/2
    }
    check_choice(name, "name", sorted(table))
    return table[name]


@dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte Carlo average with its standard error ``std / sqrt(n)`` over the ``n``
    averaged terms: the sampling error of the average only (for estimated log-ratios it
    treats the ratio as fixed; see :func:`bayeskit.ratio.estimate_kl`).

    Examples:
        >>> MonteCarloEstimate(value=1.0, standard_error=0.1, n=100)
        MonteCarloEstimate(value=1.0, standard_error=0.1, n=100)
    """

    value: float
    standard_error: float
    n: int

    def __float__(self) -> float:
        return self.value


def _estimate(terms: torch.Tensor) -> MonteCarloEstimate:
    terms = terms.reshape(-1)
    if terms.numel() < 2:
        raise ShapeError("need at least 2 samples for a Monte Carlo estimate")
    if not bool(torch.isfinite(terms).all()):
        raise NonFiniteError("non-finite terms: check the samples and the log-ratio")
    return MonteCarloEstimate(float(terms.mean()),
                              float(terms.std() / math.sqrt(terms.numel())), terms.numel())


def monte_carlo_f_divergence(f: Callable[[torch.Tensor], torch.Tensor],
                             log_ratio_at_q: torch.Tensor) -> MonteCarloEstimate:
    """``D_f[p || q] ~ mean f(log r(x_j))`` over samples ``x_j ~ q``.

    Examples:
        >>> from torch.distributions import Normal
        >>> p, q = Normal(0.5, 1.0), Normal(0.0, 1.0)  # Pearson chi^2 = exp(1/4) - 1 = 0.2840
        >>> x_q = torch.randn(4000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        >>> est = monte_carlo_f_divergence(pearson, p.log_prob(x_q) - q.log_prob(x_q))
        >>> abs(est.value - 0.2840) < 2 * est.standard_error
        True
    """
    if not callable(f):
        raise ArgumentTypeError(f"f must be a callable f-divergence generator, got {f!r}")
    return _estimate(f(as_tensor(log_ratio_at_q, "log_ratio_at_q", dtype=torch.float64)))


def monte_carlo_kl(log_ratio_at_p: torch.Tensor) -> MonteCarloEstimate:
    """``KL[p || q] ~ mean log r(x_i)`` over samples ``x_i ~ p`` (the reference's estimator).

    Examples:
        >>> from torch.distributions import Normal
        >>> g = torch.Generator().manual_seed(0)
        >>> p, q = Normal(1.0, 1.0), Normal(0.0, 2.0)  # KL[p || q] = 0.4431
        >>> log_r = lambda x: p.log_prob(x) - q.log_prob(x)
        >>> x_p = 1 + torch.randn(2000, dtype=torch.float64, generator=g)
        >>> x_q = 2 * torch.randn(2000, dtype=torch.float64, generator=g)
        >>> est = monte_carlo_kl(log_r(x_p))
        >>> round(est.value, 3), round(est.standard_error, 3), est.n
        (0.45, 0.013, 2000)
    """
    return _estimate(as_tensor(log_ratio_at_p, "log_ratio_at_p", dtype=torch.float64))

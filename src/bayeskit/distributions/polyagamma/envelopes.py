"""The envelope of the series method: truncation point ``t(h)``, the constants ``C(h)``,
the probability of the left piece, and the acceptance rate."""

from __future__ import annotations

import functools
import math

import torch

from bayeskit.distributions.polyagamma.series import (
    F64,
    H_MAX,
    LOG2,
    LOG_PI_2,
    PI2_8,
    T_SMALL,
    jstar_log_density,
    log_a0,
    log_cosh,
    log_kernel_right,
)
from bayeskit.validation import as_scalar

__all__ = ["truncation_point", "take", "constants_for", "shape_constants", "left_probability",
           "envelope_acceptance_rate"]

def truncation_point(h: torch.Tensor) -> torch.Tensor:
    """``t(h)``: 0.64 for ``h < 1``, else where ``a_0`` meets the right-hand kernel."""
    lo = torch.full_like(h, 0.05)
    hi = 3 * h + 3
    for _ in range(60):  # bisection: a_0 / kernel rises through 1 exactly once
        mid = 0.5 * (lo + hi)
        above = log_a0(mid, h) > log_kernel_right(mid, h)
        hi = torch.where(above, mid, hi)
        lo = torch.where(above, lo, mid)
    return torch.where(h < 1, torch.full_like(h, T_SMALL), 0.5 * (lo + hi))


def take(v: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``v[idx]``, or ``v`` itself for a 0-dim (shared by every element) constant."""
    return v if v.dim() == 0 else v[idx]


@functools.lru_cache(maxsize=4096)
def constants_for(h: float) -> tuple[float, float, float]:
    """``(t, log C, lgamma(h))`` for one shape value, cached (a Gibbs sweep reuses them)."""
    ht = torch.tensor([h], dtype=F64)
    t = truncation_point(ht)
    log_c = (jstar_log_density(t, ht) - log_kernel_right(t, ht)).clamp_min(0.0)
    log_c = log_c + 1e-12 if h < 1 else torch.zeros_like(log_c)
    return float(t), float(log_c), math.lgamma(h)


def shape_constants(h: torch.Tensor):
    """``h, t, log C, lgamma(h)``: 0-dim tensors when every element shares one ``h``."""
    if h.numel() and bool((h == h[0]).all()):
        vals = torch.tensor(constants_for(float(h[0])), dtype=F64, device=h.device)
        return h[0], vals[0], vals[1], vals[2]
    hu, inverse = torch.unique(h, return_inverse=True)
    table = torch.tensor([constants_for(v) for v in hu.tolist()], dtype=F64,
                         device=h.device)[inverse]
    return h, table[:, 0], table[:, 1], table[:, 2]


def left_probability(h, z, t, log_c) -> torch.Tensor:
    """Probability that the tilted envelope draws from its left piece ``(0, t]``.

    Left mass ``2^h [exp(-hz) Phi(z sqrt(t) - h/sqrt(t)) + exp(hz) Phi(-z sqrt(t) - h/sqrt(t))]``
    (an inverse-Gaussian CDF), right mass ``C (pi/2)^h lam^-h Q(h, lam t)`` with
    ``lam = pi^2/8 + z^2/2``. Computed in linear space where nothing can overflow or
    underflow (``h z < 600``), in log space elsewhere.
    """
    sqrt_t = torch.sqrt(t)
    lam = PI2_8 + 0.5 * z * z
    y = lam * t
    integer_h = h.dim() == 0 and float(h) == round(float(h)) and float(h) <= 8
    if integer_h:
        # integer shape: Q(h, y) = exp(-y) sum_{k<h} y^k / k!  (cheaper than gammaincc)
        partial = torch.ones_like(y)
        term = torch.ones_like(y)
        for k in range(1, int(float(h))):
            term = term * y / k
            partial = partial + term
        q = torch.exp(-y) * partial
    else:
        q = torch.special.gammaincc(h, y)
    hz = h * z
    a = z * sqrt_t - h / sqrt_t
    b = -z * sqrt_t - h / sqrt_t
    m_left = torch.exp(-hz) * torch.special.ndtr(a) + torch.exp(hz) * torch.special.ndtr(b)
    m_right = torch.exp(log_c + h * LOG_PI_2 - h * torch.log(lam)) * q / 2**h
    p = m_left / (m_left + m_right)
    risky = ~(hz < 600) | ~torch.isfinite(p)
    if bool(risky.any()):
        idx = torch.nonzero(risky).squeeze(-1)
        log_left, log_right = _log_masses(*(take(v, idx) for v in (h, z, t, log_c)))
        p = p.clone()
        p[idx] = torch.sigmoid(log_left - log_right)
    return p


def envelope_acceptance_rate(b: float, c: float = 0.0) -> float:
    """Probability that one proposal of the ``J*(b, |c|/2)`` envelope is accepted.

    ``cosh(z)^-b`` (the target's normaliser relative to ``f``) over the envelope mass; the
    expected number of proposals per draw is its inverse. For ``b <= H_MAX``.
    """
    b = as_scalar(b, "b", positive=True, high=H_MAX)
    c = as_scalar(c, "c")
    h = torch.tensor(b, dtype=F64)
    z = torch.tensor(abs(c) / 2, dtype=F64)
    _, t, log_c, _ = shape_constants(h.reshape(1))
    log_left, log_right = _log_masses(h, z, t, log_c)
    return float(torch.exp(-h * log_cosh(z) - torch.logaddexp(log_left, log_right)))


def _log_masses(h, z, t, log_c):
    """Log of the envelope's left mass (times ``2^h``) and right mass, in log space
    throughout (see :func:`left_probability` for the linear-space form)."""
    sqrt_t = torch.sqrt(t)
    log_left = h * LOG2 + torch.logaddexp(
        -h * z + torch.special.log_ndtr(z * sqrt_t - h / sqrt_t),
        h * z + torch.special.log_ndtr(-z * sqrt_t - h / sqrt_t))
    lam = PI2_8 + 0.5 * z * z
    log_right = (log_c + h * LOG_PI_2 - h * torch.log(lam)
                 + torch.log(torch.special.gammaincc(h, lam * t)))
    return log_left, log_right


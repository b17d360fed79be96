"""``log p(w | b, c)`` of ``PG(b, c)`` by Fourier inversion of its characteristic function,
for the parameters where the alternating series cancels (large ``b``).

The Laplace transform of ``PG(b, c)`` is ``E[exp(-s w)] = cosh(c/2)^b / cosh(sqrt(c^2/4 +
s/2))^b`` (Polson, Scott & Windle 2013, eq. 5 tilted by ``c``); it stays valid for any tilt
``k = c^2 > -pi^2`` (``cosh(sqrt(k)/2) = cos(sqrt(-k)/2)`` for ``k < 0``), and tilts relate
the densities exactly:

    p(w | b, k) = [cosh_k / cosh_k']^b exp(-(k - k') w / 2) p(w | b, k').

Each point ``w`` is evaluated under the tilt ``k'`` whose mean is ``w`` (found by bisection),
where the density is in its bulk, then tilted back: the Fourier integral

    p(w | b, k') = (1 / 2 pi) integral phi(t) exp(-i t w) dt,
    phi(t) = [cosh_k' / cosh(sqrt(k'/4 - i t/2))]^b,

is analytic in a strip and decays fast, so the trapezoidal rule over the whole line
converges exponentially (aliasing: the rule returns ``sum_j p(w + j L)``, ``L = 2 pi / dt``
is taken past ``w`` plus 40 standard deviations, where no mass is left). The rounding error
is about ``eps (1 + t_max w) sum |phi|`` relative to the sum, reported so the caller can
refuse a point rather than return a wrong number.
"""

from __future__ import annotations

import math

import torch

from bayeskit.distributions.polyagamma.series import F64, LOG2, log_cosh, unit_moments

__all__ = ["fourier_log_density"]

TAIL_SDS = 40.0       # the period reaches this many standard deviations past w
DECAY = 45.0          # the integrand is cut where |phi| < exp(-DECAY) (~3e-20)
MAX_NODES = 200_000
PI2 = math.pi**2


def _log_cosh(z: torch.Tensor) -> torch.Tensor:
    """``log cosh z`` for complex ``z`` with ``Re z >= 0`` (no overflow, continuous)."""
    return z + torch.log1p(torch.exp(-2 * z)) - LOG2


def _log_cosh_tilt(k: torch.Tensor) -> torch.Tensor:
    """``log cosh(sqrt(k)/2)`` for real ``k > -pi^2`` (``log cos(sqrt(-k)/2)`` below 0)."""
    a = torch.sqrt(k.abs()) / 2
    return torch.where(k >= 0, log_cosh(a), torch.log(torch.cos(a)))


def _moments(k: torch.Tensor, b: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``PG(b, sqrt(k))`` for real ``k > -pi^2``."""
    mean, var = unit_moments(torch.sqrt(k.abs()), k < 0)
    return b * mean, b * var


def _tilt_with_mean(w: torch.Tensor, b: float) -> torch.Tensor:
    """The ``k`` with ``E[PG(b, sqrt k)] = w`` (bisection; the mean falls with ``k``)."""
    lo = torch.full_like(w, -PI2 * (1 - 1e-12))
    hi = torch.maximum((b / (2 * w)) ** 2 * 4, torch.ones_like(w))
    for _ in range(200):
        mid = (lo + hi) / 2
        above = _moments(mid, b)[0] > w
        lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    return (lo + hi) / 2


def _bulk_log_density(w: float, b: float, k: float, var: float):
    """``(log p(w | b, k), relative error)`` by the trapezoidal rule, ``w`` near the mean."""
    t_max = max(math.sqrt(2 * DECAY / var), 2 * (2 * DECAY / b) ** 2 + abs(k))
    dt = 2 * math.pi / (2 * w + TAIL_SDS * math.sqrt(var))
    n = min(int(math.ceil(t_max / dt)) + 1, MAX_NODES)
    t = torch.arange(1, n, dtype=F64) * dt
    kt = torch.tensor(k, dtype=F64)
    z = torch.sqrt((k / 4 - 0.5j * t).to(torch.complex128))
    log_phi = b * (_log_cosh_tilt(kt) - _log_cosh(z))
    terms = torch.exp(log_phi.real) * torch.cos(log_phi.imag - t * w)
    total = 1.0 + 2 * float(terms.sum())
    mass = 1.0 + 2 * float(torch.exp(log_phi.real).sum())
    err = torch.finfo(F64).eps * (1 + float(t[-1]) * w) * mass / abs(total) if total > 0 \
        else math.inf
    return math.log(max(dt / (2 * math.pi) * total, 1e-300)), err


def fourier_log_density(w: torch.Tensor, b: float, c: float,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p(w | b, c), estimated relative error)`` ``[N]`` for one ``(b, c)`` and
    values ``w > 0`` ``[N]`` (float64)."""
    w = w.to(F64).reshape(-1)
    k_target = torch.tensor(c * c, dtype=F64)
    k = _tilt_with_mean(w, b)
    _, var = _moments(k, b)
    out, err = torch.empty_like(w), torch.empty_like(w)
    for i in range(len(w)):
        log_p, e = _bulk_log_density(float(w[i]), b, float(k[i]), float(var[i]))
        out[i], err[i] = log_p, e
    # tilt back from k to c^2 (exact)
    out = out + b * (_log_cosh_tilt(k_target) - _log_cosh_tilt(k)) - (k_target - k) * w / 2
    return out, err

"""``log p(w | b, c)`` and ``log F(w | b, c)`` of ``PG(b, c)`` by inverting its Laplace
transform, for the parameters where the alternating series cancels (large ``b``). The
density is described here; the CDF in :func:`_tail_log_cdf`.

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

from bayeskit.distributions.polyagamma.series import F64, log_cosh, unit_moments

__all__ = ["fourier_log_density", "fourier_log_cdf"]

TAIL_SDS = 40.0       # the period reaches this many standard deviations past w
DECAY = 45.0          # the integrand is cut where |phi| < exp(-DECAY) (~3e-20)
MAX_NODES = 200_000
ALIAS = 45.0          # aliased terms of the CDF inversion are below exp(-ALIAS) of it
PI2 = math.pi**2


def _log_cosh_tilt(k: torch.Tensor) -> torch.Tensor:
    """``log cosh(sqrt(k)/2)`` for real ``k > -pi^2`` (``log cos(sqrt(-k)/2)`` below 0,
    as ``log1p(-2 sin^2)`` so small tilts keep their relative accuracy)."""
    a = torch.sqrt(k.abs()) / 2
    return torch.where(k >= 0, log_cosh(a), torch.log1p(-2 * torch.sin(a / 2) ** 2))


def _log_laplace(s: torch.Tensor, b: float, k: float) -> torch.Tensor:
    """``log E[exp(-s w)]`` of ``PG(b, sqrt k)`` at complex ``s`` with ``k + 2 Re s > -pi^2``:
    ``b [log cosh(sqrt(k)/2) - log cosh(sqrt(k/4 + s/2))]``, continuous along vertical
    lines (the principal square root never meets its cut for ``Im s > 0``)."""
    z = torch.sqrt((k / 4 + s / 2).to(torch.complex128))
    return b * (_log_cosh_tilt(torch.tensor(k, dtype=F64)) - log_cosh(z))


def _cutoff(log_decay, var: float) -> float:
    """The first ``t`` of the doubling sequence from the Gaussian width
    ``sqrt(2 DECAY / var)`` with ``log_decay(t) < -DECAY`` (the modulus of a PG
    characteristic function falls monotonically: it is a product of gamma ones)."""
    t = math.sqrt(2 * DECAY / var)
    for _ in range(64):
        if log_decay(t) < -DECAY:
            return t
        t *= 2
    return math.inf


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
    t_max = _cutoff(lambda t: float(_log_laplace(torch.tensor(-1j * t, dtype=torch.complex128),
                                                 b, k).real), var)
    dt = 2 * math.pi / (2 * w + TAIL_SDS * math.sqrt(var))
    if not t_max / dt < MAX_NODES:
        return math.nan, math.inf
    n = int(math.ceil(t_max / dt)) + 1
    t = torch.arange(1, n, dtype=F64) * dt
    log_phi = _log_laplace(-1j * t, b, k)
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


def _tail_log_cdf(w: float, b: float, k: float, s_star: float, var_star: float):
    """``(log F(w), relative error)`` for one point by the Bromwich integral of ``F``.

    ``I(sigma) = (1/2 pi) integral e^{s w} L(s) / s dt`` over ``s = sigma + i t`` equals
    ``F(w)`` for ``sigma > 0`` and ``F(w) - 1`` for ``0 > sigma > -lambda``, ``lambda = (pi^2
    + k) / 2`` (the pole of ``1/s`` at 0 is crossed; ``L`` is analytic right of
    ``-lambda``). The contour goes through the saddle point ``s*`` of ``s w + log L(s)``
    (the tilt whose mean is ``w``), where the integrand barely oscillates, so the result
    keeps its relative accuracy far into either tail; near the mean it is moved one
    standard deviation off the pole. The trapezoidal rule with step ``h = 2 pi / P``
    returns ``sum_j G(w + j P) e^{-sigma j P}`` (``G = F`` or ``F - 1``): ``P`` is chosen so
    the aliased terms are below ``e^{-ALIAS}`` of the result, using ``F(x) = 0`` for
    ``x < 0``, ``|G| <= 1`` and Chernoff's bound ``1 - F(x) <= L(s') e^{s' x}``.
    """
    lam = (PI2 + k) / 2
    sd = math.sqrt(var_star)
    sigma = s_star
    if abs(sigma) < 1 / sd:
        sigma = 1 / sd if sigma >= 0 else -1 / sd
    sigma = max(sigma, (s_star - lam) / 2)  # stay clear of the singularity at -lambda

    def phi(s: float) -> float:  # s w + log L(s), real s > -lambda
        return s * w + float(_log_laplace(torch.tensor(s, dtype=F64), b, k).real)

    # the result's size, up to O(1) (saddle-point estimate), for the aliasing bounds
    log_size = min(0.0, phi(s_star) - 0.5 * math.log(2 * math.pi * var_star)
                   - math.log(max(abs(s_star), 1 / sd)))
    period = max(2 * w, w + TAIL_SDS * sd, (ALIAS - log_size) / abs(sigma))
    if sigma < 0:  # the terms j > 0: (1 - F(w + jP)) e^{|sigma| j P}
        s_far = (sigma - lam) / 2
        period = max(period, (phi(s_far) - log_size + ALIAS) / (sigma - s_far))
    _, var_sigma = _moments(torch.tensor(k + 2 * sigma, dtype=F64), b)

    def log_decay(t: float) -> float:  # log |f(sigma + i t) / f(sigma)|
        s = torch.tensor(complex(sigma, t), dtype=torch.complex128)
        return float((_log_laplace(s, b, k) - torch.log(s)).real - phi(sigma) + sigma * w
                     + math.log(abs(sigma)))

    t_max = _cutoff(log_decay, float(var_sigma))
    h = 2 * math.pi / period
    if not (math.isfinite(h * t_max) and h > 0):
        return math.nan, math.inf
    n = int(math.ceil(t_max / h)) + 1
    if n > MAX_NODES:
        return math.nan, math.inf
    t = torch.arange(0, n, dtype=F64) * h
    s = (sigma + 1j * t).to(torch.complex128)
    log_f = s * w + _log_laplace(s, b, k) - torch.log(s)
    log_m = float(log_f[0].real)
    f = torch.exp(log_f - log_m)  # relative to |f(0)|
    f_sum = float(f[0].real) + 2 * float(f[1:].real.sum())
    mass = 1.0 + 2 * float(f[1:].abs().sum())
    signed = f_sum if sigma > 0 else -f_sum  # F, or 1 - F, relative to h |f(0)| / 2 pi
    if not signed > 0:
        return math.nan, math.inf
    # rounding: the phase t w, the common factor |sigma| w + log L(sigma), the sum's cancellation
    err = torch.finfo(F64).eps * (1 + t_max * w + abs(log_m) + abs(sigma) * w) * mass / signed
    log_g = math.log(signed) + log_m + math.log(h / (2 * math.pi))
    if sigma > 0:
        return log_g, err
    # log F = log(1 - Q): relative error of Q carries to it where Q is small
    q = math.exp(log_g)
    return math.log1p(-q) if q < 1 else -math.inf, err * q / max(1 - q, 1e-300)


def fourier_log_cdf(w: torch.Tensor, b: float, c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log P(PG(b, c) <= w), estimated relative error)`` ``[N]`` for one ``(b, c)`` and
    values ``w > 0`` ``[N]`` (float64), by numerical inversion of the Laplace transform of
    the CDF along a contour through the saddle point (see :func:`_tail_log_cdf`)."""
    w = w.to(F64).reshape(-1)
    k = c * c
    k_star = _tilt_with_mean(w, b)
    _, var = _moments(k_star, b)
    s_star = (k_star - k) / 2
    out, err = torch.empty_like(w), torch.empty_like(w)
    for i in range(len(w)):
        out[i], err[i] = _tail_log_cdf(float(w[i]), b, k, float(s_star[i]), float(var[i]))
    return out, err

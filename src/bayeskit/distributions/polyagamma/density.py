"""Moments, log-density and CDF of ``PG(b, c)``."""

from __future__ import annotations

import math

import torch

from bayeskit.distributions.polyagamma.fourier import fourier_log_cdf, fourier_log_density
from bayeskit.distributions.polyagamma.series import (
    F64,
    LOG2,
    MAX_SERIES_ERROR,
    check_params,
    jstar_log_density_and_error,
    log_cosh,
    unit_moments,
)
from bayeskit.errors import ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.validation import as_param

__all__ = ["polya_gamma_mean", "polya_gamma_variance", "polya_gamma_log_prob",
           "polya_gamma_cdf", "polya_gamma_log_cdf"]


MAX_CDF_TERMS = 2000
LOG_TINY = math.log(torch.finfo(F64).tiny)  # -708.4


def _params(b, c) -> tuple[torch.Tensor, torch.Tensor]:
    b, c = as_param(b, "b"), as_param(c, "c")
    check_params(b.detach().to(F64), c.detach().to(F64))
    return b, c


def _prepare(value, b, c):
    """Broadcast float64 ``value, b, c``; NaN values and invalid parameters raise."""
    value, b, c = (as_param(v, n).to(F64) for v, n in ((value, "value"), (b, "b"), (c, "c")))
    try:
        value, b, c = torch.broadcast_tensors(value, b, c)
    except RuntimeError:
        raise ShapeError(f"value {tuple(value.shape)}, b {tuple(b.shape)} and c "
                         f"{tuple(c.shape)} do not broadcast") from None
    check_params(b, c)
    if bool(torch.isnan(value).any()):
        raise NonFiniteError("value contains NaN; the Polya-gamma density and CDF need numbers")
    return value, b, c



def _fourier_where_series_fails(out, bad, value, b, c, fourier, what):
    """``out`` with the entries ``bad`` recomputed by ``fourier(values, b, c)`` (one call
    per distinct ``(b, c)``); a point neither method evaluates to ``MAX_SERIES_ERROR``
    raises an ``ArgumentValueError`` rather than giving a wrong number."""
    if not bool(bad.any()):
        return out
    out = out.clone()
    flat_out, flat_bad = out.reshape(-1), bad.reshape(-1)
    flat_b, flat_c, flat_v = b.reshape(-1), c.reshape(-1), value.reshape(-1)
    pairs = torch.stack([flat_b, flat_c.abs()], -1)[flat_bad]
    for bb, cc in torch.unique(pairs, dim=0).tolist():
        rows = flat_bad & (flat_b == bb) & (flat_c.abs() == cc)
        result, err = fourier(flat_v[rows], bb, cc)
        if not bool((err <= MAX_SERIES_ERROR).all()):
            i = int(torch.nonzero(~(err <= MAX_SERIES_ERROR))[0, 0])
            raise ArgumentValueError(
                f"the {what} of PG(b={bb:g}, c={cc:g}) at {float(flat_v[rows][i]):g}: neither "
                f"the series nor Fourier inversion reaches relative accuracy "
                f"{MAX_SERIES_ERROR:g} in float64 here")
        flat_out[rows] = result
    return out


def polya_gamma_mean(b, c) -> torch.Tensor:
    """``E[PG(b, c)] = b tanh(c/2) / (2c)`` (``b / 4`` at ``c = 0``).

    Examples:
        >>> polya_gamma_mean(1.0, 0.0), polya_gamma_mean(torch.tensor([1.0, 2.0]), 3.0)
        (tensor(0.2500, dtype=torch.float64), tensor([0.1509, 0.3017]))
    """
    b, c = _params(b, c)
    return b * unit_moments(c.abs())[0]


def polya_gamma_variance(b, c) -> torch.Tensor:
    """``Var[PG(b, c)] = b (2 tanh(c/2) - c sech^2(c/2)) / (4 c^3)`` (``b/24`` at 0).

    Examples:
        >>> polya_gamma_variance(1.0, 0.0)  # b / 24
        tensor(0.0417, dtype=torch.float64)
    """
    b, c = _params(b, c)
    return b * unit_moments(c.abs())[1]


def polya_gamma_log_prob(value, b, c) -> torch.Tensor:
    """``log p(value | b, c)``; ``-inf`` for ``value <= 0`` and ``value = inf``.

    ``p(w) = 4 cosh(c/2)^b exp(-c^2 w / 2) f(4w | b)`` with ``f`` the left series. Its
    relative error is ``eps * sum|a_n| / f``: about 1e-14 at the mean for ``b <= 10``,
    growing in the far right tail and with ``b`` (1e-13 at the mean for ``b = 32``). Where
    it would exceed ``MAX_SERIES_ERROR`` (1e-6), typically for large ``b``, the density
    comes from Fourier inversion of the characteristic function instead
    (:mod:`~bayeskit.distributions.polyagamma.fourier`, about 1e-12 relative in the bulk);
    where that bound fails too (far tails) an ``ArgumentValueError`` is raised rather than
    a wrong number returned.

    Examples:
        >>> round(float(polya_gamma_log_prob(50.0, 200.0, 0.0)), 6)  # series cancels here
        -1.979427
    """
    value, b, c = _prepare(value, b, c)
    inside = (value > 0) & torch.isfinite(value)
    x = torch.where(inside, 4 * value, torch.ones_like(value))
    log_f, err = jstar_log_density_and_error(x, b)
    w, a = torch.where(inside, value, 1.0), c.abs()
    # b log cosh(c/2) - c^2 w / 2, arranged so huge b and c cannot give inf - inf
    tilt = 0.5 * a * (b - a * w) + b * (torch.log1p(torch.exp(-a)) - LOG2)
    out = LOG2 * 2 + tilt + log_f
    out = _fourier_where_series_fails(out, inside & ~(err <= MAX_SERIES_ERROR), value, b, c,
                                      fourier_log_density, "log-density")
    if bool(torch.isnan(out[inside]).any()):
        raise NonFiniteError("the Polya-gamma log-density overflows float64 for these b, c "
                             "and values; rescale c or evaluate nearer the bulk")
    return torch.where(inside, out, torch.full_like(out, -math.inf))


def polya_gamma_log_cdf(value, b, c) -> torch.Tensor:
    """``log P(PG(b, c) <= value)`` by integrating the left series term by term, summed in
    log space relative to its largest term (no underflow far in the left tail).

    Each tilted term integrates to an inverse-Gaussian CDF (two normal CDFs), so
    ``F(w) = cosh(z)^b sum_n (-1)^n 2^b Gamma(n+b)/(Gamma(b) n!)
    [e^{-m z} Phi(z sqrt(x) - m/sqrt(x)) + e^{m z} Phi(-z sqrt(x) - m/sqrt(x))]``
    with ``x = 4 w``, ``z = |c|/2``, ``m = 2n + b``. Each term carries a relative rounding
    error of about ``eps (1 + |log term|)``; where their sum over the alternating terms
    would exceed ``MAX_SERIES_ERROR`` (1e-6) relative to ``F`` (cancellation for large
    ``b``, or no convergence in ``MAX_CDF_TERMS`` terms), the CDF comes from numerical
    inversion of its Laplace transform along a saddle-point contour instead
    (:func:`~bayeskit.distributions.polyagamma.fourier.fourier_log_cdf`, about 1e-13
    relative to ``F`` in the left tail and to ``1 - F`` in the right tail); a point
    neither evaluates to the bound raises an ``ArgumentValueError``. Where ``F`` is below
    float64's smallest normal number (``log F < -708``) the bound applies to ``log F``.

    Examples:
        >>> float(polya_gamma_log_cdf(0.01, 10.0, 3.0)) < -100  # the CDF underflows
        True
        >>> round(float(polya_gamma_log_cdf(25.0, 100.0, 0.0)), 6)  # series cancels here
        -0.667421
    """
    value, b, c = _prepare(value, b, c)
    inside = (value > 0) & torch.isfinite(value)
    x = torch.where(inside, 4 * value, torch.ones_like(value))
    z = 0.5 * c.abs()
    sx = torch.sqrt(x)
    lead = b * log_cosh(z) + b * LOG2 - torch.lgamma(b)
    ref = torch.full_like(x, -math.inf)  # log of the largest term so far
    total = torch.zeros_like(x)          # sums relative to exp(ref)
    error = torch.zeros_like(x)
    active = inside.clone()
    for n in range(MAX_CDF_TERMS):
        m = 2 * n + b
        log_term = lead + torch.lgamma(n + b) - math.lgamma(n + 1) + torch.logaddexp(
            -m * z + torch.special.log_ndtr(z * sx - m / sx),
            m * z + torch.special.log_ndtr(-z * sx - m / sx))
        new_ref = torch.where(active, torch.maximum(ref, log_term), ref)
        scale = torch.exp(ref - new_ref).nan_to_num(0.0)
        rel = torch.exp(log_term - new_ref)
        sign = -1.0 if n % 2 else 1.0
        total = torch.where(active, total * scale + sign * rel, total)
        error = torch.where(active, error * scale + rel * (1 + log_term.abs()), error)
        ref = new_ref
        active = active & ~((n > 0) & (rel < 1e-17 * total.abs()))
        if n > 2 and not bool(active.any()):
            break
    # a sum still active after MAX_CDF_TERMS has not converged (very large b)
    error = torch.where(active, math.inf, torch.finfo(F64).eps * error / total.abs())
    out = (ref + torch.log(total.clamp_min(torch.finfo(F64).tiny))).clamp_max(0.0)
    # where F underflows float64 only log F is returned: bound its relative error instead
    bound = torch.where(out < LOG_TINY, MAX_SERIES_ERROR * out.abs(), MAX_SERIES_ERROR)
    out = _fourier_where_series_fails(out, inside & ~(error <= bound), value, b, c,
                                      fourier_log_cdf, "CDF")
    out = torch.where(inside, out, torch.full_like(out, -math.inf))
    return torch.where(value == math.inf, torch.zeros_like(out), out)


def polya_gamma_cdf(value, b, c) -> torch.Tensor:
    """``P(PG(b, c) <= value)`` (``0`` for ``value <= 0``, ``1`` at ``inf``), from
    :func:`polya_gamma_log_cdf`: relative error at most ``MAX_SERIES_ERROR`` (1e-6), or
    an error is raised.

    Examples:
        >>> polya_gamma_cdf(0.25, 1.0, 0.0)  # P(PG(1, 0) <= its mean)
        tensor(0.6292, dtype=torch.float64)
    """
    return torch.exp(polya_gamma_log_cdf(value, b, c))

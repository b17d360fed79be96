"""The alternating series of the ``J*(h)`` density (Polson, Scott & Windle 2013) and its
constants: ``log a_0``, the right-hand kernel, partial sums with their cancellation check."""

from __future__ import annotations

import math

import torch

from bayeskit.errors import ArgumentValueError, NonFiniteError

__all__ = ["log_a0", "log_kernel_right", "log_ratio_step", "series_sum", "jstar_log_density",
           "jstar_log_density_and_error", "check_series", "log_cosh", "check_params",
           "unit_moments", "MAX_SERIES_ERROR", "H_MAX", "T_SMALL"]

LOG2 = math.log(2.0)
LOG_PI_2 = math.log(math.pi / 2)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
PI2_8 = math.pi**2 / 8
T_SMALL = 0.64
H_MAX = 4.0
B_MIN = 1e-50  # smallest supported shape (the sampler hangs near 1e-300)
F64 = torch.float64


def log_a0(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return h * LOG2 + torch.log(h) - HALF_LOG_2PI - 1.5 * torch.log(x) - h * h / (2 * x)


def log_kernel_right(x: torch.Tensor, h: torch.Tensor,
                      lgamma_h: torch.Tensor | None = None) -> torch.Tensor:
    lg = torch.lgamma(h) if lgamma_h is None else lgamma_h
    return h * LOG_PI_2 + (h - 1) * torch.log(x) - PI2_8 * x - lg


def log_ratio_step(n: int, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``log(a_{n+1} / a_n)`` for the left series."""
    return (torch.log((n + h) / (n + 1)) + torch.log((2 * n + 2 + h) / (2 * n + h))
            - 2 * (2 * n + 1 + h) / x)


def series_sum(x: torch.Tensor, h: torch.Tensor, max_terms: int = 400) -> tuple:
    """``(f / a_0, sum |a_n| / a_0)``: the series relative to its first term, and its mass.

    Terms are added until they are below ``1e-17`` of the running magnitude after the
    sequence has started to decrease (the terms are unimodal in ``n``); entries not
    converged after ``max_terms`` get an infinite mass (so any error check refuses them).
    """
    total = torch.ones_like(x)
    mass = torch.ones_like(x)
    log_r = torch.zeros_like(x)
    active = torch.ones_like(x, dtype=torch.bool)
    for n in range(max_terms):
        step = log_ratio_step(n, x, h)
        log_r = log_r + step
        term = torch.exp(log_r)
        sign = -1.0 if n % 2 == 0 else 1.0
        total = torch.where(active, total + sign * term, total)
        mass = torch.where(active, mass + term, mass)
        active = active & ~((step < 0) & (term < 1e-17 * mass))
        if not bool(active.any()):
            break
    # a series still growing after max_terms (b in the thousands) has not converged: its
    # error estimate must say so (infinite mass), never report a partial sum as accurate
    return total, torch.where(active, torch.full_like(mass, math.inf), mass)


def unit_moments(a: torch.Tensor, imaginary: torch.Tensor | bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``PG(1, c)``, the one home of these identities: ``c = a``
    (``imaginary=False``) gives ``tanh(a/2)/(2a)`` and ``(2 tanh(a/2) - a sech^2(a/2)) /
    (4 a^3)``; ``c = i a`` (a tilt ``c^2 = -a^2 > -pi^2``, used by the Fourier density)
    their continuation ``tan(a/2)/(2a)`` and ``(a sec^2(a/2) - 2 tan(a/2)) / (4 a^3)``;
    Taylor series ``1/4 -+ a^2/48`` and ``(1 -+ a^2/5)/24`` near 0. ``a >= 0``."""
    imaginary = torch.as_tensor(imaginary, device=a.device)
    sign = torch.where(imaginary, -1.0, 1.0).to(a.dtype)
    near_mean, near_var = a < 1e-4, a < 1e-3
    safe = torch.where(near_mean, torch.ones_like(a), a)
    th = torch.where(imaginary, torch.tan(safe / 2), torch.tanh(safe / 2))
    mean = torch.where(near_mean, 0.25 - sign * a * a / 48, th / (2 * safe))
    safe = torch.where(near_var, torch.ones_like(a), a)
    th = torch.where(imaginary, torch.tan(safe / 2), torch.tanh(safe / 2))
    sq = torch.where(imaginary, 1 / torch.cos(safe / 2) ** 2, 1 / torch.cosh(safe / 2) ** 2)
    exact = sign * (2 * th - safe * sq) / (4 * safe**3)
    var = torch.where(near_var, (1 - sign * a * a / 5) / 24, exact)
    return mean, var


# The series is summed in float64: its relative error is about eps * sum|a_n| / |f|.
MAX_SERIES_ERROR = 1e-6  # the one documented bound (density and CDF)


def jstar_log_density(x: torch.Tensor, h: torch.Tensor, *, check: bool = False,
                      where: torch.Tensor | None = None) -> torch.Tensor:
    """``log f(x | h)`` (untilted ``J*(h)``) by the left series.

    With ``check``, raise instead of returning a number whose estimated relative error
    (from the cancellation in the alternating sum) exceeds ``MAX_SERIES_ERROR``; ``where``
    limits the check to the entries that are used.
    """
    log_f, total, mass = _jstar_series(x, h)
    if check:
        keep = torch.ones_like(x, dtype=torch.bool) if where is None else where
        check_series(torch.where(keep, total, 1.0), torch.where(keep, mass, 1.0), x, h)
    return log_f


def jstar_log_density_and_error(x: torch.Tensor, h: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log f(x | h), estimated relative error)`` of the series (``eps sum|a_n| / f``)."""
    log_f, total, mass = _jstar_series(x, h)
    return log_f, torch.finfo(F64).eps * mass / total.abs()


def _jstar_series(x: torch.Tensor, h: torch.Tensor):
    total, mass = series_sum(x, h)
    log_f = log_a0(x, h) + torch.log(total.clamp_min(torch.finfo(F64).tiny))
    right = (h == 1) & (x > 2 / math.pi)
    if bool(right.any()):
        # h = 1 has Devroye's right-hand series, exact and cancellation-free for x > 2/pi
        xr = x[right]
        k = torch.arange(40, dtype=F64, device=x.device)[:, None] + 0.5
        signs = 1.0 - 2.0 * (torch.arange(40, device=x.device)[:, None] % 2)
        rel = (signs * 2 * k * torch.exp(-(k * k - 0.25) * math.pi**2 * xr / 2)).sum(0)
        log_f = log_f.clone()
        log_f[right] = LOG_PI_2 - PI2_8 * xr + torch.log(rel)
        mass = torch.where(right, total.abs(), mass)
    return log_f, total, mass


def check_series(total: torch.Tensor, mass: torch.Tensor, x: torch.Tensor,
                  h: torch.Tensor) -> None:
    err = torch.finfo(F64).eps * mass / total.abs()
    bad = ~(err <= MAX_SERIES_ERROR)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0]) if bad.dim() else 0
        xb = float(x.reshape(-1)[i]) / 4
        hb = float(h.expand_as(x).reshape(-1)[i])
        raise ArgumentValueError(
            f"the Polya-gamma series cannot evaluate PG(b={hb:g}) at {xb:g} to relative "
            f"accuracy {MAX_SERIES_ERROR:g} in float64 (cancellation; large b or far right "
            "tail). Sampling is unaffected; evaluate the density nearer the bulk or for "
            "smaller b."
        )



def log_cosh(u: torch.Tensor) -> torch.Tensor:
    """``log cosh u`` without overflow, for real ``u`` or complex ``u`` with ``Re u >= 0``
    (continuous there: ``1 + e^{-2u}`` never crosses the log's cut). Near 0 as
    ``log1p(2 sinh(u/2)^2)``, which keeps the relative accuracy ``a + log1p(e^{-2a}) -
    log 2`` loses there (``b`` multiplies it: 1e-9 at ``b = 1e7``)."""
    a = u if u.is_complex() else u.abs()
    small = a.abs() < 1
    near = torch.log1p(2 * torch.sinh(torch.where(small, a, 0) / 2) ** 2)
    return torch.where(small, near, a + torch.log1p(torch.exp(-2 * a)) - LOG2)



def check_params(b: torch.Tensor, c: torch.Tensor) -> None:
    """``b > 0`` finite and ``c`` finite, with errors that name the parameter."""
    if bool(((b >= B_MIN) & (b < math.inf)).all()) and bool(torch.isfinite(c).all()):
        return  # one pass each; the checks below only explain a failure
    if not bool(torch.isfinite(b).all()):
        raise NonFiniteError("b must be finite (PG(b, c) needs 0 < b < inf)")
    if not bool((b > 0).all()):
        raise ArgumentValueError(f"b must be positive (PG(b, c) needs b > 0), got a minimum "
                                 f"of {float(b.min()):g}")
    if not bool((b >= B_MIN).all()):
        raise ArgumentValueError(f"b must be at least {B_MIN:g}, got {float(b.min()):g}: below "
                                 "that the draws (about b/4) underflow float64 and the "
                                 "sampler's proposals can no longer be accepted")
    if not bool(torch.isfinite(c).all()):
        raise NonFiniteError("c must be finite")

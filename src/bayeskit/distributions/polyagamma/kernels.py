"""Compiled (numba) forms of the two exact samplers, element by element.

The same algorithms as :mod:`.samplers` (shape 1) and :mod:`.samplers`/:mod:`.proposals`
(any ``0 < h <= H_MAX``), written as scalar rejection loops: each element proposes until it
accepts, with no masked passes over arrays. Per-element parameters come in arrays of length
``n`` or 1 (shared by every element). Two exact changes from the eager code, both to avoid
inverse-CDF calls numba lacks: the truncated Lévy proposal draws ``|Y| >= a`` from a
normal tail by Marsaglia's method (``a > 0.65``) or by half-normal rejection (smaller ``a``),
and normal variates come from :func:`bayeskit.compiled.normal_pair` (Marsaglia's polar
method). The policy (when kernels run, threads, random
streams) is :mod:`bayeskit.compiled`'s.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bayeskit import compiled
from bayeskit.compiled import BLOCK, block_state, jit, normal_pair, prange, uniform
from bayeskit.distributions.polyagamma.samplers import A2, MASS_RAYLEIGH, PI2, T1, Z_IG
from bayeskit.distributions.polyagamma.series import HALF_LOG_2PI, LOG2, LOG_PI_2, PI2_8

__all__ = ["sample_h1_sums", "sample_jstar_sums"]

INV_SQRT_A2 = 1 / math.sqrt(A2)
LOG_4_PI = math.log(4 / math.pi)
TAIL_SWITCH = 0.65  # normal tail beyond a: Marsaglia's method above, half-normal below
# Both pieces of the shape-1 envelope have rate >= 2 pi (4 / x with x <= 2/pi on the left,
# pi^2 x with x > 2/pi on the right), and the first partial sum 1 - 3 e^-rate grows with the
# rate: v below its value at 2 pi accepts without an exponential (~99.4 % of proposals). The
# factor 1 + 1e-9 keeps it below the sum when a rate rounds a few ulps under 2 pi.
SERIES_SQUEEZE = 1.0 - 3.0 * math.exp(-2.0 * math.pi) * (1.0 + 1e-9)


@jit(inline="always")
def _normal(s):
    """A standard normal: the first of :func:`bayeskit.compiled.normal_pair`'s two."""
    return normal_pair(s)[0]


@jit(inline="always")
def _chi2(s):
    """A chi-square(1) variate: a squared standard normal."""
    z = _normal(s)
    return z * z


@jit(inline="always")
def _inverse_gaussian(mu, lam, s):
    """IG(mu, lam) by Michael, Schucany & Haas (1976)."""
    y = _chi2(s)
    x = mu + 0.5 * mu * mu * y / lam - 0.5 * mu / lam * math.sqrt(
        4.0 * mu * lam * y + (mu * y) ** 2)
    if uniform(s) * (mu + x) > mu:
        x = mu * mu / x
    return x


@jit(inline="always")
def _devroye_series(v, rate):
    """Decide ``v <= f / a_0`` for shape 1, where ``a_n / a_0 = (2n+1) exp(-rate n(n+1)/2)``
    (``rate = 4/x`` left of ``2/pi``, ``pi^2 x`` right of it): the terms fall from ``n = 0``
    there, so the partial sums bracket ``f / a_0`` alternately (Devroye 2009). The caller
    guarantees ``rate >= 2 pi`` (see ``SERIES_SQUEEZE``)."""
    if v <= SERIES_SQUEEZE:  # below the first partial sum at every allowed rate
        return True
    if v > 1.0:  # above the zeroth partial sum, f / a_0 <= 1 (the untilted left's V can be)
        return False
    e = math.exp(-rate)  # a_n / a_0 = (2n+1) e^(n(n+1)/2)
    total = 1.0 - 3.0 * e
    if v <= total:  # decided by the first term
        return True
    total += 5.0 * e * e * e
    if v > total:  # decided by the second
        return False
    for n in range(3, 400):
        term = (2 * n + 1) * e ** (0.5 * n * (n + 1))
        if n % 2 == 1:
            total -= term
            if v <= total:
                return True
        else:
            total += term
            if v > total:
                return False
    return v <= total  # pragma: no cover  (terms vanish long before)


@jit(inline="always")
def _h1_draw(z, p, inv_p, inv_q, inv_lam, half_z2, ig, s):
    """One exact ``J*(1, z)`` draw (the envelope of samplers.h1_round, element-wise);
    ``inv_p, inv_q = 1 / p, 1 / (1 - p)`` and ``inv_lam`` are per-element constants."""
    while True:
        u = uniform(s)
        if u <= p:
            if ig:  # tilted a_0 on (0, inf): 2 e^-z IG(1/z, 1), kept below t
                x = _inverse_gaussian(1.0 / z, 1.0, s)
                if x > T1:
                    continue
                rate = 4.0 / x
                v = uniform(s)
            else:  # untilted a_0 times y / A: y^2 = A^2 + 2E; divide V by (A/y) e^(-z^2 x/2)
                y2 = A2 - 2.0 * math.log(u * inv_p)  # u / p: the uniform given the piece
                x = 1.0 / y2
                rate = 4.0 * y2
                v = uniform(s) * math.sqrt(y2) * INV_SQRT_A2
                if v > 1.0:  # rejected whatever the tilt (f / a_0 <= 1, the tilt >= 1)
                    continue
                if half_z2 > 0.0:
                    v *= math.exp(half_z2 * x)
            if _devroye_series(v, rate):
                return x
        else:  # the tilted right kernel: a shifted exponential, E = -log((u - p) / (1 - p))
            x = T1 - math.log((u - p) * inv_q) * inv_lam
            if _devroye_series(uniform(s), PI2 * x):
                return x


@jit(inline="always")
def _h1_constants(z):
    """``(p, 1 / p, 1 / (1 - p), 1 / lam)``: the left-piece probability ``p`` and the right
    piece's rate ``lam`` at ``z``, with one exponential and few divisions."""
    lam = 0.5 * z * z + PI2_8
    if z > Z_IG:  # in log space: both masses underflow for large z
        p = 1.0 / (1.0 + math.exp(-(math.log(lam) + T1 * lam - z + LOG_4_PI)))
        return p, 1.0 / p, 1.0 / (1.0 - p) if p < 1.0 else 0.0, 1.0 / lam
    # masses: left MASS_RAYLEIGH, right (pi/2) e^(-t lam) / lam = 1 / (2 e lam / pi)
    right_inv = (2.0 / math.pi) * math.exp(T1 * lam) * lam
    inv_p = 1.0 + 1.0 / (MASS_RAYLEIGH * right_inv)
    return 1.0 / inv_p, inv_p, 1.0 + MASS_RAYLEIGH * right_inv, 1.0 / lam


@jit
def _h1_blocks(c, copies, seed, out, first, stop):
    shared = c.size == 1  # one c for every element: its constants once
    zi = 0.5 * abs(c[0])
    p, inv_p, inv_q, inv_lam = _h1_constants(zi)
    for blk in range(first, stop):
        s = block_state(seed, blk)
        for i in range(blk * BLOCK, min(out.size, (blk + 1) * BLOCK)):
            if not shared:
                zi = 0.5 * abs(c[i])
                p, inv_p, inv_q, inv_lam = _h1_constants(zi)
            acc = 0.0
            for _ in range(copies[i] if copies.size > 1 else copies[0]):
                acc += _h1_draw(zi, p, inv_p, inv_q, inv_lam, 0.5 * zi * zi, zi > Z_IG, s)
            out[i] = 0.25 * acc  # PG(b, c) = J*(b, |c| / 2) / 4


@jit(parallel=True)
def _h1_parallel(c, copies, seed, out):
    for blk in prange((out.size + BLOCK - 1) // BLOCK):
        _h1_blocks(c, copies, seed, out, blk, blk + 1)


# ----------------------------------------------------------------- general shape h <= 4
@jit(inline="always")
def _log_a0(x, h):
    """Scalar :func:`.series.log_a0` (numba cannot call the torch one)."""
    return h * LOG2 + math.log(h) - HALF_LOG_2PI - 1.5 * math.log(x) - h * h / (2.0 * x)


@jit(inline="always")
def _log_kernel_right(x, h, lgh):
    """Scalar :func:`.series.log_kernel_right`."""
    return h * LOG_PI_2 + (h - 1.0) * math.log(x) - PI2_8 * x - lgh


@jit
def _series_accept(x, h, v):
    """``v <= f(x | h) / a_0(x | h)`` by the alternating left series (as proposals.accept)."""
    total = 1.0
    log_r = 0.0
    for n in range(2000):
        step = (math.log((n + h) / (n + 1) * (2 * n + 2 + h) / (2 * n + h))
                - 2.0 * (2 * n + 1 + h) / x)
        if step < 0:  # a_{n+1} < a_n: from here the partial sums bracket f
            if n % 2 == 0:
                if v > total:
                    return False
            elif v <= total:
                return True
        log_r += step
        total += math.exp(log_r) if n % 2 == 1 else -math.exp(log_r)
    return v <= total  # pragma: no cover  (needs x beyond ~1e5)


@jit(inline="always")
def _left_draw(h, z, t, a, levy, s):
    """``x`` on ``(0, t]`` with density prop. to ``x^-1.5 exp(-h^2/(2x) - z^2 x/2)``."""
    while True:
        if levy:  # x = h^2 / Y^2 with |Y| >= a = h / sqrt(t), tilted by exp(-z^2 x / 2)
            if a > TAIL_SWITCH:
                y = math.sqrt(a * a - 2.0 * math.log(uniform(s)))
                if uniform(s) * y > a:
                    continue
            else:
                y = abs(_normal(s))
                if y < a:
                    continue
            x = h * h / (y * y)
            if uniform(s) <= math.exp(-0.5 * z * z * x):
                return x
        else:
            x = _inverse_gaussian(h / z, h * h, s)
            if x <= t:
                return x


@jit(inline="always")
def _right_draw(h, lam, t, s):
    """``x`` on ``(t, inf)`` with density prop. to ``x^(h-1) exp(-lam x)``."""
    if h <= 1.0 or (h - 1.0) <= 0.9 * lam * t:  # shifted exponential
        rate = lam if h <= 1.0 else lam - (h - 1.0) / t
        while True:
            x = t - math.log(uniform(s)) / rate
            if h == 1.0:
                return x
            if h < 1.0:
                log_ratio = (1.0 - h) * math.log(t / x)
            else:
                log_ratio = (h - 1.0) * (math.log(x / t) - (x - t) / t)
            if math.log(uniform(s)) <= log_ratio:
                return x
    d = h - 1.0 / 3.0  # Marsaglia & Tsang (2000), kept beyond t
    cc = 1.0 / math.sqrt(9.0 * d)
    while True:
        y = _normal(s)
        v = (1.0 + cc * y) ** 3
        if v <= 0:
            continue
        if math.log(uniform(s)) < 0.5 * y * y + d - d * v + d * math.log(v):
            x = d * v / lam
            if x > t:
                return x


@jit(inline="always")
def _jstar_draw(h, z, t, log_c, lgh, p_left, s):
    lam = PI2_8 + 0.5 * z * z
    a = h / math.sqrt(t)
    # Levy when 1 / (2 Phi(-a)) > exp(h z) (proposals.left_proposal)
    levy = z == 0.0 or (-LOG2 - math.log(0.5 * math.erfc(a / math.sqrt(2.0))) > h * z)
    while True:
        if uniform(s) <= p_left:
            x = _left_draw(h, z, t, a, levy, s)
            v = uniform(s)
        else:
            x = _right_draw(h, lam, t, s)
            v = uniform(s) * math.exp(log_c + _log_kernel_right(x, h, lgh) - _log_a0(x, h))
        if _series_accept(x, h, v):
            return x


@jit
def _jstar_blocks(h, chunks, z, t, log_c, lgh, p_left, seed, out, first, stop):
    for blk in range(first, stop):
        s = block_state(seed, blk)
        for i in range(blk * BLOCK, min(out.size, (blk + 1) * BLOCK)):
            j = i if h.size > 1 else 0
            k = i if z.size > 1 else 0
            m = i if p_left.size > 1 else 0
            acc = 0.0
            for _ in range(chunks[i if chunks.size > 1 else 0]):
                acc += _jstar_draw(h[j], z[k], t[j], log_c[j], lgh[j], p_left[m], s)
            out[i] = 0.25 * acc


@jit(parallel=True)
def _jstar_parallel(h, chunks, z, t, log_c, lgh, p_left, seed, out):
    for blk in prange((out.size + BLOCK - 1) // BLOCK):
        _jstar_blocks(h, chunks, z, t, log_c, lgh, p_left, seed, out, blk, blk + 1)


def _flat64(v: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(v.detach().reshape(-1).to(torch.float64).numpy())


def sample_h1_sums(c: torch.Tensor, copies: torch.Tensor, n: int,
                   generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws of ``PG(copies_i, c_i)`` as sums of ``copies_i`` shape-1 draws, compiled.

    Args:
        c: ``[n]`` or ``[1]`` (shared) float64 tilts.
        copies: ``[n]`` or ``[1]`` positive integers (the shapes ``b``).
        n: the number of draws.
        generator: the caller's generator (one seed is drawn from it).

    Returns:
        ``[n]`` float64 draws of ``PG(b, c)``.
    """
    out = np.empty(n, dtype=np.float64)
    counts = np.ascontiguousarray(copies.reshape(-1).to(torch.int64).numpy())
    compiled.launch(_h1_blocks, _h1_parallel, n,
            (_flat64(c), counts, compiled.seed_from(generator), out))
    return torch.from_numpy(out)


def sample_jstar_sums(h: torch.Tensor, chunks: torch.Tensor, z: torch.Tensor,
                      t: torch.Tensor, log_c: torch.Tensor, lgh: torch.Tensor,
                      p_left: torch.Tensor, n: int,
                      generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws of ``PG`` as sums of ``chunks_i`` draws of ``J*(h_i, z_i) / 4``
    (``0 < h_i <= H_MAX``, ``z = |c| / 2``), compiled.

    Every per-element argument is ``[n]`` or ``[1]`` (shared); ``t, log_c, lgh`` are the
    envelope constants of ``h`` and ``p_left`` the left-piece probability
    (:mod:`.envelopes`). Returns ``[n]`` float64.
    """
    out = np.empty(n, dtype=np.float64)
    counts = np.ascontiguousarray(chunks.reshape(-1).to(torch.int64).numpy())
    compiled.launch(_jstar_blocks, _jstar_parallel, n,
            (_flat64(h), counts, _flat64(z), _flat64(t), _flat64(log_c), _flat64(lgh),
             _flat64(p_left), compiled.seed_from(generator), out))
    return torch.from_numpy(out)

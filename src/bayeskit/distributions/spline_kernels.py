"""Compiled rational-quadratic spline from raw network outputs: one numba kernel for the
value and log-slope, one for the vector-Jacobian product (issue #19: the eager spline is
~30 small torch operations forward and ~80 backward per call, each costing about as much
as the arithmetic it does on a [256, 2] batch).

Both kernels build the knots from ``raw`` (``3K - 1`` numbers per element: widths,
heights, interior derivatives) and ``exps = exp(clamp(raw[:, :2K], -40, 40))`` (computed by
the caller in one vectorised torch call: 2K scalar exponentials per element cost more than
everything else here), exactly as :func:`bayeskit.distributions.splines.spline` does (which
passes its constants): bin sizes ``min_bin + (1 - K min_bin) exps / sum(exps)`` accumulated
from ``-bound`` to ``bound``; derivatives ``min_derivative + softplus(raw + offset)``, 1 at
the ends. Arithmetic is in float64 for either input dtype.

Backward (hand-written, checked against autograd of the eager code): with ``y = F(x, p)``
and ``L = log dF/dx`` on one bin, ``p = (x_k, x_{k+1}, y_k, y_{k+1}, d_k, d_{k+1})``,

- forward map: ``g_x = g_y F_x + g_L L_x``, ``g_p = g_y F_p + g_L L_p``;
- inverse map ``x = F^-1(y)`` with log-slope ``-L``: by the implicit function theorem
  ``g_y = (g_x - g_L L_x) / F_x`` and ``g_p = -g_y F_p - g_L L_p``;

then ``g_p`` flows to ``raw`` through the normalised cumulative sums (the two knots of the
bin depend on every width/height) and the softplus.
"""

from __future__ import annotations

import math

import numpy as np

from bayeskit import compiled
from bayeskit.compiled import jit, prange

__all__ = ["run"]

#: fewer elements than this run serially (a parallel region costs more than the work)
PARALLEL_MIN = 16384
#: elements per unit of parallel work (scratch arrays are allocated once per chunk)
CHUNK = 1024
# Tried (ad hoc A/B, AMD EPYC 2 vCPU, 2026-12-05): PARALLEL_MIN 256 with CHUNK 128 halves
# the kernels alone on 2 threads for a flow's batch of 256 x 2 (forward 76 -> 38 us,
# backward 124 -> 65 us) but not the training step they sit in (NSF step 4.12 vs 4.24 ms,
# interleaved): waking the OpenMP threads between the step's many small operations costs
# what the split saves.


@jit(inline="always")
def _softplus(v):
    return v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))


@jit(inline="always")
def _knots(exps, i, start, k, bound, min_bin, knots):
    """Knots ``knots[0..k]`` from ``exps[i, start:start + k]``; returns the exps' sum."""
    total = 0.0
    for j in range(k):
        total += exps[i, start + j]
    scale = 2.0 * bound * (1.0 - min_bin * k)
    knots[0] = -bound
    cum = 0.0
    for j in range(1, k):
        cum += exps[i, start + j - 1]
        knots[j] = -bound + 2.0 * bound * min_bin * j + scale * (cum / total)
    knots[k] = bound
    return total


@jit(inline="always")
def _derivative(raw, i, a0, k, j, min_derivative, offset):
    """Derivative at knot ``j`` (1 at the ends); spline parameters start at ``a0``."""
    if j == 0 or j == k:
        return 1.0
    return min_derivative + _softplus(raw[i, a0 + 2 * k + j - 1] + offset)


@jit(inline="always")
def _bin(v, knots, k):
    idx = 0
    for j in range(1, k):
        if v >= knots[j]:
            idx += 1
    return idx


@jit(inline="always")
def _bin_of(v, raw, exps, i, a0, k, inverse, bound, min_bin, min_derivative, offset, kx, ky):
    """The bin of spline input ``v`` (searched among the y knots for the inverse) and its
    geometry: ``(sum of x exps, sum of y exps, bin, x0, y0, width, height, slope s,
    d1 + d0 - 2 s, d0, d1)``; the knots are left in ``kx``, ``ky``."""
    sx = _knots(exps, i, 0, k, bound, min_bin, kx)
    sy = _knots(exps, i, k, k, bound, min_bin, ky)
    b = _bin(v, ky if inverse else kx, k)
    d0 = _derivative(raw, i, a0, k, b, min_derivative, offset)
    d1 = _derivative(raw, i, a0, k, b + 1, min_derivative, offset)
    w, h = kx[b + 1] - kx[b], ky[b + 1] - ky[b]
    s = h / w
    return sx, sy, b, kx[b], ky[b], w, h, s, d1 + d0 - 2.0 * s, d0, d1


@jit(inline="always")
def _affine(raw, i, affine, max_log_scale):
    """``(shift, log_scale, d log_scale / d raw)`` of element ``i`` (0, 0, 0 without)."""
    if not affine:
        return 0.0, 0.0, 0.0
    th = math.tanh(raw[i, 1] / max_log_scale)
    return raw[i, 0], max_log_scale * th, 1.0 - th * th


def _forward_kernel(inp, raw, exps, bound, inverse, affine, max_log_scale, min_bin,
                    min_derivative, offset, out, logdet):
    n, p = raw.shape
    a0 = 2 if affine else 0
    k = (p - a0 + 1) // 3
    for block in prange((n + CHUNK - 1) // CHUNK):
        kx = np.empty(k + 1)  # scratch once per chunk, not per element
        ky = np.empty(k + 1)
        for i in range(block * CHUNK, min(n, (block + 1) * CHUNK)):
            shift, log_scale, _ = _affine(raw, i, affine, max_log_scale)
            # the spline's own input: z (forward), or x standardised by the affine map
            v = (inp[i] - shift) * math.exp(-log_scale) if inverse else inp[i]
            if not (-bound <= v <= bound):
                res, ld = v, 0.0
            else:
                _, _, b, x0, y0, w, h, s, c, d0, d1 = _bin_of(
                    v, raw, exps, i, a0, k, inverse, bound, min_bin, min_derivative, offset,
                    kx, ky)
                if inverse:  # the quadratic's root in its cancellation-free form
                    dy = v - y0
                    qa = h * (s - d0) + dy * c
                    qb = h * d0 - dy * c
                    qc = -s * dy
                    disc = max(qb * qb - 4.0 * qa * qc, 0.0)
                    xi = min(max((2.0 * qc) / (-qb - math.sqrt(disc)), 0.0), 1.0)
                    res = x0 + xi * w
                else:
                    xi = (v - x0) / w
                t = xi * (1.0 - xi)
                den = s + c * t
                if not inverse:
                    res = y0 + h * (s * xi * xi + d0 * t) / den
                q = d1 * xi * xi + 2.0 * s * t + d0 * (1.0 - xi) * (1.0 - xi)
                ld = math.log(s * s * q / (den * den))  # L = log F_x at xi
            if not affine:
                out[i] = res
                logdet[i] = -ld if inverse else ld
            elif inverse:  # z and the forward map's log-slope L + log_scale
                out[i] = res
                logdet[i] = ld + log_scale
            else:
                out[i] = shift + res * math.exp(log_scale)
                logdet[i] = ld + log_scale


def _backward_kernel(inp, out, raw, exps, bound, inverse, affine, max_log_scale, min_bin,
                     min_derivative, offset, g_out, g_log, g_inp, g_raw):
    n, p = raw.shape
    a0 = 2 if affine else 0
    k = (p - a0 + 1) // 3
    scale = 2.0 * bound * (1.0 - min_bin * k)
    for block in prange((n + CHUNK - 1) // CHUNK):
        kx = np.empty(k + 1)
        ky = np.empty(k + 1)
        for i in range(block * CHUNK, min(n, (block + 1) * CHUNK)):
            for j in range(p):
                g_raw[i, j] = 0.0
            shift, log_scale, dls = _affine(raw, i, affine, max_log_scale)
            scale_e = math.exp(log_scale)
            # the spline's input v, the point xi is measured at (its x side) and the
            # gradients reaching its outputs (g_o: value, g_l: its own log-slope output)
            if inverse:
                v = (inp[i] - shift) / scale_e
                x_side = out[i]
                g_o = g_out[i]
                g_l = -g_log[i] if affine else g_log[i]
            else:
                v = inp[i]
                x_side = v
                g_o = g_out[i] * scale_e
                g_l = g_log[i]
            if not (-bound <= v <= bound):
                g_v = g_o
                u = v
            else:
                sx, sy, b, x0, y0, w, h, s, c, d0, d1 = _bin_of(
                    v, raw, exps, i, a0, k, inverse, bound, min_bin, min_derivative, offset,
                    kx, ky)
                xi = (x_side - x0) / w
                t = xi * (1.0 - xi)
                one_m = 1.0 - xi
                num = s * xi * xi + d0 * t
                den = s + c * t
                q = d1 * xi * xi + 2.0 * s * t + d0 * one_m * one_m
                u = y0 + h * num / den  # the forward spline's value (used when affine)
                # partials of F (the forward map) and L = log F_x in xi, s, h, d0, d1
                dnum_xi = 2.0 * s * xi + d0 * (1.0 - 2.0 * xi)
                dden_xi = c * (1.0 - 2.0 * xi)
                F_xi = h * (dnum_xi * den - num * dden_xi) / (den * den)
                F_s = h * (xi * xi * den - num * (1.0 - 2.0 * t)) / (den * den)
                F_h = num / den
                F_d0 = h * t * (den - num) / (den * den)
                F_d1 = -h * num * t / (den * den)
                dq_xi = 2.0 * d1 * xi + 2.0 * s * (1.0 - 2.0 * xi) - 2.0 * d0 * one_m
                L_xi = dq_xi / q - 2.0 * dden_xi / den
                L_s = 2.0 / s + 2.0 * t / q - 2.0 * (1.0 - 2.0 * t) / den
                L_d0 = one_m * one_m / q - 2.0 * t / den
                L_d1 = xi * xi / q - 2.0 * t / den
                if inverse:  # implicit function theorem; the spline's log-slope output is -L
                    g_v = (g_o - g_l * L_xi / w) / (F_xi / w)
                    a, bb = -g_v, -g_l
                else:
                    g_v = (g_o * F_xi + g_l * L_xi) / w
                    a, bb = g_o, g_l
                # g_p = a F_p + bb L_p; then xi = (x - x0) / w at fixed x, s = h / w,
                # w = x1 - x0, h = y1 - y0
                G_xi = a * F_xi + bb * L_xi
                G_s = a * F_s + bb * L_s
                g_h = a * F_h + G_s / w
                g_w = -G_s * s / w
                _knot_grads(g_raw, exps, raw, i, a0, 0, sx, k, b,
                            -g_w + G_xi * (xi - 1.0) / w, g_w - G_xi * xi / w, scale)
                _knot_grads(g_raw, exps, raw, i, a0, k, sy, k, b, a - g_h, g_h, scale)
                if b > 0:
                    z = raw[i, a0 + 2 * k + b - 1] + offset
                    g_raw[i, a0 + 2 * k + b - 1] += (a * F_d0 + bb * L_d0) / (1.0 + math.exp(-z))
                if b + 1 < k:
                    z = raw[i, a0 + 2 * k + b] + offset
                    g_raw[i, a0 + 2 * k + b] += (a * F_d1 + bb * L_d1) / (1.0 + math.exp(-z))
            if not affine:
                g_inp[i] = g_v
            elif inverse:  # v = (x - shift) / e^s; the output log-slope is s + L
                g_inp[i] = g_v / scale_e
                g_raw[i, 0] = -g_v / scale_e
                g_raw[i, 1] = (g_log[i] - g_v * v) * dls
            else:  # x = shift + e^s u; log-slope L + s
                g_inp[i] = g_v
                g_raw[i, 0] = g_out[i]
                g_raw[i, 1] = (g_out[i] * scale_e * u + g_log[i]) * dls


@jit(inline="always")
def _knot_grads(g_raw, exps, raw, i, a0, start, total, k, b, g_lo, g_hi, scale):
    """Add the gradients ``g_lo``, ``g_hi`` of knots ``b`` and ``b + 1`` to the raw entries
    ``a0 + start .. a0 + start + k``: ``knot_j = const + scale * cum_{j-1} / total`` with
    ``cum`` the running sum of the exps (zero gradient where the raw value was clamped)."""
    for jj in range(2):
        j = b + jj
        g = g_lo if jj == 0 else g_hi
        if j == 0 or j == k or g == 0.0:
            continue
        cum = 0.0
        for m in range(j):
            cum += exps[i, start + m]
        frac = cum / total
        for m in range(k):
            v = raw[i, a0 + start + m]
            if v < -40.0 or v > 40.0:
                continue
            ind = 1.0 if m < j else 0.0
            g_raw[i, a0 + start + m] += g * scale * (ind - frac) * exps[i, start + m] / total


#: LLVM may turn a division into a multiplication by the reciprocal (``arcp``; the knots
#: divide every running sum by one total) and fuse multiply-adds (``contract``): results
#: move by an ulp or two of float64; the forward kernel on a flow's batch of 256 x 2 took
#: 92 -> 73 us (ad hoc, AMD EPYC). No flag that changes inf/NaN handling or reassociates
#: sums.
_FAST = {"arcp", "contract"}

_KERNELS = {
    ("forward", False): jit(fastmath=_FAST)(_forward_kernel),
    ("forward", True): jit(parallel=True, fastmath=_FAST)(_forward_kernel),
    ("backward", False): jit(fastmath=_FAST)(_backward_kernel),
    ("backward", True): jit(parallel=True, fastmath=_FAST)(_backward_kernel),
}


def run(which: str, n: int, *args) -> None:
    """Run the ``"forward"`` or ``"backward"`` kernel on ``n`` elements (NumPy arrays in
    ``args``, outputs written in place): in parallel on ``torch``'s threads for large
    ``n``, serially otherwise (or where :func:`bayeskit.compiled.serial` says so)."""
    parallel = n >= PARALLEL_MIN and not compiled.serial()
    kernel = _KERNELS[which, parallel]
    if parallel:
        with compiled.threads():
            kernel(*args)
    else:
        kernel(*args)

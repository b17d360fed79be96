"""Monotone rational-quadratic splines with linear tails (Durkan et al. 2019, "Neural Spline
Flows", section 3.1 and appendix A).

On ``[-bound, bound]`` the map is a piecewise rational-quadratic through ``K + 1`` knots
``(x_k, y_k)`` with positive derivatives ``d_k`` at the knots; outside it is the identity, and
the boundary derivatives are fixed to 1 so that the derivative is continuous there. Within bin
``k``, with ``xi = (x - x_k) / w_k`` in ``[0, 1]``, ``s_k = h_k / w_k``:

    y = y_k + h_k (s_k xi^2 + d_k xi (1 - xi)) / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi))

(their eq. 4), monotone for any positive ``d``. The inverse solves a quadratic in ``xi`` in
closed form (their eqs. 6-8); the root is taken in the cancellation-free form
``xi = 2c / (-b - sqrt(b^2 - 4ac))``.

:func:`spline_parameters` maps unconstrained network outputs ``[..., 3K - 1]`` to knots and
derivatives (softmax bin sizes with a floor, softplus derivatives with a floor; zero outputs
give the identity); :func:`rational_quadratic_spline` applies the map elementwise.

Examples:
    >>> raw = torch.zeros(4, 3 * 8 - 1, dtype=torch.float64)   # zero outputs: identity
    >>> x = torch.tensor([-7.0, -1.0, 0.5, 9.0], dtype=torch.float64)
    >>> y, logdet = rational_quadratic_spline(x, *spline_parameters(raw, bound=5.0))
    >>> torch.allclose(y, x), torch.allclose(logdet, torch.zeros(4, dtype=torch.float64))
    (True, True)
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F  # noqa: N812

from bayeskit import compiled
from bayeskit.distributions import spline_kernels
from bayeskit.errors import ArgumentValueError

__all__ = ["spline_parameters", "rational_quadratic_spline", "spline", "affine_spline",
           "bounded_log_scale", "packed_spline", "MIN_BIN", "MIN_DERIVATIVE"]

MIN_BIN = 1e-3          # smallest bin width/height as a fraction of the interval
MIN_DERIVATIVE = 1e-3   # smallest derivative at an interior knot
# softplus shift so that a zero output gives derivative exactly 1
_OFFSET = math.log(math.expm1(1 - MIN_DERIVATIVE))


def _packed_parameters(raw: torch.Tensor, bound: float) -> torch.Tensor:
    """``raw`` ``[..., 3K - 1]`` -> ``[..., 3, K + 1]``: knots_x, knots_y, derivatives."""
    if raw.shape[-1] < 2 or (raw.shape[-1] + 1) % 3:
        raise ArgumentValueError(f"spline parameters need 3K - 1 entries, got {raw.shape[-1]}")
    k = (raw.shape[-1] + 1) // 3
    # bin sizes MIN_BIN + (1 - K MIN_BIN) softmax(raw), accumulated into K + 1 increasing knots
    # from -bound to bound. The softmax is written out: torch's last-dimension softmax over a
    # handful of bins costs ~10x the exp/cumsum below on CPU (measured, torch 2.13). Clamping
    # to +-40 instead of subtracting the maximum keeps exp finite in float32 (a bin e^80 times
    # another is already at the MIN_BIN floor, so nothing is lost).
    e = torch.exp(raw[..., :2 * k].unflatten(-1, (2, k)).clamp(-40.0, 40.0))
    cum = torch.cumsum(e, dim=-1)
    floor = MIN_BIN * torch.arange(1, k + 1, dtype=raw.dtype, device=raw.device)
    cum = floor + (1 - MIN_BIN * k) * (cum / cum[..., -1:])
    knots = F.pad(cum, (1, 0)) * (2 * bound) - bound
    # softplus shifted so that a zero output gives derivative exactly 1; boundary ones are 1
    derivatives = F.pad(MIN_DERIVATIVE - 1 + F.softplus(raw[..., 2 * k:] + _OFFSET), (1, 1)) + 1
    return torch.cat([knots, derivatives[..., None, :]], dim=-2)


def spline_parameters(raw: torch.Tensor, bound: float):
    """Split ``raw`` ``[..., 3K - 1]`` into widths ``K``, heights ``K``, derivatives ``K - 1``
    and return ``(knots_x, knots_y, derivatives)`` ``[..., K + 1]`` each (boundary derivatives
    1). All-zero ``raw`` gives equal bins and unit derivatives: the identity map."""
    packed = _packed_parameters(raw, bound)
    return packed[..., 0, :], packed[..., 1, :], packed[..., 2, :]


def rational_quadratic_spline(x: torch.Tensor, knots_x: torch.Tensor, knots_y: torch.Tensor,
                              derivatives: torch.Tensor, *, inverse: bool = False):
    """Apply the spline (or its inverse) elementwise.

    Args:
        x: inputs ``[...]``.
        knots_x, knots_y, derivatives: ``[..., K + 1]`` from :func:`spline_parameters`
            (broadcastable against ``x[..., None]``); the interval is
            ``[knots_x[..., 0], knots_x[..., -1]]``.
        inverse: apply the inverse map (then ``x`` lives on the ``y`` side).

    Returns:
        ``(y, log|dy/dx|)`` in the forward direction, ``(x, log|dx/dy|)`` for the inverse,
        both shaped like ``x``.
    """
    packed = torch.stack(torch.broadcast_tensors(knots_x, knots_y, derivatives), dim=-2)
    return packed_spline(x, packed, inverse=inverse)


def spline(x: torch.Tensor, raw: torch.Tensor, bound: float, *, inverse: bool = False):
    """The spline with parameters straight from network outputs ``raw`` ``[..., 3K - 1]``
    (what flow layers call): ``(output, log-slope)`` like :func:`rational_quadratic_spline`.

    On the CPU (float32/float64, numba available, :mod:`bayeskit.compiled` on) this is one
    compiled kernel forward and one backward (first derivatives; the same numbers as the
    eager code to rounding); elsewhere the eager torch code.
    """
    if _use_kernel(x, raw):
        return _compiled(x, raw, bound, inverse, False, 0.0)
    return packed_spline(x, _packed_parameters(raw, bound), inverse=inverse)


def _use_kernel(x: torch.Tensor, raw: torch.Tensor) -> bool:
    return (compiled.enabled(x, raw) and x.dtype == raw.dtype
            and x.dtype in (torch.float32, torch.float64))


def _compiled(x, raw, bound, inverse, affine, max_log_scale):
    """The compiled spline on ``x`` ``[...]`` and ``raw`` ``[..., (2 +) 3K - 1]``."""
    extra = 2 if affine else 0
    if raw.shape[-1] < 2 + extra or (raw.shape[-1] - extra + 1) % 3:
        raise ArgumentValueError(f"spline parameters need {'2 + ' if affine else ''}3K - 1 "
                                 f"entries, got {raw.shape[-1]}")
    if x.shape != raw.shape[:-1]:
        shape = torch.broadcast_shapes(x.shape, raw.shape[:-1])
        x, raw = x.expand(shape), raw.expand(*shape, raw.shape[-1])
    return _CompiledSpline.apply(x, raw, float(bound), bool(inverse), affine,
                                 float(max_log_scale))


def bounded_log_scale(raw: torch.Tensor, limit: float) -> torch.Tensor:
    """``limit * tanh(raw / limit)``: a log-scale squashed into ``(-limit, limit)``."""
    return torch.tanh(raw / limit) * limit


def affine_spline(x: torch.Tensor, raw: torch.Tensor, bound: float, *, inverse: bool = False,
                  max_log_scale: float = 3.0):
    """``x = m + exp(s) S(z)`` elementwise, with ``raw`` ``[..., 2 + 3K - 1]``: the shift
    ``m``, the log-scale before :func:`bounded_log_scale` and the spline's parameters.

    Returns ``(x, log|dx/dz|)`` from ``z`` (``inverse=False``) or ``(z, log|dx/dz|)`` from
    ``x`` (``inverse=True``): the log-slope of the forward map either way. One compiled
    kernel each way on the CPU (see :func:`spline`).

    Examples:
        >>> raw = torch.zeros(3, 2 + 3 * 4 - 1, dtype=torch.float64)  # identity spline
        >>> raw[:, 0] = 1.0  # shift 1, log-scale 0
        >>> affine_spline(torch.zeros(3, dtype=torch.float64), raw, 3.0)[0]
        tensor([1., 1., 1.], dtype=torch.float64)
    """
    if _use_kernel(x, raw):
        return _compiled(x, raw, bound, inverse, True, max_log_scale)
    shift, log_scale = raw[..., 0], bounded_log_scale(raw[..., 1], max_log_scale)
    if inverse:
        z, log_d_inv = spline((x - shift) * torch.exp(-log_scale), raw[..., 2:], bound,
                              inverse=True)
        return z, log_scale - log_d_inv
    u, log_d = spline(x, raw[..., 2:], bound)
    return shift + u * log_scale.exp(), log_d + log_scale


class _CompiledSpline(torch.autograd.Function):
    """The spline (with the affine map when ``affine``) from raw parameters as one compiled
    kernel each way (CPU, numba): see :mod:`bayeskit.distributions.spline_kernels`. First
    derivatives only."""

    @staticmethod
    def forward(ctx, x, raw, bound, inverse, affine, max_log_scale):
        shape = x.shape
        xs = x.detach().reshape(-1).contiguous()
        rs = raw.detach().reshape(-1, raw.shape[-1]).contiguous()
        a0 = 2 if affine else 0
        k = (rs.shape[-1] - a0 + 1) // 3
        # the bins' exponentials in one vectorised call (see spline_kernels); clamp copies
        # the slice, the exponential then runs in place
        exps = rs[:, a0:a0 + 2 * k].clamp(-40.0, 40.0).exp_()
        out, logdet = torch.empty_like(xs), torch.empty_like(xs)
        ctx.args = (bound, inverse, affine, max_log_scale, MIN_BIN, MIN_DERIVATIVE, _OFFSET)
        spline_kernels.run("forward", xs.shape[0], xs.numpy(), rs.numpy(), exps.numpy(),
                           *ctx.args, out.numpy(), logdet.numpy())
        ctx.save_for_backward(xs, rs, exps, out)
        return out.reshape(shape), logdet.reshape(shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_log):
        xs, rs, exps, out = ctx.saved_tensors
        shape = g_out.shape
        go = g_out.to(xs.dtype).reshape(-1).contiguous()
        gl = g_log.to(xs.dtype).reshape(-1).contiguous()
        g_in, g_raw = torch.empty_like(xs), torch.empty_like(rs)
        spline_kernels.run("backward", xs.shape[0], xs.numpy(), out.numpy(), rs.numpy(),
                           exps.numpy(), *ctx.args, go.numpy(), gl.numpy(), g_in.numpy(),
                           g_raw.numpy())
        return (g_in.reshape(shape), g_raw.reshape(*shape, rs.shape[-1]), None, None, None,
                None)


def packed_spline(x: torch.Tensor, packed: torch.Tensor, *, inverse: bool = False):
    """:func:`rational_quadratic_spline` on packed knots ``[..., 3, K + 1]``."""
    shape = torch.broadcast_shapes(x.shape, packed.shape[:-2])
    x = x.expand(shape)
    packed = packed.expand(*shape, *packed.shape[-2:])
    lo, hi = packed[..., int(inverse), 0], packed[..., int(inverse), -1]
    inside = (x >= lo) & (x <= hi)
    xc = torch.where(inside, x, torch.zeros_like(x))  # finite in both branches
    idx = (xc[..., None] >= packed[..., int(inverse), 1:-1]).sum(-1, keepdim=True)
    both = torch.cat([idx, idx + 1], -1)[..., None, :].expand(*shape, 3, 2)
    ends = torch.gather(packed, -1, both)  # [..., 3, 2]: each bin's left and right values
    x0, x1, y0, y1, d0, d1 = ends.flatten(-2).unbind(-1)
    w, h = x1 - x0, y1 - y0
    s = h / w
    curvature = d1 + d0 - 2 * s
    if inverse:
        dy = xc - y0
        a = h * (s - d0) + dy * curvature
        b = h * d0 - dy * curvature
        c = -s * dy
        disc = (b * b - 4 * a * c).clamp_min(0)
        xi = ((2 * c) / (-b - torch.sqrt(disc))).clamp(0, 1)
        out = x0 + xi * w
    else:
        xi = (xc - x0) / w
    xi_1m = xi * (1 - xi)
    denom = s + curvature * xi_1m
    if not inverse:
        out = y0 + h * (s * xi * xi + d0 * xi_1m) / denom
    one_minus = 1 - xi
    log_slope = torch.log(s * s * (d1 * xi * xi + 2 * s * xi_1m + d0 * one_minus * one_minus)
                          / (denom * denom))
    if inverse:
        log_slope = -log_slope
    return (torch.where(inside, out, x),
            torch.where(inside, log_slope, torch.zeros_like(log_slope)))

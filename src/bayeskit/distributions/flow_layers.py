"""Flow layers: ``torch.distributions`` transforms whose parameters come from networks,
each optionally conditioned on a context vector.

Every layer maps base noise ``z`` to data ``x`` (``_call``) with ``[..., D]`` events; its
network reads the untouched coordinates and, when the layer was built with
``context_dim > 0``, a context ``[..., C]`` bound by :meth:`ConditionalTransform.conditioned`
(the context broadcasts against the batch of ``z``/``x``).

- :class:`MaskedAutoregressiveAffine` (MAF, Papamakarios et al. 2017):
  ``x_i = z_i exp(s_i) + m_i`` with ``(m_i, s_i)`` from a MADE network of ``x_<i``. One pass
  data -> noise (``log_prob``), ``D`` passes to sample.
- :class:`AffineCoupling` (RealNVP, Dinh et al. 2017): the second half is scaled and
  shifted by a network of the first half; one pass both ways.
- :class:`MaskedAutoregressiveSpline` and :class:`SplineCoupling` (neural spline flows,
  Durkan et al. 2019): the same two structures with an elementwise map
  ``x_i = m_i + exp(s_i) S_i(z_i)``, ``S_i`` a monotone rational-quadratic spline on
  ``[-bound, bound]`` with linear (identity) tails (:mod:`bayeskit.distributions.splines`).
  The affine part (``affine=True``, the default) lets a layer move mass that sits outside
  the spline's interval; ``affine=False`` is the plain spline of the paper.
- :class:`Permute`: reorders coordinates between layers (log-det 0).

All layers start at the identity (last network layer zero).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.distributions import constraints
from torch.distributions.transforms import Transform

from bayeskit.distributions.splines import affine_spline, bounded_log_scale, spline
from bayeskit.errors import ArgumentValueError, ShapeError
from bayeskit.nn import mlp
from bayeskit.validation import as_int, as_scalar, as_tensor

__all__ = ["MADE", "ConditionalTransform", "MaskedAutoregressiveAffine", "AffineCoupling",
           "MaskedAutoregressiveSpline", "SplineCoupling", "Permute"]

_VECTOR = constraints.independent(constraints.real, 1)
MAX_LOG_SCALE = 3.0  # affine log-scales are squashed into (-3, 3): stable training


def _sizes(dim, context_dim) -> tuple[int, int]:
    return (as_int(dim, "dim", positive=True),
            as_int(context_dim, "context_dim", nonnegative=True))


def _bounded(log_scale: torch.Tensor) -> torch.Tensor:
    return bounded_log_scale(log_scale, MAX_LOG_SCALE)


class _MaskedLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder (Germain et al. 2015): ``params_per_dim`` outputs per coordinate,
    output ``[..., D, P]`` where row ``i`` depends on ``x_<i`` (and on all context inputs).

    Input: ``[..., D + context_dim]`` (coordinates first, then the context). The output
    layer's units are ordered coordinate-major, so ``[..., D, P]`` is a view of the
    network's output (no copy forward or backward).

    Examples:
        >>> made = MADE(3, (8,), params_per_dim=2)
        >>> made(torch.zeros(5, 3)).shape
        torch.Size([5, 3, 2])
    """

    def __init__(self, dim: int, hidden: tuple[int, ...], params_per_dim: int,
                 context_dim: int = 0):
        super().__init__()
        degrees = [torch.cat([torch.arange(1, dim + 1),
                              torch.zeros(context_dim, dtype=torch.long)])]
        for h in hidden:
            degrees.append(torch.arange(h) % max(dim - 1, 1) + 1)
        layers: list[nn.Module] = []
        for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True):
            layers += [_MaskedLinear(len(d_in), len(d_out), (d_out[:, None] >= d_in[None]).float()),
                       nn.ReLU()]
        out_deg = torch.arange(1, dim + 1).repeat_interleave(params_per_dim)
        self.out = _MaskedLinear(len(degrees[-1]), params_per_dim * dim,
                                 (out_deg[:, None] > degrees[-1][None]).float())
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.net = nn.Sequential(*layers)
        self.dim, self.params_per_dim = dim, params_per_dim

    def forward(self, x):
        return self.out(self.net(x)).unflatten(-1, (self.dim, self.params_per_dim))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # bayeskit up to commit a84c484 kept the output layer as the last entry of ``net``,
        # its units ordered parameter-major: such state dicts (checkpoints written then) are
        # converted to the coordinate-major ``out`` layer instead of loading wrongly
        old = f"{prefix}net.{len(self.net)}."
        if old + "weight" in state_dict and prefix + "out.weight" not in state_dict:
            for name in ("weight", "bias", "mask"):
                if old + name in state_dict:
                    v = state_dict.pop(old + name)
                    state_dict[f"{prefix}out.{name}"] = (
                        v.unflatten(0, (self.params_per_dim, self.dim)).transpose(0, 1)
                        .flatten(0, 1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ConditionalTransform(Transform):
    """A Transform owning an ``nn.Module`` (trained by the Flow) and an optional bound
    context. ``conditioned(context)`` returns a view of the same layer (shared parameters)
    whose networks read ``context``."""

    domain = _VECTOR
    codomain = _VECTOR
    bijective = True

    def __init__(self, module: nn.Module, context_dim: int = 0):
        super().__init__(cache_size=0)
        self.module = module
        self.context_dim = context_dim
        self.context: torch.Tensor | None = None

    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return id(self)

    def conditioned(self, context: torch.Tensor | None) -> ConditionalTransform:
        if (context is None) != (self.context_dim == 0):
            raise ArgumentValueError(
                f"this layer was built with context_dim={self.context_dim}: pass "
                + ("a context [..., C]" if self.context_dim else "no context"))
        if context is not None and context.shape[-1] != self.context_dim:
            raise ShapeError(f"context must be [..., {self.context_dim}], got "
                             f"{tuple(context.shape)}")
        bound = copy.copy(self)
        bound._inv = None  # the copy's inverse must wrap the copy, not the original
        bound._last = None
        bound.context = context
        return bound

    # Subclasses implement both directions with their log-determinant; the transform remembers
    # the last pair so that TransformedDistribution's inverse-then-log-det (log_prob) and
    # forward-then-log-det (sampling with log q) each run the networks once.
    def _forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """noise -> data: ``(x, log|dx/dz|)``; every layer class defines it."""
        raise NotImplementedError  # noqa: stub-ok (abstract: each layer implements it)

    def _backward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """data -> noise: ``(z, log|dx/dz|)``; every layer class defines it."""
        raise NotImplementedError  # noqa: stub-ok (abstract: each layer implements it)

    def _call(self, z):
        x, log_det = self._forward(z)
        self._last = (z, x, log_det)
        return x

    def _inverse(self, x):
        z, log_det = self._backward(x)
        self._last = (z, x, log_det)
        return z

    def log_abs_det_jacobian(self, z, x):
        """``log|dx/dz|`` summed over the event: ``[...]``."""
        last = getattr(self, "_last", None)
        if last is not None and last[0] is z and last[1] is x:
            return last[2]
        return self._backward(x)[1]

    def _with_context(self, x: torch.Tensor) -> torch.Tensor:
        """The network input: ``x`` with the context appended (both broadcast)."""
        if self.context_dim == 0:
            return x
        if self.context is None:
            raise ArgumentValueError("this layer needs a context: call .conditioned(context)")
        c = self.context.to(x.dtype)
        shape = torch.broadcast_shapes(x.shape[:-1], c.shape[:-1])
        return torch.cat([x.expand(*shape, x.shape[-1]), c.expand(*shape, c.shape[-1])], -1)

    def _broadcast(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` expanded to the batch shape it has together with the context."""
        if self.context is None:
            return z
        shape = torch.broadcast_shapes(z.shape[:-1], self.context.shape[:-1])
        return z.expand(*shape, z.shape[-1])


# ----------------------------------------------------------------------------- affine layers
class MaskedAutoregressiveAffine(ConditionalTransform):
    """MAF layer mapping noise ``z`` to data ``x`` (event ``[..., D]``)."""

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64), context_dim: int = 0):
        dim, context_dim = _sizes(dim, context_dim)
        super().__init__(MADE(dim, hidden, 2, context_dim), context_dim)
        self.dim = dim

    def _params(self, x):
        p = self.module(self._with_context(x))
        return p[..., 0], _bounded(p[..., 1])

    def _forward(self, z):  # noise -> data: D sequential passes
        z = self._broadcast(z)
        x = torch.zeros_like(z)
        for i in range(self.dim):
            shift, log_scale = self._params(x)
            x = torch.cat([x[..., :i], z[..., i:i + 1] * log_scale[..., i:i + 1].exp()
                           + shift[..., i:i + 1], x[..., i + 1:]], dim=-1)
        return x, log_scale.sum(-1)

    def _backward(self, x):  # data -> noise: one pass
        shift, log_scale = self._params(x)
        return (x - shift) * torch.exp(-log_scale), log_scale.sum(-1)


class AffineCoupling(ConditionalTransform):
    """RealNVP coupling: the second half is scaled/shifted by a network of the first half."""

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64), context_dim: int = 0):
        dim, context_dim = _sizes(dim, context_dim)
        if dim < 2:
            raise ArgumentValueError(f"AffineCoupling needs at least 2 dimensions, got {dim}")
        self.split = dim // 2
        super().__init__(mlp((self.split + context_dim, *hidden, 2 * (dim - self.split)),
                             zero_last=True), context_dim)

    def _params(self, a):
        shift, log_scale = self.module(self._with_context(a)).chunk(2, dim=-1)
        return shift, _bounded(log_scale)

    def _forward(self, z):
        a, b = z[..., :self.split], z[..., self.split:]
        shift, log_scale = self._params(a)
        return (torch.cat([a.expand(*shift.shape[:-1], a.shape[-1]),
                           b * log_scale.exp() + shift], dim=-1), log_scale.sum(-1))

    def _backward(self, x):
        a, b = x[..., :self.split], x[..., self.split:]
        shift, log_scale = self._params(a)
        return (torch.cat([a.expand(*shift.shape[:-1], a.shape[-1]),
                           (b - shift) * torch.exp(-log_scale)], dim=-1), log_scale.sum(-1))


# ----------------------------------------------------------------------------- spline layers
class _SplineMap:
    """``x = m + exp(s) S(z)`` per coordinate from raw parameters ``[..., D, P]``:
    ``P = 3 bins - 1`` (+ 2 when ``affine``: shift and log-scale first)."""

    def __init__(self, bins: int, bound: float, affine: bool):
        self.bins = as_int(bins, "bins", positive=True)
        if self.bins < 2:
            raise ArgumentValueError(f"bins must be at least 2, got {bins}")
        self.bound = as_scalar(bound, "bound", low=0.0, low_open=True)
        self.affine = bool(affine)
        self.params_per_dim = 3 * self.bins - 1 + (2 if self.affine else 0)

    def forward(self, z, raw):
        """noise -> data: ``(x, log|dx/dz|)`` elementwise."""
        if self.affine:
            return affine_spline(z, raw, self.bound, max_log_scale=MAX_LOG_SCALE)
        return spline(z, raw, self.bound)

    def inverse(self, x, raw):
        """data -> noise: ``(z, log|dx/dz|)`` elementwise (the forward map's log-slope)."""
        if self.affine:
            return affine_spline(x, raw, self.bound, inverse=True, max_log_scale=MAX_LOG_SCALE)
        z, log_d_inv = spline(x, raw, self.bound, inverse=True)
        return z, -log_d_inv


class MaskedAutoregressiveSpline(ConditionalTransform):
    """Autoregressive neural spline layer: ``x_i = m_i + exp(s_i) S_i(z_i)`` with the spline
    ``S_i`` and ``(m_i, s_i)`` from a MADE network of ``x_<i`` (and the context).

    Args:
        dim: event size ``D`` (any ``D >= 1``).
        hidden: MADE hidden widths.
        bins: spline bins ``K`` (``3K - 1`` parameters per coordinate).
        bound: the spline acts on ``[-bound, bound]``, identity outside.
        affine: include the elementwise shift/scale (default True).
        context_dim: size of the context vector (0: unconditional).
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64), *, bins: int = 8,
                 bound: float = 4.0, affine: bool = True, context_dim: int = 0):
        dim, context_dim = _sizes(dim, context_dim)
        spline = _SplineMap(bins, bound, affine)
        super().__init__(MADE(dim, hidden, spline.params_per_dim, context_dim), context_dim)
        self.dim, self.spline = dim, spline

    def _raw(self, x):
        return self.module(self._with_context(x))

    def _forward(self, z):  # noise -> data: D sequential passes
        z = self._broadcast(z)
        x = torch.zeros_like(z)
        for i in range(self.dim):
            raw = self._raw(x)
            xi, _ = self.spline.forward(z[..., i], raw[..., i, :])
            x = torch.cat([x[..., :i], xi[..., None], x[..., i + 1:]], dim=-1)
        _, log_det = self.spline.forward(z, raw)  # the last pass saw all of x_<i
        return x, log_det.sum(-1)

    def _backward(self, x):
        z, log_det = self.spline.inverse(x, self._raw(x))
        return z, log_det.sum(-1)


class SplineCoupling(ConditionalTransform):
    """Coupling neural spline layer: the second half ``b`` goes through
    ``m + exp(s) S(b)`` with all parameters from a network of the first half (and the
    context). Arguments as :class:`MaskedAutoregressiveSpline`; ``dim >= 2``."""

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64), *, bins: int = 8,
                 bound: float = 4.0, affine: bool = True, context_dim: int = 0):
        dim, context_dim = _sizes(dim, context_dim)
        if dim < 2:
            raise ArgumentValueError(f"SplineCoupling needs at least 2 dimensions, got {dim}")
        spline = _SplineMap(bins, bound, affine)
        self.split = dim // 2
        self.rest = dim - self.split
        super().__init__(mlp((self.split + context_dim, *hidden,
                              self.rest * spline.params_per_dim), zero_last=True), context_dim)
        self.spline = spline

    def _raw(self, a):
        return self.module(self._with_context(a)).unflatten(
            -1, (self.rest, self.spline.params_per_dim))

    def _forward(self, z):
        a, b = z[..., :self.split], z[..., self.split:]
        xb, log_det = self.spline.forward(b, self._raw(a))
        return torch.cat([a.expand(*xb.shape[:-1], a.shape[-1]), xb], dim=-1), log_det.sum(-1)

    def _backward(self, x):
        a, b = x[..., :self.split], x[..., self.split:]
        zb, log_det = self.spline.inverse(b, self._raw(a))
        return torch.cat([a.expand(*zb.shape[:-1], a.shape[-1]), zb], dim=-1), log_det.sum(-1)


class Permute(Transform):
    """Reorder the coordinates of ``[..., D]`` events by ``perm`` (log-det 0)."""

    domain = _VECTOR
    codomain = _VECTOR
    bijective = True

    def __init__(self, perm: torch.Tensor):
        super().__init__(cache_size=0)
        p = as_tensor(perm, "perm", dtype=torch.float64, ndim=1)
        if not torch.equal(torch.sort(p).values, torch.arange(len(p), dtype=p.dtype)):
            raise ArgumentValueError(f"perm must be a permutation of 0..{len(p) - 1}, got "
                                     f"{p.long().tolist()}")
        self.perm = p.long()
        self.inv_perm = torch.argsort(self.perm)

    def __eq__(self, other):
        return isinstance(other, Permute) and torch.equal(self.perm, other.perm)

    def __hash__(self):
        return hash(tuple(self.perm.tolist()))

    # index_select rather than x[..., perm]: the same values, cheaper on small batches
    # (part of the flows' step gain in benchmarks/bench_revisions.py, RESULTS.md)
    def _call(self, x):
        return torch.index_select(x, -1, self.perm.to(x.device))

    def _inverse(self, y):
        return torch.index_select(y, -1, self.inv_perm.to(y.device))

    def log_abs_det_jacobian(self, x, y):
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)

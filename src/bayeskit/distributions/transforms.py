"""Bijections as ``torch.distributions.transforms.Transform`` subclasses, and their checks.

- :class:`Banana`: ``G(x) = (x_1, x_2 - b x_1^2 - shift, x_3, ..., x_K)``, volume
  preserving (log|det J| = 0) for any event size ``K >= 2``.
- :class:`InlineTransform`: a transform from plain functions (like TFP's ``Inline``), with
  the log-determinant from autodiff when not given.
- :func:`check_transform`: round trip, log-determinant against the autodiff Jacobian, and
  log-determinant shapes; used by the tests for every transform and public for users.
- :func:`banana_distribution`: the reference's banana, ``Banana`` pushed through a
  correlated Gaussian.

Examples:
    >>> p = banana_distribution(rho=0.95)
    >>> y = p.sample((3,))
    >>> p.log_prob(y).shape
    torch.Size([3])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.distributions import MultivariateNormal, TransformedDistribution, constraints
from torch.distributions.transforms import Transform

from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.validation import as_scalar, check_choice

__all__ = ["Banana", "InlineTransform", "check_transform", "banana_distribution"]


def _check_event(x: torch.Tensor, name: str, min_size: int = 1) -> None:
    if x.dim() < 1 or x.shape[-1] < min_size:
        raise ShapeError(f"{name} needs inputs [..., K] with K >= {min_size}, "
                         f"got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"{name} got NaN or infinite inputs")


class Banana(Transform):
    """``y = (x_1, x_2 - curvature * x_1^2 - shift, x_3, ..., x_K)`` on ``[..., K]``, K >= 2.

    A shear: the Jacobian is unit lower triangular, so ``log|det J| = 0`` everywhere. All
    coordinates after the second pass through unchanged (the reference's code drops the last
    one for K >= 3 by slicing ``x[..., 2:-1]``; this one keeps it).

    Args:
        curvature: ``b`` in the usual b-parameterised banana (reference: 1).
        shift: the constant subtracted from ``y_2`` (reference: 1).
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, curvature: float = 1.0, shift: float = 1.0, cache_size: int = 0):
        super().__init__(cache_size=cache_size)
        self.curvature = as_scalar(curvature, "curvature")
        self.shift = as_scalar(shift, "shift")

    def __eq__(self, other):
        return (isinstance(other, Banana) and other.curvature == self.curvature
                and other.shift == self.shift)

    def __hash__(self):
        return hash((Banana, self.curvature, self.shift))

    def with_cache(self, cache_size=1):
        return Banana(self.curvature, self.shift, cache_size=cache_size)

    def _bend(self, x1: torch.Tensor) -> torch.Tensor:
        return self.curvature * x1 * x1 + self.shift

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        _check_event(x, "Banana", 2)
        y2 = x[..., 1:2] - self._bend(x[..., 0:1])
        return torch.cat([x[..., 0:1], y2, x[..., 2:]], dim=-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        _check_event(y, "Banana", 2)
        x2 = y[..., 1:2] + self._bend(y[..., 0:1])
        return torch.cat([y[..., 0:1], x2, y[..., 2:]], dim=-1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)


class InlineTransform(Transform):
    """A transform from functions: ``forward``, ``inverse`` and optionally the log-det.

    Args:
        forward, inverse: maps ``[..., K] -> [..., K]`` (for ``event_dim = 1``) or
            elementwise maps (``event_dim = 0``).
        log_abs_det_jacobian: ``(x, y) -> [...]``; if omitted it is computed by autodiff
            (``torch.func.jacrev`` and ``slogdet`` per input), which costs O(K^3) per
            input: fine for small event sizes, slow for large ones.
        event_dim: 0 (elementwise) or 1 (vector events).
        constant_jacobian: the log-det does not depend on the input; it is computed once
            (at the first input) and broadcast to every batch shape.
        sign: for ``event_dim = 0``, ``+1`` (increasing) or ``-1`` (decreasing); default:
            the sign of the derivative at 0, found by autodiff (needed by
            ``TransformedDistribution.cdf``).

    Examples:
        >>> t = InlineTransform(torch.exp, torch.log, event_dim=0)
        >>> d = torch.distributions.TransformedDistribution(
        ...     torch.distributions.Normal(0.0, 1.0), [t])
        >>> round(float(d.cdf(torch.tensor(1.0))), 4), t.sign
        (0.5, 1)
    """

    bijective = True

    def __init__(self, forward: Callable, inverse: Callable,
                 log_abs_det_jacobian: Callable | None = None, *, event_dim: int = 1,
                 constant_jacobian: bool = False, cache_size: int = 0,
                 sign: int | None = None):
        if not callable(forward) or not callable(inverse):
            raise ArgumentTypeError("forward and inverse must be callables")
        check_choice(event_dim, "event_dim", (0, 1))
        if sign is not None:
            check_choice(sign, "sign", (-1, 1))
        super().__init__(cache_size=cache_size)
        self._sign = sign
        self._forward_fn, self._inverse_fn = forward, inverse
        self._ladj_fn = log_abs_det_jacobian
        self._event_dim = event_dim
        self.constant_jacobian = constant_jacobian
        self._constant: torch.Tensor | None = None
        base = constraints.real
        self.domain = constraints.independent(base, event_dim) if event_dim else base
        self.codomain = self.domain

    @property
    def event_dim(self) -> int:
        return self._event_dim

    @property
    def sign(self) -> int:
        """``+1`` or ``-1``: the direction of an elementwise (``event_dim = 0``) map."""
        if self._event_dim != 0:
            raise ArgumentValueError("sign is defined for elementwise transforms "
                                     "(event_dim = 0) only")
        if self._sign is None:
            x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
            (grad,) = torch.autograd.grad(self._forward_fn(x).sum(), x)
            if not bool(torch.isfinite(grad).all()) or float(grad) == 0:
                raise ArgumentValueError("could not find the transform's direction from its "
                                         "derivative at 0; pass sign=+1 or sign=-1")
            self._sign = 1 if float(grad) > 0 else -1
        return self._sign

    def with_cache(self, cache_size: int = 1) -> InlineTransform:
        """The same transform with another cache size (``torch.distributions`` API)."""
        if self._cache_size == cache_size:
            return self
        return InlineTransform(self._forward_fn, self._inverse_fn, self._ladj_fn,
                               event_dim=self._event_dim,
                               constant_jacobian=self.constant_jacobian,
                               cache_size=cache_size, sign=self._sign)

    def _call(self, x):
        return self._forward_fn(x)

    def _inverse(self, y):
        return self._inverse_fn(y)

    def _autodiff_ladj(self, x: torch.Tensor) -> torch.Tensor:
        if self._event_dim == 0:
            flat = x.reshape(-1).detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self._forward_fn(flat).sum(), flat)
            return grad.abs().log().reshape(x.shape)
        k = x.shape[-1]
        flat = x.reshape(-1, k)
        jac = torch.vmap(torch.func.jacrev(self._forward_fn))(flat)  # [B, K, K]
        return torch.linalg.slogdet(jac)[1].reshape(x.shape[:-1])

    def log_abs_det_jacobian(self, x, y):
        batch = x.shape if self._event_dim == 0 else x.shape[:-1]
        if self.constant_jacobian:
            if self._constant is None:
                first = (x.reshape(-1)[:1] if self._event_dim == 0
                         else x.reshape(-1, x.shape[-1])[:1])
                value = (self._ladj_fn(first, self._forward_fn(first)) if self._ladj_fn
                         else self._autodiff_ladj(first))
                self._constant = value.reshape(-1)[0].detach()
            return self._constant.to(x.dtype).expand(batch)
        if self._ladj_fn is not None:
            return self._ladj_fn(x, y)
        return self._autodiff_ladj(x)


def check_transform(t: Transform, x: torch.Tensor, *, atol: float = 1e-8,
                    rtol: float = 1e-6) -> dict[str, float]:
    """Check a transform at inputs ``x``; raise ``AssertionError`` naming what is wrong.

    Checks: ``inverse(forward(x)) == x``; ``log_abs_det_jacobian`` equals the log |det| of
    the autodiff Jacobian per input (event_dim 0 or 1); the log-det has shape
    ``x.shape[:len(x.shape) - event_dim]`` (the usual ``event_dim``/``sign`` mix-ups).

    Returns:
        The worst round-trip and log-det errors, for reporting.
    """
    y = t(x)
    x_back = t.inv(y)
    round_trip = float((x_back - x).detach().abs().max())
    if not torch.allclose(x_back, x, atol=atol, rtol=rtol):
        raise AssertionError(f"inverse(forward(x)) differs from x by up to {round_trip:.3g}")
    ladj = t.log_abs_det_jacobian(x, y)
    ev = t.domain.event_dim
    expected_shape = x.shape[:x.dim() - ev]
    if ladj.shape != expected_shape:
        raise AssertionError(f"log_abs_det_jacobian has shape {tuple(ladj.shape)}, expected "
                             f"{tuple(expected_shape)} for event_dim {ev}")
    if ev == 0:
        flat = x.reshape(-1).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(t(flat).sum(), flat)
        ref = grad.abs().log().reshape(x.shape)
    else:
        flat = x.reshape(-1, x.shape[-1])
        jac = torch.stack([torch.autograd.functional.jacobian(t, row) for row in flat])
        ref = torch.linalg.slogdet(jac)[1].reshape(expected_shape)
    ladj_err = float((ladj - ref).detach().abs().max())
    if not torch.allclose(ladj, ref, atol=max(atol, 1e-6), rtol=rtol):
        raise AssertionError(f"log_abs_det_jacobian differs from autodiff by {ladj_err:.3g}")
    return {"round_trip": round_trip, "log_det": ladj_err}


def banana_distribution(rho: float = 0.95, *, curvature: float = 1.0, shift: float = 1.0,
                        dtype: torch.dtype = torch.float64) -> TransformedDistribution:
    """The reference's banana: ``Banana`` applied to ``N(0, [[1, rho], [rho, 1]])``.

    ``E[y_1] = 0``, ``E[y_2] = -curvature - shift``, ``Var[y_1] = 1``,
    ``Var[y_2] = 1 + 2 curvature^2``, ``Cov[y_1, y_2] = rho``.
    """
    rho = as_scalar(rho, "rho", low=-1.0, high=1.0, low_open=True, high_open=True)
    as_scalar(curvature, "curvature")
    as_scalar(shift, "shift")
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=dtype)
    base = MultivariateNormal(torch.zeros(2, dtype=dtype), scale_tril=torch.linalg.cholesky(cov))
    return TransformedDistribution(base, [Banana(curvature, shift)])

"""Covariance functions (kernels) as ``torch.nn.Module``s with positive, learnable parameters.

A kernel maps inputs ``X: [..., N, D]`` and ``X2: [..., M, D]`` to ``K: [..., N, M]``;
``kernel.diag(X)`` gives ``[..., N]`` without forming the matrix. Positive parameters are
stored unconstrained and mapped through softplus plus a small floor.

Family: squared exponential, Matérn 1/2, 3/2, 5/2, rational quadratic, periodic (all with
ARD lengthscales), linear; ``Scale`` multiplies by a learnable amplitude, and ``k1 + k2`` /
``k1 * k2`` build ``Sum`` / ``Product`` kernels.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import nn

from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.gp import compiled_products
from bayeskit.validation import as_scalar, as_tensor, check_floating, check_instance

__all__ = ["Kernel", "Stationary", "SquaredExponential", "Matern", "RationalQuadratic",
           "Periodic", "Linear", "Scale", "Sum", "Product", "positive", "inverse_positive"]

_FLOOR = 1e-6


def positive(raw: torch.Tensor) -> torch.Tensor:
    """Softplus with a floor: the map from an unconstrained parameter to a positive one."""
    return torch.nn.functional.softplus(raw) + _FLOOR


def inverse_positive(value: float | torch.Tensor) -> torch.Tensor:
    """Unconstrained value whose :func:`positive` is ``value`` (``value > floor``)."""
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise ArgumentTypeError(f"a positive parameter must be a number, got {value!r}")
    v = torch.as_tensor(value, dtype=torch.float64) - _FLOOR
    if not bool(torch.isfinite(v).all()):
        raise NonFiniteError(f"positive parameters must be finite, got {value}")
    if bool((v <= 0).any()):
        raise ArgumentValueError(f"positive parameters must exceed {_FLOOR}, got {value}")
    return v + torch.log(-torch.expm1(-v))  # log(exp(v) - 1), stable


class Kernel(nn.Module, abc.ABC):
    """Base class: subclasses implement ``forward(X, X2)`` and ``diag(X)``.

    Examples:
        >>> class White(Kernel):
        ...     def forward(self, X, X2=None):
        ...         X2 = self._check(X, X2)
        ...         return (torch.cdist(X, X2) == 0).to(X.dtype)
        ...     def diag(self, X):
        ...         return torch.ones(X.shape[:-1], dtype=X.dtype)
        >>> White()(torch.zeros(2, 1)).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """

    def __call__(self, X, X2=None) -> torch.Tensor:
        """``K(X, X2)`` after checking the inputs: tensors must be floating and finite (they
        keep their autograd graph); arrays and lists are converted (float64)."""
        return super().__call__(_kernel_input(X, "X"),
                                None if X2 is None else _kernel_input(X2, "X2"))

    @abc.abstractmethod
    def forward(self, X: torch.Tensor, X2: torch.Tensor | None = None) -> torch.Tensor:
        """The covariance matrix ``[..., N, M]`` (``X2`` defaults to ``X``)."""

    @abc.abstractmethod
    def diag(self, X: torch.Tensor) -> torch.Tensor:
        """The diagonal ``[..., N]`` of ``K(X, X)`` without forming the matrix."""

    @staticmethod
    def _check(X: torch.Tensor, X2: torch.Tensor | None) -> torch.Tensor:
        if X.dim() < 2:
            raise ShapeError(f"kernel inputs must be [..., N, D], got {tuple(X.shape)}")
        X2 = X if X2 is None else X2
        if X2.shape[-1] != X.shape[-1]:
            raise ShapeError(f"inputs have {X.shape[-1]} and {X2.shape[-1]} features")
        return X2


class Stationary(Kernel):
    """Shared parameters of stationary kernels: ``lengthscale`` (scalar or ``[D]`` ARD) and
    ``variance``, both positive; ``diag`` is the variance."""

    def __init__(self, lengthscale: float | torch.Tensor = 1.0, variance: float = 1.0):
        super().__init__()
        self.raw_lengthscale = nn.Parameter(inverse_positive(lengthscale))
        self.raw_variance = nn.Parameter(inverse_positive(as_scalar(variance, "variance")))

    @property
    def lengthscale(self) -> torch.Tensor:
        return positive(self.raw_lengthscale) * self._unit("lengthscale")

    @property
    def variance(self) -> torch.Tensor:
        return positive(self.raw_variance) * self._unit("variance")

    def _unit(self, name: str) -> torch.Tensor | float:
        return getattr(self, name + "_unit", 1.0)

    def set_units(self, lengthscale, variance: float) -> Stationary:
        """Measure ``lengthscale`` (scalar or ``[D]``) and ``variance`` in these units from
        now on, keeping their current values relative to them: a kernel whose lengthscale
        is 1 becomes one whose lengthscale is ``lengthscale``. L-BFGS, random restarts and
        the positivity floor (``1e-6`` of the unit) then act on the data's scale; the
        models use this for their default kernel (lengthscales from the inputs' spread,
        variance from the targets'). Returns the kernel.

        Examples:
            >>> k = SquaredExponential().set_units(torch.tensor([1e6]), 4e-12)
            >>> f"{float(k.lengthscale.detach()):.6g} {float(k.variance.detach()):.6g}"
            '1e+06 4e-12'
        """
        for name, unit in (("lengthscale", lengthscale), ("variance", variance)):
            raw = getattr(self, "raw_" + name)
            unit = as_tensor(unit, f"{name} unit", dtype=torch.float64)
            if unit.numel() == 1:
                unit = unit.reshape(())
            if unit.dim() > 0 and raw.dim() == 0:  # one lengthscale: the geometric mean
                unit = unit.log().mean().exp()
            if not bool(((unit > 0) & (unit < math.inf)).all()) or unit.shape not in (
                    (), raw.shape):
                raise ArgumentValueError(f"the {name} unit must be positive and finite with "
                                         f"shape () or "
                                         f"{tuple(raw.shape)}, got {unit.tolist()}")
            if not hasattr(self, name + "_unit"):
                self.register_buffer(name + "_unit", unit.expand(raw.shape).clone())
            else:
                getattr(self, name + "_unit").copy_(unit.expand(raw.shape))
        return self

    def diag(self, X: torch.Tensor) -> torch.Tensor:
        return self.variance.to(X.dtype).expand(X.shape[:-1])

    def _matrix_arguments(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lengthscale, log_variance)`` in ``dtype``, as the matrix functions take them."""
        return self.lengthscale.to(dtype), torch.log(self.variance.to(dtype))

    def _check(self, X: torch.Tensor, X2: torch.Tensor | None) -> torch.Tensor:
        X2 = Kernel._check(X, X2)
        n = self.raw_lengthscale.numel()
        if n not in (1, X.shape[-1]):
            raise ShapeError(f"the kernel has {n} lengthscales (ARD) but the inputs have "
                             f"{X.shape[-1]} features: pass one lengthscale or one per feature")
        return X2

    def _scaled(self, X: torch.Tensor, X2: torch.Tensor | None):
        X2 = self._check(X, X2)
        ls = self.lengthscale.to(X.dtype)
        return X / ls, X2 / ls

    def extra_repr(self) -> str:
        ls = self.lengthscale.detach()
        ls_s = f"{float(ls):.4g}" if ls.numel() == 1 else str(ls.tolist())
        return f"lengthscale={ls_s}, variance={float(self.variance.detach()):.4g}"


class SquaredExponential(Stationary):
    """``k(x, x') = variance * exp(-|x - x'|^2 / (2 lengthscale^2))``.

    ``lengthscale`` may be a scalar or ``[D]`` (automatic relevance determination).

    Examples:
        >>> k = SquaredExponential(lengthscale=0.5, variance=2.0)
        >>> K = k(torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))
        >>> round(float(K.detach()), 4)
        0.2707
    """

    def forward(self, X: torch.Tensor, X2: torch.Tensor | None = None) -> torch.Tensor:
        self._check(X, X2)
        return _SquaredExponentialMatrix.apply(X, X2, *self._matrix_arguments(X.dtype))


def _augmented(a: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """``[a, row, col]`` along the feature axis (``row``/``col``: ``[..., N]``)."""
    return torch.cat([a, row.unsqueeze(-1), col.unsqueeze(-1)], dim=-1)


def _exponent(a: torch.Tensor, b: torch.Tensor | None,
              offset: torch.Tensor | float = 0.0) -> torch.Tensor:
    """``offset - |a_i - b_j|^2 / 2`` ``[..., N, M]`` (``b=None``: ``b = a``) from one matrix
    product of the inputs augmented by ``-|a|^2/2`` and ``offset - |b|^2/2`` columns (the
    expansion: its rounding grows with ``|a|^2 + |b|^2``)."""
    half_a = -0.5 * (a * a).sum(-1)
    ones_a = torch.ones_like(half_a)
    if b is None:
        b_aug = _augmented(a, ones_a, half_a + offset)
    else:
        half_b = -0.5 * (b * b).sum(-1)
        b_aug = _augmented(b, torch.ones_like(half_b), half_b + offset)
    return _augmented(a, half_a, ones_a) @ b_aug.mT


class _SquaredExponentialMatrix(torch.autograd.Function):
    """``exp(log_variance - |a_i - b_j|^2 / 2)`` for inputs ``x: [..., N, D]``,
    ``x2: [..., M, D]`` (``x2=None``: ``x2 = x``) scaled by ``lengthscale`` (``()`` or
    ``[D]``), ``a = x / lengthscale``, ``b = x2 / lengthscale``, with a hand-written backward.

    Forward: one matrix product of the inputs augmented by ``-|a|^2/2`` and
    ``log_variance - |b|^2/2`` columns gives the exponent, which is clamped (rounding can push
    it above ``log_variance`` near the diagonal) and exponentiated in place: 3 passes over
    ``[N, M]``. Backward, with ``W = G * K``: ``d a = W b - rowsum(W) a``,
    ``d b = W^T a - colsum(W) b``, ``d log_variance = sum(W)``, ``d lengthscale =
    -(sum_i a_i d a_i + sum_j b_j d b_j) / lengthscale``. When ``x2`` needs no gradient
    (training inputs), its lengthscale term ``sum_j b_j d b_j = sum_i a_i (W b)_i -
    sum_i (W b^2)_i`` comes from the same thin product ``W [b, 1, b^2]`` as ``d a``, so the
    backward reads ``W`` once instead of twice (autograd would chain elementwise passes), and
    on the CPU never forms it (:mod:`bayeskit.gp.compiled_products`). With ``create_graph``
    the backward is itself differentiable (out-of-place torch operations).
    """

    generate_vmap_rule = True  # usable under torch.func.vmap / jacrev

    @staticmethod
    def forward(x, x2, lengthscale, log_variance):
        K = _exponent(x / lengthscale, None if x2 is None else x2 / lengthscale, log_variance)
        return K.clamp_max_(log_variance).exp_()

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, x2, lengthscale, log_variance = inputs
        ctx.symmetric = x2 is None
        ctx.log_variance_shape = log_variance.shape
        saved = (x, x2 if x2 is not None else x, lengthscale, output)
        ctx.save_for_backward(*saved)
        ctx.save_for_forward(*saved)

    @staticmethod
    def jvp(ctx, d_x, d_x2, d_ls, d_logvar):
        """Forward mode (``torch.func.hessian``, ``jvp``): ``dK = K * dE`` with
        ``dE = da b^T + a db^T - (a . da) 1^T - 1 (b . db)^T + d log_variance`` and
        ``da = (dx - a d_lengthscale) / lengthscale`` (likewise ``db``)."""
        x, x2, ls, K = ctx.saved_tensors
        dE = _exponent_tangent(x / ls, x2 / ls, ls, d_x, d_x2 if not ctx.symmetric else d_x,
                               d_ls, K)
        if d_logvar is not None:
            dE = dE + d_logvar
        return K * dE

    @staticmethod
    def backward(ctx, grad):
        x, x2, ls, K = ctx.saved_tensors
        d_x, d_x2, d_ls, d_logvar = _vjp_from_weight(ctx, grad, K, x / ls, x2 / ls, x, x2, ls)
        return d_x, d_x2, d_ls, d_logvar.reshape(ctx.log_variance_shape)


def _exponent_tangent(a, b, ls, d_x, d_x2, d_ls, like):
    """The tangent of ``E = -|a_i - b_j|^2 / 2`` (``a = x / ls``, ``b = x2 / ls``, either
    shifted by one constant): ``da b^T + a db^T - (a . da) 1^T - 1 (b . db)^T`` with
    ``da = (dx - a d_ls) / ls`` (likewise ``db``); zeros shaped ``like`` without tangents."""
    d_a = None if d_x is None else d_x / ls
    d_b = None if d_x2 is None else d_x2 / ls
    if d_ls is not None:
        d_a = (0 if d_a is None else d_a) - a * (d_ls / ls)
        d_b = (0 if d_b is None else d_b) - b * (d_ls / ls)
    dE = torch.zeros_like(like)
    if d_a is not None:
        dE = dE + d_a @ b.mT - (a * d_a).sum(-1).unsqueeze(-1)
    if d_b is not None:
        dE = dE + a @ d_b.mT - (b * d_b).sum(-1).unsqueeze(-2)
    return dE


def _vjp_from_weight(ctx, grad, weight, a, b, x, x2, ls):
    """``(d x, d x2, d lengthscale, rowsum)`` of ``sum(grad * K)`` for a kernel of
    ``E = -|a_i - b_j|^2 / 2`` (``a = x / ls``, ``b = x2 / ls``, either shifted by one
    constant) with ``weight = dK/dE``, from the products of ``W = grad * weight`` (see
    :class:`_SquaredExponentialMatrix`; ``None`` for what ``ctx.needs_input_grad`` does
    not ask). ``rowsum = sum(W)``: the squared exponential's log-variance gradient."""
    need_x, need_x2, need_ls = ctx.needs_input_grad[:3]
    dim = a.shape[-1]
    # W^T a is needed for x2's own gradient (or x's, in the symmetric case); otherwise
    # the lengthscale's b-term comes from W b^2 in the same product as d a
    full_b = need_x2 or (ctx.symmetric and need_x)
    ones_b = torch.ones(b.shape[:-1] + (1,), dtype=b.dtype, device=b.device)
    cols = torch.cat([b, ones_b] + ([b * b] if need_ls and not full_b else []), dim=-1)
    if not full_b and compiled_products.can_run(grad, weight):
        W = None  # never formed: one compiled pass over grad and the weight
        Wb = compiled_products.weighted_product(grad, weight, cols)
    else:
        W = grad * weight
        Wb = W @ cols  # [W b, rowsum(W), (W b^2)]
    d_b = b_term = None
    if full_b:
        ones_a = torch.ones(a.shape[:-1] + (1,), dtype=a.dtype, device=a.device)
        WTa = W.mT @ torch.cat([a, ones_a], dim=-1)  # [W^T a, colsum(W)]
        d_b = WTa[..., :dim] - WTa[..., dim:] * b
        b_term = (b * d_b).sum(-2)
    d_a, rowsum, d_ls = _gradients_from_product(a, ls, Wb, b_term, need_ls)
    d_x = d_x2 = None
    if ctx.symmetric:
        if need_x:
            d_x = ((d_a + d_b) / ls).sum_to_size(x.shape)
    else:
        if need_x:
            d_x = (d_a / ls).sum_to_size(x.shape)
        if need_x2:
            d_x2 = (d_b / ls).sum_to_size(x2.shape)
    if need_ls:
        d_ls = d_ls.sum_to_size(ls.shape)
    return d_x, d_x2, d_ls, rowsum


def _gradients_from_product(a, ls, Wb, b_term, need_ls):
    """``(d a, d log_variance, d lengthscale)`` of ``sum(G * K)`` for the squared exponential
    ``K = k(x, x2)`` from the thin product ``Wb = (G * K) @ [b, 1, b^2]`` (``a = x / ls``,
    ``b = x2 / ls``; the ``b^2`` columns only with ``need_ls``): see
    :class:`_SquaredExponentialMatrix`. ``b_term`` (``sum_j b_j d b_j``), when ``x2``'s own
    gradient gave it, replaces the one ``Wb`` gives. ``d lengthscale`` is ``[..., D]`` before
    any sum to the lengthscale's shape (``None`` without ``need_ls``)."""
    dim = a.shape[-1]
    Wb_b, rowsum = Wb[..., :dim], Wb[..., dim:dim + 1]
    d_a = Wb_b - rowsum * a
    d_ls = None
    if need_ls:
        if b_term is None:
            b_term = (a * Wb_b - Wb[..., dim + 1:]).sum(-2)
        d_ls = -((a * d_a).sum(-2) + b_term) / ls
    return d_a, rowsum.sum(), d_ls


class Matern(Stationary):
    """Matérn kernel with smoothness ``nu`` in {1/2, 3/2, 5/2} (ARD lengthscales allowed).

    ``k(r) = variance * f_nu(sqrt(2 nu) r / lengthscale)`` with ``f_1/2(s) = e^-s``,
    ``f_3/2(s) = (1 + s) e^-s``, ``f_5/2(s) = (1 + s + s^2/3) e^-s``.

    Above :data:`_EXACT_DIFFERENCES` input differences (``N M D``) distances come from one
    matrix product of the centred inputs (:func:`_matern_distance`) and the backward is
    hand-written (:class:`_MaternMatrix`); below, from the differences under plain autograd
    (fewer operations for the small matrices of a BO loop). The product's rounding is of
    order ``eps |x - mean|^2 / lengthscale^2`` in ``r^2``: invisible at ``nu = 3/2, 5/2``
    (smooth in ``r^2``), ``~sqrt(eps)`` relative at ``nu = 1/2`` for a pair of duplicate
    points (``k(x, x)``'s own diagonal is exact).

    Examples:
        >>> X = torch.tensor([[0.0], [1.0]], dtype=torch.float64)  # [N, D]
        >>> K = Matern(2.5, lengthscale=1.0)(X)  # [2, 2]
        >>> round(float(K[0, 1].detach()), 4)  # (1 + sqrt 5 + 5/3) exp(-sqrt 5)
        0.524
    """

    def __init__(self, nu: float = 2.5, lengthscale: float | torch.Tensor = 1.0,
                 variance: float = 1.0):
        if isinstance(nu, bool) or not isinstance(nu, (int, float)) or nu not in (0.5, 1.5, 2.5):
            raise ArgumentValueError(f"nu must be 0.5, 1.5 or 2.5, got {nu!r}")
        super().__init__(lengthscale, variance)
        self.nu = nu

    def forward(self, X: torch.Tensor, X2: torch.Tensor | None = None) -> torch.Tensor:
        X2_ = self._check(X, X2)
        if X.dtype == torch.float16:  # the floor's square root, 7.8e-3, would show on r = 0
            return self.forward(X.float(), None if X2 is None else X2.float()).half()
        lengthscale, log_variance = self._matrix_arguments(X.dtype)
        if X.shape[-2] * X2_.shape[-2] * X.shape[-1] > _EXACT_DIFFERENCES:
            return _MaternMatrix.apply(X, X2, lengthscale, log_variance, self.nu)[0]
        # small: exact differences under plain autograd (fewer operations than the
        # hand-written route: see _EXACT_DIFFERENCES)
        d = ((X.unsqueeze(-2) - X2_.unsqueeze(-3)) / lengthscale).square().sum(-1)
        s = (d * (2 * self.nu)).clamp_min(torch.finfo(d.dtype).tiny).sqrt()
        return _matern_polynomial(s, self.nu) * torch.exp(log_variance - s)


#: above this many input differences (``N M D``) the Matérn kernel forms its distances by a
#: matrix product with a hand-written backward, below it from the differences themselves
#: (``benchmarks/bench_gp.py --matern-routes``, forward and backward at D = 6, 2 threads,
#: Intel Xeon, two runs: differences / product 0.79-0.81 at 64 x 20 points, 0.92-0.93 at
#: 64 x 40, 1.05-1.06 at 64 x 64, 2.7-3.2 at 128 x 128)
_EXACT_DIFFERENCES = 2**14


def _matern_polynomial(s: torch.Tensor, nu: float) -> torch.Tensor | float:
    """``f_nu(s) e^s`` (:class:`Matern`): ``1``, ``1 + s``, ``1 + s + s^2/3``; out of
    place."""
    if nu == 0.5:
        return 1.0
    return 1 + s if nu == 1.5 else 1 + s * (1 + s / 3)


def _centred(x: torch.Tensor, x2: torch.Tensor | None,
             lengthscale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)``: ``x`` and ``x2`` (default ``x``) less ``x2``'s mean, over ``lengthscale``.
    A distance from the expansion ``|a|^2 + |b|^2 - 2 a.b`` carries rounding of order
    ``eps (|a|^2 + |b|^2)``: centring keeps that at the inputs' spread, not their offset."""
    ref = x if x2 is None else x2
    shift = ref.detach().mean(-2, keepdim=True)
    a = (x - shift) / lengthscale
    return a, (a if x2 is None else (x2 - shift) / lengthscale)


def _matern_distance(a: torch.Tensor, b: torch.Tensor, nu: float,
                     symmetric: bool) -> torch.Tensor:
    """``s = sqrt(2 nu) |a_i - b_j|``, ``[..., N, M]``, from one matrix product (the
    expansion, as GPyTorch and GPflow form it; ``a``, ``b`` centred by :func:`_centred`), the
    diagonal exactly zero for ``k(x, x)`` (``symmetric``), floored at the dtype's smallest
    normal number: ``sqrt``'s derivative stays finite there and the floor's is zero, so
    duplicate points get a zero gradient, not a NaN (the Matérn 1/2 kernel is not
    differentiable at ``r = 0``). With a graph out of place but for the fresh product;
    without, in place on it (each fresh ``[N, M]`` buffer costs its page faults: at
    N = 2000 a pass in place took ~2 ms, into a fresh buffer ~9 ms, in an ad hoc profile on
    an Intel Xeon; ``bench_gp.py --kernel matern52`` times the whole likelihood)."""
    exponent = _exponent(a, None if symmetric else b)  # -|a_i - b_j|^2 / 2
    graph = torch.is_grad_enabled() and exponent.requires_grad
    s2 = exponent * (-4 * nu) if graph else exponent.mul_(-4 * nu)
    if symmetric:
        s2.diagonal(dim1=-2, dim2=-1).zero_()
    tiny = torch.finfo(s2.dtype).tiny
    return s2.clamp_min(tiny).sqrt() if graph else s2.clamp_min_(tiny).sqrt_()


def _matern_value_and_weight(s: torch.Tensor, nu: float,
                             log_variance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(K, M)`` of the Matérn kernel from ``s = sqrt(2 nu) r`` (:func:`_matern_distance`),
    with ``M = dK/dE`` for ``E = -r^2 / 2``: the weight that takes the place of the squared
    exponential's ``K`` in its backward (:func:`_vjp_from_weight`). With ``f_nu(s)`` as in
    :class:`Matern`, ``M = -2 nu variance f_nu'(s) / s``: ``variance e^-s / s``
    (``nu = 1/2``; zero where ``s`` is at its floor, where the kernel has no derivative),
    ``3 variance e^-s`` (3/2), ``5/3 variance (1 + s) e^-s`` (5/2). Without a graph: in
    place on ``s`` and two fresh buffers (six passes over ``[N, M]`` at ``nu = 5/2``); with
    one (``torch.is_grad_enabled()`` and a tensor needing it), out of place."""
    if torch.is_grad_enabled() and (s.requires_grad or log_variance.requires_grad):
        e = torch.exp(log_variance - s)
        M = {0.5: lambda: torch.where(s <= math.sqrt(torch.finfo(s.dtype).tiny), 0.0, e / s),
             1.5: lambda: 3 * e, 2.5: lambda: (5 / 3) * (1 + s) * e}[nu]()
        return _matern_polynomial(s, nu) * e, M
    e = torch.sub(log_variance, s).exp_()
    if nu == 0.5:
        at_floor = s <= math.sqrt(torch.finfo(s.dtype).tiny)
        return e, s.reciprocal_().mul_(e).masked_fill_(at_floor, 0.0)
    if nu == 1.5:
        M = e * 3
        return s.add_(1).mul_(e), M
    M = torch.addcmul(e, s, e)  # (1 + s) e
    if not _plain(e):  # vmap has no rule for out=
        return M + s * s * e / 3, M * (5 / 3)
    K = torch.addcmul(M, s.mul_(s), e, value=1 / 3, out=e)  # (1 + s + s^2/3) e, in e
    return K, M.mul_(5 / 3)


class _MaternMatrix(torch.autograd.Function):
    """``(K, M)``: the Matérn matrix ``variance f_nu(sqrt(2 nu) |a_i - b_j|)`` for inputs
    ``x: [..., N, D]``, ``x2: [..., M, D]`` (``None``: ``x``), ``lengthscale`` (``()`` or
    ``[D]``), ``log_variance``, ``nu`` in {1/2, 3/2, 5/2}, and its weight ``M = dK/dE``
    (:func:`_matern_value_and_weight`; not differentiable, for the backward), with a
    hand-written backward: the squared exponential's products with ``W = G * M``
    (:func:`_vjp_from_weight`) and ``d log_variance = sum(G * K)``.

    Forward: :func:`_matern_distance`'s product and six elementwise passes, no graph.
    The backward reads ``M`` as the forward left it when nothing differentiates the
    backward itself (no ``create_graph``, no ``torch.func`` transform); otherwise it
    recomputes ``M`` from the inputs with differentiable operations, so second derivatives,
    forward mode and ``vmap`` hold as for the squared exponential.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, x2, lengthscale, log_variance, nu):
        a, b = _centred(x, x2, lengthscale)
        return _matern_value_and_weight(_matern_distance(a, b, nu, x2 is None), nu,
                                        log_variance)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, x2, lengthscale, log_variance, nu = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)
        ctx.symmetric, ctx.nu = x2 is None, nu
        ctx.log_variance_shape = log_variance.shape
        saved = (x, x2 if x2 is not None else x, lengthscale, log_variance, *output)
        ctx.save_for_backward(*saved)
        ctx.save_for_forward(*saved)

    @staticmethod
    def _weight(ctx, x, x2, ls, log_variance, M, plain):
        """``(a, b, M)``: the centred scaled inputs and the weight, recomputed with a graph
        unless ``plain``."""
        a, b = _centred(x, None if ctx.symmetric else x2, ls)
        if not plain:
            s = _matern_distance(a, b, ctx.nu, ctx.symmetric)
            M = _matern_value_and_weight(s, ctx.nu, log_variance)[1]
        return a, b, M

    @staticmethod
    def jvp(ctx, d_x, d_x2, d_ls, d_logvar, _):
        """Forward mode: ``dK = M * dE + K d log_variance`` (:func:`_exponent_tangent`)."""
        x, x2, ls, log_variance, K, M = ctx.saved_tensors
        a, b, M = _MaternMatrix._weight(ctx, x, x2, ls, log_variance, M, _plain(K, M))
        dK = M * _exponent_tangent(a, b, ls, d_x, d_x if ctx.symmetric else d_x2, d_ls, K)
        if d_logvar is not None:
            dK = dK + K * d_logvar
        return dK, None

    @staticmethod
    def backward(ctx, grad, _):
        x, x2, ls, log_variance, K, M = ctx.saved_tensors
        if grad is None:
            return None, None, None, None, None
        plain = not torch.is_grad_enabled() and _plain(grad, K, M)
        a, b, M = _MaternMatrix._weight(ctx, x, x2, ls, log_variance, M, plain)
        d_x, d_x2, d_ls, _ = _vjp_from_weight(ctx, grad, M, a, b, x, x2, ls)
        d_logvar = None
        if ctx.needs_input_grad[3]:
            d_logvar = (grad * K).sum().reshape(ctx.log_variance_shape)
        return d_x, d_x2, d_ls, d_logvar, None


def _plain(*tensors: torch.Tensor) -> bool:
    """Plain tensors with their own memory (not ``torch.func`` wrappers)."""
    return all(compiled_products._has_storage(t) for t in tensors)


class RationalQuadratic(Stationary):
    """``k = variance * (1 + r^2 / (2 alpha lengthscale^2))^-alpha`` (a scale mixture of
    squared exponentials; ``alpha -> inf`` recovers it).

    Examples:
        >>> K = RationalQuadratic(alpha=2.0)(torch.tensor([[0.0], [1.0]], dtype=torch.float64))
        >>> round(float(K[0, 1].detach()), 4)  # (1 + 1/4)^-2
        0.64
    """

    def __init__(self, alpha: float = 1.0, lengthscale: float | torch.Tensor = 1.0,
                 variance: float = 1.0):
        super().__init__(lengthscale, variance)
        self.raw_alpha = nn.Parameter(inverse_positive(as_scalar(alpha, "alpha")))

    @property
    def alpha(self) -> torch.Tensor:
        return positive(self.raw_alpha)

    def forward(self, X: torch.Tensor, X2: torch.Tensor | None = None) -> torch.Tensor:
        self._check(X, X2)
        return _RationalQuadraticMatrix.apply(X, X2, *self._matrix_arguments(X.dtype),
                                              self.alpha.to(X.dtype))[0]


class _RationalQuadraticMatrix(torch.autograd.Function):
    """``(K, log_base)``: the rational quadratic matrix ``exp(log_variance - alpha log_base)``
    with ``log_base = log(1 - E / alpha)``, ``E = -|a_i - b_j|^2 / 2`` (``a = x / lengthscale``,
    ``b = x2 / lengthscale``; ``x2=None``: ``x``), and ``log_base`` itself (not
    differentiable, for the backward), with a hand-written backward.

    Forward: the squared exponential's one product for ``E`` and six elementwise passes,
    three in place. Backward: the squared exponential's products (:func:`_vjp_from_weight`)
    with the weight ``M = dK/dE = K / base``, ``d log_variance = sum(G * K)`` and, from
    ``dK/d alpha = K (1 - 1/base - log_base) = K - M - K log_base``,
    ``d alpha = sum(G * K) - sum(G * M) - sum(G * K * log_base)``. Forward + backward at
    N = 2000, D = 8 took 0.40-0.41x the time of autograd through the earlier three-term
    expansion and 0.36-0.58x GPyTorch's (``benchmarks/bench_gp.py --kernel-matrices``,
    AMD EPYC). As for the Matérn kernel, the backward
    recomputes its intermediates with differentiable operations when it is itself
    differentiated (``create_graph``, ``torch.func``), and forward mode is written out, so
    second derivatives, ``jvp`` and ``vmap`` hold.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x, x2, lengthscale, log_variance, alpha):
        E = _exponent(x / lengthscale, None if x2 is None else x2 / lengthscale)
        log_base = E.clamp_max_(0).div_(-alpha).log1p_()
        return torch.exp(log_variance - alpha * log_base), log_base

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, x2, lengthscale, log_variance, alpha = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)
        ctx.symmetric = x2 is None
        ctx.shapes = (log_variance.shape, alpha.shape)
        saved = (x, x2 if x2 is not None else x, lengthscale, log_variance, alpha, *output)
        ctx.save_for_backward(*saved)
        ctx.save_for_forward(*saved)

    @staticmethod
    def _parts(ctx, x, x2, ls, log_variance, alpha, K, log_base, plain):
        """``(a, b, K, log_base, M)``, recomputed with a graph unless ``plain``."""
        a, b = x / ls, (x if ctx.symmetric else x2) / ls
        if not plain:
            E = _exponent(a, None if ctx.symmetric else b).clamp_max(0)
            log_base = torch.log1p(-E / alpha)
            K = torch.exp(log_variance - alpha * log_base)
        M = torch.exp(-log_base).mul_(K) if plain else torch.exp(-log_base) * K
        return a, b, K, log_base, M

    @staticmethod
    def jvp(ctx, d_x, d_x2, d_ls, d_logvar, d_alpha):
        """Forward mode: ``dK = M dE + K d log_variance + (K - M - K log_base) d alpha``
        (:func:`_exponent_tangent`)."""
        x, x2, ls, log_variance, alpha, K, log_base = ctx.saved_tensors
        a, b, K, log_base, M = _RationalQuadraticMatrix._parts(
            ctx, x, x2, ls, log_variance, alpha, K, log_base, _plain(K, log_base))
        dK = M * _exponent_tangent(a, b, ls, d_x, d_x if ctx.symmetric else d_x2, d_ls, K)
        if d_logvar is not None:
            dK = dK + K * d_logvar
        if d_alpha is not None:
            dK = dK + (K - M - K * log_base) * d_alpha
        return dK, None

    @staticmethod
    def backward(ctx, grad, _):
        x, x2, ls, log_variance, alpha, K, log_base = ctx.saved_tensors
        if grad is None:
            return None, None, None, None, None
        plain = not torch.is_grad_enabled() and _plain(grad, K, log_base)
        a, b, K, log_base, M = _RationalQuadraticMatrix._parts(
            ctx, x, x2, ls, log_variance, alpha, K, log_base, plain)
        d_x, d_x2, d_ls, _ = _vjp_from_weight(ctx, grad, M, a, b, x, x2, ls)
        d_logvar = d_alpha = None
        need_logvar, need_alpha = ctx.needs_input_grad[3:5]
        if need_logvar or need_alpha:
            g_K = (grad * K).sum()
            if need_logvar:
                d_logvar = g_K.reshape(ctx.shapes[0])
            if need_alpha:
                d_alpha = g_K - (grad * M).sum() - (grad * K * log_base).sum()
                d_alpha = d_alpha.reshape(ctx.shapes[1])
        return d_x, d_x2, d_ls, d_logvar, d_alpha


class Periodic(Stationary):
    """``k = variance * exp(-2 sum_d sin^2(pi (x_d - x'_d) / period) / lengthscale_d^2)``
    (MacKay's periodic kernel; in 1-D scikit-learn's ``ExpSineSquared``).

    Examples:
        >>> X = torch.tensor([[0.0], [1.0]], dtype=torch.float64)  # one period apart
        >>> K = Periodic(period=1.0)(X)
        >>> round(float(K[0, 1].detach()), 4)
        1.0
    """

    def __init__(self, period: float = 1.0, lengthscale: float | torch.Tensor = 1.0,
                 variance: float = 1.0):
        super().__init__(lengthscale, variance)
        self.raw_period = nn.Parameter(inverse_positive(as_scalar(period, "period")))

    @property
    def period(self) -> torch.Tensor:
        return positive(self.raw_period)

    def forward(self, X: torch.Tensor, X2: torch.Tensor | None = None) -> torch.Tensor:
        X2 = self._check(X, X2)
        # 2 sin^2((t - t') / 2) = |f(t) - f(t')|^2 / 2 with t = 2 pi x / period and the
        # features f(t) = [cos t, sin t]: the periodic kernel is the squared exponential of
        # [cos t / l, sin t / l] with unit lengthscale, so it takes that kernel's matrix
        # (one product, its hand-written backward), never an [N, N2, D] tensor (N = 2000,
        # D = 8, forward + backward: 30-42 ms against 936-1024 ms from the differences and
        # 2420-2595 ms for GPyTorch's; benchmarks/bench_gp.py --kernel-matrices).
        dtype = X.dtype
        angle = 2 * math.pi / self.period.to(dtype)
        inv_ls = (1 / self.lengthscale.to(dtype)).reshape(-1).expand(X.shape[-1])

        def features(Z):
            t = Z * angle
            return torch.cat([torch.cos(t) * inv_ls, torch.sin(t) * inv_ls], dim=-1)

        unit = torch.ones((), dtype=dtype, device=X.device)
        return _SquaredExponentialMatrix.apply(features(X), None if X2 is X else features(X2),
                                               unit, self.variance.to(dtype).log())


class Linear(Kernel):
    """``k = variance * x . x' + offset`` (Bayesian linear regression as a GP).

    Examples:
        >>> Linear(variance=2.0)(torch.tensor([[1.0, 2.0]], dtype=torch.float64)).tolist()
        [[10.0]]
        >>> Linear(2.0, offset=0.5)(torch.tensor([[1.0, 2.0]], dtype=torch.float64)).tolist()
        [[10.5]]
    """

    def __init__(self, variance: float = 1.0, offset: float | None = None):
        super().__init__()
        self.raw_variance = nn.Parameter(inverse_positive(as_scalar(variance, "variance")))
        self.raw_offset = (nn.Parameter(inverse_positive(as_scalar(offset, "offset")))
                           if offset is not None else None)

    @property
    def variance(self) -> torch.Tensor:
        return positive(self.raw_variance)

    def _offset(self, dtype):
        return positive(self.raw_offset).to(dtype) if self.raw_offset is not None else 0.0

    def forward(self, X: torch.Tensor, X2: torch.Tensor | None = None) -> torch.Tensor:
        X2 = self._check(X, X2)
        K = (self.variance.to(X.dtype) * X) @ X2.mT
        return K if self.raw_offset is None else K + self._offset(X.dtype)

    def diag(self, X: torch.Tensor) -> torch.Tensor:
        return self.variance.to(X.dtype) * (X * X).sum(-1) + self._offset(X.dtype)


class Scale(Kernel):
    """``variance * k`` for a kernel ``k`` (an amplitude wrapper, e.g. around a product).

    Examples:
        >>> k = Scale(SquaredExponential() * Periodic(), variance=3.0)
        >>> k.diag(torch.tensor([[0.0], [1.0]], dtype=torch.float64))
        tensor([3., 3.], dtype=torch.float64, grad_fn=<MulBackward0>)
    """

    def __init__(self, kernel: Kernel, variance: float = 1.0):
        super().__init__()
        self.kernel = check_instance(kernel, "kernel", Kernel, "a bayeskit.gp Kernel")
        self.raw_variance = nn.Parameter(inverse_positive(as_scalar(variance, "variance")))

    @property
    def variance(self) -> torch.Tensor:
        return positive(self.raw_variance)

    def forward(self, X, X2=None):
        return self.variance.to(X.dtype) * self.kernel(X, X2)

    def diag(self, X):
        return self.variance.to(X.dtype) * self.kernel.diag(X)


class Sum(Kernel):
    """``k_1 + k_2 + ...``; also written ``k1 + k2``.

    Examples:
        >>> k = SquaredExponential() + Linear()
        >>> X = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
        >>> type(k).__name__, round(float(k(X)[1, 1].detach()), 4)  # 1 + 1 * 1
        ('Sum', 2.0)
    """

    def __init__(self, *kernels: Kernel):
        super().__init__()
        self.kernels = nn.ModuleList(_check_kernels(kernels, type(self).__name__))

    def forward(self, X, X2=None):
        first, *rest = self.kernels  # not sum(), whose 0 + K copies K
        K = first(X, X2)
        for k in rest:
            K = K + k(X, X2)
        return K

    def diag(self, X):
        first, *rest = self.kernels
        d = first.diag(X)
        for k in rest:
            d = d + k.diag(X)
        return d


class Product(Kernel):
    """``k_1 * k_2 * ...``; also written ``k1 * k2``.

    Examples:
        >>> k = SquaredExponential() * Periodic(period=1.0)
        >>> type(k).__name__, len(k.kernels)
        ('Product', 2)
    """

    def __init__(self, *kernels: Kernel):
        super().__init__()
        self.kernels = nn.ModuleList(_check_kernels(kernels, type(self).__name__))

    def forward(self, X, X2=None):
        out = self.kernels[0](X, X2)
        for k in self.kernels[1:]:
            out = out * k(X, X2)
        return out

    def diag(self, X):
        out = self.kernels[0].diag(X)
        for k in self.kernels[1:]:
            out = out * k.diag(X)
        return out


def _add(self: Kernel, other: Kernel) -> Sum:
    if not isinstance(other, Kernel):
        return NotImplemented
    return Sum(*(self.kernels if isinstance(self, Sum) else [self]),
               *(other.kernels if isinstance(other, Sum) else [other]))


def _mul(self: Kernel, other: Kernel) -> Product:
    if not isinstance(other, Kernel):
        return NotImplemented
    return Product(*(self.kernels if isinstance(self, Product) else [self]),
                   *(other.kernels if isinstance(other, Product) else [other]))


Kernel.__add__ = _add
Kernel.__mul__ = _mul


def _kernel_input(X, name: str) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        return as_tensor(X, name)
    check_floating(name, X)
    try:
        finite = bool(torch.isfinite(X).all())
    except RuntimeError:  # under torch.func transforms (vmap): no data-dependent checks
        return X
    if not finite:
        raise NonFiniteError(f"{name} contains NaN or infinite values; clean the inputs first")
    return X


def _check_kernels(kernels: tuple, combination: str) -> tuple:
    """The parts of a Sum/Product: at least one, each a :class:`Kernel`."""
    if not kernels:
        raise ArgumentValueError(f"{combination} needs at least one kernel")
    for i, k in enumerate(kernels):
        check_instance(k, f"{combination}'s kernel {i}", Kernel, "a bayeskit.gp Kernel")
    return kernels

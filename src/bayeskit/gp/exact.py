"""Exact Gaussian-process regression: marginal likelihood, type-II ML, predictions, updates.

``y = f(X) + eps``, ``f ~ GP(m, k)``, ``eps ~ N(0, noise_variance)``. With
``K = k(X, X) + noise I = L L^T`` and ``alpha = L^-1 (y - m)``:

    log p(y) = -alpha^T alpha / 2 - sum log diag(L) - N log(2 pi) / 2
    f* | y ~ N(m* + A^T alpha, k** - A^T A),   A = L^-1 k(X, X*)

Adding observations extends ``L`` with :func:`bayeskit.linalg.cholesky_append` (O(N^2) per
point) instead of refactorising.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from bayeskit.errors import ArgumentTypeError, NonFiniteError, ShapeError
from bayeskit.gp.compiled_products import symmetric_weighted_product
from bayeskit.gp.kernels import (
    Kernel,
    Matern,
    SquaredExponential,
    _centred,
    _gradients_from_product,
    _matern_distance,
    _matern_value_and_weight,
    _SquaredExponentialMatrix,
)
from bayeskit.gp.model import GPRegressionModel
from bayeskit.gp.posterior import GPPosterior
from bayeskit.linalg import (
    cholesky_inverse,
    cholesky_plus_diagonal,
    direct,
    jittered_cholesky,
    lapack,
    lapack_backend,
)
from bayeskit.training.optim import fit_with_restarts
from bayeskit.validation import (
    all_finite,
    as_inputs,
    as_int,
    as_tensor,
    check_same_rows,
    raise_singular_factor,
)

__all__ = ["GPR", "check_data", "check_kernel", "check_mean_function"]


def check_data(X, y, *, dtype: torch.dtype | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Training data as copies: ``X`` ``[N, D]`` (a vector is one feature) and ``y`` ``[N]``
    in ``X``'s dtype (float64 for NumPy/list input, a floating tensor's own otherwise)."""
    X = as_inputs(X, "X", dtype=dtype)
    y = as_tensor(y, "y", dtype=X.dtype, device=X.device, ndim=1)
    check_same_rows("X", X, "y", y)
    return X, y


def check_kernel(kernel, X: torch.Tensor | None = None) -> Kernel:
    """``kernel`` or the default squared exponential; refuses anything but a Kernel and
    NaN hyperparameters, and with inputs ``X`` ``[N, D]`` a kernel that cannot take them
    (e.g. ARD lengthscales for another number of features: evaluated on one row, so the
    error comes at construction, not from inside an optimiser)."""
    if kernel is None:
        return SquaredExponential()
    if not isinstance(kernel, Kernel):
        raise ArgumentTypeError(f"kernel must be a bayeskit.gp.Kernel, got "
                                f"{type(kernel).__name__}")
    for name, p in kernel.named_parameters():
        if not bool(torch.isfinite(p.detach()).all()):
            raise ArgumentTypeError(f"kernel parameter {name} is not finite; build the kernel "
                                    "with finite positive hyperparameters")
    if X is not None and X.shape[0] > 0:
        with torch.no_grad():
            kernel(X[:1])
    return kernel


def check_mean_function(mean_function):
    """``None`` or an ``nn.Module`` mean function."""
    if mean_function is not None and not isinstance(mean_function, nn.Module):
        raise ArgumentTypeError(f"mean_function must be an nn.Module (e.g. "
                                f"bayeskit.gp.LinearMean), got {type(mean_function).__name__}")
    return mean_function


def _factor_with_noise(K: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of ``K + noise I`` for a symmetric ``[N, N]`` ``K``, in one new
    buffer (:func:`bayeskit.linalg.cholesky_plus_diagonal`). Falls back to
    :func:`jittered_cholesky` (with its jitter and clear errors) if that fails."""
    n = K.shape[-1]
    try:
        A, info = cholesky_plus_diagonal(K, noise.detach().expand(n))
        if int(info) == 0:
            return A
    except NonFiniteError:
        pass  # the fallback below names the problem
    C = K.detach() + noise.detach() * torch.eye(n, dtype=K.dtype, device=K.device)
    if not all_finite(C):
        raise NonFiniteError("K + noise I has NaN or infinite entries: the kernel's "
                             "hyperparameters or the noise variance are not finite (an "
                             "optimiser that diverged?); set them to finite positive values")
    return jittered_cholesky(C)[0]


class _GaussianNLL(torch.autograd.Function):
    """``r^T (K + noise I)^-1 r / 2 + log det (K + noise I) / 2`` with the closed-form gradient.

    ``d/dK = (C^-1 - alpha alpha^T) / 2``, ``d/d noise = trace(d/dK)`` and ``d/dr = alpha``,
    with ``C = K + noise I`` and ``alpha = C^-1 r``: one Cholesky factorisation forward and
    one inverse (:func:`bayeskit.linalg.cholesky_inverse`) backward, cheaper than
    differentiating through the factorisation and the triangular solves. Once
    differentiable (no Hessians of the marginal likelihood).
    """

    @staticmethod
    def forward(ctx, K, noise, r):
        L = _factor_with_noise(K, noise)
        nll, alpha = _nll_from_factor(L, r)
        ctx.save_for_backward(L, alpha)
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        L, alpha = ctx.saved_tensors
        # row-major, the kernel's layout (the kernel's elementwise product with a
        # column-major one takes 4.2-4.7x as long at N = 2000: bench_gp.py --kernel-backward)
        dK = cholesky_inverse(L, name=_FACTOR_NAME)
        g = 0.5 * float(grad)
        dK.addr_(alpha, alpha, beta=g, alpha=-g)  # one pass over [N, N], not two
        return dK, dK.diagonal().sum(), grad * alpha


_FACTOR_NAME = "the Cholesky factor of K + noise I"


def _nll_from_factor(L: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(nll, alpha)``: ``r^T C^-1 r / 2 + log det C / 2`` and ``alpha = C^-1 r`` for
    ``C = L L^T`` (only ``L``'s lower triangle is read)."""
    z = torch.linalg.solve_triangular(L, r.unsqueeze(-1), upper=False)
    alpha = torch.linalg.solve_triangular(L.mT, z, upper=True).squeeze(-1)
    return 0.5 * (z * z).sum() + L.diagonal().log().sum(), alpha


class _StationaryNLL(torch.autograd.Function):
    """:class:`_GaussianNLL` of ``K = k(x, x)`` for the squared exponential (``nu=None``) or
    the Matérn kernel of smoothness ``nu``, fused with the kernel's matrix: inputs
    ``x [N, D]`` (no gradient), ``lengthscale`` (``()`` or ``[D]``), ``log_variance ()``,
    ``noise ()``, ``r [N]``; the same value and gradient.

    Fewer passes over ``[N, N]`` than the kernel's backward after :class:`_GaussianNLL`: the
    factor is made in place in one copy of ``K + noise I`` (LAPACK's ``potrf``, the other
    triangle left unzeroed and never read), the inverse in place of the factor (``potri``
    on torch's LAPACK or on SciPy's OpenBLAS, as :func:`~bayeskit.linalg.lapack_backend`
    chooses when the backward runs; one triangle, no copy), and the kernel's backward
    product ``(G * M) @ [a, 1, a^2]`` with ``G = (C^-1 - alpha alpha^T) / 2`` reads one
    triangle of ``C^-1`` and of ``M``
    (:func:`~bayeskit.gp.compiled_products.symmetric_weighted_product`); ``G`` is never
    formed. ``M = dK/dE`` for ``E = -|a_i - a_j|^2 / 2``: ``K`` itself for the squared
    exponential, :func:`~bayeskit.gp.kernels._matern_value_and_weight`'s for the Matérn
    kernel (whose ``K`` then needs no copy: the factor overwrites it). The lengthscales'
    gradients from that product are the squared exponential's
    (:func:`~bayeskit.gp.kernels._gradients_from_product`); the log variance's,
    ``sum(G * K)``, is its row sums for the squared exponential and otherwise, from
    ``C^-1 K = I - noise C^-1`` and ``alpha^T K alpha = alpha^T r - noise |alpha|^2``,
    ``g (N - alpha^T r) - noise d_noise`` with ``d_noise = g (tr C^-1 - |alpha|^2)``.
    Where ``potrf`` fails (not positive definite to working precision) or the blocked
    inverse is asked for (:func:`~bayeskit.linalg.lapack_backend`),
    :func:`_factor_with_noise`'s route (jitter, clear errors),
    :func:`~bayeskit.linalg.cholesky_inverse` and ``sum(G * K)`` in full. A second backward
    (``retain_graph``) reuses the inverse.
    """

    @staticmethod
    def forward(ctx, x, lengthscale, log_variance, noise, r, nu):
        if nu is None:
            a = x / lengthscale
            K = M = _SquaredExponentialMatrix.forward(x, None, lengthscale, log_variance)
            buf = K.clone()
        else:
            a = _centred(x, None, lengthscale)[0]
            buf, M = _matern_value_and_weight(_matern_distance(a, a, nu, True), nu,
                                              log_variance)
        buf.diagonal().add_(noise)
        info = None  # the blocked inverse, where asked for (BAYESKIT_LAPACK), needs a factor
        if lapack_backend(buf) != "blocked":
            info = direct.cholesky_in_place(buf, zero_triangle=False)
        K_kept = None
        if info is not None and int(info) == 0:
            L, ctx.inverse = buf.mT, "potri in place"
            ctx.pivots = L.diagonal().clone()  # potri overwrites the factor, errors need it
        else:
            if nu is not None:  # buf is spoilt: K again, kept for sum(G * K)
                K = K_kept = _matern_value_and_weight(_matern_distance(a, a, nu, True), nu,
                                                      log_variance)[0]
            L, ctx.inverse = _factor_with_noise(K, noise), "cholesky_inverse"
        nll, alpha = _nll_from_factor(L, r)
        ctx.nu = nu
        ctx.save_for_backward(a, lengthscale, M, L, alpha, noise, r, K_kept)
        return nll

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        a, lengthscale, M, L, alpha, noise, r, K_kept = ctx.saved_tensors
        if ctx.inverse == "cholesky_inverse":
            S, pivots = cholesky_inverse(L, name=_FACTOR_NAME), L.diagonal()
        else:
            S, pivots = L.mT, ctx.pivots  # the row-major buffer: C^-1's upper triangle
            if ctx.inverse == "potri in place":  # on torch's LAPACK or on OpenBLAS
                info = lapack.potri_in_place(S)
                ctx.inverse = "inverted"  # a second backward reuses it
                if info is None or int(info) != 0:  # a zero pivot
                    raise_singular_factor("the inverse", _FACTOR_NAME, pivots)
        g = 0.5 * float(grad)
        cols = torch.cat([a, torch.ones_like(a[:, :1]), a * a], dim=-1)
        Wb = symmetric_weighted_product(S, M, alpha, g, cols)
        _, rowsum, d_lengthscale = _gradients_from_product(a, lengthscale, Wb, None, True)
        d_noise = g * (S.diagonal().sum() - alpha @ alpha)
        if ctx.nu is None:
            d_log_variance = rowsum
        elif K_kept is not None:
            d_log_variance = g * (torch.vdot(S.flatten(), K_kept.flatten())
                                  - alpha @ (K_kept @ alpha))
        else:
            d_log_variance = g * (a.shape[0] - alpha @ r) - noise * d_noise
        if not bool(torch.isfinite(Wb).all() and torch.isfinite(d_noise)
                    and torch.isfinite(d_log_variance)):
            raise_singular_factor("the inverse", _FACTOR_NAME, pivots)
        return (None, d_lengthscale.sum_to_size(lengthscale.shape),
                d_log_variance.reshape(()), d_noise, grad * alpha, None)


def _fuses(kernel: Kernel, X: torch.Tensor, noise: torch.Tensor) -> bool:
    """Whether :class:`_StationaryNLL` computes this model's likelihood: the plain squared
    exponential or Matérn kernel (not a subclass, which may change it), float32/float64 data
    on the CPU needing no gradient, and LAPACK's ``potrf``/``potri`` reachable directly."""
    return (type(kernel) in (SquaredExponential, Matern) and X.device.type == "cpu"
            and X.dtype in (torch.float32, torch.float64) and X.dim() == 2
            and not X.requires_grad and type(X) is type(noise) is torch.Tensor
            and direct.available("potrf", X.dtype) and direct.available("potri", X.dtype))


class GPR(GPRegressionModel):
    """Exact GP regression with a constant mean (learnable) and Gaussian noise.

    The model follows its data's dtype and device (float64 for NumPy/list input); ``X`` and
    ``y`` are copied, so later changes to the caller's arrays do not affect the model.
    A kernel is used as given (and trained in place by :meth:`fit`).

    Args:
        X: ``[N, D]`` inputs; y: ``[N]`` targets.
        kernel: a :class:`bayeskit.gp.Kernel`, used as given; default (``None``) an ARD
            squared exponential initialised from the data's scale: lengthscales the
            inputs' standard deviations, variance the targets' variance, and optimised
            in those units (so ``X * 1e6`` or ``y * 1e-6`` fit alike).
        noise_variance: initial noise variance (learnable, positive); default 0.1 of the
            targets' variance (and measured in it, so its floor is 1e-6 of it).
        mean: initial constant mean, default the targets' mean; ``learn_mean=False``
            keeps it fixed (default 0 then: the zero-mean GP).
        mean_function: any mean module (e.g. :class:`bayeskit.gp.LinearMean`) instead of
            the constant.

    Examples:
        >>> X = torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
        >>> gp = GPR(X, torch.sin(6 * X[:, 0]), noise_variance=0.01)
        >>> mean, var = gp.predict_f(X[:3])
        >>> mean.shape, var.shape
        (torch.Size([3]), torch.Size([3]))
    """

    def __init__(self, X, y, kernel: Kernel | None = None, noise_variance: float | None = None,
                 mean: float | None = None, learn_mean: bool = True,
                 mean_function: nn.Module | None = None):
        super().__init__()
        self._init_regression(X, y, kernel, noise_variance, mean, learn_mean, mean_function)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def _factor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L, alpha)`` of the training data (cached when gradients are off)."""
        if self._cache is not None and not torch.is_grad_enabled():
            return self._cache
        K = self.kernel(self.X).clone()
        K.diagonal().add_(self.noise_variance)
        L, _ = jittered_cholesky(K)
        resid = (self.y - self.prior_mean(self.X)).unsqueeze(-1)
        alpha = torch.linalg.solve_triangular(L, resid, upper=False).squeeze(-1)
        if not torch.is_grad_enabled():
            self._cache = (L, alpha)
        return L, alpha

    def log_marginal_likelihood(self) -> torch.Tensor:
        """``log p(y | X, hyperparameters)`` (differentiable, closed-form gradient)."""
        self._cache = None
        n = self.X.shape[0]
        noise, r = self._noise_and_residual()
        if _fuses(self.kernel, self.X, noise):
            self.kernel._check(self.X, None)  # the kernel's input checks: its forward is skipped
            nu = self.kernel.nu if type(self.kernel) is Matern else None
            nll = _StationaryNLL.apply(self.X, *self.kernel._matrix_arguments(self.X.dtype),
                                       noise, r, nu)
        else:
            nll = _GaussianNLL.apply(self.kernel(self.X), noise, r)
        return -nll - 0.5 * n * math.log(2 * math.pi)

    def fit(self, max_iter: int = 200, restarts: int = 0, seed: int = 0,
            log_prior: Callable[[GPR], torch.Tensor] | None = None,
            starts: list[dict] | None = None, escape_all_noise: bool = True) -> GPR:
        """Type-II maximum likelihood with L-BFGS; ``restarts`` extra random starts
        (hyperparameters perturbed on the unconstrained scale), keeping the best. With
        ``log_prior`` (``model -> scalar``) the maximum a posteriori hyperparameters
        instead. ``starts``: parameter values to start from (see
        :func:`bayeskit.training.optim.fit_with_restarts`), default the current ones.
        ``optimizer_iterations``: the L-BFGS iterations of the best start. A fit that
        explains (almost) everything as noise is repeated from a small noise and short
        lengthscales, the better optimum kept, and a ``RuntimeWarning`` says so if it
        stays there (``escape_all_noise=False`` skips this)."""

        def objective():
            lml = self.log_marginal_likelihood()
            return -(lml + log_prior(self)) if log_prior is not None else -lml

        info: dict = {}
        fit_with_restarts(self, objective, max_iter=max_iter, restarts=restarts,
                          seed=as_int(seed, "seed"), starts=starts, info=info)
        if escape_all_noise:
            self._cache = None
            self._escape_all_noise(objective, max_iter=max_iter, seed=seed, info=info)
        self.optimizer_iterations = info.get("n_iter", 0)
        self._cache = None
        return self

    def posterior(self) -> GPPosterior:
        """The posterior process (the model contract): exact form, ``L L^T = K + noise I``,
        ``f = L^-1 (y - m)``, no ``q_sqrt``."""
        with torch.no_grad():
            L, alpha = self._factor()
            return GPPosterior.from_model_parts(self.kernel, self._mean_module(), self.X, L, alpha,
                                                noise=self.noise_variance)

    def condition_on_observations(self, X_new, y_new) -> GPR:
        """A new model with extra observations, sharing the hyperparameters (the same
        parameter objects); its Cholesky factor is the current one extended by
        ``cholesky_append`` (O(N^2 K)), not redone."""
        X_new, y_new = check_data(X_new, y_new, dtype=self.dtype)
        if X_new.shape[-1] != self.X.shape[-1]:
            raise ShapeError(f"X_new must have {self.X.shape[-1]} feature(s), got "
                             f"{X_new.shape[-1]}")
        post = self.posterior().condition_on_observations(X_new, y_new)
        model = GPR(torch.cat([self.X, X_new]), torch.cat([self.y, y_new]), self.kernel,
                    mean_function=self.mean_function)
        model.raw_noise, model.noise_unit = self.raw_noise, self.noise_unit
        model.raw_mean, model.mean_offset, model.mean_unit = (self.raw_mean, self.mean_offset,
                                                              self.mean_unit)
        model._cache = (post.L, post.f)
        return model

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

from bayeskit.errors import NonFiniteError, ShapeError
from bayeskit.gp.fit import minimise_lbfgs
from bayeskit.gp.kernels import Kernel, SquaredExponential, inverse_positive, positive
from bayeskit.linalg import cholesky_append, jittered_cholesky

__all__ = ["GPR"]

F64 = torch.float64


def _check_xy(X, y) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.as_tensor(X, dtype=F64)
    y = torch.as_tensor(y, dtype=F64)
    X = X[:, None] if X.dim() == 1 else X
    if X.dim() != 2 or X.shape[0] == 0:
        raise ShapeError(f"X must be a non-empty [N, D] matrix, got {tuple(X.shape)}")
    if y.shape != (X.shape[0],):
        raise ShapeError(f"y must have shape [{X.shape[0]}] to match X, got {tuple(y.shape)}")
    if not (bool(torch.isfinite(X).all()) and bool(torch.isfinite(y).all())):
        raise NonFiniteError("X or y contains NaN or infinite values")
    return X, y


def check_new_inputs(Xnew, dim: int) -> torch.Tensor:
    """Prediction inputs as a float64 ``[M, dim]`` matrix (a vector is one feature)."""
    Xnew = torch.as_tensor(Xnew, dtype=F64)
    Xnew = Xnew[:, None] if Xnew.dim() == 1 else Xnew
    if Xnew.dim() != 2 or Xnew.shape[-1] != dim:
        raise ShapeError(f"Xnew must be [M, {dim}] (the model has {dim} features), got "
                         f"{tuple(Xnew.shape)}")
    if not bool(torch.isfinite(Xnew).all()):
        raise NonFiniteError("Xnew contains NaN or infinite values")
    return Xnew


def _factor_with_noise(K: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of ``K + noise I`` for a symmetric ``[N, N]`` ``K``, in one new
    buffer: ``K`` is copied, the noise added to its diagonal and LAPACK factorises the copy in
    place (column-major view of the symmetric copy, so no transposed copy). Falls back to
    :func:`jittered_cholesky` (with its jitter and clear errors) if that fails."""
    buf = K.detach().clone(memory_format=torch.contiguous_format)
    A = buf.mT  # column-major; equal to K + noise I because K is symmetric
    A.diagonal().add_(noise)
    info = torch.empty((), dtype=torch.int32, device=K.device)
    torch.linalg.cholesky_ex(A, out=(A, info))
    if int(info) == 0 and bool(torch.isfinite(A.diagonal()).all()):
        return A
    n = K.shape[-1]
    C = K.detach() + noise.detach() * torch.eye(n, dtype=K.dtype, device=K.device)
    return jittered_cholesky(C)[0]


class _GaussianNLL(torch.autograd.Function):
    """``r^T (K + noise I)^-1 r / 2 + log det (K + noise I) / 2`` with the closed-form gradient.

    ``d/dK = (C^-1 - alpha alpha^T) / 2``, ``d/d noise = trace(d/dK)`` and ``d/dr = alpha``,
    with ``C = K + noise I`` and ``alpha = C^-1 r``: one Cholesky factorisation forward and
    one ``cholesky_inverse`` backward, cheaper than differentiating through the
    factorisation and the triangular solves. Once differentiable (no Hessians of the
    marginal likelihood).
    """

    @staticmethod
    def forward(ctx, K, noise, r):
        L = _factor_with_noise(K, noise)
        z = torch.linalg.solve_triangular(L, r.unsqueeze(-1), upper=False)
        alpha = torch.linalg.solve_triangular(L.mT, z, upper=True).squeeze(-1)
        ctx.save_for_backward(L, alpha)
        return 0.5 * (z * z).sum() + L.diagonal().log().sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        L, alpha = ctx.saved_tensors
        dK = torch.cholesky_inverse(L)
        dK.addr_(alpha, alpha, alpha=-1).mul_(0.5 * grad)
        return dK, dK.diagonal().sum(), grad * alpha


class GPR(nn.Module):
    """Exact GP regression with a constant mean (learnable) and Gaussian noise.

    Args:
        X: ``[N, D]`` inputs; y: ``[N]`` targets.
        kernel: a :class:`bayeskit.gp.Kernel` (default squared exponential).
        noise_variance: initial noise variance (learnable, positive).
        mean: initial constant mean; ``learn_mean=False`` keeps it fixed.
        mean_function: any mean module (e.g. :class:`bayeskit.gp.LinearMean`) instead of
            the constant.

    Example:
        >>> X = torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
        >>> gp = GPR(X, torch.sin(6 * X[:, 0]), noise_variance=0.01)
        >>> mean, var = gp.predict_f(X[:3])
        >>> mean.shape, var.shape
        (torch.Size([3]), torch.Size([3]))
    """

    def __init__(self, X, y, kernel: Kernel | None = None, noise_variance: float = 0.1,
                 mean: float = 0.0, learn_mean: bool = True,
                 mean_function: nn.Module | None = None):
        super().__init__()
        X, y = _check_xy(X, y)
        self.register_buffer("X", X)
        self.register_buffer("y", y)
        self.kernel = kernel if kernel is not None else SquaredExponential()
        self.kernel.to(F64)
        self.raw_noise = nn.Parameter(inverse_positive(noise_variance))
        self.mean_constant = nn.Parameter(torch.tensor(float(mean), dtype=F64),
                                          requires_grad=learn_mean and mean_function is None)
        self.mean_function = mean_function.to(F64) if mean_function is not None else None
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def noise_variance(self) -> torch.Tensor:
        return positive(self.raw_noise)

    def prior_mean(self, X: torch.Tensor) -> torch.Tensor:
        """``m(X)``: the mean function if one was given, else the constant ``mean``."""
        if self.mean_function is not None:
            return self.mean_function(X)
        return self.mean_constant.expand(X.shape[:-1])

    def _factor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L, alpha)`` of the training data (cached when gradients are off)."""
        if self._cache is not None and not torch.is_grad_enabled():
            return self._cache
        n = self.X.shape[0]
        K = self.kernel(self.X) + self.noise_variance * torch.eye(n, dtype=F64)
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
        nll = _GaussianNLL.apply(self.kernel(self.X), self.noise_variance,
                                 self.y - self.prior_mean(self.X))
        return -nll - 0.5 * n * math.log(2 * math.pi)

    def fit(self, max_iter: int = 200, restarts: int = 0, seed: int = 0,
            log_prior: Callable[[GPR], torch.Tensor] | None = None) -> GPR:
        """Type-II maximum likelihood with L-BFGS; ``restarts`` extra random starts
        (hyperparameters perturbed on the log scale), keeping the best. With ``log_prior``
        (``model -> scalar``) the maximum a posteriori hyperparameters instead."""
        g = torch.Generator().manual_seed(seed)
        best_state, best = None, -math.inf
        start = {k: v.detach().clone() for k, v in self.state_dict().items()}
        for attempt in range(restarts + 1):
            self.load_state_dict(start)
            if attempt:
                with torch.no_grad():
                    for name, p in self.named_parameters():
                        if name.startswith(("raw_", "kernel.raw_")) and p.requires_grad:
                            p.add_(torch.randn(p.shape, dtype=p.dtype, generator=g))
            try:
                def objective():
                    lml = self.log_marginal_likelihood()
                    return -(lml + log_prior(self)) if log_prior is not None else -lml

                value = -minimise_lbfgs(self.parameters(), objective, max_iter)
            except ValueError:  # a start that breaks the Cholesky is skipped
                continue
            if value > best:
                best = value
                best_state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        if best_state is None:
            raise ValueError("every optimisation start failed; rescale the data or the "
                             "initial hyperparameters")
        self.load_state_dict(best_state)
        self._cache = None
        return self

    def predict_f(self, Xnew, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean ``[M]`` and variance ``[M]`` (or covariance ``[M, M]``) of ``f``."""
        Xnew = check_new_inputs(Xnew, self.X.shape[-1])
        with torch.no_grad():
            L, alpha = self._factor()
            A = torch.linalg.solve_triangular(L, self.kernel(self.X, Xnew), upper=False)
            mean = self.prior_mean(Xnew) + A.mT @ alpha
            if full_cov:
                return mean, self.kernel(Xnew) - A.mT @ A
            return mean, (self.kernel.diag(Xnew) - (A * A).sum(0)).clamp_min(0)

    def predict_y(self, Xnew, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive distribution of new observations (adds the noise variance)."""
        mean, cov = self.predict_f(Xnew, full_cov)
        noise = self.noise_variance.detach()
        if full_cov:
            return mean, cov + noise * torch.eye(cov.shape[-1], dtype=F64)
        return mean, cov + noise

    def sample_f(self, Xnew, num_samples: int, *, generator: torch.Generator | None = None,
                 jitter: float = 1e-10) -> torch.Tensor:
        """Joint posterior draws of ``f`` at ``Xnew``: ``[num_samples, M]``."""
        mean, cov = self.predict_f(Xnew, full_cov=True)
        Lc, _ = jittered_cholesky(cov + jitter * torch.eye(cov.shape[-1], dtype=F64))
        eps = torch.randn(num_samples, mean.shape[0], dtype=F64, generator=generator)
        return mean + eps @ Lc.mT

    def condition_on_observations(self, X_new, y_new) -> GPR:
        """A new model with extra observations, sharing the hyperparameters; its Cholesky
        factor is the current one extended by ``cholesky_append`` (O(N^2 K)), not redone."""
        X_new, y_new = _check_xy(X_new, y_new)
        with torch.no_grad():
            L, _ = self._factor()
            cross = self.kernel(self.X, X_new)
            corner = self.kernel(X_new) + self.noise_variance * torch.eye(len(X_new), dtype=F64)
            L_new = cholesky_append(L, cross, corner)
            model = GPR.__new__(GPR)
            nn.Module.__init__(model)
            model.register_buffer("X", torch.cat([self.X, X_new]))
            model.register_buffer("y", torch.cat([self.y, y_new]))
            model.kernel = self.kernel
            model.raw_noise = self.raw_noise
            model.mean_constant = self.mean_constant
            model.mean_function = self.mean_function
            resid = (model.y - model.prior_mean(model.X)).unsqueeze(-1)
            alpha = torch.linalg.solve_triangular(L_new, resid, upper=False).squeeze(-1)
            model._cache = (L_new, alpha)
        return model

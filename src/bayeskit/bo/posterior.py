"""A fitted GP's posterior as acquisition functions need it: differentiable in the inputs.

With ``K + noise I = L L^T`` of the ``N`` observations, ``w = (K + noise I)^-1 (y - m)`` and
``A(X) = L^-1 k(X_train, X)``:

    mu_n(x)      = m + k(x, X_train) w
    k_n(x, x')   = k(x, x') - A(x)^T A(x')

Observing ``q`` new points ``Xc`` (noise included) appends a block to ``L`` (see
:func:`bayeskit.linalg.cholesky_append`); the new rows give the fantasised mean in closed
form, so no refit is needed per fantasy (Frazier et al. 2009, eq. 7 for q = 1):

    mu_{n+q}(x) = mu_n(x) + sigma_tilde(x, Xc) Z,   Z ~ N(0, I_q),
    sigma_tilde(x, Xc) = k_n(x, Xc) C^-T,           C C^T = k_n(Xc, Xc) + noise I.
"""

from __future__ import annotations

import copy

import torch

from bayeskit.errors import NonFiniteError, ShapeError
from bayeskit.gp.exact import GPR
from bayeskit.linalg import jittered_cholesky

__all__ = ["GPPosterior"]

F64 = torch.float64


class GPPosterior:
    """Frozen view of a fitted :class:`~bayeskit.gp.GPR` (hyperparameters detached).

    Every method takes inputs with any leading batch shape, ``[..., Q, D]``, and is
    differentiable with respect to them.

    Example:
        >>> X = torch.linspace(-1, 2, 8, dtype=torch.float64)[:, None]
        >>> post = GPPosterior(GPR(X, torch.sin(3 * X[:, 0]), noise_variance=1e-3))
        >>> post.mean(torch.zeros(5, 3, 1, dtype=torch.float64)).shape
        torch.Size([5, 3])
    """

    def __init__(self, model: GPR):
        if not isinstance(model, GPR):
            raise TypeError(f"expected a bayeskit.gp.GPR, got {type(model).__name__}")
        with torch.no_grad():
            L, alpha = model._factor()
            self.L = L.detach()
            self.w = torch.linalg.solve_triangular(L.mT, alpha[:, None], upper=True)[:, 0]
            self.noise = model.noise_variance.detach()
            self.mean_function = copy.deepcopy(model.mean_function).requires_grad_(False) \
                if model.mean_function is not None else None
            self.mean_constant = model.mean_constant.detach()
        self.X = model.X
        self.kernel = copy.deepcopy(model.kernel).requires_grad_(False)
        self.dim = self.X.shape[-1]

    def _check(self, X: torch.Tensor) -> torch.Tensor:
        X = torch.as_tensor(X, dtype=F64)
        if X.dim() < 2 or X.shape[-1] != self.dim:
            raise ShapeError(f"inputs must be [..., Q, {self.dim}], got {tuple(X.shape)}")
        if not bool(torch.isfinite(X).all()):
            raise NonFiniteError("inputs contain NaN or infinite values")
        return X

    def project(self, X: torch.Tensor) -> torch.Tensor:
        """``A(X) = L^-1 k(X_train, X)``: ``[..., N, Q]``."""
        X = self._check(X)
        K = self.kernel(self.X, X)
        L = self.L.expand(*K.shape[:-2], *self.L.shape)
        return torch.linalg.solve_triangular(L, K, upper=False)

    def mean(self, X: torch.Tensor) -> torch.Tensor:
        """``mu_n(X)``: ``[..., Q]``."""
        X = self._check(X)
        prior = self.mean_function(X) if self.mean_function is not None else \
            self.mean_constant
        return prior + self.kernel(X, self.X) @ self.w

    def mean_and_variance(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mu_n(X)`` and the latent variance ``k_n(x, x)``, both ``[..., Q]``."""
        A = self.project(X)
        var = (self.kernel.diag(X) - (A * A).sum(-2)).clamp_min(1e-30)
        return self.mean(X), var

    def covariance(self, X: torch.Tensor, X2: torch.Tensor) -> torch.Tensor:
        """``k_n(X, X2)``: ``[..., Q, Q2]``."""
        return self.kernel(X, X2) - self.project(X).mT @ self.project(X2)

    def sigma_tilde(self, X: torch.Tensor, Xc: torch.Tensor) -> torch.Tensor:
        """How ``mu`` at ``X`` ``[..., Q, D]`` moves per standardised outcome at ``Xc``
        ``[..., q, D]``: ``[..., Q, q]`` (see the module docstring)."""
        Xc = self._check(Xc)
        cross = self.covariance(X, Xc)  # [..., Q, q]
        if Xc.shape[-2] == 1:  # one point: the appended Cholesky row is a square root
            Ac = self.project(Xc)
            var = self.kernel.diag(Xc) - (Ac * Ac).sum(-2)  # [..., 1]
            return cross / torch.sqrt(var.clamp_min(0) + self.noise)[..., None, :]
        Kcc = self.covariance(Xc, Xc)
        eye = torch.eye(Xc.shape[-2], dtype=F64)
        C, _ = jittered_cholesky(Kcc + self.noise * eye)
        return torch.linalg.solve_triangular(C, cross.mT, upper=False).mT

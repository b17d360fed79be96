"""Sparse GP regression with Titsias's collapsed variational bound (SGPR).

With inducing inputs ``Z`` (``M`` of them) and ``Q = K_fu K_uu^-1 K_uf``:

    ELBO = log N(y | m, Q + s2 I) - tr(K_ff - Q) / (2 s2)

computed stably in O(N M^2) (the SVGP handbook's appendix VII): ``K_uu = L L^T``,
``A = L^-1 K_uf / s``, ``B = I + A A^T = L_B L_B^T``, ``c = L_B^-1 A (y - m) / s``, where
``A A^T`` and ``A (y - m)`` are formed from ``K_uf K_fu`` and ``K_uf (y - m)`` (one matrix
product over N, streamed in chunks for large N):

    ELBO = -N/2 log(2 pi s2) - sum log diag(L_B) - |y - m|^2 / (2 s2) + |c|^2 / 2
           - tr(K_ff) / (2 s2) + tr(A A^T) / 2

and the optimal ``q(u)`` gives predictions ``mean = (L_B^-1 L^-1 K_u*)^T c``,
``var = k** - |L^-1 K_u*|^2 + |L_B^-1 L^-1 K_u*|^2``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from bayeskit.errors import ShapeError
from bayeskit.gp.exact import _check_xy, check_new_inputs
from bayeskit.gp.fit import minimise_lbfgs
from bayeskit.gp.kernels import Kernel, SquaredExponential, inverse_positive, positive
from bayeskit.linalg import jittered_cholesky

__all__ = ["SGPR"]

F64 = torch.float64


class SGPR(nn.Module):
    """Titsias (2009) sparse GP regression with learnable inducing inputs.

    Args:
        X: ``[N, D]``; y: ``[N]``; inducing_points: ``[M, D]`` initial ``Z``.
        kernel, noise_variance, mean, learn_mean, train_inducing: as for :class:`GPR`.
        jitter: added to ``K_uu``'s diagonal, relative to the kernel variance.
        chunk_size: N is processed in chunks of this size (memory O(M * chunk_size)).
        method: ``"auto"`` (fast M x M route unless ``K_uu`` is ill-conditioned) or
            ``"stable"`` (always appendix VII's ``A = L^-1 K_uf``).

    Example:
        >>> X = torch.rand(200, 1, dtype=torch.float64)
        >>> m = SGPR(X, torch.sin(6 * X[:, 0]), inducing_points=X[:20], noise_variance=0.01)
        >>> bool(torch.isfinite(m.elbo()))
        True
    """

    def __init__(self, X, y, inducing_points, kernel: Kernel | None = None,
                 noise_variance: float = 0.1, mean: float = 0.0, learn_mean: bool = True,
                 train_inducing: bool = True, jitter: float = 1e-6,
                 mean_function: nn.Module | None = None, chunk_size: int = 131_072,
                 method: str = "auto"):
        super().__init__()
        X, y = _check_xy(X, y)
        Z = torch.as_tensor(inducing_points, dtype=F64)
        Z = Z[:, None] if Z.dim() == 1 else Z
        if Z.dim() != 2 or Z.shape[1] != X.shape[1] or Z.shape[0] == 0:
            raise ShapeError(f"inducing_points must be [M, {X.shape[1]}], got {tuple(Z.shape)}")
        self.register_buffer("X", X)
        self.register_buffer("y", y)
        self.Z = nn.Parameter(Z.clone(), requires_grad=train_inducing)
        self.kernel = kernel if kernel is not None else SquaredExponential()
        self.kernel.to(F64)
        self.raw_noise = nn.Parameter(inverse_positive(noise_variance))
        self.mean_constant = nn.Parameter(torch.tensor(float(mean), dtype=F64),
                                          requires_grad=learn_mean and mean_function is None)
        self.mean_function = mean_function.to(F64) if mean_function is not None else None
        self.jitter = jitter
        self.chunk_size = int(chunk_size)
        if method not in ("auto", "stable"):
            raise ValueError(f"method must be 'auto' or 'stable', got {method!r}")
        self.method = method

    def prior_mean(self, X: torch.Tensor) -> torch.Tensor:
        """``m(X)``: the mean function if given, else the constant ``mean``."""
        if self.mean_function is not None:
            return self.mean_function(X)
        return self.mean_constant.expand(X.shape[:-1])

    @property
    def noise_variance(self) -> torch.Tensor:
        return positive(self.raw_noise)

    def _statistics(self, L: torch.Tensor, resid: torch.Tensor):
        """``L^-1 P L^-T`` with ``P = K_uf K_fu`` ``[M, M]``, ``L^-1 K_uf (y - m)`` ``[M]`` and
        ``tr K_ff``: the only O(N) work of the bound.

        Fast route: form ``P`` and ``K_uf (y - m)`` with one matrix product over N, then solve
        on M x M. When ``K_uu`` is ill-conditioned (``(max diag L / min diag L)^2 > 1e8``)
        the two-sided solve would square the rounding error, so the stable route of
        appendix VII forms ``A = L^-1 K_uf`` (an M x N triangular solve) first. Above
        ``chunk_size`` points both are summed over chunks, each recomputed in the backward
        pass (activation checkpointing): memory O(M * chunk_size) for any N.
        """
        d = L.diagonal().detach()
        stable = bool((d.max() / d.min()) ** 2 > 1e8) or self.method == "stable"

        def part(Xc, rc):
            Kuf = self.kernel(self.Z, Xc)
            if stable:
                A = torch.linalg.solve_triangular(L, Kuf, upper=False)
                return A @ A.mT, A @ rc, self.kernel.diag(Xc).sum()
            return Kuf @ Kuf.mT, Kuf @ rc, self.kernel.diag(Xc).sum()

        n = self.X.shape[0]
        if n <= self.chunk_size:
            P, b, tr = part(self.X, resid)
        else:
            P, b, tr = 0.0, 0.0, 0.0
            for start in range(0, n, self.chunk_size):
                sl = slice(start, start + self.chunk_size)
                if torch.is_grad_enabled():
                    Pc, bc, tc = checkpoint(part, self.X[sl], resid[sl], use_reentrant=False)
                else:
                    Pc, bc, tc = part(self.X[sl], resid[sl])
                P, b, tr = P + Pc, b + bc, tr + tc
        if stable:
            return P, b, tr
        W = torch.linalg.solve_triangular(L, P, upper=False)
        LPL = torch.linalg.solve_triangular(L, W.mT, upper=False)
        Lb = torch.linalg.solve_triangular(L, b.unsqueeze(-1), upper=False).squeeze(-1)
        return 0.5 * (LPL + LPL.mT), Lb, tr

    def _common(self):
        """``L``, ``L_B``, ``c``, the residual, ``L^-1 P L^-T``, ``L^-1 b`` and ``tr K_ff``
        (``A A^T = L^-1 P L^-T / s2``, ``A r = L^-1 b / s``; see :meth:`_statistics`)."""
        m = self.Z.shape[0]
        Kuu = self.kernel(self.Z)
        Kuu = Kuu + self.jitter * Kuu.diagonal().mean().detach() * torch.eye(m, dtype=F64)
        L, _ = jittered_cholesky(Kuu)
        s2 = self.noise_variance
        resid = self.y - self.prior_mean(self.X)
        LPL, Lb, trK = self._statistics(L, resid)
        LB, _ = jittered_cholesky(torch.eye(m, dtype=F64) + LPL / s2)
        c = torch.linalg.solve_triangular(LB, Lb.unsqueeze(-1) / s2, upper=False).squeeze(-1)
        return L, LB, c, resid, LPL, Lb, trK

    def elbo(self) -> torch.Tensor:
        """The collapsed evidence lower bound (differentiable)."""
        L, LB, c, resid, LPL, _, trK = self._common()
        n = self.X.shape[0]
        s2 = self.noise_variance
        return (-0.5 * n * torch.log(2 * math.pi * s2) - LB.diagonal().log().sum()
                - 0.5 * (resid * resid).sum() / s2 + 0.5 * (c * c).sum()
                - 0.5 * trK / s2 + 0.5 * LPL.diagonal().sum() / s2)

    def upper_bound(self) -> torch.Tensor:
        """Titsias (2014)'s upper bound on ``log p(y)``, to show the bound's gap.

        ``-log det`` is bounded with the Nystrom matrix ``Q + noise I`` (``Q <= K``), and the
        quadratic form with the noise raised by ``t = tr(K - Q)`` (the largest eigenvalue of
        ``K - Q`` is at most its trace): ``y^T (Q + (noise + t) I)^-1 y``.
        """
        L, LB, _, resid, LPL, Lb, trK = self._common()
        n = self.X.shape[0]
        s2 = self.noise_variance
        t = trK - LPL.diagonal().sum()
        corrected = s2 + t.clamp_min(0)
        m = self.Z.shape[0]
        LC, _ = jittered_cholesky(torch.eye(m, dtype=F64) + LPL / corrected)
        v = torch.linalg.solve_triangular(LC, Lb.unsqueeze(-1) / corrected, upper=False)
        return (-0.5 * n * torch.log(2 * math.pi * s2) - LB.diagonal().log().sum()
                - 0.5 * (resid * resid).sum() / corrected + 0.5 * (v * v).sum())

    def fit(self, max_iter: int = 200) -> SGPR:
        """Maximise the bound over hyperparameters (and ``Z``) with L-BFGS."""
        minimise_lbfgs(self.parameters(), lambda: -self.elbo(), max_iter)
        return self

    def predict_f(self, Xnew, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``[M']`` and variance (or covariance) of ``f`` under the optimal ``q(u)``."""
        Xnew = check_new_inputs(Xnew, self.X.shape[-1])
        with torch.no_grad():
            L, LB, c, *_ = self._common()
            t1 = torch.linalg.solve_triangular(L, self.kernel(self.Z, Xnew), upper=False)
            t2 = torch.linalg.solve_triangular(LB, t1, upper=False)
            mean = self.prior_mean(Xnew) + t2.mT @ c
            if full_cov:
                return mean, self.kernel(Xnew) - t1.mT @ t1 + t2.mT @ t2
            var = self.kernel.diag(Xnew) - (t1 * t1).sum(0) + (t2 * t2).sum(0)
            return mean, var.clamp_min(0)

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

from bayeskit.gp.kernels import Kernel
from bayeskit.gp.model import GPRegressionModel, data_scale
from bayeskit.gp.posterior import GPPosterior
from bayeskit.linalg import jittered_cholesky, stabilised_cholesky
from bayeskit.linalg.gram import gram
from bayeskit.training.optim import fit_with_restarts
from bayeskit.validation import as_inputs, as_int, as_scalar, check_choice

__all__ = ["SGPR"]


class SGPR(GPRegressionModel):
    """Titsias (2009) sparse GP regression with learnable inducing inputs.

    Args:
        X: ``[N, D]``; y: ``[N]``; inducing_points: ``[M, D]`` initial ``Z``.
        kernel, noise_variance, mean, learn_mean: as for :class:`GPR` (with the default
            kernel the inducing inputs are optimised in the inputs' units too).
        train_inducing: learn ``Z`` (default) or keep it fixed.
        jitter: added to ``K_uu``'s diagonal, relative to the kernel variance.
        chunk_size: N is processed in chunks of this size (memory O(M * chunk_size)).
        method: ``"auto"`` (fast M x M route unless ``K_uu`` is ill-conditioned) or
            ``"stable"`` (always appendix VII's ``A = L^-1 K_uf``).

    Examples:
        >>> X = torch.rand(200, 1, dtype=torch.float64)
        >>> m = SGPR(X, torch.sin(6 * X[:, 0]), inducing_points=X[:20], noise_variance=0.01)
        >>> bool(torch.isfinite(m.elbo()))
        True
    """

    def __init__(self, X, y, inducing_points, kernel: Kernel | None = None,
                 noise_variance: float | None = None, mean: float | None = None,
                 learn_mean: bool = True,
                 train_inducing: bool = True, jitter: float = 1e-6,
                 mean_function: nn.Module | None = None, chunk_size: int = 131_072,
                 method: str = "auto"):
        super().__init__()
        self._init_regression(X, y, kernel, noise_variance, mean, learn_mean, mean_function)
        Z = as_inputs(inducing_points, "inducing_points", dim=self.input_dim,
                      dtype=self.dtype, device=self.X.device)
        # with the data-scaled default kernel Z is optimised in the inputs' units too
        unit = data_scale(self.X)[1].to(self.dtype) if kernel is None else torch.ones_like(Z[0])
        self.register_buffer("Z_unit", unit)
        self.raw_Z = nn.Parameter(Z / unit, requires_grad=bool(train_inducing))
        self.jitter = as_scalar(jitter, "jitter", nonnegative=True)
        self.chunk_size = as_int(chunk_size, "chunk_size", positive=True)
        self.method = check_choice(method, "method", ("auto", "stable"))

    @property
    def Z(self) -> torch.Tensor:
        """The inducing inputs ``[M, D]``."""
        return self.raw_Z * self.Z_unit

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
                Kuf = torch.linalg.solve_triangular(L, Kuf, upper=False)  # A = L^-1 K_uf
            return (*gram(Kuf, rc), self.kernel.diag(Xc).sum())  # A A^T, A r: one product back

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
        L = stabilised_cholesky(self.kernel(self.Z), self.jitter)
        s2, resid = self._noise_and_residual()
        LPL, Lb, trK = self._statistics(L, resid)
        LB, _ = jittered_cholesky(self._eye(m) + LPL / s2)
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
        LC, _ = jittered_cholesky(self._eye(m) + LPL / corrected)
        v = torch.linalg.solve_triangular(LC, Lb.unsqueeze(-1) / corrected, upper=False)
        return (-0.5 * n * torch.log(2 * math.pi * s2) - LB.diagonal().log().sum()
                - 0.5 * (resid * resid).sum() / corrected + 0.5 * (v * v).sum())

    def _eye(self, m: int) -> torch.Tensor:
        return torch.eye(m, dtype=self.dtype, device=self.X.device)

    def fit(self, max_iter: int = 200, restarts: int = 0, seed: int = 0,
            starts: list[dict] | None = None, escape_all_noise: bool = True) -> SGPR:
        """Maximise the bound over hyperparameters (and ``Z``) with L-BFGS (``restarts``,
        ``starts``, ``escape_all_noise``: as for :meth:`bayeskit.gp.GPR.fit`);
        ``optimizer_iterations``: the L-BFGS iterations of the best start."""
        info: dict = {}
        fit_with_restarts(self, lambda: -self.elbo(), max_iter=max_iter, restarts=restarts,
                          seed=seed, starts=starts, info=info)
        if escape_all_noise:
            self._escape_all_noise(lambda: -self.elbo(), max_iter=max_iter, seed=seed,
                                   info=info)
        self.optimizer_iterations = info.get("n_iter", 0)
        return self

    def posterior(self) -> GPPosterior:
        """The posterior process under the optimal ``q(u)`` (the model contract): whitened
        ``q(v) = N(L_B^-T c, L_B^-T L_B^-1)`` with ``L`` the factor of ``K_uu``."""
        with torch.no_grad():
            L, LB, c, *_ = self._common()
            S = torch.linalg.solve_triangular(LB.mT, self._eye(LB.shape[-1]), upper=True)
            f = S @ c
            return GPPosterior.from_model_parts(self.kernel, self._mean_module(), self.Z, L, f,
                                                q_sqrt=S,
                                                noise=self.noise_variance,
                                                train_inputs=self.X)

"""Stochastic variational GPs (Hensman et al. 2013, 2015) with any likelihood.

``q(u) = N(q_mu, S S^T)`` with ``S`` lower triangular (full covariance), whitened by
default (``u = L v``, prior ``N(0, I)``). The ELBO on a minibatch of ``B`` of ``N`` points:

    ELBO = (N / B) sum_b E_q[log p(y_b | f_b)] - KL[q(u) || p(u)]

with the expectations from the likelihood (closed form for Gaussian and Poisson,
Gauss-Hermite quadrature otherwise).

The marginals of ``q(f)`` come from :func:`bayeskit.gp.conditionals.conditional`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bayeskit._parallel import allreduce_grads, allreduce_sum, local_rows, save_atomic, world
from bayeskit.gp.conditionals import conditional
from bayeskit.gp.exact import _check_xy
from bayeskit.gp.kernels import Kernel, SquaredExponential, inverse_positive, positive
from bayeskit.gp.likelihoods import Gaussian, Likelihood
from bayeskit.linalg import jittered_cholesky

__all__ = ["SVGP"]

F64 = torch.float64


class SVGP(nn.Module):
    """Sparse variational GP.

    Args:
        inducing_points: ``[M, D]``; kernel.
        noise_variance: shorthand for ``likelihood=Gaussian(noise_variance)``.
        likelihood: any :class:`bayeskit.gp.likelihoods.Likelihood` (Bernoulli, Poisson, ...).
        num_data: ``N`` used to scale minibatch ELBOs. whiten: default True.
        mean_function: prior mean module (e.g. :class:`bayeskit.gp.LinearMean`); default 0.
    """

    def __init__(self, inducing_points, kernel: Kernel | None = None,
                 noise_variance: float = 0.1, *, num_data: int, whiten: bool = True,
                 likelihood: Likelihood | None = None, jitter: float = 1e-6,
                 mean_function: nn.Module | None = None):
        super().__init__()
        Z = torch.as_tensor(inducing_points, dtype=F64)
        Z = Z[:, None] if Z.dim() == 1 else Z
        m = Z.shape[0]
        self.Z = nn.Parameter(Z.clone())
        self.kernel = kernel if kernel is not None else SquaredExponential()
        self.kernel.to(F64)
        self.likelihood = likelihood if likelihood is not None else Gaussian(noise_variance)
        self.q_mu = nn.Parameter(torch.zeros(m, dtype=F64))
        # unconstrained lower triangle; the diagonal goes through softplus
        self.raw_q_sqrt = nn.Parameter(torch.zeros(m, m, dtype=F64))
        with torch.no_grad():
            self.raw_q_sqrt.diagonal().copy_(inverse_positive(1.0 if whiten else 1e-2))
        self.num_data, self.whiten, self.jitter = num_data, whiten, jitter
        self.mean_function = mean_function.to(F64) if mean_function is not None else None

    def _prior_mean(self, X: torch.Tensor) -> torch.Tensor:
        if self.mean_function is None:
            return torch.zeros(X.shape[:-1], dtype=X.dtype)
        return self.mean_function(X)

    @property
    def q_sqrt(self) -> torch.Tensor:
        return torch.tril(self.raw_q_sqrt, -1) + torch.diag(positive(self.raw_q_sqrt.diagonal()))

    def _prior_factor(self) -> torch.Tensor:
        Kmm = self.kernel(self.Z)
        eye = torch.eye(Kmm.shape[0], dtype=F64)
        return jittered_cholesky(Kmm + self.jitter * Kmm.diagonal().mean().detach() * eye)[0]

    def kl(self, L: torch.Tensor | None = None) -> torch.Tensor:
        """``KL[q(u) || p(u)]`` (whitened: against ``N(0, I)``)."""
        S, mu = self.q_sqrt, self.q_mu
        m = mu.shape[0]
        logdet_S = 2 * S.diagonal().log().sum()
        if self.whiten:
            return 0.5 * ((S * S).sum() + (mu * mu).sum() - m - logdet_S)
        L = self._prior_factor() if L is None else L
        LiS = torch.linalg.solve_triangular(L, S, upper=False)
        Lim = torch.linalg.solve_triangular(L, mu.unsqueeze(-1), upper=False)
        return 0.5 * ((LiS * LiS).sum() + (Lim * Lim).sum() - m
                      + 2 * L.diagonal().log().sum() - logdet_S)

    def predict_f(self, X) -> tuple[torch.Tensor, torch.Tensor]:
        X = torch.as_tensor(X, dtype=F64)
        X = X[:, None] if X.dim() == 1 else X
        L = self._prior_factor()
        mean, var = conditional(self.kernel(self.Z, X), L, self.kernel.diag(X), self.q_mu,
                                self.q_sqrt, whiten=self.whiten)
        return self._prior_mean(X) + mean, var

    def elbo(self, X, y, *, batch_size: int | None = None,
             kl_weight: float = 1.0) -> torch.Tensor:
        """Minibatch estimate of the ELBO, ``N / B * sum(ell) - KL`` (exact when ``X, y`` is
        the full data set). ``batch_size``/``kl_weight`` let a process that holds part of a
        global batch of ``B`` contribute its share (see :meth:`fit`)."""
        X, y = _check_xy(X, y)
        L = self._prior_factor()
        mean, var = conditional(self.kernel(self.Z, X), L, self.kernel.diag(X), self.q_mu,
                                self.q_sqrt, whiten=self.whiten)
        ell = self.likelihood.variational_expectations(y, self._prior_mean(X) + mean, var)
        B = X.shape[0] if batch_size is None else batch_size
        return self.num_data / B * ell.sum() - kl_weight * self.kl(L)

    def predict_y(self, X) -> torch.Tensor:
        """Predictive mean of ``y`` (e.g. ``P(y = 1)`` for a Bernoulli likelihood)."""
        mean, var = self.predict_f(X)
        return self.likelihood.predict_mean(mean, var)

    def fit(self, X, y=None, *, epochs: int = 50, batch_size: int = 256, lr: float = 0.01,
            seed: int = 0, progress: bool = False, checkpoint: str | Path | None = None,
            resume: bool = True) -> list[float]:
        """Adam over shuffled minibatches; returns the per-epoch mean of the minibatch ELBO.

        ``X`` may be a tensor (with ``y``) or a ``torch.utils.data.DataLoader`` yielding
        ``(X, y)`` batches. ``checkpoint``: written atomically after every epoch (parameters,
        optimiser, history); an existing file is resumed from (``weights_only=True``).
        Shuffling in epoch ``e`` uses a generator seeded with ``(seed, e)``, so a resumed run
        repeats the uninterrupted one. Under ``torchrun`` each process takes its slice of
        every global batch and gradients are summed across processes (see
        :mod:`bayeskit._parallel`); rank 0 writes the checkpoint.
        """
        from tqdm.auto import tqdm

        loader = X if y is None else None
        if loader is None:
            X, y = _check_xy(X, y)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        history: list[float] = []
        start = 0
        path = Path(checkpoint) if checkpoint is not None else None
        if path is not None and resume and path.exists():
            state = torch.load(path, weights_only=True)
            self.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            history, start = list(state["history"]), int(state["epoch"]) + 1
        rank, _ = world()
        for epoch in tqdm(range(start, epochs), disable=not progress or rank != 0, desc="SVGP"):
            if loader is None:
                g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
                order = torch.randperm(X.shape[0], generator=g)
                batches = ((X[b], y[b]) for b in order.split(batch_size))
            else:
                batches = iter(loader)
            total, count = 0.0, 0
            for Xb, yb in batches:
                B = Xb.shape[0]
                rows = local_rows(B)
                loss = -self.elbo(Xb[rows], yb[rows], batch_size=B,
                                  kl_weight=len(rows) / B)
                opt.zero_grad()
                loss.backward()
                allreduce_grads(self.parameters())
                opt.step()
                total += float(loss.detach())
                count += 1
            (total,) = allreduce_sum(total)
            history.append(-total / count)
            if path is not None and rank == 0:
                save_atomic({"model": self.state_dict(), "optimizer": opt.state_dict(),
                             "history": history, "epoch": epoch}, path)
        return history

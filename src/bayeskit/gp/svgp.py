"""Stochastic variational GPs (Hensman et al. 2013, 2015) with any likelihood.

``q(u) = N(q_mu, S S^T)`` with ``S`` lower triangular (full covariance), whitened by
default (``u = L v``, prior ``N(0, I)``). The ELBO on a minibatch of ``B`` of ``N`` points:

    ELBO = (N / B) sum_b E_q[log p(y_b | f_b)] - KL[q(u) || p(u)]

with the expectations from the likelihood (closed form for Gaussian and Poisson,
Gauss-Hermite quadrature otherwise). The marginals of ``q(f)`` come from the Gaussian
floor's :func:`~bayeskit.distributions.gaussian.conditional`, the KL from
:func:`~bayeskit.distributions.gaussian.gauss_kl`, natural parameters from
:func:`~bayeskit.distributions.gaussian.moments_to_natural`; training is the shared
:func:`bayeskit.training.train`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bayeskit.distributions.gaussian import (
    conditional,
    gauss_kl,
    moments_to_natural,
    natural_to_moments,
    whitened_sparse_terms,
)
from bayeskit.errors import ArgumentTypeError
from bayeskit.gp.exact import check_data, check_kernel, check_mean_function
from bayeskit.gp.kernels import Kernel, inverse_positive, positive
from bayeskit.gp.likelihoods import Gaussian, Likelihood
from bayeskit.gp.model import GPModel
from bayeskit.gp.posterior import GPPosterior
from bayeskit.linalg import solve_lower, stabilised_cholesky
from bayeskit.training import Checkpoint, fingerprint, world
from bayeskit.training.trainer import train
from bayeskit.validation import as_inputs, as_int, as_scalar

__all__ = ["SVGP"]


def robbins_monro(t: int, tau: float, decay: float) -> float:
    """The natural-gradient step ``rho_t = (t + tau)^-decay`` capped at 1 (``sum rho = inf``,
    ``sum rho^2 < inf`` for ``decay`` in (0.5, 1]), for the stochastic closed-form steps.

    Examples:
        >>> robbins_monro(0, 1.0, 0.6), round(robbins_monro(9, 1.0, 0.6), 4)
        (1.0, 0.2512)
    """
    return min(1.0, (t + tau) ** (-decay))


class SVGP(GPModel):
    """Sparse variational GP.

    The model follows the inducing points' dtype and device (float64 for NumPy/list input).

    Args:
        inducing_points: ``[M, D]``; kernel.
        noise_variance: shorthand for ``likelihood=Gaussian(noise_variance)``.
        likelihood: any :class:`bayeskit.gp.likelihoods.Likelihood` (Bernoulli, Poisson, ...).
        num_data: ``N`` used to scale minibatch ELBOs. whiten: default True.
        mean_function: prior mean module (e.g. :class:`bayeskit.gp.LinearMean`); default 0.

    Examples:
        >>> X = torch.linspace(0, 1, 50, dtype=torch.float64)[:, None]
        >>> m = SVGP(X[::5], noise_variance=0.1, num_data=50)
        >>> mean, var = m.predict_y(X[:3])
        >>> mean.shape, var.shape
        (torch.Size([3]), torch.Size([3]))
    """

    def __init__(self, inducing_points, kernel: Kernel | None = None,
                 noise_variance: float = 0.1, *, num_data: int, whiten: bool = True,
                 likelihood: Likelihood | None = None, jitter: float = 1e-6,
                 mean_function: nn.Module | None = None):
        super().__init__()
        Z = as_inputs(inducing_points, "inducing_points")
        m = Z.shape[0]
        self.Z = nn.Parameter(Z)
        self.kernel = check_kernel(kernel, Z)
        if likelihood is not None and not isinstance(likelihood, Likelihood):
            raise ArgumentTypeError(f"likelihood must be a bayeskit.gp Likelihood, got "
                                    f"{type(likelihood).__name__}")
        self.likelihood = likelihood if likelihood is not None else Gaussian(noise_variance)
        self.q_mu = nn.Parameter(torch.zeros(m, dtype=Z.dtype, device=Z.device))
        # unconstrained lower triangle; the diagonal goes through softplus
        self.raw_q_sqrt = nn.Parameter(torch.zeros(m, m, dtype=Z.dtype, device=Z.device))
        with torch.no_grad():
            self.raw_q_sqrt.diagonal().copy_(inverse_positive(1.0 if whiten else 1e-2))
        self.num_data = as_int(num_data, "num_data", positive=True)
        self.whiten = bool(whiten)
        self.jitter = as_scalar(jitter, "jitter", nonnegative=True)
        self.mean_function = check_mean_function(mean_function)

    @property
    def dtype(self) -> torch.dtype:
        return self.Z.dtype

    @property
    def input_dim(self) -> int:
        return self.Z.shape[-1]

    @property
    def noise_variance(self) -> torch.Tensor:
        """The Gaussian noise variance (the one public name in every GP model); an error for
        other likelihoods."""
        if not isinstance(self.likelihood, Gaussian):
            raise ArgumentTypeError(f"a {type(self.likelihood).__name__} likelihood has no "
                                    "noise variance")
        return self.likelihood.variance.to(self.dtype)

    def _prior_mean(self, X: torch.Tensor) -> torch.Tensor:
        if self.mean_function is None:
            return torch.zeros(X.shape[:-1], dtype=X.dtype, device=X.device)
        return self.mean_function(X).to(X.dtype)

    @property
    def q_sqrt(self) -> torch.Tensor:
        S = torch.tril(self.raw_q_sqrt)
        S.diagonal().copy_(positive(self.raw_q_sqrt.diagonal()))
        return S

    def _prior_factor(self, Kmm: torch.Tensor | None = None) -> torch.Tensor:
        """The jittered factor of ``K_mm`` (formed here unless given), with its graph."""
        return stabilised_cholesky(self.kernel(self.Z) if Kmm is None else Kmm, self.jitter)

    def _projection(self, X: torch.Tensor):
        """``(L, K_uX, A = L^-1 K_uX, k_XX)`` for a batch: the kernel work a closed-form
        step and the bound's marginals on the same batch can share (with its graph)."""
        L = self._prior_factor()
        Kzx = self.kernel(self.Z, X)
        return L, Kzx, solve_lower(L, Kzx), self.kernel.diag(X)

    def kl(self, L: torch.Tensor | None = None, S: torch.Tensor | None = None) -> torch.Tensor:
        """``KL[q(u) || p(u)]`` (whitened: against ``N(0, I)``)."""
        S = self.q_sqrt if S is None else S
        if self.whiten:
            return gauss_kl(self.q_mu, S)
        return gauss_kl(self.q_mu, S, self._prior_factor() if L is None else L)

    def _check_xy(self, X, y) -> tuple[torch.Tensor, torch.Tensor]:
        X, y = check_data(X, y, dtype=self.dtype)
        if X.shape[-1] != self.Z.shape[-1]:
            raise ArgumentTypeError(f"X has {X.shape[-1]} feature(s), the inducing points "
                                    f"{self.Z.shape[-1]}")
        return X, self.likelihood.check_targets(y)

    def posterior(self) -> GPPosterior:
        """The posterior process under the current ``q(u)`` (the model contract), in
        whitened form (an unwhitened ``q(u)`` is mapped to ``v = L^-1 u``)."""
        with torch.no_grad():
            L, S, mu = self._prior_factor(), self.q_sqrt, self.q_mu
            if not self.whiten:
                S = torch.linalg.solve_triangular(L, S, upper=False)
                mu = torch.linalg.solve_triangular(L, mu[:, None], upper=False)[:, 0]
            noise = (self.likelihood.variance.to(self.dtype)
                     if isinstance(self.likelihood, Gaussian) else None)
            return GPPosterior.from_model_parts(self.kernel, self.mean_function, self.Z, L,
                                                mu, q_sqrt=S, noise=noise)

    def predict_y(self, X, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of new observations ``y`` (for a Bernoulli likelihood the mean
        is ``P(y = 1)``); ``full_cov`` only for the Gaussian likelihood."""
        if isinstance(self.likelihood, Gaussian):
            return super().predict_y(X, full_cov)
        X = self._inputs(X)
        with torch.no_grad():
            if full_cov:
                raise ArgumentTypeError("full_cov predictions of y need a Gaussian likelihood")
            mean, var = self.predict_f(X)
            return self.likelihood.predict_mean_and_var(mean, var)

    def elbo(self, X, y, *, batch_size: int | None = None,
             kl_weight: float = 1.0) -> torch.Tensor:
        """Minibatch estimate of the ELBO, ``N / B * sum(ell) - KL`` (exact when ``X, y`` is
        the full data set). ``batch_size``/``kl_weight`` let a process that holds part of a
        global batch of ``B`` contribute its share (see :meth:`fit`)."""
        X, y = self._check_xy(X, y)
        return self._elbo(X, y, batch_size=batch_size, kl_weight=kl_weight)

    def _elbo(self, X, y, *, batch_size=None, kl_weight=1.0) -> torch.Tensor:
        S, Kmm = self.q_sqrt, self.kernel(self.Z)
        B = X.shape[0] if batch_size is None else batch_size
        if self.whiten and type(self.likelihood) is Gaussian:
            with torch.no_grad():
                L = stabilised_cholesky(Kmm, self.jitter)
            if self._gaussian_fast_route(L):
                ell_sum = self._gaussian_ell_sum(X, y, Kmm, L, S)
                return self.num_data / B * ell_sum - kl_weight * self.kl(L, S)
        L = self._prior_factor(Kmm)
        mean, var = conditional(self.kernel(self.Z, X), L, self.kernel.diag(X), self.q_mu,
                                q_sqrt=S, white=self.whiten)
        ell_sum = self.likelihood.variational_expectations(
            y, self._prior_mean(X) + mean, var).sum()
        return self.num_data / B * ell_sum - kl_weight * self.kl(L, S)

    def _gaussian_fast_route(self, L: torch.Tensor) -> bool:
        """Whether :meth:`elbo` may use :meth:`_gaussian_ell_sum`: whitened, a Gaussian
        likelihood, and ``K_mm`` well conditioned, ``(max diag L / min diag L)^2 <= 1e3``.
        The M x M route's rounding error grows with that ratio (on a 3-D design, largest
        gradient difference from the per-point route relative to the largest gradient:
        8e-14 at 63, 4e-11 at 6.6e3, 1e-8 at 5.5e5; the tests check < 1e-11 wherever the
        route is taken), so anything worse conditioned takes the per-point route."""
        if not (self.whiten and type(self.likelihood) is Gaussian):
            return False
        d = L.diagonal().detach()
        return bool((d.max() / d.min()) ** 2 <= 1e3)

    def _gaussian_ell_sum(self, X: torch.Tensor, y: torch.Tensor, Kmm: torch.Tensor,
                          L: torch.Tensor, S: torch.Tensor):
        """``sum_n E_q[log N(y_n | f_n, s2)]`` for the whitened model without any M x B
        triangular solve.

        With ``A = L^-1 K_mn`` and ``S = q_sqrt``: ``mean = K_nm L^-T q_mu`` and ``sum_n var_n
        = tr K_nn - |A|_F^2 + |S^T A|_F^2 = tr K_nn - <L^-1 P L^-T, I - S S^T>`` with ``P =
        K_mn K_nm`` ``[M, M]``: one M x M x B product (and its transpose in the backward
        pass) instead of a solve, a product with ``S`` and their gradients over ``[M, B]``;
        :func:`~bayeskit.distributions.gaussian.whitened_sparse_terms` does it, the gradient
        through ``L`` included.
        """
        mean, reduction = whitened_sparse_terms(Kmm, L, self.kernel(self.Z, X), self.q_mu, S)
        resid = y - self._prior_mean(X) - mean
        var_sum = self.kernel.diag(X).sum() - reduction
        s2 = self.likelihood.variance.to(X.dtype)
        return (-0.5 * X.shape[0] * torch.log(2 * math.pi * s2)
                - 0.5 * ((resid * resid).sum() + var_sum) / s2)

    @torch.no_grad()
    def natural_gradient_step(self, X, y, gamma: float = 1.0, *,
                              batch_size: int | None = None) -> None:
        """One natural-gradient step on ``q(u)`` for a Gaussian likelihood (Hensman, Fusi &
        Lawrence 2013), in whitened coordinates ``v = L^-1 u``:

            Lambda <- (1 - gamma) Lambda + gamma (I + (N/B) A A^T / s2)
            eta    <- (1 - gamma) eta    + gamma (N/B) A (y - m(X)) / s2

        with ``A = L^-1 K_uX``, precision ``Lambda = S^-1`` and ``eta = Lambda mean``. With
        ``gamma = 1`` on the full data it lands on the optimal ``q(u)`` (SGPR's) in one step.
        Under ``torchrun`` the minibatch statistics are summed across processes.
        """
        if not isinstance(self.likelihood, Gaussian):
            raise ArgumentTypeError("natural-gradient steps are implemented for the Gaussian "
                                    "likelihood only; train other likelihoods with Adam (fit)")
        gamma = as_scalar(gamma, "gamma", low=0.0, low_open=True, high=1.0)
        X, y = self._check_xy(X, y)
        self._natural_step(X, y, gamma, batch_size)

    def _natural_step(self, X, y, gamma, batch_size):
        s2 = self.likelihood.variance.to(self.dtype)
        self._conjugate_step(X, torch.full_like(y, 1.0) / s2, (y - self._prior_mean(X)) / s2,
                             gamma, batch_size)

    def _conjugate_step(self, X, weights, targets, gamma, batch_size, *, shared=None):
        """Natural-gradient step of size ``gamma`` on ``q(u)`` towards the posterior under
        Gaussian sites ``exp(targets_n g_n - weights_n g_n^2 / 2)`` on ``g = f - m(X)``
        (``shared``: the batch's :meth:`_projection`, reused instead of recomputed) (a
        Gaussian likelihood: ``weights = 1/s2``, ``targets = (y - m)/s2``; the Polya-gamma
        augmented Bernoulli: ``weights = E[omega]``, ``targets = kappa - E[omega] m``).
        In whitened coordinates ``v = L^-1 u`` with ``A = L^-1 K_uX``:

            Lambda <- (1 - gamma) Lambda + gamma (I + (N/B) A diag(weights) A^T)
            eta    <- (1 - gamma) eta    + gamma (N/B) A targets
        """
        m = self.Z.shape[0]
        eye = torch.eye(m, dtype=self.dtype, device=self.Z.device)
        if shared is None:
            L = self._prior_factor()
            A = solve_lower(L, self.kernel(self.Z, X))
        else:  # (L, K_uX, A = L^-1 K_uX, k_XX) already computed for this batch
            L, _, A, _ = (t.detach() for t in shared)
        B = X.shape[0] if batch_size is None else batch_size
        scale = self.num_data / B
        stats = [(A * weights) @ A.mT, A @ targets]
        if world()[1] > 1:
            for t in stats:
                torch.distributed.all_reduce(t)
        target_prec = eye + scale * stats[0]
        target_eta = scale * stats[1]
        # current q(v) in natural parameters (v = L^-1 u)
        Sv = self.q_sqrt if self.whiten else torch.linalg.solve_triangular(L, self.q_sqrt,
                                                                            upper=False)
        mv = self.q_mu if self.whiten else torch.linalg.solve_triangular(
            L, self.q_mu.unsqueeze(-1), upper=False).squeeze(-1)
        eta, prec = moments_to_natural(mv, Sv)
        prec = (1 - gamma) * prec + gamma * target_prec
        eta = (1 - gamma) * eta + gamma * target_eta
        mean_v, sqrt_v = natural_to_moments(eta, prec)
        if self.whiten:
            q_mu, q_sqrt = mean_v, sqrt_v
        else:
            q_mu, q_sqrt = L @ mean_v, L @ sqrt_v
        self.q_mu.copy_(q_mu)
        raw = torch.tril(q_sqrt, -1)
        raw.diagonal().copy_(inverse_positive(q_sqrt.diagonal().clamp_min(2e-6)))
        self.raw_q_sqrt.copy_(raw)

    def fit(self, X, y=None, *, epochs: int = 50, batch_size: int = 256, lr: float = 0.01,
            seed: int = 0, progress: bool | None = None, checkpoint: str | Path | None = None,
            resume: bool = True, overwrite: bool = False,
            natural_gradient: float | None = None) -> list[float]:
        """Adam over shuffled minibatches (the shared :func:`bayeskit.training.train`);
        returns the per-epoch mean of the minibatch ELBO.

        ``X`` may be a tensor (with ``y``) or a ``torch.utils.data.DataLoader`` yielding
        ``(X, y)`` batches. ``checkpoint``: written atomically after every epoch with a
        fingerprint of the data and settings; an existing file is resumed from (a
        checkpoint of other data or settings is refused), or with ``resume=False`` refused
        unless ``overwrite=True`` (see :class:`bayeskit.training.Checkpoint`).
        ``natural_gradient=gamma`` (Gaussian likelihood): each minibatch first takes a
        natural-gradient step of size ``gamma`` on ``q(u)``, and Adam trains only the
        hyperparameters and ``Z``; the returned history then holds each batch's ELBO
        before its step (after the step it would be optimistic). Under ``torchrun`` each
        process takes its slice of every global batch and gradients are summed across
        processes; rank 0 writes the checkpoint.
        """
        if y is not None:
            X, y = self._check_xy(X, y)
            data, data_print = (X, y), fingerprint(X, y)
        elif isinstance(X, (torch.Tensor, np.ndarray, list, tuple)) or X is None:
            raise ArgumentTypeError("y is required when X is an array (pass fit(X, y), or a "
                                    "DataLoader of (X, y) batches alone)")
        else:
            data, data_print = X, None
        if natural_gradient is not None:
            natural_gradient = as_scalar(natural_gradient, "natural_gradient", low=0.0,
                                         low_open=True, high=1.0)
            if not isinstance(self.likelihood, Gaussian):
                raise ArgumentTypeError("natural_gradient needs the Gaussian likelihood")
        variational = {id(self.q_mu), id(self.raw_q_sqrt)}
        params = [p for p in self.parameters()
                  if natural_gradient is None or id(p) not in variational]
        ckpt = None if checkpoint is None else Checkpoint(
            checkpoint, kind="svgp", data=data_print, resume=resume, overwrite=overwrite,
            settings=fingerprint(batch_size=batch_size, lr=lr, seed=seed,
                                 natural_gradient=natural_gradient))

        def loss_fn(batch, rows, _generator):
            Xb, yb = batch
            B = Xb.shape[0]
            Xb, yb = Xb[rows], yb[rows]
            if y is None:
                Xb, yb = self._check_xy(Xb, yb)
            if natural_gradient is None:
                return -self._elbo(Xb, yb, batch_size=B, kl_weight=Xb.shape[0] / B)
            # The ELBO after the step is evaluated on the batch q(u) just moved towards,
            # an optimistic estimate: report the ELBO before the step (an unbiased
            # estimate at the current parameters), differentiate the one after it.
            with torch.no_grad():
                before = self._elbo(Xb, yb, batch_size=B, kl_weight=Xb.shape[0] / B)
                self._natural_step(Xb, yb, natural_gradient, B)
            after = self._elbo(Xb, yb, batch_size=B, kl_weight=Xb.shape[0] / B)
            return -(after + (before - after).detach())

        history = train(self, loss_fn, data, epochs=epochs, batch_size=batch_size, lr=lr,
                        params=params, seed=seed, checkpoint=ckpt, progress=progress,
                        desc="SVGP")
        return [-v for v in history["train_loss"]]

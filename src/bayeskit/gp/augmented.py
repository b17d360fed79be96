"""Pólya-gamma augmented sparse variational GP classification (Wenzel, Galy-Fajou, Donner,
Kloft & Opper, AAAI 2019), for labels and binomial counts.

For ``y_n`` successes of ``b_n`` trials, ``p(y | f) = C(b, y) sigma(f)^y sigma(-f)^(b - y)
= C(b, y) 2^-b exp(kappa f) cosh(f/2)^-b`` with ``kappa = y - b/2``, and the Pólya-gamma
identity ``cosh(f/2)^-b = E_{PG(omega | b, 0)}[exp(-omega f^2 / 2)]`` makes the likelihood
Gaussian in ``f`` given ``omega``. With ``q(u) = N(m, S)`` and ``q(omega_n) = PG(b_n, c_n)``
the augmented ELBO is

    sum_n [log C - b log 2 + kappa mu_n - theta_n E f_n^2 / 2 - b log cosh(c_n/2)
           + c_n^2 theta_n / 2] - KL[q(u) || p(u)],     theta_n = E[omega_n] = b tanh(c/2)/(2c)

(``mu_n, E f_n^2`` under ``q(f_n)``). It is conditionally conjugate: the optimal
``c_n = sqrt(E f_n^2)`` (local step), and the optimal ``q(u)`` given ``q(omega)`` is the
posterior under Gaussian sites with precisions ``theta_n`` and targets ``kappa_n``, so
``q(u)`` moves by closed-form natural-gradient steps (SVI, Hoffman et al. 2013) with a
Robbins-Monro step ``rho_t = (t + tau)^-kappa_rm``. At the optimal ``c`` the ``theta`` terms
cancel and the bound is ``sum_n E[log p(y_n | f_n)]`` with ``E log cosh(f/2)`` replaced by
``log cosh(sqrt(E f^2)/2)`` (Jensen: never above the true ELBO). Hyperparameters and inducing
points take Adam steps on that bound between the natural-gradient steps (the hybrid scheme).

Examples:
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.rand(200, 1, dtype=torch.float64, generator=g) * 6 - 3
    >>> y = (torch.rand(200, dtype=torch.float64, generator=g) < torch.sigmoid(3 * X[:, 0]))
    >>> m = PolyaGammaSVGP(X[::10], num_data=200)
    >>> _ = m.fit(X, y.double(), epochs=20, batch_size=200)
    >>> p = m.predict_y(torch.tensor([[-2.0], [2.0]], dtype=torch.float64))[0]
    >>> bool(p[0] < 0.2 and p[1] > 0.8)
    True
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from bayeskit.distributions.gaussian import (
    conditional,
    gauss_hermite_expectation,
    gauss_kl,
)
from bayeskit.distributions.polyagamma import polya_gamma_mean
from bayeskit.distributions.polyagamma.series import log_cosh
from bayeskit.errors import ArgumentTypeError, ArgumentValueError, ShapeError
from bayeskit.gp.exact import check_data
from bayeskit.gp.kernels import Kernel
from bayeskit.gp.likelihoods import Bernoulli
from bayeskit.gp.svgp import SVGP, robbins_monro
from bayeskit.training import Checkpoint, fingerprint
from bayeskit.training.trainer import TrainingDivergedError, train
from bayeskit.validation import as_int, as_scalar, as_tensor, check_instance

__all__ = ["PolyaGammaSVGP"]


def _log_cosh_half(c: torch.Tensor) -> torch.Tensor:
    """``log cosh(c / 2)`` without overflow."""
    return log_cosh(c / 2)


def _log_binomial(n: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log C(n, y)``."""
    return torch.lgamma(n + 1) - torch.lgamma(y + 1) - torch.lgamma(n - y + 1)


class PolyaGammaSVGP(SVGP):
    """SVGP for binary labels (``y`` in {0, 1}) or binomial counts (``y`` of ``trials``)
    with the logistic link, trained by Pólya-gamma augmented closed-form natural-gradient
    steps on ``q(u)`` and Adam on the hyperparameters and inducing points.

    Same constructor, posterior and ``predict_f``/``predict_y`` contract as :class:`SVGP`
    (``predict_y`` gives ``P(y = 1)``, the success probability per trial). Shapes: ``X``
    ``[N, D]``, ``y`` and ``trials`` ``[N]``.

    Examples:
        >>> X = torch.linspace(-3, 3, 100, dtype=torch.float64)[:, None]
        >>> y = (X[:, 0] > 0).double()
        >>> model = PolyaGammaSVGP(X[::10], num_data=100)
        >>> _ = model.fit(X, y, epochs=10, batch_size=100)  # full batch: coordinate ascent
        >>> bool(model.augmented_elbo(X, y) <= model.elbo(X, y))  # Jensen: below the true ELBO
        True
    """

    def __init__(self, inducing_points, kernel: Kernel | None = None, *, num_data: int,
                 whiten: bool = True, jitter: float = 1e-6,
                 mean_function: nn.Module | None = None):
        super().__init__(inducing_points, kernel, num_data=num_data, whiten=whiten,
                         likelihood=Bernoulli("logit"), jitter=jitter,
                         mean_function=mean_function)
        # the Robbins-Monro counter: part of the state, so a resumed run takes the same steps
        self.register_buffer("natural_steps", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ data and moments
    def check_data(self, X, y, trials=None):
        """Validated ``(X [N, D], y [N], trials [N])`` in the model's dtype: ``y`` in {0, 1}
        without ``trials``; whole counts ``0 <= y <= trials`` with them."""
        if trials is None:
            X, y = self._check_xy(X, y)
            return X, y, torch.ones_like(y)
        X, y = check_data(X, y, dtype=self.dtype)
        if X.shape[-1] != self.Z.shape[-1]:
            raise ShapeError(f"X has {X.shape[-1]} feature(s), the inducing points "
                             f"{self.Z.shape[-1]}")
        n = as_tensor(trials, "trials", dtype=self.dtype, ndim=1)
        if n.shape != y.shape:
            raise ShapeError(f"trials must be [N] like y ({tuple(y.shape)}), got "
                             f"{tuple(n.shape)}")
        if not bool(((n >= 1) & (n == torch.round(n))).all()):
            raise ArgumentValueError("trials must be whole numbers >= 1")
        if not bool(((y >= 0) & (y <= n) & (y == torch.round(y))).all()):
            raise ArgumentValueError("y must hold whole success counts with 0 <= y <= trials")
        return X, y, n

    def _marginals(self, X, shared=None, q=None):
        """Mean (with the prior mean) and variance of ``q(f(X))``: ``[B]`` each (``shared``:
        the batch's :meth:`_projection`, reused; ``q``: ``(q_mu, q_sqrt)`` to use instead of
        the parameters, e.g. detached)."""
        L, Kzx, A, kxx = self._projection(X) if shared is None else shared
        q_mu, q_sqrt = (self.q_mu, self.q_sqrt) if q is None else q
        mean, var = conditional(Kzx, L, kxx, q_mu, q_sqrt=q_sqrt, white=self.whiten,
                                projection=A)
        return self._prior_mean(X) + mean, var.clamp_min(0), L

    def local_parameters(self, X, y, trials=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The optimal ``q(omega_n) = PG(b_n, c_n)`` under the current ``q(u)``: returns
        ``(c [N], theta = E[omega] [N])`` with ``c_n = sqrt(E f_n^2)``."""
        X, y, n = self.check_data(X, y, trials)
        with torch.no_grad():
            mean, var, _ = self._marginals(X)
            c = torch.sqrt(mean * mean + var)
            return c, polya_gamma_mean(n, c)

    # ------------------------------------------------------------------------- bounds
    def _augmented_sum(self, X, y, n, c=None, shared=None, q=None):
        """``sum_n`` of the augmented per-point terms, the factor of ``K_uu`` and
        ``E_q[f^2] [B]``; ``c=None``: at the optimal ``c`` (the theta terms cancel).
        ``shared``, ``q``: as :meth:`_marginals`."""
        mean, var, L = self._marginals(X, shared, q)
        second = mean * mean + var
        kappa = y - n / 2
        const = _log_binomial(n, y) - n * math.log(2.0)
        if c is None:
            terms = const + kappa * mean - n * _log_cosh_half(torch.sqrt(second))
        else:
            theta = polya_gamma_mean(n, c)
            terms = (const + kappa * mean - theta * second / 2 - n * _log_cosh_half(c)
                     + c * c * theta / 2)
        return terms.sum(), L, second

    def augmented_elbo(self, X, y, trials=None, *, c: torch.Tensor | None = None,
                       batch_size: int | None = None) -> torch.Tensor:
        """The augmented ELBO (``N/B`` times the minibatch sum, minus the KL); with
        ``c=None`` at the optimal ``q(omega)``, else at ``q(omega_n) = PG(b_n, c_n)``."""
        X, y, n = self.check_data(X, y, trials)
        total, L, _ = self._augmented_sum(X, y, n, c)
        B = X.shape[0] if batch_size is None else batch_size
        return self.num_data / B * total - self.kl(L)

    def elbo(self, X, y, trials=None, *, batch_size: int | None = None,
             kl_weight: float = 1.0, num_points: int = 40) -> torch.Tensor:
        """The true (non-augmented) ELBO, ``E_q[log p(y | f)]`` by Gauss-Hermite quadrature
        with ``num_points`` nodes; at least :meth:`augmented_elbo`."""
        X, y, n = self.check_data(X, y, trials)
        num_points = as_int(num_points, "num_points", positive=True)
        mean, var, L = self._marginals(X)
        const = _log_binomial(n, y)

        def log_lik(f):
            return y.unsqueeze(-1) * f - n.unsqueeze(-1) * nn.functional.softplus(f)

        ell = const + gauss_hermite_expectation(log_lik, mean, var, num_points)
        B = X.shape[0] if batch_size is None else batch_size
        return self.num_data / B * ell.sum() - kl_weight * self.kl(L)

    # ----------------------------------------------------------------- natural gradients
    @torch.no_grad()
    def natural_gradient_step(self, X, y, trials=None, gamma: float = 1.0, *,
                              batch_size: int | None = None) -> None:
        """The local step (optimal ``q(omega)`` on the batch) then one natural-gradient
        step of size ``gamma`` on ``q(u)``. With ``gamma = 1`` on all the data this is one
        sweep of coordinate ascent."""
        gamma = as_scalar(gamma, "gamma", low=0.0, low_open=True, high=1.0)
        X, y, n = self.check_data(X, y, trials)
        mean, var, _ = self._marginals(X)
        self._closed_form_step(X, y, n, mean * mean + var, gamma, batch_size)

    def _closed_form_step(self, X, y, n, second, gamma, batch_size, shared=None):
        """The local step from ``E_q[f^2]`` (``second [B]``), then the natural-gradient step
        of size ``gamma`` on ``q(u)`` (``shared``: the batch's :meth:`_projection`)."""
        theta = polya_gamma_mean(n, torch.sqrt(second))
        self._conjugate_step(X, theta, (y - n / 2) - theta * self._prior_mean(X), gamma,
                             batch_size, shared=shared)

    def hybrid_step(self, X, y, trials=None, *, optimizer: torch.optim.Optimizer,
                    gamma: float) -> float:
        """One minibatch step of the hybrid scheme, for a training loop of your own: one
        forward and backward pass of the augmented ELBO at the current ``q(u)`` gives the
        gradient for ``optimizer`` and the local parameters; then the natural-gradient
        step of size ``gamma`` on ``q(u)`` (on the same batch's kernel work) and the
        ``optimizer`` step. ``optimizer`` holds the hyperparameters and inducing points,
        never ``q_mu``/``raw_q_sqrt`` (the natural steps own those). Returns the minibatch
        estimate of the augmented ELBO before the step (one process; ``fit`` for
        ``torchrun``).

        Examples:
            >>> X = torch.linspace(-3, 3, 60, dtype=torch.float64)[:, None]
            >>> y = (X[:, 0] > 0).double()
            >>> model = PolyaGammaSVGP(X[::6], num_data=60)
            >>> opt = torch.optim.Adam(model.hyperparameters(), lr=0.01)
            >>> for t in range(20):
            ...     rows = slice(t % 3 * 20, t % 3 * 20 + 20)
            ...     bound = model.hybrid_step(X[rows], y[rows], optimizer=opt,
            ...                               gamma=model.step_size(t, 1.0, 0.6))
            >>> bool(model.predict_y(torch.tensor([[2.0]], dtype=torch.float64))[0] > 0.8)
            True
        """
        check_instance(optimizer, "optimizer", torch.optim.Optimizer, "a torch optimizer")
        if any(p is self.q_mu or p is self.raw_q_sqrt
               for group in optimizer.param_groups for p in group["params"]):
            raise ArgumentValueError("optimizer must not hold q_mu or raw_q_sqrt: the "
                                     "natural-gradient steps update q(u); pass "
                                     "model.hyperparameters()")
        gamma = as_scalar(gamma, "gamma", low=0.0, low_open=True, high=1.0)
        X, y, n = self.check_data(X, y, trials)
        optimizer.zero_grad()
        loss = self._hybrid_backward(X, y, n, gamma, X.shape[0])
        optimizer.step()
        return -float(loss)

    def hyperparameters(self) -> list[nn.Parameter]:
        """Every parameter but ``q(u)``'s: kernel, mean function and inducing points (what
        Adam trains between the natural-gradient steps).

        Examples:
            >>> model = PolyaGammaSVGP(torch.zeros(3, 1, dtype=torch.float64), num_data=10)
            >>> sum(p.numel() for p in model.hyperparameters())  # Z, lengthscale, variance
            5
        """
        return [p for p in self.parameters() if p is not self.q_mu and p is not self.raw_q_sqrt]

    def _hybrid_backward(self, X, y, n, gamma, batch_size) -> torch.Tensor:
        """Minus the augmented bound at the current ``q(u)`` (this process's share), its
        gradient in the hyperparameters (``backward``), then the natural step of size
        ``gamma`` on ``q(u)`` from the same pass: the batch's kernel work (K_uu's factor,
        K_uX, L^-1 K_uX) and the marginals of ``q(f)`` are computed once. Both updates are
        taken at the same point, as GPyTorch's NGD + Adam takes them. Returns the loss
        (detached)."""
        q = (self.q_mu.detach(), self.q_sqrt.detach())  # constants here: the step owns q(u)
        shared = self._projection(X)
        total, L, second = self._augmented_sum(X, y, n, shared=shared, q=q)
        kl = gauss_kl(*q, None if self.whiten else L)
        loss = -(self.num_data / batch_size * total - X.shape[0] / batch_size * kl)
        if not bool(torch.isfinite(loss)):  # before either step: q(u) is left as it was
            raise TrainingDivergedError("the augmented ELBO became non-finite; lower the "
                                        "learning rate or check the hyperparameters")
        loss.backward()
        with torch.no_grad():
            self._closed_form_step(X, y, n, second.detach(), gamma, batch_size, shared)
            self.natural_steps += 1
        return loss.detach()

    def step_size(self, t: int, tau: float, decay: float) -> float:
        """Robbins-Monro step ``(t + tau)^-decay`` capped at 1 (:func:`robbins_monro`)."""
        return robbins_monro(t, tau, decay)

    def fit(self, X, y=None, trials=None, *, epochs: int = 50, batch_size: int = 256,
            lr: float = 0.01, tau: float = 1.0, decay: float = 0.6, seed: int = 0,
            progress: bool | None = None, checkpoint: str | Path | None = None,
            resume: bool = True, overwrite: bool = False,
            natural_gradient: float | None = None) -> list[float]:
        """Hybrid training on shuffled minibatches (:meth:`hybrid_step`): for each batch
        one pass of the augmented ELBO at the current ``q(u)`` gives the local step and the
        gradient of the kernel, mean function and inducing points; then a natural-gradient
        step on ``q(u)`` (size ``rho_t = (t + tau)^-decay``, or 1 when a batch holds all the
        data, which makes each epoch one coordinate-ascent sweep) and an Adam step (``lr``)
        on the rest. Returns the per-epoch mean minibatch augmented ELBO, each batch's taken
        before its steps (an unbiased estimate of the bound at that point).

        Checkpoint/resume and ``torchrun`` as :meth:`SVGP.fit` (the step counter is saved
        with the model, so a resumed run takes the same steps).
        """
        if natural_gradient is not None:
            raise ArgumentTypeError("PolyaGammaSVGP always takes natural-gradient steps on "
                                    "q(u); set their schedule with tau and decay")
        if y is None:
            raise ArgumentTypeError("y is required: fit(X, y) or fit(X, y, trials)")
        X, y, n = self.check_data(X, y, trials)
        batch_size = as_int(batch_size, "batch_size", positive=True)
        tau = as_scalar(tau, "tau", low=0.0, low_open=True)
        decay = as_scalar(decay, "decay", low=0.5, high=1.0)
        full_batch = batch_size >= X.shape[0]
        params = self.hyperparameters()
        ckpt = None if checkpoint is None else Checkpoint(
            checkpoint, kind="pg-svgp", data=fingerprint(X, y, n), resume=resume,
            overwrite=overwrite, settings=fingerprint(batch_size=batch_size, lr=lr, seed=seed,
                                                      tau=tau, decay=decay))

        def loss_fn(batch, rows, _generator):
            Xb, yb, nb = batch
            B = Xb.shape[0]
            rho = 1.0 if full_batch else self.step_size(int(self.natural_steps), tau, decay)
            return self._hybrid_backward(Xb[rows], yb[rows], nb[rows], rho, B)

        history = train(self, loss_fn, (X, y, n), epochs=epochs, batch_size=batch_size, lr=lr,
                        params=params, seed=seed, checkpoint=ckpt, progress=progress,
                        desc="PG-SVGP", backward=False)
        return [-v for v in history["train_loss"]]

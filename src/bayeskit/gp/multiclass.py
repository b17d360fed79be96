"""Multi-class GP classification made conditionally conjugate: the logistic-softmax
likelihood with its augmentation (Galy-Fajou, Wenzel, Donner & Opper, UAI 2019).

``p(y = k | f) = sigma(f_k) / sum_c sigma(f_c)`` over ``K`` latent GPs ``f_c`` (one
``q(u_c)`` each, sharing the kernel and the inducing inputs). Three identities make it
Gaussian in ``f`` given auxiliary variables:

- ``1 / x = int_0^inf exp(-lambda x) d lambda`` (an improper flat prior on ``lambda``);
- ``exp(-lambda sigma(f)) = sum_n Poisson(n | lambda) sigma(-f)^n`` (as ``sigma(f) = 1 -
  sigma(-f)``);
- ``sigma(f)^y sigma(-f)^n = 2^-(y+n) exp((y - n) f / 2) E_{PG(omega | y+n, 0)}
  [exp(-omega f^2 / 2)]`` (Pólya-gamma).

With ``q(lambda_i) = Gamma(alpha_i, beta_i)``, ``q(n_ic) = Poisson(gamma_ic)``,
``q(omega_ic | n) = PG(y_ic + n, c_ic)`` and ``q(u_c)`` Gaussian, coordinate ascent is
closed form: ``c_ic = sqrt(E f_ic^2)``; ``gamma_ic = exp(E log lambda_i) exp(-mu_ic / 2) /
(2 cosh(c_ic / 2))``; ``alpha_i = 1 + sum_c gamma_ic``, ``beta_i = K``; and ``q(u_c)`` is the
posterior under Gaussian sites with precisions ``theta_ic = E[omega_ic] = (y_ic + gamma_ic)
tanh(c_ic / 2) / (2 c_ic)`` and targets ``(y_ic - gamma_ic) / 2``, reached by natural-gradient
steps (SVI on minibatches). At ``c = sqrt(E f^2)`` the augmented ELBO is

    sum_i sum_c [-(y + gamma) (log 2 + log cosh(c/2)) + (y - gamma) mu / 2
                 + gamma (E log lambda - log gamma + 1)] - K E[lambda_i] + H[q(lambda_i)]
    - sum_c KL[q(u_c) || p(u_c)],

(``y_ic`` one-hot), a lower bound on the true ELBO ``E_q[log p(y | f)] - KL``.

Examples:
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.rand(300, 1, dtype=torch.float64, generator=g) * 6 - 3
    >>> y = torch.bucketize(X[:, 0], torch.tensor([-1.0, 1.0], dtype=torch.float64))
    >>> m = LogisticSoftmaxSVGP(X[::15], num_classes=3, num_data=300)
    >>> _ = m.fit(X, y, epochs=30, batch_size=300)
    >>> m.predict_proba(torch.tensor([[-2.5], [0.0], [2.5]], dtype=torch.float64)).argmax(1)
    tensor([0, 1, 2])
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from bayeskit.distributions.gaussian import conditional, gauss_kl
from bayeskit.distributions.polyagamma import polya_gamma_mean
from bayeskit.distributions.polyagamma.series import LOG2, log_cosh
from bayeskit.errors import ArgumentTypeError, ArgumentValueError, ShapeError
from bayeskit.gp.exact import check_data
from bayeskit.gp.kernels import Kernel
from bayeskit.gp.likelihoods import Bernoulli
from bayeskit.gp.model import GPModel
from bayeskit.gp.svgp import SVGP, robbins_monro
from bayeskit.training import Checkpoint, fingerprint
from bayeskit.training.trainer import train
from bayeskit.validation import as_int, as_scalar, check_generator

__all__ = ["LogisticSoftmaxSVGP"]



class LogisticSoftmaxSVGP(GPModel):
    """``K``-class GP classification with the logistic-softmax likelihood, trained by
    augmented closed-form natural-gradient steps on each ``q(u_c)`` and Adam on the kernel
    and inducing inputs (the hybrid scheme of :class:`PolyaGammaSVGP`).

    Args:
        inducing_points: ``[M, D]`` initial ``Z``, shared by the ``K`` latent GPs.
        num_classes: ``K >= 2``; labels are ``0 .. K - 1``.
        kernel: shared by the latent GPs (default squared exponential).
        num_data: ``N``, the size of the full training set (minibatch scaling).

    Shapes: ``X`` ``[N, D]``, ``y`` ``[N]`` integer labels; :meth:`predict_f` gives
    ``[N, K]`` means and variances, :meth:`predict_proba` ``[N, K]`` probabilities.

    Examples:
        >>> X = torch.linspace(-3, 3, 90, dtype=torch.float64)[:, None]
        >>> y = torch.arange(90) // 30  # three blocks of labels
        >>> model = LogisticSoftmaxSVGP(X[::9], num_classes=3, num_data=90)
        >>> model.natural_gradient_step(X, y, 1.0)  # one sweep of coordinate ascent
        >>> model.predict_proba(X[[0, 45, 89]]).argmax(1)
        tensor([0, 1, 2])
    """

    def __init__(self, inducing_points, num_classes: int, kernel: Kernel | None = None, *,
                 num_data: int, whiten: bool = True, jitter: float = 1e-6):
        super().__init__()
        self.num_classes = as_int(num_classes, "num_classes", low=2)
        first = SVGP(inducing_points, kernel, num_data=num_data, whiten=whiten,
                     likelihood=Bernoulli("logit"), jitter=jitter)
        latents = [first]
        for _ in range(1, self.num_classes):
            other = SVGP(first.Z.detach(), first.kernel, num_data=num_data, whiten=whiten,
                         likelihood=Bernoulli("logit"), jitter=jitter)
            other.Z = first.Z  # one shared parameter
            latents.append(other)
        self.latents = nn.ModuleList(latents)
        self.register_buffer("natural_steps", torch.zeros((), dtype=torch.long))

    @property
    def dtype(self) -> torch.dtype:
        return self.latents[0].dtype

    @property
    def input_dim(self) -> int:
        return self.latents[0].input_dim

    @property
    def num_data(self) -> int:
        return self.latents[0].num_data

    @property
    def Z(self) -> torch.Tensor:
        """The shared inducing inputs ``[M, D]``."""
        return self.latents[0].Z

    @property
    def kernel(self) -> Kernel:
        return self.latents[0].kernel

    def posterior(self, latent: int | None = None):
        """The posterior of class ``latent``'s GP (``0 .. K - 1``); :meth:`posteriors` gives
        all ``K``. There is no single-output posterior of a K-class model, so code written
        for one (an acquisition, ``as_posterior``) must say which class it means."""
        if latent is None:
            raise ArgumentValueError(
                f"a {self.num_classes}-class model has one latent GP per class: call "
                f"posterior(latent=k) with k in 0 .. {self.num_classes - 1}, or posteriors()")
        k = as_int(latent, "latent", nonnegative=True)
        if k >= self.num_classes:
            raise ArgumentValueError(f"latent must be in 0 .. {self.num_classes - 1}, got {k}")
        return self.latents[k].posterior()

    def posteriors(self) -> list:
        """The ``K`` latent posteriors (the model contract, one per class)."""
        return [latent.posterior() for latent in self.latents]

    # ------------------------------------------------------------------ data and moments
    def check_data(self, X, y) -> tuple[torch.Tensor, torch.Tensor]:
        """Validated ``(X [N, D], one-hot Y [N, K])`` from integer labels ``0 .. K - 1``."""
        if isinstance(y, torch.Tensor) and not y.is_floating_point():
            y = y.to(torch.float64)
        X, y = check_data(X, y, dtype=self.dtype)
        if X.shape[-1] != self.input_dim:
            raise ShapeError(f"X has {X.shape[-1]} feature(s), the inducing points "
                             f"{self.input_dim}")
        if not bool(((y >= 0) & (y < self.num_classes) & (y == torch.round(y))).all()):
            raise ArgumentValueError(f"y must hold class labels 0 .. {self.num_classes - 1}")
        return X, nn.functional.one_hot(y.long(), self.num_classes).to(self.dtype)

    def _marginals(self, X, shared=None, detach_q: bool = False):
        """Means and variances of ``q(f_c(X))``: ``[K, B]`` each, and the shared factor
        (``shared``: the batch's kernel work, :meth:`SVGP._projection`, reused;
        ``detach_q``: ``q(u_c)`` as constants)."""
        L, Kzx, A, kxx = self.latents[0]._projection(X) if shared is None else shared
        means, variances = [], []
        for latent in self.latents:
            q_mu, q_sqrt = latent.q_mu, latent.q_sqrt
            if detach_q:
                q_mu, q_sqrt = q_mu.detach(), q_sqrt.detach()
            mean, var = conditional(Kzx, L, kxx, q_mu, q_sqrt=q_sqrt, white=latent.whiten,
                                    projection=A)
            means.append(mean)
            variances.append(var.clamp_min(0))
        return torch.stack(means), torch.stack(variances), L

    def local_parameters(self, mean: torch.Tensor, var: torch.Tensor, *,
                         iterations: int = 10) -> dict[str, torch.Tensor]:
        """The optimal ``q(lambda), q(n), q(omega)`` given the marginals ``[K, B]``: a few
        rounds of the coupled ``gamma`` / ``alpha`` updates (each a coordinate-ascent step,
        from ``alpha = K``). Returns ``c, gamma [K, B]`` and ``alpha [B]``."""
        c = torch.sqrt(mean * mean + var)
        # exp(-mu/2) / (2 cosh(c/2)) in log space
        log_site = -mean / 2 - LOG2 - log_cosh(c / 2)
        log_beta = math.log(self.num_classes)
        alpha = torch.full_like(mean[0], float(self.num_classes))
        for _ in range(iterations):
            gamma = torch.exp(torch.special.digamma(alpha) - log_beta + log_site)
            alpha = 1 + gamma.sum(0)
        return {"c": c, "gamma": gamma, "alpha": alpha}

    # ------------------------------------------------------------------------- bounds
    def _augmented_sum(self, Y, mean, var, local) -> torch.Tensor:
        """``sum_i`` of the augmented ELBO's data terms at ``c = sqrt(E f^2)`` (module
        doc), for one-hot ``Y`` ``[B, K]`` and fixed ``gamma``, ``alpha``."""
        y = Y.mT
        gamma, alpha = local["gamma"], local["alpha"]
        c = torch.sqrt(mean * mean + var)
        K = self.num_classes
        e_log_lambda = torch.special.digamma(alpha) - math.log(K)
        per_class = (-(y + gamma) * (LOG2 + log_cosh(c / 2)) + (y - gamma) * mean / 2
                     + gamma * (e_log_lambda - torch.log(gamma) + 1))
        # H[Gamma(alpha, K)] - K E[lambda]: the entropy's alpha and -K alpha / K cancel
        lam = torch.lgamma(alpha) + (1 - alpha) * torch.special.digamma(alpha) - math.log(K)
        return per_class.sum() + lam.sum()

    def _kl(self, L) -> torch.Tensor:
        return sum(latent.kl(L) for latent in self.latents)

    def augmented_elbo(self, X, y) -> torch.Tensor:
        """The augmented ELBO on ``(X, y)`` as the full data set, at the optimal local
        parameters for the current ``q(u)``."""
        X, Y = self.check_data(X, y)
        mean, var, L = self._marginals(X)
        with torch.no_grad():
            local = self.local_parameters(mean, var)
        return self.num_data / X.shape[0] * self._augmented_sum(Y, mean, var, local) \
            - self._kl(L)

    def elbo(self, X, y, *, num_samples: int = 256,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """The true (non-augmented) ELBO ``E_q[log p(y | f)] - KL`` on ``(X, y)`` as the
        full data set, the expectation by Monte Carlo with ``num_samples`` draws of
        ``q(f)`` per point (its standard error is ``O(num_samples^-1/2)``)."""
        X, Y = self.check_data(X, y)
        S = as_int(num_samples, "num_samples", positive=True)
        g = torch.Generator().manual_seed(0) if generator is None else check_generator(
            generator)
        mean, var, L = self._marginals(X)
        # drawn where the generator lives (a CPU one by default), then moved: the same
        # numbers on every device
        eps = torch.randn((S, mean.shape[0], 1), dtype=mean.dtype, generator=g,
                          device=g.device).to(mean.device)
        f = mean + var.sqrt() * eps  # [S, K, B], the same draws for every point
        log_sig = nn.functional.logsigmoid(f)
        log_p = (log_sig * Y.mT).sum(1) - torch.logsumexp(log_sig, dim=1)  # [S, B]
        return self.num_data / X.shape[0] * log_p.mean(0).sum() - self._kl(L)

    # -------------------------------------------------------------------- predictions
    def predict_f(self, X, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and variances ``[N, K]`` of the latent functions at ``X`` ``[N, D]``."""
        if full_cov:
            raise ArgumentTypeError("full_cov is not available for the K latent GPs; "
                                    "use posteriors()")
        X = self._inputs(X)
        with torch.no_grad():
            mean, var, _ = self._marginals(X)
        return mean.mT, var.mT

    def predict_proba(self, X, *, num_samples: int = 512,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """``P(y = k | x)`` ``[N, K]``: the logistic-softmax averaged over ``q(f)`` by Monte
        Carlo (``num_samples`` draws shared by all points, from a fixed generator by
        default: repeated calls and any order of the rows agree)."""
        mean, var = self.predict_f(X)
        S = as_int(num_samples, "num_samples", positive=True)
        g = torch.Generator().manual_seed(0) if generator is None else check_generator(
            generator)
        # the same standard-normal draws for every point (common random numbers): a
        # point's estimate depends on its own q(f) only, not on the other rows or their order
        eps = torch.randn((S, 1, mean.shape[-1]), dtype=mean.dtype, generator=g,
                          device=g.device).to(mean.device)
        f = mean + var.sqrt() * eps
        sig = torch.sigmoid(f)
        return (sig / sig.sum(-1, keepdim=True)).mean(0)

    def predict_y(self, X, full_cov: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Class probabilities ``[N, K]`` and their Bernoulli variances ``p (1 - p)``."""
        if full_cov:
            raise ArgumentTypeError("full_cov is not available for class probabilities")
        p = self.predict_proba(X)
        return p, p * (1 - p)

    def sample_f(self, X, num_samples: int, *, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Joint posterior draws of the ``K`` latent functions at ``X``: ``[S, N, K]``."""
        return torch.stack([latent.sample_f(X, num_samples, generator=generator)
                            for latent in self.latents], -1)

    # ----------------------------------------------------------------- natural gradients
    def _step(self, X, Y, gamma_step, batch_size):
        """Local step on the batch, then a natural-gradient step on every ``q(u_c)``."""
        mean, var, _ = self._marginals(X)
        self._conjugate_steps(X, Y, self.local_parameters(mean, var), gamma_step, batch_size)

    def _conjugate_steps(self, X, Y, local, gamma_step, batch_size, shared=None):
        """A natural-gradient step on every ``q(u_c)`` under the local parameters ``local``
        (``shared``: the batch's kernel work)."""
        y = Y.mT
        theta = polya_gamma_mean(y + local["gamma"], local["c"])
        targets = (y - local["gamma"]) / 2
        for k, latent in enumerate(self.latents):
            latent._conjugate_step(X, theta[k], targets[k], gamma_step, batch_size,
                                   shared=shared)

    @torch.no_grad()
    def natural_gradient_step(self, X, y, gamma: float = 1.0, *,
                              batch_size: int | None = None) -> None:
        """The local step on ``(X, y)`` then one natural-gradient step of size ``gamma`` on
        each ``q(u_c)``; with ``gamma = 1`` on all the data, one sweep of coordinate
        ascent (the augmented ELBO never decreases)."""
        gamma = as_scalar(gamma, "gamma", low=0.0, low_open=True, high=1.0)
        X, Y = self.check_data(X, y)
        self._step(X, Y, gamma, batch_size)

    def fit(self, X, y, *, epochs: int = 50, batch_size: int = 256, lr: float = 0.01,
            tau: float = 1.0, decay: float = 0.6, seed: int = 0,
            progress: bool | None = None, checkpoint: str | Path | None = None,
            resume: bool = True, overwrite: bool = False) -> list[float]:
        """Hybrid training on shuffled minibatches, as :meth:`PolyaGammaSVGP.fit`: per batch
        the local step, natural-gradient steps on ``q(u_c)`` (Robbins-Monro size
        ``(t + tau)^-decay``, or 1 when a batch holds all the data), then Adam (``lr``) on
        the kernel and inducing inputs against the augmented ELBO, both from one pass at the
        current ``q(u_c)``. Returns the per-epoch mean minibatch augmented ELBO, each
        batch's before its steps; checkpoint/resume as the other trainers."""
        X, Y = self.check_data(X, y)
        batch_size = as_int(batch_size, "batch_size", positive=True)
        tau = as_scalar(tau, "tau", low=0.0, low_open=True)
        decay = as_scalar(decay, "decay", low=0.5, high=1.0)
        full_batch = batch_size >= X.shape[0]
        variational = {id(p) for latent in self.latents
                       for p in (latent.q_mu, latent.raw_q_sqrt)}
        params = [p for p in self.parameters() if id(p) not in variational]
        ckpt = None if checkpoint is None else Checkpoint(
            checkpoint, kind="logistic-softmax-svgp", data=fingerprint(X, Y), resume=resume,
            overwrite=overwrite, settings=fingerprint(batch_size=batch_size, lr=lr, seed=seed,
                                                      tau=tau, decay=decay))

        def loss_fn(batch, rows, _generator):
            # one pass at the current q(u_c) gives the gradient of the hyperparameters and
            # the local parameters of the natural steps (as PolyaGammaSVGP.hybrid_step)
            Xb, Yb = batch
            B = Xb.shape[0]
            Xb, Yb = Xb[rows], Yb[rows]
            shared = self.latents[0]._projection(Xb)  # once per batch, for every latent
            mean, var, L = self._marginals(Xb, shared, detach_q=True)
            with torch.no_grad():
                local = self.local_parameters(mean, var)
            total = self._augmented_sum(Yb, mean, var, local)
            kl = sum(gauss_kl(latent.q_mu.detach(), latent.q_sqrt.detach(),
                              None if latent.whiten else L) for latent in self.latents)
            loss = -(self.num_data / B * total - Xb.shape[0] / B * kl)
            loss.backward()
            with torch.no_grad():
                rho = 1.0 if full_batch else robbins_monro(int(self.natural_steps), tau,
                                                           decay)
                self._conjugate_steps(Xb, Yb, local, rho, B, shared)
                self.natural_steps += 1
            return loss.detach()

        history = train(self, loss_fn, (X, Y), epochs=epochs, batch_size=batch_size, lr=lr,
                        params=params, seed=seed, checkpoint=ckpt, progress=progress,
                        desc="logistic-softmax SVGP", backward=False)
        return [-v for v in history["train_loss"]]

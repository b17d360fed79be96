"""The VAE model and its objectives: ELBO (analytic, Monte Carlo or density-ratio KL),
the IWAE bound (standard or doubly-reparameterised gradients) and importance-sampled
``log p(x)``.

With ``K`` samples ``z_k = g(x, eps_k)`` from ``q(z | x)`` and
``log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x)``:

    ELBO  = mean_k [log p(x | z_k)] - KL[q(z | x) || p(z)]
    IWAE_K = log (1/K) sum_k w_k            (>= ELBO, increasing in K, -> log p(x))

The KL term is a strategy: ``"analytic"`` (``torch.distributions.kl_divergence``),
``"mc"`` (``mean_k [log q(z_k | x) - log p(z_k)]``) or a :class:`DensityRatioKL`, whose critic
``T(x, z)`` is trained to tell ``q(z | x) p(x)`` from ``p(z) p(x)`` so that
``T ~ log q(z | x) - log p(z)`` (adversarial variational Bayes, Mescheder et al. 2017):
then ``q`` may be implicit.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import (
    Distribution,
    Independent,
    MultivariateNormal,
    Normal,
    kl_divergence,
)
from torch.nn import functional as F

from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.nn import mlp
from bayeskit.vae.modules import BernoulliDecoder, GaussianEncoder, RelaxedCategoricalEncoder
from bayeskit.validation import (
    all_finite,
    as_int,
    as_tensor,
    check_choice,
    check_floating,
    check_instance,
)

__all__ = ["VAE", "DensityRatioKL", "check_data"]


class DensityRatioKL(nn.Module):
    """Critic ``T(x, z)`` (an MLP on ``[x, z]``) estimating ``log q(z | x) / p(z)``.

    Examples:
        >>> critic = DensityRatioKL(input_dim=64, latent_dim=2, hidden=(8,))
        >>> critic(torch.zeros(3, 64), torch.zeros(1, 3, 2)).shape  # x [B, D], z [K, B, L]
        torch.Size([1, 3])
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        input_dim = as_int(input_dim, "input_dim", positive=True)
        latent_dim = as_int(latent_dim, "latent_dim", positive=True)
        self.critic = mlp((input_dim + latent_dim, *hidden, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``T(x, z)``: ``x`` ``[B, D]``, ``z`` ``[K, B, L]`` -> ``[K, B]``."""
        z = z.flatten(-2) if z.dim() > 3 else z
        xk = x.expand(z.shape[0], *x.shape)
        return self.critic(torch.cat([xk, z], -1)).squeeze(-1)

    def loss(self, x: torch.Tensor, z_q: torch.Tensor, z_p: torch.Tensor) -> torch.Tensor:
        """Logistic loss of telling ``z_q`` (label 1) from ``z_p`` (label 0)."""
        return F.softplus(-self(x, z_q)).mean() + F.softplus(self(x, z_p)).mean()


def check_data(model: VAE, x) -> torch.Tensor:
    """Validate a data batch ``[B, D]`` for ``model``; returns it as a float tensor.

    Examples:
        >>> from bayeskit.vae import VAE, BernoulliDecoder, GaussianEncoder
        >>> model = VAE(GaussianEncoder(64, 2, (16,)), BernoulliDecoder(2, 64, (16,)))
        >>> x = (torch.rand(100, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
        >>> check_data(model, x[:3]).shape
        torch.Size([3, 64])
    """
    x = as_tensor(x, "data", dtype=next(model.parameters()).dtype, ndim=2, min_rows=1)
    if x.shape[1] != model.encoder.input_dim:
        raise ShapeError(f"data have {x.shape[1]} features, the encoder expects "
                         f"{model.encoder.input_dim}")
    if isinstance(model.decoder, BernoulliDecoder) and bool(((x < 0) | (x > 1)).any()):
        raise ArgumentValueError(f"a Bernoulli decoder needs data in [0, 1], got values in "
                                 f"[{float(x.min()):.4g}, {float(x.max()):.4g}]; rescale the data")
    return x.to(next(model.parameters()).dtype)  # float64 data for a float32 model, etc.


class VAE(nn.Module):
    """An encoder, a decoder, a prior and a KL strategy.

    Args:
        encoder: e.g. :class:`~bayeskit.vae.GaussianEncoder`.
        decoder: e.g. :class:`~bayeskit.vae.BernoulliDecoder`.
        prior: ``p(z)``; default ``N(0, I)`` (relaxed-categorical encoders: uniform Concrete).
        kl: ``"analytic"``, ``"mc"`` or a :class:`DensityRatioKL`.

    Examples:
        >>> from bayeskit.vae import GaussianEncoder, BernoulliDecoder
        >>> vae = VAE(GaussianEncoder(64, 2), BernoulliDecoder(2, 64))
        >>> x = torch.rand(8, 64).round()
        >>> g = torch.Generator().manual_seed(0)
        >>> vae.elbo(x, generator=g).shape, vae.iwae(x, 10, generator=g).shape
        (torch.Size([8]), torch.Size([8]))
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, prior: Distribution | None = None,
                 kl: str | DensityRatioKL = "analytic"):
        super().__init__()
        check_instance(encoder, "encoder", nn.Module, "an encoder (a torch.nn.Module)")
        check_instance(decoder, "decoder", nn.Module, "a decoder (a torch.nn.Module)")
        if prior is not None:
            check_instance(prior, "prior", Distribution, "a torch.distributions.Distribution")
        if not isinstance(kl, DensityRatioKL):
            check_choice(kl, "kl", ("analytic", "mc"))
        if kl == "analytic" and not hasattr(encoder, "distribution"):
            raise ArgumentValueError(f"{type(encoder).__name__} has no closed-form q(z|x): use "
                                     "kl='mc' or a DensityRatioKL")
        self.encoder, self.decoder = encoder, decoder
        self.kl = kl
        self._prior = prior

    @property
    def latent_dim(self) -> int:
        return self.encoder.latent_dim

    def prior(self) -> Distribution:
        if self._prior is not None:
            return self._prior
        if isinstance(self.encoder, RelaxedCategoricalEncoder):
            return self.encoder.prior()
        zeros = torch.zeros(self.latent_dim)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def noise(self, num_samples: int, batch: int, generator: torch.Generator | None = None):
        """The encoder's noise ``[K, B, ...]`` in the model's dtype and on its device."""
        p = next(self.parameters())
        return self.encoder.noise(num_samples, batch, generator, dtype=p.dtype, device=p.device)

    def _check_noise(self, x: torch.Tensor, noise) -> None:
        """``noise`` as :meth:`noise` makes it for ``x`` ``[B, ...]``: ``[K, B, ...]`` with
        ``K >= 1``, the encoder's trailing shape and the model's dtype (its shape and type
        only, no pass over the values). A ``[B, L]`` noise would otherwise broadcast into a
        mean over the batch."""
        check_floating("x", x)
        check_floating("noise", noise)
        p = next(self.parameters())
        # the encoder's noise for no rows: its shape, no random numbers drawn
        expected = self.encoder.noise(1, 0, None, dtype=p.dtype, device=p.device).shape[2:]
        if noise.dim() != 2 + len(expected) or noise.shape[0] < 1 or \
                noise.shape[1] != x.shape[0] or noise.shape[2:] != expected:
            raise ShapeError(f"noise must be [K, {x.shape[0]}, {', '.join(map(str, expected))}]"
                             f" (K >= 1 draws for each of x's {x.shape[0]} rows; "
                             f"model.noise(K, B, generator) makes it), got {tuple(noise.shape)}")
        if noise.dtype != p.dtype:
            raise ArgumentTypeError(f"noise must be {p.dtype} like the model, got {noise.dtype}")

    def _terms(self, x, noise, stop_q: bool = False):
        z, log_q = self.encoder.sample(x, noise)
        if stop_q:  # log q with the encoder's outputs detached (DReG); z keeps its path
            log_q = _log_q_detached(self.encoder, x, z)
        log_lik = self.decoder(z).log_prob(x)
        return z, log_q, log_lik

    def log_weights(self, x: torch.Tensor, noise: torch.Tensor,
                    stop_q: bool = False) -> torch.Tensor:
        """``log p(x | z_k) + log p(z_k) - log q(z_k | x)``: ``[K, B]``."""
        self._check_noise(x, noise)
        try:
            z, log_q, log_lik = self._terms(x, noise, stop_q)
            lw = log_lik + self.prior().log_prob(z) - log_q
        except ValueError as err:
            _blame_data(x, err)
            raise
        return _blame_data_if_not_finite(x, lw)

    def elbo(self, x: torch.Tensor, noise: torch.Tensor | None = None, *, num_samples: int = 1,
             beta: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-datum ELBO ``[B]`` (``beta`` weights the KL term). With ``kl="analytic"``,
        the default ``N(0, I)`` prior and a :class:`GaussianEncoder`, the KL comes in closed
        form from the same encoder pass (``GaussianEncoder.sample_and_kl``); other priors
        through ``torch.distributions.kl_divergence``."""
        if noise is None:
            check_floating("x", x)
            noise = self.noise(num_samples, x.shape[0], generator)
        self._check_noise(x, noise)
        try:
            elbo = self._elbo(x, noise, beta)
        except ValueError as err:
            _blame_data(x, err)
            raise
        return _blame_data_if_not_finite(x, elbo)

    def _elbo(self, x: torch.Tensor, noise: torch.Tensor, beta: float) -> torch.Tensor:
        if self.kl == "analytic":
            if self._prior is None and hasattr(self.encoder, "sample_and_kl"):
                # one pass of the encoder, the KL to N(0, I) in closed form; one sample
                # (fit's default) without the sample axis: no mean over it, no reshapes
                if noise.shape[0] == 1:
                    z, kl = self.encoder.sample_and_kl(x, noise[0])
                    return self.decoder(z).log_prob(x) - beta * kl
                z, kl = self.encoder.sample_and_kl(x, noise)
                return self.decoder(z).log_prob(x).mean(0) - beta * kl
            if hasattr(self.encoder, "sample_and_posterior"):  # one pass of the encoder
                z, log_q, q = self.encoder.sample_and_posterior(x, noise)
            else:
                z, log_q = self.encoder.sample(x, noise)
                q = self.encoder.distribution(x)
            log_lik = self.decoder(z).log_prob(x)
            return log_lik.mean(0) - beta * _analytic_kl(q, self.prior())
        z, log_q, log_lik = self._terms(x, noise)
        if self.kl == "mc":
            kl = (log_q - self.prior().log_prob(z)).mean(0)
        else:
            kl = self.kl(x, z).mean(0)
        return log_lik.mean(0) - beta * kl

    def iwae(self, x: torch.Tensor, num_samples: int, noise: torch.Tensor | None = None, *,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-datum IWAE bound ``log mean_k w_k`` ``[B]``; its reparameterised gradient is
        the standard (unbiased) IWAE gradient."""
        if noise is None:
            check_floating("x", x)
            noise = self.noise(num_samples, x.shape[0], generator)
        lw = self.log_weights(x, noise)
        return torch.logsumexp(lw, 0) - math.log(lw.shape[0])

    def iwae_dreg_surrogates(self, x: torch.Tensor, noise: torch.Tensor):
        """Surrogate losses whose gradients are the doubly-reparameterised IWAE gradient
        (Tucker et al. 2018) for the encoder and the standard one for the decoder:

            encoder: sum_k w~_k^2 d log w_k / dz_k dz_k / dphi   (log q's parameters stopped)
            decoder: sum_k w~_k   d log w_k / dtheta

        Returns ``(bound [B] detached, encoder_loss, decoder_loss)`` (losses are means over
        the batch, to minimise)."""
        lw = self.log_weights(x, noise, stop_q=True)
        w = torch.softmax(lw.detach(), 0)
        bound = torch.logsumexp(lw.detach(), 0) - math.log(lw.shape[0])
        return bound, -(w * w * lw).sum(0).mean(), -(w * lw).sum(0).mean()

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, num_samples: int = 1000, *, chunk: int = 250,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-sampled ``log p(x)`` ``[B]`` with ``num_samples`` proposals from
        ``q(z | x)`` (the IWAE bound at large K, computed in chunks of samples)."""
        parts = []
        for start in range(0, num_samples, chunk):
            k = min(chunk, num_samples - start)
            parts.append(self.log_weights(x, self.noise(k, x.shape[0], generator)))
        lw = torch.cat(parts)
        return torch.logsumexp(lw, 0) - math.log(num_samples)


def _blame_data(x: torch.Tensor, err: ValueError | None = None) -> None:
    """Name ``x`` when a ``ValueError`` deep in the encoder, the decoder or the KL, or a
    non-finite bound, came from NaN or infinite data. ``x`` is read only after such a
    failure, not on the happy path (``fit`` validates its data once, up front)."""
    if not all_finite(x):
        raise NonFiniteError("x contains NaN or infinity; drop or impute those entries "
                             "(the encoder and decoder need finite data)") from err


def _blame_data_if_not_finite(x: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """``bound`` unchanged; if it is not finite and ``x`` is to blame, a NonFiniteError.
    (A model whose weights diverged keeps its non-finite bound: ``fit`` reports that.)"""
    if not all_finite(bound):
        _blame_data(x)
    return bound


def _analytic_kl(q: Distribution, p: Distribution) -> torch.Tensor:
    """``KL[q || p]``; a full-covariance ``q`` against a diagonal Gaussian prior is promoted
    to a ``MultivariateNormal`` pair (torch registers no rule for that mix)."""
    if isinstance(q, MultivariateNormal) and isinstance(p, Independent) and \
            isinstance(p.base_dist, Normal):
        p = MultivariateNormal(p.base_dist.loc.expand(q.loc.shape[-1:]),
                               scale_tril=torch.diag_embed(p.base_dist.scale.expand(
                                   q.loc.shape[-1:])))
    return kl_divergence(q, p)


def _log_q_detached(encoder, x, z):
    if not isinstance(encoder, GaussianEncoder):
        raise ArgumentTypeError("doubly-reparameterised gradients need a GaussianEncoder (log q "
                                "must be evaluable at z with the encoder's outputs detached)")
    mu, p = encoder.params(x)
    mu, p = mu.detach(), p.detach()
    if encoder.covariance == "diagonal":
        return Independent(Normal(mu, torch.exp(0.5 * p)), 1).log_prob(z)
    return MultivariateNormal(mu, scale_tril=p).log_prob(z)

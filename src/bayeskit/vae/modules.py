"""Swappable VAE parts: encoders (inference networks) and decoders (likelihoods).

Every encoder maps ``x`` ``[B, D]`` to an approximate posterior and draws reparameterised
samples from *explicit* noise, so each stochastic step is reproducible and the
reparameterisation is visible:

    noise = encoder.noise(num_samples, batch, generator)   # e.g. eps ~ N(0, I)
    z, log_q = encoder.sample(x, noise)                    # z = mu + sigma * eps, ...

``z``: ``[K, B, latent...]``, ``log_q``: ``[K, B]``. Decoders map ``z`` to a
``torch.distributions`` object over ``x`` whose ``log_prob`` sums over features.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    MultivariateNormal,
    Normal,
    RelaxedOneHotCategorical,
)

from bayeskit.distributions.flow_layers import AffineCoupling, Permute, SplineCoupling
from bayeskit.distributions.gaussian import diagonal_gauss_kl, gauss_kl
from bayeskit.errors import ArgumentValueError
from bayeskit.nn import mlp
from bayeskit.validation import as_int, as_scalar, check_choice

__all__ = ["mlp", "GaussianEncoder", "FlowEncoder", "RelaxedCategoricalEncoder",
           "BernoulliDecoder", "GaussianDecoder", "CategoricalDecoder"]


def random_on(draw, shape, generator, dtype, device) -> torch.Tensor:
    """``draw(shape)`` from ``generator`` on the generator's device, then moved to ``device``:
    a CPU generator drives a CUDA model with the same stream as on the CPU."""
    where = generator.device if generator is not None else device
    out = draw(shape, generator=generator, dtype=dtype, device=where)
    return out if device is None else out.to(device)


class GaussianEncoder(nn.Module):
    """``q(z | x) = N(mu(x), Sigma(x))``.

    ``covariance="diagonal"``: the network outputs ``mu`` and ``log sigma^2`` (the log-variance
    parameterisation: unconstrained, and ``sigma = exp(log_var / 2)`` never underflows to an
    invalid value). ``"full"``: a lower-triangular Cholesky factor with a positive
    (softplus) diagonal.

    Examples:
        >>> enc = GaussianEncoder(64, 2)
        >>> x = torch.rand(5, 64)
        >>> z, log_q = enc.sample(x, enc.noise(3, 5, torch.Generator().manual_seed(0)))
        >>> z.shape, log_q.shape
        (torch.Size([3, 5, 2]), torch.Size([3, 5]))
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden: tuple[int, ...] = (256,),
                 covariance: str = "diagonal"):
        super().__init__()
        check_choice(covariance, "covariance", ("diagonal", "full"))
        input_dim = as_int(input_dim, "input_dim", positive=True)
        latent_dim = as_int(latent_dim, "latent_dim", positive=True)
        self.input_dim, self.latent_dim, self.covariance = input_dim, latent_dim, covariance
        n_out = 2 * latent_dim if covariance == "diagonal" else \
            latent_dim + latent_dim * (latent_dim + 1) // 2
        self.net = mlp((input_dim, *hidden, n_out))

    @property
    def feature_dim(self) -> int:
        """Width of :meth:`features` (the last hidden layer, or the input without one)."""
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        return linears[-1].in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's activations ``[..., feature_dim]`` (a flow encoder's
        context)."""
        for layer in itertools.islice(self.net, len(self.net) - 1):  # no sliced Sequential
            x = layer(x)
        return x

    def params(self, x: torch.Tensor, features: torch.Tensor | None = None):
        """``(mu, log-variance)`` or ``(mu, scale_tril)``; pass ``features`` when already
        computed."""
        out = self.net[-1](self.features(x) if features is None else features)
        mu, rest = out.split((self.latent_dim, out.shape[-1] - self.latent_dim), -1)
        if self.covariance == "diagonal":
            return mu, rest  # rest = log variance
        L = torch.zeros(*x.shape[:-1], self.latent_dim, self.latent_dim, dtype=out.dtype,
                        device=out.device)
        rows, cols = torch.tril_indices(self.latent_dim, self.latent_dim)
        L[..., rows, cols] = rest
        diag = nn.functional.softplus(L.diagonal(dim1=-2, dim2=-1)) + 1e-5
        return mu, L.tril(-1) + torch.diag_embed(diag)

    def distribution(self, x: torch.Tensor) -> Distribution:
        return self._distribution(*self.params(x))

    def _distribution(self, mu: torch.Tensor, p: torch.Tensor) -> Distribution:
        if self.covariance == "diagonal":
            return Independent(Normal(mu, torch.exp(0.5 * p)), 1)
        return MultivariateNormal(mu, scale_tril=p)

    def noise(self, num_samples: int, batch: int, generator: torch.Generator | None = None,
              dtype=torch.float32, device: torch.device | None = None) -> torch.Tensor:
        return random_on(torch.randn, (num_samples, batch, self.latent_dim), generator, dtype,
                         device)

    def sample(self, x: torch.Tensor, noise: torch.Tensor,
               features: torch.Tensor | None = None):
        """``(z [K, B, L], log q(z | x) [K, B])`` from ``noise`` ``[K, B, L]``."""
        return self._sample(*self.params(x, features), noise)

    def sample_and_posterior(self, x: torch.Tensor, noise: torch.Tensor):
        """``(z, log q(z | x), q(. | x))`` from one pass of the network: what an ELBO with
        the analytic KL needs (calling :meth:`sample` and :meth:`distribution` would run
        the encoder twice)."""
        mu, p = self.params(x)
        return (*self._sample(mu, p, noise), self._distribution(mu, p))

    def sample_and_kl(self, x: torch.Tensor, noise: torch.Tensor):
        """``(z [K, B, L], KL[q(z | x) || N(0, I)] [B])`` from one pass of the network, in
        closed form (:func:`~bayeskit.distributions.gaussian.diagonal_gauss_kl`, or
        :func:`~bayeskit.distributions.gaussian.gauss_kl` for ``covariance="full"``): an
        ELBO's analytic KL against the standard normal prior, with no distribution objects
        and no ``log q`` formed.

        Examples:
            >>> enc = GaussianEncoder(64, 2)
            >>> x = torch.rand(5, 64)
            >>> z, kl = enc.sample_and_kl(x, enc.noise(3, 5, torch.Generator().manual_seed(0)))
            >>> z.shape, kl.shape, bool((kl >= 0).all())
            (torch.Size([3, 5, 2]), torch.Size([5]), True)
        """
        mu, p = self.params(x)
        kl = diagonal_gauss_kl(mu, p) if self.covariance == "diagonal" else gauss_kl(mu, p)
        return self._reparameterize(mu, p, noise), kl

    def _reparameterize(self, mu: torch.Tensor, p: torch.Tensor, noise: torch.Tensor):
        if self.covariance == "diagonal":
            return mu + torch.exp(0.5 * p) * noise
        return mu + (p @ noise.unsqueeze(-1)).squeeze(-1)

    def _sample(self, mu: torch.Tensor, p: torch.Tensor, noise: torch.Tensor):
        z = self._reparameterize(mu, p, noise)
        if self.covariance == "diagonal":
            log_q = (-0.5 * noise**2 - 0.5 * p - 0.5 * math.log(2 * math.pi)).sum(-1)
        else:
            log_q = (-0.5 * noise**2).sum(-1) - p.diagonal(dim1=-2, dim2=-1).log().sum(-1) \
                - 0.5 * self.latent_dim * math.log(2 * math.pi)
        return z, log_q


class FlowEncoder(nn.Module):
    """A Gaussian encoder enriched by a conditional flow: ``z0 ~ q0(z | x)`` from ``base``,
    then ``num_flows`` coupling layers (coordinates reversed between them) whose networks
    also read the context ``h(x)``, the base encoder's last hidden features, so the flow's
    shape adapts to each ``x``:

        log q(z | x) = log q0(z0 | x) - sum_l log|det dT_l(. ; h(x))|

    accumulated on the forward pass.

    Args:
        base: the Gaussian encoder (its features are the context).
        num_flows: coupling layers.
        hidden: hidden widths of each layer's network.
        kind: ``"realnvp"`` (affine coupling) or ``"nsf"`` (rational-quadratic spline
            coupling with linear tails; ``bins``, ``bound`` as in
            :class:`~bayeskit.distributions.flow_layers.SplineCoupling`).

    Examples:
        >>> enc = FlowEncoder(GaussianEncoder(6, 2, hidden=(8,)), hidden=(8,), kind="nsf")
        >>> z, log_q = enc.sample(torch.rand(5, 6), enc.noise(3, 5))
        >>> z.shape, log_q.shape
        (torch.Size([3, 5, 2]), torch.Size([3, 5]))
    """

    def __init__(self, base: GaussianEncoder, num_flows: int = 2, hidden: tuple[int, ...] = (64,),
                 kind: str = "realnvp", bins: int = 8, bound: float = 4.0):
        super().__init__()
        if base.latent_dim < 2:
            raise ArgumentValueError("a coupling flow needs latent_dim >= 2")
        check_choice(kind, "kind", ("realnvp", "nsf"))
        num_flows = as_int(num_flows, "num_flows", positive=True)
        self.base, self.kind = base, kind
        self.input_dim, self.latent_dim = base.input_dim, base.latent_dim
        c = base.feature_dim
        if kind == "realnvp":
            self.layers = [AffineCoupling(base.latent_dim, hidden, context_dim=c)
                           for _ in range(num_flows)]
        else:
            self.layers = [SplineCoupling(base.latent_dim, hidden, bins=bins, bound=bound,
                                          context_dim=c) for _ in range(num_flows)]
        self.nets = nn.ModuleList([t.module for t in self.layers])
        self.reverse = Permute(torch.arange(base.latent_dim - 1, -1, -1))

    def transforms(self, x: torch.Tensor, features: torch.Tensor | None = None) -> list:
        """The flow for inputs ``x`` ``[B, D]``: ``[T_1, reverse, T_2, reverse, ...]`` mapping
        ``z0`` ``[..., B, L]`` to ``z`` (``TransformedDistribution(base.distribution(x),
        transforms(x))`` is ``q(z | x)``)."""
        h = self.base.features(x) if features is None else features
        parts = []
        for t in self.layers:
            parts += [t.conditioned(h), self.reverse]
        return parts

    def noise(self, num_samples, batch, generator=None, dtype=torch.float32, device=None):
        return self.base.noise(num_samples, batch, generator, dtype, device)

    def sample(self, x: torch.Tensor, noise: torch.Tensor):
        h = self.base.features(x)
        z, log_q = self.base.sample(x, noise, features=h)
        for t in self.transforms(x, features=h):
            z_next = t(z)
            log_q = log_q - t.log_abs_det_jacobian(z, z_next)
            z = z_next
        return z, log_q


class RelaxedCategoricalEncoder(nn.Module):
    """``num_variables`` Concrete / Gumbel-softmax latents with ``num_categories`` each, at
    ``temperature``: ``z = softmax((logits + g) / T)`` with Gumbel noise
    ``g = -log(-log u)``, ``u ~ U(0, 1)``; ``z``: ``[K, B, num_variables, num_categories]``.

    Examples:
        >>> encoder = RelaxedCategoricalEncoder(64, num_variables=3, num_categories=4, hidden=(8,))
        >>> noise = encoder.noise(5, 2, generator=torch.Generator().manual_seed(0))  # K = 5, B = 2
        >>> z, log_q = encoder.sample(torch.zeros(2, 64), noise)
        >>> z.shape, log_q.shape, bool(torch.allclose(z.sum(-1), torch.ones(5, 2, 3)))
        (torch.Size([5, 2, 3, 4]), torch.Size([5, 2]), True)
    """

    def __init__(self, input_dim: int, num_variables: int, num_categories: int,
                 hidden: tuple[int, ...] = (256,), temperature: float = 0.5):
        super().__init__()
        temperature = as_scalar(temperature, "temperature", positive=True)
        input_dim = as_int(input_dim, "input_dim", positive=True)
        num_variables = as_int(num_variables, "num_variables", positive=True)
        num_categories = as_int(num_categories, "num_categories", low=2)
        self.input_dim = input_dim
        self.num_variables, self.num_categories = num_variables, num_categories
        self.latent_dim = num_variables * num_categories
        self.temperature = temperature
        self.net = mlp((input_dim, *hidden, self.latent_dim))

    def logits(self, x):
        return self.net(x).reshape(*x.shape[:-1], self.num_variables, self.num_categories)

    def distribution(self, x) -> Distribution:
        return Independent(RelaxedOneHotCategorical(torch.tensor(self.temperature),
                                                    logits=self.logits(x)), 1)

    def noise(self, num_samples, batch, generator=None, dtype=torch.float32, device=None):
        u = random_on(torch.rand, (num_samples, batch, self.num_variables, self.num_categories),
                      generator, dtype, device)
        return u.clamp(1e-12, 1 - 1e-7)

    def sample(self, x, noise):
        logits = self.logits(x)
        gumbel = -torch.log(-torch.log(noise))
        z = torch.softmax((logits + gumbel) / self.temperature, -1)
        z = z.clamp_min(torch.finfo(z.dtype).tiny)
        z = z / z.sum(-1, keepdim=True)
        return z, self.distribution(x).log_prob(z)

    def prior(self) -> Distribution:
        logits = torch.zeros(self.num_variables, self.num_categories)
        return Independent(RelaxedOneHotCategorical(torch.tensor(self.temperature),
                                                    logits=logits), 1)


def _net_on_rows(net: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """A decoder's network on the latents ``z`` ``[K, B, L]`` (or ``[K, B, V, C]``, the
    relaxed-categorical latents, flattened to ``V * C``) as one ``[K * B, L]`` matrix: each
    linear layer is then one ``addmm`` without a reshape on either side, in the forward and
    the backward pass. Returns ``[K, B, out]`` (``[B, out]`` for ``[B, L]`` latents)."""
    if z.dim() > 3:
        z = z.flatten(-2)
    if z.dim() <= 2:
        return net(z)
    return net(z.reshape(-1, z.shape[-1])).unflatten(0, z.shape[:-1])


class BernoulliDecoder(nn.Module):
    """``p(x | z) = prod_d Bernoulli(x_d; sigmoid(logit_d(z)))`` (stable: works on logits).

    Examples:
        >>> p = BernoulliDecoder(latent_dim=2, output_dim=64)(torch.zeros(3, 2))  # z: [B, L]
        >>> p.batch_shape, p.event_shape, p.log_prob(torch.ones(3, 64)).shape
        (torch.Size([3]), torch.Size([64]), torch.Size([3]))
    """

    def __init__(self, latent_dim: int, output_dim: int, hidden: tuple[int, ...] = (256,)):
        super().__init__()
        latent_dim = as_int(latent_dim, "latent_dim", positive=True)
        output_dim = as_int(output_dim, "output_dim", positive=True)
        self.output_dim = output_dim
        self.net = mlp((latent_dim, *hidden, output_dim))

    def forward(self, z: torch.Tensor) -> Distribution:
        return Independent(Bernoulli(logits=_net_on_rows(self.net, z),
                                     validate_args=False), 1)


class GaussianDecoder(nn.Module):
    """``p(x | z) = N(mu(z), sigma^2 I)``; ``sigma`` learned (per feature) or fixed.

    Examples:
        >>> p = GaussianDecoder(latent_dim=2, output_dim=4, sigma=0.1)(torch.zeros(3, 2))
        >>> p.event_shape, round(float(p.base_dist.scale[0, 0]), 6)
        (torch.Size([4]), 0.1)
    """

    def __init__(self, latent_dim: int, output_dim: int, hidden: tuple[int, ...] = (256,),
                 sigma: float | None = None):
        super().__init__()
        latent_dim = as_int(latent_dim, "latent_dim", positive=True)
        output_dim = as_int(output_dim, "output_dim", positive=True)
        self.output_dim = output_dim
        self.net = mlp((latent_dim, *hidden, output_dim))
        if sigma is None:
            self.log_sigma = nn.Parameter(torch.zeros(output_dim))
        else:
            sigma = as_scalar(sigma, "sigma", positive=True)
            self.register_buffer("log_sigma", torch.full((output_dim,), math.log(sigma)))

    def forward(self, z: torch.Tensor) -> Distribution:
        mu = _net_on_rows(self.net, z)
        return Independent(Normal(mu, self.log_sigma.exp()), 1)


class CategoricalDecoder(nn.Module):
    """``p(x | z) = prod_d Categorical(x_d; softmax(logits_d(z)))`` for integer-valued
    features ``x_d`` in ``{0, ..., num_classes - 1}`` (e.g. 17 grey levels of the digits).

    Examples:
        >>> p = CategoricalDecoder(latent_dim=2, output_dim=64, num_classes=17)(torch.zeros(3, 2))
        >>> p.event_shape, p.sample().max() < 17
        (torch.Size([64]), tensor(True))
    """

    def __init__(self, latent_dim: int, output_dim: int, num_classes: int,
                 hidden: tuple[int, ...] = (256,)):
        super().__init__()
        latent_dim = as_int(latent_dim, "latent_dim", positive=True)
        output_dim = as_int(output_dim, "output_dim", positive=True)
        num_classes = as_int(num_classes, "num_classes", low=2)
        self.output_dim, self.num_classes = output_dim, num_classes
        self.net = mlp((latent_dim, *hidden, output_dim * num_classes))

    def forward(self, z: torch.Tensor) -> Distribution:
        logits = _net_on_rows(self.net, z)
        return Independent(Categorical(logits=logits.unflatten(-1, (self.output_dim,
                                                                    self.num_classes))), 1)

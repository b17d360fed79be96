"""Adversarial KL minimisation between an implicit model and a target known by samples.

Minimise ``KL[p_phi || q]`` where ``p_phi`` is the law of ``G_phi(z)``, ``z ~ noise``, and
``q`` is available only through samples (as in adversarial variational Bayes / AffGAN).
A critic ``T_theta`` is trained with the binary cross-entropy to tell ``G_phi(z)`` (label 1)
from samples of ``q`` (label 0), so ``T_theta ~ log p_phi / q``; the generator then takes a
gradient step on ``E_z[T_theta(G_phi(z))]``, the current KL estimate. The two alternate.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bayeskit.nn import mlp
from bayeskit.validation import as_int, as_scalar, as_tensor, check_callable, check_instance

__all__ = ["adversarial_kl_minimisation"]


def adversarial_kl_minimisation(
    generator: nn.Module,
    noise: Callable[[int, torch.Generator], torch.Tensor],
    target_samples: torch.Tensor,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    critic_hidden: tuple[int, ...] = (32, 32),
    critic_steps: int = 2,
    lr_generator: float = 1e-2,
    lr_critic: float = 3e-3,
    seed: int = 0,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> dict:
    """Train ``generator`` so that ``G(z)`` matches ``target_samples`` in KL.

    Args:
        generator: ``nn.Module`` mapping noise ``[B, K]`` to samples ``[B, D]``.
        noise: ``(n, torch.Generator) -> [n, K]`` noise sampler.
        target_samples: ``[N, D]`` samples of ``q``.
        callback: called as ``callback(step, generator)`` after every generator step.

    Returns:
        History with the critic's KL estimate ``E[T(G(z))]`` per step.

    Examples:
        >>> G = torch.nn.Linear(1, 1, dtype=torch.float64)  # G(z) = w z + b, z ~ N(0, 1)
        >>> _ = torch.nn.init.constant_(G.weight, 0.5), torch.nn.init.zeros_(G.bias)
        >>> target = 2 * torch.randn(2000, 1, dtype=torch.float64,
        ...                          generator=torch.Generator().manual_seed(0))  # q = N(0, 2^2)
        >>> noise = lambda n, g: torch.randn(n, 1, dtype=torch.float64, generator=g)
        >>> history = adversarial_kl_minimisation(G, noise, target, steps=300, seed=0)
        >>> len(history["kl_estimate"]), abs(abs(float(G.weight.detach())) - 2) < 0.3  # |w| -> 2
        (300, True)
    """
    check_instance(generator, "generator", nn.Module, "a torch.nn.Module (the generator G)")
    check_callable(noise, "noise")
    x_q = as_tensor(target_samples, "target_samples", ndim=2, min_rows=2)
    steps = as_int(steps, "steps", nonnegative=True)
    batch_size = as_int(batch_size, "batch_size", positive=True)
    critic_steps = as_int(critic_steps, "critic_steps", positive=True)
    lr_generator = as_scalar(lr_generator, "lr_generator", positive=True)
    lr_critic = as_scalar(lr_critic, "lr_critic", positive=True)
    seed = as_int(seed, "seed", nonnegative=True)
    if callback is not None:
        check_callable(callback, "callback")
    g = torch.Generator().manual_seed(seed)
    critic = mlp((x_q.shape[1], *critic_hidden, 1), dtype=x_q.dtype, generator=g)
    opt_c = torch.optim.Adam(critic.parameters(), lr=lr_critic)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr_generator)
    bce = nn.BCEWithLogitsLoss()
    history = {"kl_estimate": []}
    for step in range(steps):
        for _ in range(critic_steps):
            with torch.no_grad():
                fake = generator(noise(batch_size, g))
            real = x_q[torch.randint(0, x_q.shape[0], (batch_size,), generator=g)]
            logits = critic(torch.cat([fake, real])).squeeze(-1)
            labels = torch.cat([torch.ones(batch_size, dtype=logits.dtype),
                                torch.zeros(batch_size, dtype=logits.dtype)])
            loss_c = bce(logits, labels)
            opt_c.zero_grad()
            loss_c.backward()
            opt_c.step()
        kl = critic(generator(noise(batch_size, g))).mean()
        opt_g.zero_grad()
        kl.backward()
        opt_g.step()
        history["kl_estimate"].append(float(kl.detach()))
        if callback is not None:
            callback(step, generator)
    return history

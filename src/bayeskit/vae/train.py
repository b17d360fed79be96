"""Training: minibatch stochastic optimisation of the ELBO or the IWAE bound, with
validation, early stopping, atomic checkpoints and data-parallel scale-out.

Reproducibility: the shuffling and all noise of epoch ``e`` come from a generator seeded
with ``(seed, e)``, and the noise of a batch is drawn for the *whole* batch on every
process, so a resumed run, and a run split over ``torchrun`` processes, repeat the
single-process run (up to floating-point summation order).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from bayeskit.training import (
    allreduce_grads,
    allreduce_sum,
    atomic_save,
    epoch_generator,
    local_rows,
    world,
)
from bayeskit.vae.objectives import VAE, DensityRatioKL, check_data

__all__ = ["fit", "TrainingDivergedError"]

log = logging.getLogger(__name__)
OBJECTIVES = ("elbo", "iwae", "iwae-dreg")


class TrainingDivergedError(ValueError):
    """The objective became NaN/inf; the last good checkpoint (if any) is untouched."""


@torch.no_grad()
def evaluate(model: VAE, data: torch.Tensor, *, num_samples: int = 1, iwae_samples: int = 0,
             batch_size: int = 500, seed: int = 12345) -> dict[str, float]:
    """Mean per-datum ELBO (and IWAE bound with ``iwae_samples``) over ``data``, with a
    fixed generator so repeated evaluations are comparable."""
    data = check_data(model, data)
    g = torch.Generator().manual_seed(seed)
    elbo, iwae = 0.0, 0.0
    for batch in data.split(batch_size):
        elbo += float(model.elbo(batch, num_samples=num_samples, generator=g).sum())
        if iwae_samples:
            iwae += float(model.log_likelihood(batch, iwae_samples, generator=g).sum())
    out = {"elbo": elbo / len(data)}
    if iwae_samples:
        out["iwae"] = iwae / len(data)
    return out


def fit(model: VAE, data, *, epochs: int = 50, batch_size: int = 100, objective: str = "elbo",
        num_samples: int = 1, beta: float = 1.0, optimizer: str = "adam", lr: float = 1e-3,
        validation=None, patience: int | None = None, checkpoint: str | Path | None = None,
        resume: bool = True, seed: int = 0, critic_lr: float = 1e-3, critic_steps: int = 1,
        transform=None, progress: bool = True) -> dict:
    """Train ``model`` on ``data`` ``[N, D]``; returns the history.

    Args:
        objective: ``"elbo"`` (``num_samples`` per datum, ``beta``-weighted KL), ``"iwae"``
            (``num_samples`` importance samples) or ``"iwae-dreg"`` (IWAE with
            doubly-reparameterised encoder gradients; Gaussian encoders).
        optimizer: ``"adam"`` or ``"rmsprop"``.
        validation: ``[M, D]`` data for the validation ELBO each epoch; with ``patience``,
            training stops after that many epochs without improvement and the best
            parameters are restored.
        checkpoint: file written atomically after every epoch (model, optimisers, history);
            with ``resume=True`` an existing file is continued from (loaded with
            ``weights_only=True``).
        transform: ``transform(batch, generator) -> batch`` applied to every minibatch, e.g.
            :func:`bayeskit.data.dynamic_binarize`.

    Under ``torchrun`` (``torch.distributed`` initialised) every process takes its slice
    of each global batch and gradients are summed across processes (gloo on CPU, nccl on
    GPU), the same arithmetic as ``DistributedDataParallel``; rank 0 writes checkpoints.

    Raises:
        TrainingDivergedError: the objective became non-finite; the checkpoint keeps the
            last good epoch.
    """
    from tqdm.auto import tqdm

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if optimizer not in ("adam", "rmsprop"):
        raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {optimizer!r}")
    if epochs < 0 or batch_size < 1 or num_samples < 1:
        raise ValueError("epochs >= 0, batch_size >= 1 and num_samples >= 1 are required")
    data = check_data(model, data)
    validation = check_data(model, validation) if validation is not None else None
    rank, _ = world()

    adversarial = isinstance(model.kl, DensityRatioKL)
    vae_params = [p for n, p in model.named_parameters() if not n.startswith("kl.")]
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.RMSprop
    opt = opt_cls(vae_params, lr=lr)
    critic_opt = opt_cls(model.kl.parameters(), lr=critic_lr) if adversarial else None
    history: dict = {"epoch": [], "train_loss": [], "val_elbo": [], "seconds": []}
    start_epoch, best, best_state, stale = 0, -math.inf, None, 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.exists():
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if critic_opt is not None:
            critic_opt.load_state_dict(state["critic_optimizer"])
        history = state["history"]
        start_epoch = int(state["epoch"]) + 1
        best, stale = float(state["best"]), int(state["stale"])
        best_state = state.get("best_state")
        log.info("resuming from %s at epoch %d", path, start_epoch)

    n = len(data)
    bar = tqdm(range(start_epoch, epochs), disable=not progress or rank != 0, desc="VAE")
    for epoch in bar:
        t0 = time.perf_counter()
        g = epoch_generator(seed, epoch)
        order = torch.randperm(n, generator=g)
        total, count = 0.0, 0
        model.train()
        for idx in order.split(batch_size):
            batch = data[idx]
            if transform is not None:
                batch = transform(batch, g)
            B = len(idx)
            noise = model.noise(num_samples, B, g)
            rows = local_rows(B)
            x, eps = batch[rows], noise[:, rows]
            scale = len(rows) / B  # this process's share of the batch mean
            if adversarial:
                prior_z = _prior_sample(model, num_samples, B, g)[:, rows]
                for _ in range(critic_steps):
                    with torch.no_grad():
                        z_q, _ = model.encoder.sample(x, eps)
                    critic_opt.zero_grad()
                    (scale * model.kl.loss(x, z_q, prior_z)).backward()
                    allreduce_grads(model.kl.parameters())
                    critic_opt.step()
            opt.zero_grad()
            try:
                value = _step(model, objective, x, eps, num_samples, beta, scale, vae_params)
            except ValueError as err:  # torch.distributions rejects NaN parameters
                if "invalid values" not in str(err):
                    raise
                value = torch.tensor(math.nan)
            allreduce_grads(vae_params)
            loss_sum = -float(value.detach().sum())
            if not math.isfinite(loss_sum):
                raise TrainingDivergedError(
                    f"the {objective} became non-finite at epoch {epoch}; lower the learning "
                    f"rate or check the data" + (f"; the last good checkpoint is {path}"
                                                 if path is not None and path.exists() else ""))
            opt.step()
            total += loss_sum
            count += len(rows)
        total, count = allreduce_sum(total, count)
        model.eval()
        val = evaluate(model, validation)["elbo"] if validation is not None else math.nan
        history["epoch"].append(epoch)
        history["train_loss"].append(total / count)
        history["val_elbo"].append(val)
        history["seconds"].append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{total / count:.3f}", val=f"{val:.3f}")
        stop = False
        if validation is not None and patience is not None:
            if val > best:
                best, stale = val, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                stop = stale >= patience
        if path is not None and rank == 0:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
                     "history": history, "epoch": epoch, "best": best, "stale": stale,
                     "best_state": best_state}
            if critic_opt is not None:
                state["critic_optimizer"] = critic_opt.state_dict()
            atomic_save(state, path)
        if stop:
            log.info("early stopping at epoch %d (best validation ELBO %.4f)", epoch, best)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _step(model, objective, x, eps, num_samples, beta, scale, vae_params):
    """Gradients of this process's share of the batch objective; returns per-datum values."""
    if objective == "iwae-dreg":
        bound, enc_loss, dec_loss = model.iwae_dreg_surrogates(x, eps)
        enc = list(model.encoder.parameters())
        rest = [p for p in vae_params if all(p is not q for q in enc)]
        g_enc = torch.autograd.grad(scale * enc_loss, enc, retain_graph=True)
        g_rest = torch.autograd.grad(scale * dec_loss, rest, allow_unused=True)
        for p, gr in zip(enc + rest, list(g_enc) + list(g_rest), strict=True):
            p.grad = gr
        return bound
    value = model.elbo(x, eps, beta=beta) if objective == "elbo" else \
        model.iwae(x, num_samples, eps)
    (-scale * value.mean()).backward()
    return value


def _prior_sample(model: VAE, num_samples: int, batch: int, g: torch.Generator):
    """Reproducible prior draws for the critic (standard normal unless a custom prior)."""
    prior = model.prior()
    if model._prior is None and not hasattr(model.encoder, "num_categories"):
        return torch.randn(num_samples, batch, model.latent_dim, generator=g)
    return prior.sample((num_samples, batch))

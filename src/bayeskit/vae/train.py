"""Training: minibatch stochastic optimisation of the ELBO or the IWAE bound, with
validation, early stopping, atomic checkpoints and data-parallel scale-out.

Reproducibility: the shuffling and all noise of epoch ``e`` come from a generator seeded
with ``(seed, e)``, and the noise of a batch is drawn for the *whole* batch on every
process, so a resumed run, and a run split over ``torchrun`` processes, repeat the
single-process run (up to floating-point summation order).
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import torch

from bayeskit.errors import ArgumentTypeError, NonFiniteError, ShapeError
from bayeskit.training import Checkpoint, allreduce_grads, fingerprint
from bayeskit.training.trainer import TrainingDivergedError, make_optimizer, train
from bayeskit.vae.objectives import VAE, DensityRatioKL, check_data
from bayeskit.validation import as_int, as_scalar, check_choice

__all__ = ["fit", "TrainingDivergedError"]

log = logging.getLogger(__name__)
OBJECTIVES = ("elbo", "iwae", "iwae-dreg")


@torch.no_grad()
def evaluate(model: VAE, data: torch.Tensor, *, num_samples: int = 1, iwae_samples: int = 0,
             batch_size: int = 500, seed: int = 12345) -> dict[str, float]:
    """Mean per-datum ELBO (and IWAE bound with ``iwae_samples``) over ``data``, with a
    fixed generator so repeated evaluations are comparable.

    Examples:
        >>> from bayeskit.vae import VAE, BernoulliDecoder, GaussianEncoder
        >>> model = VAE(GaussianEncoder(64, 2, (16,)), BernoulliDecoder(2, 64, (16,)))
        >>> x = (torch.rand(100, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
        >>> scores = evaluate(model, x[:20], iwae_samples=5)  # nats per datum
        >>> sorted(scores), scores["iwae"] >= scores["elbo"] - 1.0
        (['elbo', 'iwae'], True)
    """
    data = check_data(model, data)
    num_samples = as_int(num_samples, "num_samples", positive=True)
    iwae_samples = as_int(iwae_samples, "iwae_samples", nonnegative=True)
    batch_size = as_int(batch_size, "batch_size", positive=True)
    seed = as_int(seed, "seed", nonnegative=True)
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
        resume: bool = True, overwrite: bool = False, seed: int = 0, critic_lr: float = 1e-3,
        critic_steps: int = 1, transform=None, progress: bool | None = None) -> dict:
    """Train ``model`` on ``data`` ``[N, D]``; returns the history.

    Args:
        objective: ``"elbo"`` (``num_samples`` per datum, ``beta``-weighted KL), ``"iwae"``
            (``num_samples`` importance samples) or ``"iwae-dreg"`` (IWAE with
            doubly-reparameterised encoder gradients; Gaussian encoders).
        optimizer: ``"adam"`` or ``"rmsprop"``.
        validation: ``[M, D]`` data for the validation ELBO each epoch; with ``patience``,
            training stops after that many epochs without improvement and the best
            parameters are restored.
        checkpoint: file written atomically after every epoch (model, optimisers, history)
            with fingerprints of the data and settings; an existing file of the same run is
            continued from (``resume=True``), one of other data or settings is refused, and
            with ``resume=False`` an existing file is refused unless ``overwrite=True`` (see
            :class:`bayeskit.training.Checkpoint`).
        transform: ``transform(batch, generator) -> batch`` applied to every minibatch, e.g.
            :func:`bayeskit.data.dynamic_binarize`.

    Under ``torchrun`` (``torch.distributed`` initialised) every process takes its slice
    of each global batch and gradients are summed across processes (gloo on CPU, nccl on
    GPU), the same arithmetic as ``DistributedDataParallel``; rank 0 writes checkpoints.

    Raises:
        TrainingDivergedError: the objective became non-finite; the checkpoint keeps the
            last good epoch.

    Examples:
        >>> from bayeskit.vae import VAE, BernoulliDecoder, GaussianEncoder
        >>> model = VAE(GaussianEncoder(64, 2, (16,)), BernoulliDecoder(2, 64, (16,)))
        >>> x = (torch.rand(100, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
        >>> history = fit(model, x, epochs=2, batch_size=50, progress=False)
        >>> len(history["train_loss"]), sorted(history)[:3]
        (2, ['epoch', 'seconds', 'train_loss'])
    """
    check_choice(objective, "objective", OBJECTIVES)
    check_choice(optimizer, "optimizer", ("adam", "rmsprop"))
    epochs = as_int(epochs, "epochs", nonnegative=True)
    batch_size = as_int(batch_size, "batch_size", positive=True)
    num_samples = as_int(num_samples, "num_samples", positive=True)
    beta = as_scalar(beta, "beta", nonnegative=True)
    critic_steps = as_int(critic_steps, "critic_steps", nonnegative=True)
    if patience is not None:
        patience = as_int(patience, "patience", nonnegative=True)
    data = check_data(model, data)
    validation = check_data(model, validation) if validation is not None else None

    adversarial = isinstance(model.kl, DensityRatioKL)
    vae_params = [p for n, p in model.named_parameters() if not n.startswith("kl.")]
    opt = make_optimizer(optimizer, vae_params, lr)
    critic_opt = make_optimizer(optimizer, model.kl.parameters(), critic_lr) \
        if adversarial else None
    ckpt = None if checkpoint is None else Checkpoint(
        checkpoint, kind="vae", data=fingerprint(data), resume=resume, overwrite=overwrite,
        settings=fingerprint(batch_size=batch_size, objective=objective,
                             num_samples=num_samples, beta=beta, optimizer=optimizer, lr=lr,
                             seed=seed, critic_lr=critic_lr, critic_steps=critic_steps,
                             validation=None if validation is None else fingerprint(validation)))

    def loss_fn(batch, rows, g):
        (batch,) = batch
        if transform is not None:
            batch = _check_transformed(transform(batch, g), data)
        B = batch.shape[0]
        noise = model.noise(num_samples, B, g)
        # this process's rows (all of them on one process: no gather)
        x, eps = (batch, noise) if len(rows) == B else (batch[rows], noise[:, rows])
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
        try:
            return _step(model, objective, x, eps, num_samples, beta, scale, vae_params)
        except ValueError as err:  # NaN parameters: torch.distributions or the KL refuse them
            if not isinstance(err, NonFiniteError) and "invalid values" not in str(err):
                raise
            return torch.tensor(math.nan)

    def validate():
        return -evaluate(model, validation)["elbo"]

    hist = train(model, loss_fn, (data,), epochs=epochs, batch_size=batch_size, optimizer=opt,
                 params=vae_params, seed=seed, validate=validate if validation is not None
                 else None, patience=patience, min_delta=0.0, checkpoint=ckpt,
                 progress=progress, desc=objective, backward=False,
                 extra_optimizers={"critic": critic_opt} if critic_opt is not None else None)
    model.eval()
    n_epochs = len(hist["train_loss"])
    seconds = hist["seconds"]
    return {"epoch": list(range(n_epochs)), "train_loss": hist["train_loss"],
            "val_elbo": ([-v for v in hist["val_loss"]] if validation is not None
                         else [math.nan] * n_epochs),
            "seconds": [b - a for a, b in itertools.pairwise([0.0, *seconds])]}


def _step(model, objective, x, eps, num_samples, beta, scale, vae_params):
    """Gradients of this process's share of the batch loss (the negative mean objective);
    returns that share, detached."""
    if objective == "iwae-dreg":
        bound, enc_loss, dec_loss = model.iwae_dreg_surrogates(x, eps)
        enc = list(model.encoder.parameters())
        rest = [p for p in vae_params if all(p is not q for q in enc)]
        g_enc = torch.autograd.grad(scale * enc_loss, enc, retain_graph=True)
        g_rest = torch.autograd.grad(scale * dec_loss, rest, allow_unused=True)
        for p, gr in zip(enc + rest, list(g_enc) + list(g_rest), strict=True):
            p.grad = gr
        return -scale * bound.mean()
    # the ELBO without elbo()'s argument checks: fit validated the data once and drew the
    # noise itself, and the trainer stops on a non-finite loss
    value = model._elbo(x, eps, beta) if objective == "elbo" else \
        model.iwae(x, num_samples, eps)
    loss = -scale * value.mean()
    loss.backward()
    return loss.detach()


def _check_transformed(batch, data: torch.Tensor) -> torch.Tensor:
    """``transform``'s output: a tensor of the data's row shape and dtype (torch's own
    error inside the encoder would name neither the transform nor the fix)."""
    want = f"transform must return a [B, {data.shape[1]}] {data.dtype} tensor like the batch"
    if not isinstance(batch, torch.Tensor):
        raise ArgumentTypeError(f"{want} it is given, got {type(batch).__name__}")
    if batch.dim() != 2 or batch.shape[1:] != data.shape[1:] or batch.dtype != data.dtype:
        raise ShapeError(f"{want} it is given, got shape {tuple(batch.shape)}, {batch.dtype}")
    return batch


def _prior_sample(model: VAE, num_samples: int, batch: int, g: torch.Generator):
    """Reproducible prior draws for the critic (standard normal unless a custom prior)."""
    prior = model.prior()
    if model._prior is None and not hasattr(model.encoder, "num_categories"):
        return torch.randn(num_samples, batch, model.latent_dim, generator=g)
    return prior.sample((num_samples, batch))

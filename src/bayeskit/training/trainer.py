"""The one minibatch trainer: SVGP, flows (and every model trained by stochastic
gradients on minibatches) call :func:`train`.

Per epoch: the rows are shuffled by a generator seeded with ``(seed, epoch)`` (so a
resumed run, and every process of a ``torchrun`` run, draw the same order); every global
minibatch of ``B`` rows is split across processes (:func:`~bayeskit.training.local_rows`),
each process's ``loss_fn`` returns its share of the batch loss, gradients are summed across
processes and the optimiser steps. After each epoch an optional validation loss decides
early stopping (``patience`` epochs without an improvement of ``min_delta``; the best
parameters are restored at the end), a tqdm bar shows progress (rank 0 only), and the state
goes to the run's :class:`~bayeskit.training.Checkpoint` (rank 0 writes it).

History: ``train_loss`` (per epoch, the mean over minibatches of the whole-batch loss),
``val_loss`` (if validating) and ``seconds`` (cumulative wall time, across resumes).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from bayeskit.errors import ArgumentTypeError, ArgumentValueError, BayeskitError, ShapeError
from bayeskit.training.checkpoint import Checkpoint
from bayeskit.training.parallel import (
    allreduce_grads,
    allreduce_sum,
    epoch_generator,
    local_rows,
    world,
)
from bayeskit.training.progress import progress_bar
from bayeskit.validation import (
    as_int,
    as_scalar,
    check_callable,
    check_choice,
    check_instance,
)

__all__ = ["train", "make_optimizer", "TrainingDivergedError"]


class TrainingDivergedError(BayeskitError, ValueError):
    """The loss became NaN/inf; the last good checkpoint (if any) is untouched.

    Examples:
        >>> issubclass(TrainingDivergedError, ValueError)
        True
    """


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """``"adam"`` or ``"rmsprop"`` over ``params`` with learning rate ``lr`` (``0`` holds
    the parameters fixed).

    Adam is torch's fused implementation where it applies (floating parameters on one CPU or
    CUDA device): one kernel for all parameters instead of ~8 operations per tensor, the
    same arithmetic to rounding (tests/training/test_optimizer.py). On the VAE's 8 tensors
    a step costs 73 instead of 255 us (``benchmarks/bench_vae.py`` prints both).

    Examples:
        >>> opt = make_optimizer("adam", [torch.nn.Parameter(torch.zeros(2))], lr=0.01)
        >>> type(opt).__name__, opt.param_groups[0]["lr"], opt.param_groups[0]["fused"]
        ('Adam', 0.01, True)
    """
    check_choice(name, "optimizer", ("adam", "rmsprop"))
    lr = as_scalar(lr, "lr", nonnegative=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    params = list(params)
    fusable = bool(params) and all(
        isinstance(p, torch.Tensor) and p.is_floating_point() and p.device.type in ("cpu", "cuda")
        for p in params) and len({p.device for p in params}) == 1
    return torch.optim.Adam(params, lr=lr, fused=True if fusable else None)


def _check_data(data) -> None:
    """``data``: a tuple/list of tensors with the same number of rows, or an iterable of
    batches (e.g. a ``DataLoader``)."""
    if isinstance(data, (tuple, list)):
        if not data:
            raise ArgumentValueError("data must hold at least one tensor")
        for i, t in enumerate(data):
            check_instance(t, f"data[{i}]", torch.Tensor, "a torch.Tensor with one row per "
                           "example")
            if t.dim() == 0 or t.shape[0] != data[0].shape[0]:
                raise ShapeError(f"data's tensors must share their number of rows; data[{i}] "
                                 f"has shape {tuple(t.shape)}, data[0] {tuple(data[0].shape)}")
    elif isinstance(data, (str, bytes, torch.Tensor)) or not isinstance(data, Iterable):
        raise ArgumentTypeError(f"data must be a tuple of tensors (rows are examples) or an "
                                f"iterable of batches such as a DataLoader, got "
                                f"{type(data).__name__}")


def _loss_value(loss) -> float:
    """``loss_fn``'s one-element tensor as a float: one scalar read serves both the
    divergence check and the history."""
    if not (isinstance(loss, torch.Tensor) and loss.numel() == 1
            and loss.is_floating_point()):
        what = (f"shape {tuple(loss.shape)}, {loss.dtype}" if isinstance(loss, torch.Tensor)
                else type(loss).__name__)
        raise ArgumentTypeError(f"loss_fn must return a one-element floating-point tensor "
                                f"(this process's share of the batch loss), got {what}")
    return float(loss.detach())


def _batches(data, batch_size: int, g: torch.Generator):
    if isinstance(data, (tuple, list)):
        n = data[0].shape[0]
        order = torch.randperm(n, generator=g).to(data[0].device)
        for idx in order.split(batch_size):
            yield tuple(t[idx] for t in data)
    else:  # an iterable of batches (DataLoader): its own order
        for batch in data:
            yield tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)


def train(model: nn.Module, loss_fn: Callable[..., torch.Tensor],
          data: Sequence[torch.Tensor] | Iterable, *, epochs: int, batch_size: int = 256,
          lr: float = 1e-3, optimizer: str | torch.optim.Optimizer = "adam",
          params: Iterable[nn.Parameter] | None = None, seed: int = 0,
          validate: Callable[[], float] | None = None, patience: int | None = None,
          min_delta: float = 1e-4, max_seconds: float | None = None,
          checkpoint: Checkpoint | None = None, progress: bool | None = None, desc: str = "train",
          callback: Callable[[int], None] | None = None, backward: bool = True,
          extra_optimizers: dict[str, torch.optim.Optimizer] | None = None,
          ) -> dict[str, list[float]]:
    """Train ``model`` by minibatch stochastic optimisation; returns the history.

    Args:
        model: whose ``state_dict`` is checkpointed and restored.
        loss_fn: ``loss_fn(batch, rows, generator)``: ``batch`` is the global minibatch (a
            tuple of ``[B, ...]`` tensors), ``rows`` this process's row indices, and
            ``generator`` the epoch's generator (for any noise the step needs, drawn for
            the whole batch so every process agrees). Returns this process's *share* of
            the batch loss as a one-element tensor (the shares of all processes sum to the
            batch loss).
        backward: ``False`` when ``loss_fn`` sets the gradients itself (then its return
            value is only recorded).
        extra_optimizers: further optimisers (e.g. a critic's) whose state is checkpointed.
        data: tensors with rows to shuffle (tuple of ``[N, ...]``), or an iterable of
            batches (e.g. a ``DataLoader``, which keeps its own order).
        epochs: total epochs (a resumed run continues up to this number).
        optimizer: ``"adam"``, ``"rmsprop"`` or an optimizer instance over ``params``.
        params: parameters to optimise (default all of ``model``'s).
        validate: ``() -> float`` validation loss after each epoch (lower is better).
        patience: stop after this many epochs without improvement (needs ``validate``);
            the best parameters are then restored at the end.
        max_seconds: stop after the epoch that crosses this wall-time budget.
        checkpoint: where to save after every epoch and what to resume from.
        callback: ``callback(epoch)`` after each epoch.

    Examples:
        >>> model = torch.nn.Linear(1, 1, dtype=torch.float64)
        >>> x = torch.linspace(-1, 1, 64, dtype=torch.float64)[:, None]
        >>> def loss_fn(batch, rows, generator):
        ...     xb, yb = (t[rows] for t in batch)
        ...     return ((model(xb) - yb) ** 2).sum() / len(batch[0])
        >>> history = train(model, loss_fn, (x, 2 * x), epochs=300, batch_size=16, lr=0.05)
        >>> round(float(model.weight), 2), history["train_loss"][-1] < 1e-4
        (2.0, True)
    """
    check_instance(model, "model", nn.Module, "a torch.nn.Module")
    check_callable(loss_fn, "loss_fn")
    _check_data(data)
    epochs = as_int(epochs, "epochs", nonnegative=True)
    batch_size = as_int(batch_size, "batch_size", positive=True)
    seed = as_int(seed, "seed", nonnegative=True, high=2**40)
    if patience is not None:
        patience = as_int(patience, "patience", nonnegative=True)
    if max_seconds is not None:
        max_seconds = as_scalar(max_seconds, "max_seconds", positive=True)
    params = list(model.parameters() if params is None else params)
    opt = optimizer if isinstance(optimizer, torch.optim.Optimizer) else make_optimizer(
        optimizer, params, lr)
    history: dict[str, list[float]] = {"train_loss": [], "seconds": []}
    if validate is not None:
        history["val_loss"] = []
    start, best, bad, best_state = 0, math.inf, 0, None
    extra_optimizers = extra_optimizers or {}
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        for name, o in extra_optimizers.items():
            o.load_state_dict(saved["extra_optimizers"][name])
        history = {k: list(v) for k, v in saved["history"].items()}
        start, best, bad = int(saved["epoch"]), float(saved["best"]), int(saved["bad_epochs"])
        best_state = saved["best_state"]
    rank, _ = world()
    bar = progress_bar(epochs, initial=start, desc=desc, progress=progress)
    t0 = time.perf_counter() - (history["seconds"][-1] if history["seconds"] else 0.0)
    stopped = False
    for epoch in range(start, epochs):
        if stopped:
            break
        model.train()
        total, count = 0.0, 0
        g = epoch_generator(seed, epoch)
        for batch in _batches(data, batch_size, g):
            rows = local_rows(batch[0].shape[0]).to(batch[0].device)
            opt.zero_grad()
            loss = loss_fn(batch, rows, g)
            value = _loss_value(loss)
            if not math.isfinite(value):
                last = (f"; the last good checkpoint is {checkpoint.path}" if checkpoint is not
                        None and checkpoint.path is not None and checkpoint.path.exists() else "")
                raise TrainingDivergedError(
                    f"the {desc} loss became non-finite at epoch {epoch}; lower the learning "
                    f"rate or check the data{last}")
            if backward:
                loss.backward()
            allreduce_grads(params)
            opt.step()
            total += value
            count += 1
        (total,) = allreduce_sum(total)
        history["train_loss"].append(total / max(count, 1))
        if validate is not None:
            model.eval()
            with torch.no_grad():
                val = float(validate())
            history["val_loss"].append(val)
            if val < best - min_delta:
                best, bad = val, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
        history["seconds"].append(time.perf_counter() - t0)
        if callback is not None:
            callback(epoch)
        if checkpoint is not None and rank == 0:
            checkpoint.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                             "extra_optimizers": {k: o.state_dict()
                                                  for k, o in extra_optimizers.items()},
                             "history": history, "epoch": epoch + 1, "best": best,
                             "bad_epochs": bad, "best_state": best_state})
        bar.update(1)
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.4g}")
        stopped = ((patience is not None and validate is not None and bad >= patience)
                   or (max_seconds is not None and history["seconds"][-1] > max_seconds))
    bar.close()
    if patience is not None and best_state is not None:
        model.load_state_dict(best_state)
    return history

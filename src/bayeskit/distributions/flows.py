"""Normalising flows built from ``torch.distributions`` transforms, and a trainer.

- :class:`MaskedAutoregressiveAffine` (MAF, Papamakarios et al. 2017): ``x_i = z_i exp(s_i) +
  m_i`` with ``(m_i, s_i)`` from a MADE network of ``x_<i``. The data-to-noise direction
  (``log_prob``) is one network pass; sampling takes ``D`` passes.
- :class:`AffineCoupling` (RealNVP, Dinh et al. 2017): half the coordinates are scaled and
  shifted by a network of the other half; one pass both ways.
- :class:`Permute`: reorders coordinates between layers (log-det 0).
- :class:`Flow`: an ``nn.Module`` holding the layers, a standard-normal base and a fixed
  standardisation fitted to the data; ``flow.distribution()`` is a
  ``TransformedDistribution``. :func:`fit_flow` trains it by maximum likelihood with Adam,
  minibatches, early stopping on held-out data, a progress bar and checkpoint/resume.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.distributions import (
    AffineTransform,
    Independent,
    Normal,
    TransformedDistribution,
    constraints,
)
from torch.distributions.transforms import Transform

from bayeskit.errors import ArgumentValueError, ShapeError
from bayeskit.nn import mlp
from bayeskit.training import Checkpoint, fingerprint
from bayeskit.training.trainer import train
from bayeskit.validation import as_int, as_scalar, as_tensor, check_choice, check_generator

__all__ = ["MaskedAutoregressiveAffine", "AffineCoupling", "Permute", "Flow", "fit_flow"]

_VECTOR = constraints.independent(constraints.real, 1)


class _MaskedLinear(nn.Linear):
    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class _MADE(nn.Module):
    """Autoregressive network: output ``i`` (shift and log-scale) depends on ``x_<i`` only."""

    def __init__(self, dim: int, hidden: tuple[int, ...]):
        super().__init__()
        degrees = [torch.arange(1, dim + 1)]
        for h in hidden:
            degrees.append(torch.arange(h) % max(dim - 1, 1) + 1)
        layers: list[nn.Module] = []
        for d_in, d_out in zip(degrees[:-1], degrees[1:], strict=True):
            layers += [_MaskedLinear(len(d_in), len(d_out), (d_out[:, None] >= d_in[None]).float()),
                       nn.ReLU()]
        out_deg = torch.arange(1, dim + 1).repeat(2)
        last = _MaskedLinear(len(degrees[-1]), 2 * dim,
                             (out_deg[:, None] > degrees[-1][None]).float())
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)
        self.dim = dim

    def forward(self, x):
        shift, log_scale = self.net(x).chunk(2, dim=-1)
        return shift, torch.tanh(log_scale / 3) * 3  # bounded log-scales keep training stable


class _ModuleTransform(Transform):
    """A Transform that owns an ``nn.Module`` (its parameters are trained by the Flow)."""

    domain = _VECTOR
    codomain = _VECTOR
    bijective = True

    def __init__(self, module: nn.Module):
        super().__init__(cache_size=0)
        self.module = module

    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return id(self)


class MaskedAutoregressiveAffine(_ModuleTransform):
    """MAF layer mapping noise ``z`` to data ``x`` (event ``[..., D]``)."""

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64)):
        super().__init__(_MADE(dim, hidden))
        self.dim = dim

    def _call(self, z):  # noise -> data: D sequential passes
        x = torch.zeros_like(z)
        for i in range(self.dim):
            shift, log_scale = self.module(x)
            x = torch.cat([x[..., :i], z[..., i:i + 1] * log_scale[..., i:i + 1].exp()
                           + shift[..., i:i + 1], x[..., i + 1:]], dim=-1)
        return x

    def _inverse(self, x):  # data -> noise: one pass
        shift, log_scale = self.module(x)
        return (x - shift) * torch.exp(-log_scale)

    def log_abs_det_jacobian(self, z, x):
        return self.module(x)[1].sum(-1)


class AffineCoupling(_ModuleTransform):
    """RealNVP coupling: the second half is scaled/shifted by a network of the first half."""

    def __init__(self, dim: int, hidden: tuple[int, ...] = (64, 64)):
        if dim < 2:
            raise ValueError("AffineCoupling needs at least 2 dimensions")
        self.split = dim // 2
        super().__init__(mlp((self.split, *hidden, 2 * (dim - self.split)), zero_last=True))

    def _params(self, a):
        shift, log_scale = self.module(a).chunk(2, dim=-1)
        return shift, torch.tanh(log_scale / 3) * 3

    def _call(self, z):
        a, b = z[..., :self.split], z[..., self.split:]
        shift, log_scale = self._params(a)
        return torch.cat([a, b * log_scale.exp() + shift], dim=-1)

    def _inverse(self, x):
        a, b = x[..., :self.split], x[..., self.split:]
        shift, log_scale = self._params(a)
        return torch.cat([a, (b - shift) * torch.exp(-log_scale)], dim=-1)

    def log_abs_det_jacobian(self, z, x):
        return self._params(z[..., :self.split])[1].sum(-1)


class Permute(Transform):
    """Reorder the coordinates of ``[..., D]`` events by ``perm`` (log-det 0)."""

    domain = _VECTOR
    codomain = _VECTOR
    bijective = True

    def __init__(self, perm: torch.Tensor):
        super().__init__(cache_size=0)
        p = as_tensor(perm, "perm", dtype=torch.float64, ndim=1)
        if not torch.equal(torch.sort(p).values, torch.arange(len(p), dtype=p.dtype)):
            raise ArgumentValueError(f"perm must be a permutation of 0..{len(p) - 1}, got "
                                     f"{p.long().tolist()}")
        self.perm = p.long()
        self.inv_perm = torch.argsort(self.perm)

    def __eq__(self, other):
        return isinstance(other, Permute) and torch.equal(self.perm, other.perm)

    def __hash__(self):
        return hash(tuple(self.perm.tolist()))

    def _call(self, x):
        return x[..., self.perm]

    def _inverse(self, y):
        return y[..., self.inv_perm]

    def log_abs_det_jacobian(self, x, y):
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)


class Flow(nn.Module):
    """A normalising flow: standard-normal base, ``layers`` transforms, standardisation.

    Args:
        dim: event size ``D``.
        kind: ``"maf"`` or ``"realnvp"``.
        num_layers: number of MAF/coupling layers (coordinates reversed between them).
        hidden: hidden widths of each layer's network.
    """

    def __init__(self, dim: int, kind: str = "maf", num_layers: int = 3,
                 hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        dim = as_int(dim, "dim", positive=True)
        num_layers = as_int(num_layers, "num_layers", positive=True)
        self.dim, self.kind = dim, check_choice(kind, "kind", ("maf", "realnvp"))
        layer = MaskedAutoregressiveAffine if kind == "maf" else AffineCoupling
        self.layers = [layer(dim, hidden) for _ in range(num_layers)]
        self.nets = nn.ModuleList([t.module for t in self.layers])
        self.register_buffer("loc", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def standardise(self, x: torch.Tensor) -> None:
        """Fix the final affine map to the data's mean and sd (as float buffers)."""
        self.loc.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-8))

    def distribution(self) -> TransformedDistribution:
        base = Independent(Normal(torch.zeros(self.dim, dtype=self.loc.dtype),
                                  torch.ones(self.dim, dtype=self.loc.dtype)), 1)
        reverse = Permute(torch.arange(self.dim - 1, -1, -1))
        parts: list[Transform] = []
        for i, t in enumerate(self.layers):
            if i:
                parts.append(reverse)
            parts.append(t)
        parts.append(AffineTransform(self.loc, self.scale, event_dim=1))
        return TransformedDistribution(base, parts)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.dim:
            raise ShapeError(f"inputs must be [..., {self.dim}], got {tuple(x.shape)}")
        return self.distribution().log_prob(x)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws ``[n, D]`` (base noise from ``generator`` when given).

        Example:
            >>> Flow(2, hidden=(8,)).sample(3, generator=torch.Generator().manual_seed(0)).shape
            torch.Size([3, 2])
        """
        n = as_int(n, "n", positive=True)
        check_generator(generator)
        with torch.no_grad():
            dist = self.distribution()
            x = torch.randn(n, self.dim, dtype=self.loc.dtype, device=self.loc.device,
                            generator=generator)
            for t in dist.transforms:
                x = t(x)
            return x


def _check_samples(x, dim: int, name: str, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor) and x.requires_grad:
        raise ArgumentValueError(f"{name} requires grad; pass {name}.detach() (training data "
                                 "are constants)")
    x = as_tensor(x, name, dtype=dtype, ndim=2)
    if x.shape[-1] != dim or x.shape[0] < 2:
        raise ShapeError(f"{name} must be [N >= 2, {dim}], got {tuple(x.shape)}")
    return x


def fit_flow(flow: Flow, samples: torch.Tensor, *, epochs: int = 100, batch_size: int = 256,
             lr: float = 1e-3, val_fraction: float = 0.1, patience: int = 10,
             max_seconds: float | None = None, generator: torch.Generator | None = None,
             checkpoint: str | Path | None = None, resume: bool = True,
             overwrite: bool = False, progress: bool = False, callback=None) -> dict:
    """Maximum-likelihood training with Adam (the shared :func:`bayeskit.training.train`);
    returns the history (``train_nll``, ``val_nll``, ``seconds`` per epoch).

    A random ``val_fraction`` of the samples (chosen with ``generator``) is held out; early
    stopping keeps the parameters with the best validation NLL (``patience`` epochs). With
    ``checkpoint`` the model, optimiser and history are saved atomically after every epoch
    with fingerprints of the samples and settings; an existing checkpoint of the same run is
    resumed (see :class:`bayeskit.training.Checkpoint` for ``resume``/``overwrite``).
    ``callback(epoch, flow)`` runs after each epoch (e.g. to time accuracy milestones).

    Example:
        >>> flow = Flow(2, hidden=(8,))
        >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
        >>> hist = fit_flow(flow, x, epochs=2, generator=torch.Generator().manual_seed(1))
        >>> len(hist["val_nll"])
        2
    """
    x = _check_samples(samples, flow.dim, "samples", flow.loc.dtype)
    val_fraction = as_scalar(val_fraction, "val_fraction", low=0.0, low_open=True, high=1.0,
                             high_open=True)
    patience = as_int(patience, "patience", nonnegative=True)
    g = check_generator(generator) if generator is not None else \
        torch.Generator().manual_seed(0)
    start_state = g.get_state()
    perm = torch.randperm(x.shape[0], generator=g)
    n_val = max(1, int(val_fraction * x.shape[0]))
    val, train_x = x[perm[:n_val]], x[perm[n_val:]]
    if train_x.shape[0] < 1:
        raise ShapeError("no training samples left after the validation split; pass more "
                         "samples or a smaller val_fraction")
    seed = int(torch.randint(2**31, (1,), generator=g))  # shuffling of every epoch
    flow.standardise(train_x)
    ckpt = None if checkpoint is None else Checkpoint(
        checkpoint, kind="flow", data=fingerprint(x), resume=resume, overwrite=overwrite,
        settings=fingerprint(batch_size=batch_size, lr=lr, val_fraction=val_fraction,
                             generator=start_state, kind=flow.kind))

    def loss_fn(batch, rows, _generator):
        (xb,) = batch
        return -flow.log_prob(xb[rows]).sum() / xb.shape[0]

    history = train(flow, loss_fn, (train_x,), epochs=epochs, batch_size=batch_size, lr=lr,
                    seed=seed, validate=lambda: -flow.log_prob(val).mean(), patience=patience,
                    max_seconds=max_seconds, checkpoint=ckpt, progress=progress, desc="flow",
                    callback=None if callback is None else (lambda e: callback(e, flow)))
    return {"train_nll": history["train_loss"], "val_nll": history["val_loss"],
            "seconds": history["seconds"]}

"""Normalising flows: :class:`Flow` and its maximum-likelihood trainer :func:`fit_flow`.

A :class:`Flow` stacks layers from :mod:`bayeskit.distributions.flow_layers` (MAF, RealNVP,
and neural spline flows with linear tails, autoregressive or coupling), reversing the
coordinates between layers, over a standard-normal base, followed by a fixed standardisation
fitted to the data (so no manual preprocessing is needed). With ``context_dim > 0`` every
layer's network also reads a context vector: the flow is a conditional density
``p(x | context)``. ``flow.distribution(context)`` is a ``TransformedDistribution``;
:func:`fit_flow` trains by maximum likelihood with Adam, minibatches, early stopping on held-out
data, a progress bar and checkpoint/resume (the shared :func:`bayeskit.training.train`).

Examples:
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(300, 2, generator=g)
    >>> c = torch.randn(300, 1, generator=g)
    >>> flow = Flow(2, kind="nsf", hidden=(8,), context_dim=1)
    >>> _ = fit_flow(flow, x, context=c, epochs=1, generator=g)
    >>> flow.log_prob(x[:4], c[:4]).shape, flow.sample(5, c[0], generator=g).shape
    (torch.Size([4]), torch.Size([5, 2]))
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.distributions import AffineTransform, Independent, Normal, TransformedDistribution
from torch.distributions.transforms import Transform

from bayeskit.distributions.flow_layers import (
    AffineCoupling,
    ConditionalTransform,
    MaskedAutoregressiveAffine,
    MaskedAutoregressiveSpline,
    Permute,
    SplineCoupling,
)
from bayeskit.errors import ArgumentValueError, ShapeError
from bayeskit.training import Checkpoint, fingerprint
from bayeskit.training.trainer import train
from bayeskit.validation import (
    as_int,
    as_scalar,
    as_tensor,
    check_choice,
    check_generator,
    check_tensor,
)

__all__ = ["MaskedAutoregressiveAffine", "AffineCoupling", "MaskedAutoregressiveSpline",
           "SplineCoupling", "Permute", "Flow", "fit_flow", "FLOW_KINDS"]

FLOW_KINDS = ("maf", "realnvp", "nsf", "nsf-coupling")


class Flow(nn.Module):
    """A normalising flow: standard-normal base, ``num_layers`` layers, standardisation.

    Args:
        dim: event size ``D``.
        kind: ``"maf"`` (masked autoregressive affine), ``"realnvp"`` (affine coupling),
            ``"nsf"`` (autoregressive rational-quadratic splines with linear tails) or
            ``"nsf-coupling"`` (coupling splines: one pass both ways).
        num_layers: number of layers (coordinates reversed between them).
        hidden: hidden widths of each layer's network.
        context_dim: size ``C`` of a context vector (0: an unconditional flow).
        bins, bound, affine: spline settings of the NSF kinds (see
            :class:`~bayeskit.distributions.flow_layers.MaskedAutoregressiveSpline`);
            ``bound`` is in standardised units.

    Shapes: ``log_prob(x [..., D], context [..., C])`` -> ``[...]``;
    ``sample(n, context [C])`` -> ``[n, D]``, ``sample(n, context [B, C])`` -> ``[n, B, D]``.

    Examples:
        >>> flow = Flow(2, kind="nsf", num_layers=2, hidden=(16,))
        >>> x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> flow.log_prob(x).shape, flow.sample(3).shape
        (torch.Size([5]), torch.Size([3, 2]))
    """

    def __init__(self, dim: int, kind: str = "maf", num_layers: int = 3,
                 hidden: tuple[int, ...] = (64, 64), *, context_dim: int = 0, bins: int = 8,
                 bound: float = 4.0, affine: bool = True):
        super().__init__()
        dim = as_int(dim, "dim", positive=True)
        num_layers = as_int(num_layers, "num_layers", positive=True)
        context_dim = as_int(context_dim, "context_dim", nonnegative=True)
        self.dim, self.kind = dim, check_choice(kind, "kind", FLOW_KINDS)
        self.context_dim = context_dim
        if kind in ("realnvp", "nsf-coupling") and dim < 2:
            raise ArgumentValueError(f"kind={kind!r} needs dim >= 2 (a coupling layer splits "
                                     "the coordinates); use 'maf' or 'nsf' for dim 1")

        def layer():
            if kind == "maf":
                return MaskedAutoregressiveAffine(dim, hidden, context_dim)
            if kind == "realnvp":
                return AffineCoupling(dim, hidden, context_dim)
            spline = MaskedAutoregressiveSpline if kind == "nsf" else SplineCoupling
            return spline(dim, hidden, bins=bins, bound=bound, affine=affine,
                          context_dim=context_dim)

        self.layers: list[ConditionalTransform] = [layer() for _ in range(num_layers)]
        self._reverse = Permute(torch.arange(dim - 1, -1, -1))
        self.nets = nn.ModuleList([t.module for t in self.layers])
        self.register_buffer("loc", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("context_loc", torch.zeros(context_dim))
        self.register_buffer("context_scale", torch.ones(context_dim))

    def standardise(self, x: torch.Tensor, context: torch.Tensor | None = None) -> None:
        """Fix the final affine map to the data's mean and sd, and the context's
        standardisation (buffers, not trained)."""
        self.loc.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-8))
        if context is not None and self.context_dim:
            self.context_loc.copy_(context.mean(0))
            self.context_scale.copy_(context.std(0).clamp_min(1e-8))

    def _context(self, context) -> torch.Tensor | None:
        if self.context_dim == 0:
            if context is not None:
                raise ArgumentValueError("this flow is unconditional (context_dim=0); pass no "
                                         "context or build Flow(..., context_dim=C)")
            return None
        if context is None:
            raise ArgumentValueError(f"this flow is conditional: pass a context [..., "
                                     f"{self.context_dim}]")
        c = as_tensor(context, "context", dtype=self.loc.dtype)
        if c.dim() < 1 or c.shape[-1] != self.context_dim or c.numel() == 0:
            raise ShapeError(f"context must be [..., {self.context_dim}], got {tuple(c.shape)}")
        return (c - self.context_loc) / self.context_scale

    def distribution(self, context: torch.Tensor | None = None) -> TransformedDistribution:
        """``p(x | context)`` as a ``TransformedDistribution`` (event ``[D]``)."""
        c = self._context(context)
        # inputs are validated at the boundary (log_prob, fit_flow): torch's per-call
        # support checks are skipped
        zero = torch.zeros(self.dim, dtype=self.loc.dtype, device=self.loc.device)
        base = Independent(Normal(zero, torch.ones_like(zero), validate_args=False), 1,
                           validate_args=False)
        parts: list[Transform] = []
        for i, t in enumerate(self.layers):
            if i:
                parts.append(self._reverse)
            parts.append(t.conditioned(c))
        parts.append(AffineTransform(self.loc, self.scale, event_dim=1))
        return TransformedDistribution(base, parts, validate_args=False)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(x | context)``: ``x`` ``[..., D]``, context ``[..., C]`` -> ``[...]``."""
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            # a tensor keeps its autograd graph (gradients of log p with respect to x)
            x = check_tensor("x", x).to(self.loc.dtype)
        else:
            x = as_tensor(x, "x", dtype=self.loc.dtype)
        if x.dim() < 1 or x.shape[-1] != self.dim or x.numel() == 0:
            raise ShapeError(f"inputs must be non-empty [..., {self.dim}], got "
                             f"{tuple(x.shape)}")
        return self._log_prob(x, context)

    def _log_prob(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """:meth:`log_prob` on validated tensors (the trainer's path; no copies).

        The same density as ``self.distribution(context).log_prob(x)``, computed directly:
        undo the standardisation, run each layer's data -> noise pass (its networks once)
        with the coordinate reversal between layers, add the standard-normal base. Torch's
        ``TransformedDistribution.log_prob`` rebuilds every transform's domain and codomain
        constraints and their event dimensions on each call (with the layers' cheaper
        parameter layout: 25 MAF training steps at batch 256 0.80x, NSF 0.82x the time of
        commit a84c484's code, ``benchmarks/bench_revisions.py``)."""
        c = self._context(context)
        z = (x - self.loc) / self.scale
        log_det = torch.log(self.scale).sum()  # the standardisation's log|dx/dz|
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i] if c is None else self.layers[i].conditioned(c)
            z, layer_log_det = layer._backward(z)
            log_det = log_det + layer_log_det
            if i:
                z = self._reverse.inv(z)
        base = -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return base - log_det

    def sample(self, n: int, context: torch.Tensor | None = None, *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws ``[n, D]`` (``[n, B, D]`` for a context ``[B, C]``); base noise from
        ``generator`` when given.

        Examples:
            >>> Flow(2, hidden=(8,)).sample(3, generator=torch.Generator().manual_seed(0)).shape
            torch.Size([3, 2])
        """
        n = as_int(n, "n", positive=True)
        check_generator(generator, device=self.loc.device)
        with torch.no_grad():
            dist = self.distribution(context)
            batch = () if context is None or dist.transforms[0].context is None else \
                tuple(dist.transforms[0].context.shape[:-1])
            x = torch.randn(n, *batch, self.dim, dtype=self.loc.dtype, device=self.loc.device,
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


def fit_flow(flow: Flow, samples: torch.Tensor, *, context: torch.Tensor | None = None,
             epochs: int = 100, batch_size: int = 256,
             lr: float = 1e-3, val_fraction: float = 0.1, patience: int = 10,
             max_seconds: float | None = None, generator: torch.Generator | None = None,
             checkpoint: str | Path | None = None, resume: bool = True,
             overwrite: bool = False, progress: bool | None = None, callback=None) -> dict:
    """Maximum-likelihood training with Adam (the shared :func:`bayeskit.training.train`);
    returns the history (``train_nll``, ``val_nll``, ``seconds`` per epoch).

    ``samples`` ``[N, D]``; for a conditional flow, ``context`` ``[N, C]`` holds each
    sample's context (row ``n`` of both is one observation of ``(x, context)``).

    A random ``val_fraction`` of the samples (chosen with ``generator``) is held out; early
    stopping keeps the parameters with the best validation NLL (``patience`` epochs). With
    ``checkpoint`` the model, optimiser and history are saved atomically after every epoch
    with fingerprints of the samples and settings; an existing checkpoint of the same run is
    resumed (see :class:`bayeskit.training.Checkpoint` for ``resume``/``overwrite``).
    ``callback(epoch, flow)`` runs after each epoch (e.g. to time accuracy milestones).

    Examples:
        >>> flow = Flow(2, hidden=(8,))
        >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
        >>> hist = fit_flow(flow, x, epochs=2, generator=torch.Generator().manual_seed(1))
        >>> len(hist["val_nll"])
        2
    """
    x = _check_samples(samples, flow.dim, "samples", flow.loc.dtype)
    if (context is None) != (flow.context_dim == 0):
        raise ArgumentValueError(
            "pass context [N, C] exactly when the flow is conditional (context_dim="
            f"{flow.context_dim})")
    c = None
    if context is not None:
        c = _check_samples(context, flow.context_dim, "context", flow.loc.dtype)
        if c.shape[0] != x.shape[0]:
            raise ShapeError(f"context has {c.shape[0]} rows but samples have {x.shape[0]}: "
                             "one context per sample")
    val_fraction = as_scalar(val_fraction, "val_fraction", low=0.0, low_open=True, high=1.0,
                             high_open=True)
    patience = as_int(patience, "patience", nonnegative=True)
    g = check_generator(generator) if generator is not None else \
        torch.Generator().manual_seed(0)
    start_state = g.get_state()
    perm = torch.randperm(x.shape[0], generator=g)
    n_val = max(1, int(val_fraction * x.shape[0]))
    val, train_x = x[perm[:n_val]], x[perm[n_val:]]
    val_c, train_c = (None, None) if c is None else (c[perm[:n_val]], c[perm[n_val:]])
    if train_x.shape[0] < 1:
        raise ShapeError("no training samples left after the validation split; pass more "
                         "samples or a smaller val_fraction")
    seed = int(torch.randint(2**31, (1,), generator=g))  # shuffling of every epoch
    flow.standardise(train_x, train_c)
    ckpt = None if checkpoint is None else Checkpoint(
        checkpoint, kind="flow", data=fingerprint(x) if c is None else fingerprint(x, c),
        resume=resume, overwrite=overwrite,
        settings=fingerprint(batch_size=batch_size, lr=lr, val_fraction=val_fraction,
                             generator=start_state, kind=flow.kind))

    def loss_fn(batch, rows, _generator):
        xb = batch[0]
        cb = None if c is None else batch[1][rows]
        return -flow._log_prob(xb[rows], cb).sum() / xb.shape[0]

    data = (train_x,) if c is None else (train_x, train_c)
    history = train(flow, loss_fn, data, epochs=epochs, batch_size=batch_size, lr=lr,
                    seed=seed, validate=lambda: -flow._log_prob(val, val_c).mean(),
                    patience=patience,
                    max_seconds=max_seconds, checkpoint=ckpt, progress=progress, desc="flow",
                    callback=None if callback is None else (lambda e: callback(e, flow)))
    return {"train_nll": history["train_loss"], "val_nll": history["val_loss"],
            "seconds": history["seconds"]}

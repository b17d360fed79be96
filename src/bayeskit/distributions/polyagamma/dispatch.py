"""``sample_polya_gamma``: validates ``b, c`` and sends each request to the fastest exact
route (integer shapes as shape-1 sums, other shapes in chunks of at most ``H_MAX``; the
compiled kernels on CPU, the vectorised torch samplers elsewhere), or to the opt-in normal
approximation."""

from __future__ import annotations

import math

import torch

from bayeskit import compiled
from bayeskit.distributions.polyagamma import kernels, samplers
from bayeskit.distributions.polyagamma.density import polya_gamma_mean, polya_gamma_variance
from bayeskit.distributions.polyagamma.envelopes import left_probability, shape_constants
from bayeskit.distributions.polyagamma.proposals import RandomStream
from bayeskit.distributions.polyagamma.samplers import sample_jstar, sample_jstar_h1
from bayeskit.distributions.polyagamma.series import F64, H_MAX, check_params
from bayeskit.errors import ArgumentValueError
from bayeskit.validation import as_param, check_choice, check_generator

__all__ = ["sample_polya_gamma", "chunk_sizes", "MAX_DRAWS"]

#: at most this many shape-1 (or chunk) draws per call: beyond it the exact sampler
#: would run for minutes; the error points to method="normal"
MAX_DRAWS = 1 << 30

def chunk_sizes(b: float) -> dict[float, int]:
    """Split a shape ``b > H_MAX`` into ``k = ceil(b / H_MAX)`` chunks: ``{size: count}``.

    Integer ``b`` gets integer chunks (cheaper constants); otherwise equal chunks.
    """
    k = math.ceil(b / H_MAX)
    if b == round(b):
        low = int(b) // k
        extra = int(b) - low * k
        sizes = {float(low + 1): extra, float(low): k - extra}
        return {s: c for s, c in sizes.items() if c}
    return {b / k: k}


def _per_element(v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``v`` flat over ``shape``: one element when every draw shares its value."""
    flat = v.reshape(-1)
    if flat.numel() == 1 or (bool((flat[:64] == flat[0]).all())  # cheap early exit
                             and bool((flat == flat[0]).all())):
        return flat[:1]
    return v.expand(shape).reshape(-1)


def _compiled_draws(hb: torch.Tensor, cb: torch.Tensor, n: int,
                    generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws of ``PG(b, c)`` by the compiled kernels from per-element ``b, c``
    (``[n]`` or ``[1]``): integer ``b`` as sums of shape-1 draws, other ``b`` as
    ``ceil(b / H_MAX)`` equal chunks of the general sampler."""
    if bool((hb == hb.round()).all()):
        return kernels.sample_h1_sums(cb, hb.to(torch.long), n, generator)
    zb = cb.abs().mul_(0.5)
    chunks = torch.ceil(hb / H_MAX).clamp_min(1)
    h, t, log_c, lgh = shape_constants(hb / chunks)
    p_left = left_probability(h, zb, t, log_c)
    return kernels.sample_jstar_sums(*(v.reshape(-1) for v in (h, chunks, zb, t, log_c, lgh,
                                                               p_left)), n, generator)


def _check_work(flat_b: torch.Tensor, n: int) -> None:
    """Refuse requests whose exact draws would run for minutes (see ``MAX_DRAWS``)."""
    if float(flat_b.max()) * n > MAX_DRAWS:
        per_draw = torch.ceil(flat_b.clamp_max(1e15)).clamp_min(1)  # shape-1 or chunk draws
        work = float(per_draw.mean()) * n
        if work > MAX_DRAWS:
            raise ArgumentValueError(
                f"exact PG draws with b up to {float(flat_b.max()):.3g} and {n} "
                f"draws need about {work:.3g} elementary draws (limit {MAX_DRAWS}); use "
                "method='normal' (a moment-matched approximation, accurate for large b) or "
                "fewer draws")


def sample_polya_gamma(
    b: torch.Tensor | float,
    c: torch.Tensor | float = 0.0,
    sample_shape: torch.Size | tuple[int, ...] = (),
    *,
    generator: torch.Generator | None = None,
    method: str = "exact",
) -> torch.Tensor:
    """Exact draws of ``PG(b, c)``; ``b`` and ``c`` broadcast.

    Args:
        b: shape parameter(s), ``b > 0`` (any real value, not only integers).
        c: tilting parameter(s), any finite real.
        sample_shape: leading shape of the draws.
        generator: a ``torch.Generator`` for reproducible draws.
        method: ``"exact"`` (default), or ``"normal"``: an opt-in moment-matched normal
            approximation (clipped at a tiny positive value) for very large ``b``, where
            the exact sampler costs O(b); see benchmarks/RESULTS.md for its measured error.

    Returns:
        ``[*sample_shape, *broadcast(b, c).shape]`` draws, in the floating dtype of the
        parameters (float64 if they are not floating tensors).

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> w = sample_polya_gamma(torch.ones(100_000), 0.0, generator=g)
        >>> abs(float(w.mean()) - 0.25) < 0.003
        True
    """
    b_t, c_t = as_param(b, "b"), as_param(c, "c")
    dtype = torch.promote_types(b_t.dtype, c_t.dtype)
    dtype = dtype if dtype.is_floating_point else F64
    device = b_t.device
    b_t, c_t = b_t.to(device=device, dtype=F64), c_t.to(device=device, dtype=F64)
    shape = torch.Size(sample_shape) + torch.broadcast_shapes(b_t.shape, c_t.shape)
    check_choice(method, "method", ("exact", "normal"))
    if shape.numel() == 0:  # nothing to draw
        check_params(b_t, c_t)
        return torch.empty(shape, dtype=dtype, device=device)
    if method == "exact" and compiled.enabled(b_t, c_t):
        # per-element parameters first: a shared b or c is then checked and used once
        hb, cb = _per_element(b_t, shape), _per_element(c_t, shape)
        check_params(hb, cb)
        _check_work(hb, shape.numel())
        draws = _compiled_draws(hb, cb, shape.numel(), check_generator(generator))
        return draws.reshape(shape).to(dtype)
    check_params(b_t, c_t)
    zb = c_t.abs().mul_(0.5).expand(shape).reshape(-1)
    rng = RandomStream(check_generator(generator), device)
    flat_b = b_t.reshape(-1)
    if method == "exact":
        _check_work(flat_b, shape.numel())
    shared_b = flat_b.numel() == 1 or bool((flat_b == flat_b[0]).all())
    integer_b = bool((flat_b == flat_b.round()).all())
    if method == "exact" and shared_b and integer_b:
        # integer b (b = 1: logistic regression): a sum of b shape-1 draws, the fastest
        # exact route for every integer b measured (benchmarks/RESULTS.md)
        draws = sample_jstar_h1(zb, rng, copies=int(flat_b[0]))
        return (0.25 * draws).reshape(shape).to(dtype)
    hb = b_t.expand(shape).reshape(-1)
    if method == "exact" and integer_b and float(hb.sum()) <= samplers.H1_MAX_WORK:
        # varying integer b (binomial counts), as long as all sum(b) shape-1 draws fit in
        # one pass; beyond that the chunks below need a quarter of the memory
        owner = torch.repeat_interleave(torch.arange(hb.numel(), device=device),
                                        hb.to(torch.long))
        parts = sample_jstar_h1(zb[owner], rng)
        draws = torch.zeros_like(hb).index_add_(0, owner, parts)
        return (0.25 * draws).reshape(shape).to(dtype)
    if method == "normal":
        mean, var = polya_gamma_mean(hb, 2 * zb), polya_gamma_variance(hb, 2 * zb)
        draws = mean + var.sqrt() * rng.normal(hb.numel())
        return draws.clamp_min(1e-12 * mean).reshape(shape).to(dtype)
    # b > H_MAX: a sum of k chunks, each at most H_MAX (integers when b is an integer)
    chunks = torch.ceil(hb / H_MAX).to(torch.long).clamp_min(1)
    if bool((chunks == 1).all()):
        draws = sample_jstar(hb, zb, rng)
    elif shared_b:
        draws = torch.zeros_like(hb)
        per_pass = max(1, samplers.H1_MAX_WORK // max(hb.numel(), 1))  # bounded memory
        for size, copies in chunk_sizes(float(hb[0])).items():
            for done in range(0, copies, per_pass):
                k = min(per_pass, copies - done)
                h_rep = torch.full((k * hb.numel(),), size, dtype=F64, device=device)
                part = sample_jstar(h_rep, zb.repeat(k), rng)
                draws += part.view(k, -1).sum(0)
    else:
        owner = torch.repeat_interleave(torch.arange(hb.numel(), device=device), chunks)
        parts = sample_jstar((hb / chunks)[owner], zb[owner], rng)
        draws = torch.zeros_like(hb).index_add_(0, owner, parts)
    return (0.25 * draws).reshape(shape).to(dtype)


"""``(G * K) @ B`` in one pass, compiled: the stationary kernels' backward product.

A kernel matrix's backward pass weights its output gradient ``G`` by the matrix ``K`` itself
(``W = G * K``) and needs only thin products ``W @ B`` (``B``: a few columns per input
feature). Eager torch writes ``W`` (an ``N x N`` temporary: at N = 4000, 128 MB of fresh
pages) and reads it back; this kernel forms each row of ``W`` in a thread-local buffer and
takes its dot products with the columns of ``B`` while it is in cache. Rows are split over
threads, each row computed whole by one thread, so the result does not depend on the
thread count; the dot products are reassociated (vectorised), so it differs from the eager
product by rounding only.

``benchmarks/bench_gp.py --kernel-backward`` (AMD EPYC 2 vCPU, float64, 17 columns, two
runs): eager / compiled 1.79-1.89 at 2000 x 2000 (5.8-7.2 ms), 3.34-3.38 at 4000 x 4000
(31-33 ms), 1.24-1.35 at 256 x 1024 (an SVGP minibatch).

Examples:
    >>> G, K = torch.ones(2, 3, dtype=torch.float64), torch.full((2, 3), 2.0, dtype=torch.float64)
    >>> weighted_product(G, K, torch.eye(3, dtype=torch.float64)).tolist()
    [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]
"""

from __future__ import annotations

import numpy as np
import torch

from bayeskit import compiled
from bayeskit.compiled import jit, prange

__all__ = ["weighted_product", "can_run"]

_ROWS = 16  # rows per unit of parallel work
_REASSOC = {"contract", "reassoc", "nsz", "arcp"}


@jit(inline="always", fastmath=_REASSOC)
def _rows(G, K, BT, out, start, stop, w):
    m = G.shape[1]
    for i in range(start, stop):
        g = G[i]
        k = K[i]
        for j in range(m):
            w[j] = g[j] * k[j]
        for c in range(BT.shape[0]):
            b = BT[c]
            s = 0.0
            for j in range(m):
                s += w[j] * b[j]
            out[i, c] = s


@jit(parallel=True, fastmath=_REASSOC)
def _parallel(G, K, BT, out):
    n = G.shape[0]
    for blk in prange((n + _ROWS - 1) // _ROWS):
        w = np.empty(G.shape[1], G.dtype)
        _rows(G, K, BT, out, blk * _ROWS, min(n, blk * _ROWS + _ROWS), w)


@jit(fastmath=_REASSOC)
def _serial(G, K, BT, out):
    _rows(G, K, BT, out, 0, G.shape[0], np.empty(G.shape[1], G.dtype))


def _has_storage(t: torch.Tensor) -> bool:
    """False for the wrappers of ``torch.func`` transforms (vmap's batched tensors, grad's
    tracking tensors), whose memory numba cannot see."""
    if type(t) is not torch.Tensor:
        return False
    try:
        t.data_ptr()
    except RuntimeError:
        return False
    return True


def can_run(G: torch.Tensor, K: torch.Tensor) -> bool:
    """Whether :func:`weighted_product` applies: compiled kernels on, CPU, one contiguous
    ``[N, M]`` float32/float64 matrix each of the same shape and dtype, plain tensors (not
    inside ``torch.func.vmap``/``grad``), no graph to build (the eager product is
    differentiable, this is not)."""
    return (not torch.is_grad_enabled() and compiled.enabled(G, K) and G.dim() == 2
            and G.shape == K.shape and G.dtype == K.dtype
            and G.dtype in (torch.float32, torch.float64)
            and G.is_contiguous() and K.is_contiguous()
            and _has_storage(G) and _has_storage(K))


def weighted_product(G: torch.Tensor, K: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``(G * K) @ B`` for ``G, K: [N, M]`` and ``B: [M, C]`` without forming ``G * K``.

    Runs compiled where :func:`can_run` holds, otherwise the eager product.

    Returns:
        ``[N, C]`` in ``G``'s dtype.
    """
    if not can_run(G, K):
        return (G * K) @ B
    BT = B.mT.to(G.dtype).contiguous()
    out = torch.empty(G.shape[0], BT.shape[0], dtype=G.dtype)
    args = (G.numpy(), K.numpy(), BT.numpy(), out.numpy())
    if compiled.serial():
        _serial(*args)
    else:
        with compiled.threads():
            _parallel(*args)
    return out

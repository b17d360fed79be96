"""``(G * K) @ B`` without forming ``G * K``: the stationary kernels' backward products.

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
(31-33 ms), 1.24-1.35 at 256 x 1024 (an SVGP minibatch). On an Intel Xeon (2 vCPU, one
run) it loses to eager torch except at the largest size: eager / compiled 0.70 at
2000 x 2000, 1.50 at 4000 x 4000, 0.87 at 256 x 1024, 1.13 at 256 x 100 000, and an eager
product in column chunks through one buffer (the script's third row) beat both everywhere
there; which route to take waits for the same comparison on AMD.

An exact GP's own kernel matrix has a symmetric ``G``, ``(C^-1 - alpha alpha^T) / 2``, and
LAPACK's ``potri`` writes one triangle of ``C^-1``: :func:`symmetric_weighted_product` reads
one triangle of each matrix (half the memory) in block rows, two matrix products per block.

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

__all__ = ["weighted_product", "can_run", "symmetric_weighted_product"]

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


#: rows per block of :func:`symmetric_weighted_product`
PANEL = 128


def symmetric_weighted_product(S: torch.Tensor, K: torch.Tensor, alpha: torch.Tensor,
                               scale: float, B: torch.Tensor) -> torch.Tensor:
    """``(W * K) @ B`` with ``W = scale (S - alpha alpha^T)`` for symmetric ``S, K: [N, N]``
    given by their upper triangles (row-major ``S[i, j]``, ``j >= i``; the strictly lower
    triangles are never read), ``alpha: [N]``, ``B: [N, C]``; returns ``[N, C]``.

    An exact GP's kernel backward with ``S`` as LAPACK's ``potri`` leaves it
    (:func:`bayeskit.linalg.direct.cholesky_inverse_in_place`): no mirrored copy of ``S``, no
    ``N x N`` temporary, each triangle read once. Block rows of :data:`PANEL`: the block
    ``P = (W * K)[rows, i0:]`` (its square part completed from its upper triangle) gives
    ``P @ B[i0:]`` to its own rows and ``P[:, i1 - i0:]^T @ B[rows]`` to the rows below.
    Not differentiable; unchecked (the caller's own buffers).

    Examples:
        >>> S = torch.tensor([[2.0, 1.0], [float("nan"), 3.0]], dtype=torch.float64)
        >>> K = torch.tensor([[1.0, 0.5], [float("nan"), 1.0]], dtype=torch.float64)
        >>> alpha = torch.tensor([1.0, 0.0], dtype=torch.float64)
        >>> symmetric_weighted_product(S, K, alpha, 0.5, torch.eye(2, dtype=torch.float64))
        tensor([[0.5000, 0.2500],
                [0.2500, 1.5000]], dtype=torch.float64)
    """
    n = S.shape[-1]
    out = torch.zeros(n, B.shape[-1], dtype=S.dtype, device=S.device)
    with torch.no_grad():
        for i0 in range(0, n, PANEL):
            i1 = min(n, i0 + PANEL)
            P = torch.addr(S[i0:i1, i0:], alpha[i0:i1], alpha[i0:], beta=scale, alpha=-scale)
            P.mul_(K[i0:i1, i0:])
            D = P[:, : i1 - i0]
            D.copy_(D.triu() + D.triu(1).mT)
            out[i0:i1].addmm_(P, B[i0:])
            if i1 < n:
                out[i1:].addmm_(P[:, i1 - i0:].mT, B[i0:i1])
    return out

"""Compiled (numba) rank-1 Cholesky update for batches of small factors.

The classic column sweep (LINPACK ``dchud``; Gill, Golub, Murray & Saunders 1974): for
``k = 0..N-1`` rotate column ``k`` of ``L`` against the running vector ``x``,

    r = sqrt(L_kk^2 + s x_k^2),  c = r / L_kk,  t = x_k / L_kk,
    L_ik <- (L_ik + s t x_i) / c,  x_i <- c x_i - t L_ik   (i > k),

with ``x = sqrt(|a|) u`` and ``s = sign(a)`` for ``L L^T + a u u^T`` (``s = -1`` downdates;
``r^2 <= 0`` means the result is not positive definite). It needs no triangular solve and
touches each entry once, so a batch of small factors runs at memory speed, one factor
per thread. We work on ``R = L^T``, where column ``k`` of ``L`` is a contiguous row.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bayeskit import compiled
from bayeskit.compiled import jit, prange

__all__ = ["rank1_update_batch"]


@jit(inline="always")
def _sweep(R, out, x, sign):
    """Write the updated ``R`` into ``out`` (zeros below its diagonal); ``x`` is consumed.
    Step ``k`` reads and writes row ``k`` only, so the copy is fused into the sweep."""
    n = x.size
    for k in range(n):
        for i in range(k):
            out[k, i] = 0.0
        rkk = R[k, k]
        r2 = rkk * rkk + sign * x[k] * x[k]
        if not (r2 > 0.0 and r2 < math.inf):
            return False
        r = math.sqrt(r2)
        c = r / rkk
        t = x[k] / rkk
        inv_c = 1.0 / c
        st = sign * t
        out[k, k] = r
        for i in range(k + 1, n):
            rki = (R[k, i] + st * x[i]) * inv_c
            out[k, i] = rki
            x[i] = c * x[i] - t * rki
    return True


@jit
def _one(R, U, alpha, out, b):
    a = alpha[b] if alpha.size > 1 else alpha[0]
    x = U[b] * math.sqrt(abs(a))
    return _sweep(R[b], out[b], x, 1.0 if a >= 0 else -1.0)


@jit(parallel=True)
def _batch(R, U, alpha, out, failed):
    for b in prange(R.shape[0]):
        failed[b] = not _one(R, U, alpha, out, b)


@jit
def _batch_serial(R, U, alpha, out, failed):
    for b in range(R.shape[0]):
        failed[b] = not _one(R, U, alpha, out, b)


def rank1_update_batch(L: torch.Tensor, u: torch.Tensor, alpha: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors of ``L_b L_b^T + alpha_b u_b u_b^T`` for a batch, compiled.

    Args:
        L: ``[B, N, N]`` lower factors (validated by the caller), any layout.
        u: ``[B, N]`` update vectors; alpha: ``[B]`` or ``[1]`` multipliers (same dtype).

    Returns:
        ``([B, N, N]`` column-major factors, ``[B]`` bool: not positive definite``)``.
    """
    R = L.mT.contiguous()  # a view when L is column-major, like torch.linalg.cholesky's
    out = torch.empty_like(R)
    failed = np.zeros(L.shape[0], dtype=np.bool_)
    args = (R.numpy(), u.contiguous().numpy(), alpha.contiguous().numpy(), out.numpy(), failed)
    if compiled.serial():
        _batch_serial(*args)
    else:
        with compiled.threads():
            _batch(*args)
    return out.mT, torch.from_numpy(failed)

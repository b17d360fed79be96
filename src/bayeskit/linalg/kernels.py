"""Compiled (numba) low-rank Cholesky update: the column sweep, for any rank and batch.

The classic rank-1 column sweep (LINPACK ``dchud``/``dchdd``; Gill, Golub, Murray & Saunders
1974): for ``k = 0..N-1`` rotate column ``k`` of ``L`` against the running vector ``x``
(``x = sqrt(|a|) u`` for ``L L^T + a u u^T``). With ``r = sqrt(L_kk^2 + s x_k^2)`` (``s``
the sign of ``a``; ``r^2 <= 0`` means a downdate left a matrix that is not positive
definite), ``a_k = L_kk / r`` and ``b_k = s x_k / r``, for ``i > k``:

    L_ik <- a_k L_ik + b_k x_i                       (both signs)
    x_i  <- a_k x_i - b_k L_ik          (update: an orthogonal rotation, old L_ik)
    x_i  <- (r x_i - x_k L_ik) / L_kk   (downdate: hyperbolic, new L_ik)

An update rotates by an orthogonal matrix and stays accurate for a nearly singular ``L``;
the downdate's form is the usual stable one for hyperbolic rotations. (The hyperbolic form,
used for updates too until this was found, divides by a tiny ``L_kk`` and cancels
catastrophically for a nearly singular factor; tests/linalg/test_update.py keeps one with a
diagonal entry of 1e-100.) A rank-``M`` update is ``M`` such rotations per column, one per
column ``x_j`` of ``sqrt(|a|) U``, each starting from the diagonal the previous one left.
Column ``k``'s rotations depend only on ``L_kk`` and on the entries ``x_jk`` left by the
earlier columns, so they can be applied to the rows below in any order. Rank 1 sweeps one
column at a time (the copy into the output fused in); higher ranks sweep in panels of
``_PANEL`` columns: first the panel's own triangle, one column after the other (which fixes
every rotation of the panel), then the rows below in chunks of ``_CHUNK``, each chunk taking
all the panel's rotations while it sits in cache; chunks are independent, so one large
factor runs them in parallel. Every entry goes through the same operations in the same order
whatever the chunking and the thread count, so the result does not depend on either. No
triangular solve; ``O(N^2 M)`` flops.

We work on ``R = L^T``, where column ``k`` of ``L`` is a contiguous row. Loops run over
slices from index 0: numba compiles an index that might be negative with a wraparound
branch, which stops LLVM from vectorising the loop (with that fix the rank-1 sweep takes
0.63x and 256 small rank-1 updates 0.78x the time of commit 91b99d4's kernel:
``benchmarks/bench_revisions.py``, RESULTS.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bayeskit import compiled
from bayeskit.compiled import jit, prange

__all__ = ["lowrank_update_batch"]

_FAST = {"arcp", "contract"}  # reciprocal multiply and fused multiply-add; no reassociation
_PANEL = 16
_CHUNK = 128
#: one factor from this size runs its row chunks on all threads (below: one thread)
_PARALLEL_N = 1024


@jit(inline="always")
def _positive(d):
    """A factor's diagonal entry: positive and finite (NaN is not)."""
    return d > 0.0 and d < math.inf


@jit(inline="always", fastmath=_FAST)
def _sweep_rank1(R, out, x, sign):
    """Rank 1, one column at a time: ``out`` gets the updated ``R`` (zeros below its
    diagonal); ``x`` is consumed. Step ``k`` reads and writes row ``k`` only, so the copy
    is fused into the sweep. Faster than panels for one rotation per column (measured)."""
    n = x.size
    for k in range(n):
        below = out[k, :k]
        for i in range(below.size):
            below[i] = 0.0
        rkk = R[k, k]
        if not _positive(rkk):  # not a factor: the caller's check names the problem
            return False
        r2 = rkk * rkk + sign * x[k] * x[k]
        if not (r2 > 0.0 and r2 < math.inf):
            return False
        r = math.sqrt(r2)
        a, b = rkk / r, sign * x[k] / r
        c, t = r / rkk, x[k] / rkk
        out[k, k] = r
        _rotate_entries(R[k, k + 1:], out[k, k + 1:], x[k + 1:], sign, a, b, c, t)
    return True


@jit(inline="always", fastmath=_FAST)
def _rotate_entries(src, row, x, sign, a, b, c, t):
    """One rotation of the entries ``src`` of a column (into ``row``, which may be
    ``src`` itself) against ``x`` (updated): the module docstring's formulas."""
    if sign > 0:
        for i in range(row.size):
            v, xi = src[i], x[i]
            row[i] = a * v + b * xi
            x[i] = a * xi - b * v
    else:
        for i in range(row.size):
            v = a * src[i] + b * x[i]
            row[i] = v
            x[i] = c * x[i] - t * v


@jit(inline="always", fastmath=_FAST)
def _rotate(R, out, X, sign, k0, p, A, B, C, T, i0, i1):
    """Apply columns ``k0 .. k0+p-1``'s rotations (``A, B, C, T``: ``a, b, 1/a, x_k/L_kk``
    of the module docstring, ``[p, M]``) to entries ``i0 .. i1-1`` (past the panel's
    columns): ``out[k, i]`` starts as a copy of ``R[k, i]`` (one pass, shared by the
    panel's ``M >= 2`` rotations); ``X[:, i]`` is updated."""
    m = X.shape[0]
    for q in range(p):
        k = k0 + q
        row = out[k, i0:i1]
        src = R[k, i0:i1]
        for i in range(row.size):
            row[i] = src[i]
        for j in range(m):
            _rotate_entries(row, row, X[j, i0:i1], sign, A[q, j], B[q, j], C[q, j], T[q, j])


@jit(inline="always", fastmath=_FAST)
def _panel(R, out, X, sign, k0, p, A, B, C, T):
    """Fix the rotations of columns ``k0 .. k0+p-1`` (into ``A, B, C, T``, ``[p, M]``)
    and apply them inside the panel. False when the update is not positive definite."""
    m = X.shape[0]
    for q in range(p):
        k = k0 + q
        below = out[k, :k]
        for i in range(below.size):
            below[i] = 0.0
        r = R[k, k]
        if not _positive(r):  # not a factor: the caller's check names the problem
            return False
        for j in range(m):
            xk = X[j, k]
            r2 = r * r + sign * xk * xk
            if not (r2 > 0.0 and r2 < math.inf):
                return False
            rn = math.sqrt(r2)
            A[q, j] = r / rn
            B[q, j] = sign * xk / rn
            C[q, j] = rn / r
            T[q, j] = xk / r
            r = rn
        out[k, k] = r
        _rotate(R, out, X, sign, k, 1, A[q:], B[q:], C[q:], T[q:], k + 1, k0 + p)
    return True


@jit(inline="always")
def _scaled_columns(U, a):
    """``X = sqrt(|a|) U^T`` ``[M, N]`` (the sweep consumes it) and the sign of ``a``."""
    s = math.sqrt(abs(a))
    X = np.empty((U.shape[1], U.shape[0]), dtype=U.dtype)
    for j in range(U.shape[1]):
        for i in range(U.shape[0]):
            X[j, i] = U[i, j] * s
    return X, (1.0 if a >= 0 else -1.0)


@jit(inline="always")
def _rotation_buffers(m, dtype):
    """``a, b, 1/a, x_k/L_kk`` of one panel's rotations, ``[_PANEL, M]`` each."""
    return (np.empty((_PANEL, m), dtype=dtype), np.empty((_PANEL, m), dtype=dtype),
            np.empty((_PANEL, m), dtype=dtype), np.empty((_PANEL, m), dtype=dtype))


@jit(inline="always", fastmath=_FAST)
def _sweep_panels(R, U, a, out):
    """The panel sweep of one factor into ``out`` (row-major ``L'^T``); False if not PD.
    Inlined into a ``parallel=True`` kernel, each panel's row chunks run in parallel."""
    n, m = R.shape[0], U.shape[1]
    X, sign = _scaled_columns(U, a)
    A, B, C, T = _rotation_buffers(m, R.dtype)
    for k0 in range(0, n, _PANEL):
        p = min(_PANEL, n - k0)
        if not _panel(R, out, X, sign, k0, p, A, B, C, T):
            return False
        start = k0 + p
        for ch in prange((n - start + _CHUNK - 1) // _CHUNK):
            i0 = start + ch * _CHUNK
            _rotate(R, out, X, sign, k0, p, A, B, C, T, i0, min(i0 + _CHUNK, n))
    return True


@jit(fastmath=_FAST)
def _sweep(R, U, a, out):
    """One factor on one thread."""
    return _sweep_panels(R, U, a, out)


@jit(parallel=True, fastmath=_FAST)
def _sweep_parallel(R, U, a, out):
    """One factor, each panel's row chunks in parallel (the same result)."""
    return _sweep_panels(R, U, a, out)


@jit(inline="always")
def _probe_is_zero(R):
    """The probe of :func:`bayeskit.validation.check_cholesky_factor` (``full=False``) for a
    column-major ``L``, on ``R = L^T``: zeros (NaN counts as nonzero) above ``L``'s diagonal
    in its last four columns and its middle one, the leading parts of ``R``'s rows (callers
    check other layouts in torch first, whose probe reads rows). The check's other test,
    a positive and finite diagonal, is made by the sweeps where they read each diagonal
    entry (``_positive``), where the same test in torch operations first gathers the
    diagonal across the batch (a cache line per entry)."""
    n = R.shape[0]
    for c in range(max(0, n - 4), n):
        row = R[c, :c]
        for i in range(row.size):
            if row[i] != 0.0:
                return False
    mid = R[n // 2, :n // 2]
    for i in range(mid.size):
        if mid[i] != 0.0:
            return False
    return True


@jit
def _factor_test(R):
    return _probe_is_zero(R)


@jit(fastmath=_FAST)
def _one(R, U, alpha, out, b):
    if not _probe_is_zero(R[b]):
        return False
    a = alpha[b] if alpha.size > 1 else alpha[0]
    if U.shape[2] > 1:
        return _sweep(R[b], U[b], a, out[b])
    x = U[b, :, 0] * math.sqrt(abs(a))
    return _sweep_rank1(R[b], out[b], x, 1.0 if a >= 0 else -1.0)


@jit(parallel=True)
def _batch(R, U, alpha, out, failed):
    for b in prange(R.shape[0]):
        failed[b] = not _one(R, U, alpha, out, b)


@jit
def _batch_serial(R, U, alpha, out, failed):
    for b in range(R.shape[0]):
        failed[b] = not _one(R, U, alpha, out, b)


def lowrank_update_batch(L: torch.Tensor, U: torch.Tensor, alpha: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors of ``L_b L_b^T + alpha_b U_b U_b^T`` for a batch, compiled (float64 or
    float32; computed in the factor's dtype by numba).

    Args:
        L: ``[B, N, N]`` lower factors (validated by the caller), any layout.
        U: ``[B, N, M]`` update factors; alpha: ``[B]`` or ``[1]`` multipliers (same dtype).

    Returns:
        ``([B, N, N]`` column-major factors, ``[B]`` bool: failed``)``: not positive
        definite, or ``L`` fails the test of
        :func:`bayeskit.validation.check_cholesky_factor` (``full=False``), so that a caller
        may run that check (for its message) only when a factor failed.
        Batches run one factor per thread; one factor of rank > 1 from ``_PARALLEL_N``
        rows runs its row chunks in parallel.
    """
    R = L.mT.contiguous()  # a view when L is column-major, like torch.linalg.cholesky's
    out = torch.empty_like(R)
    failed = np.zeros(L.shape[0], dtype=np.bool_)
    args = (R.numpy(), U.numpy(), alpha.contiguous().numpy(), out.numpy(), failed)
    if compiled.serial():
        _batch_serial(*args)
    elif L.shape[0] == 1 and U.shape[-1] > 1 and L.shape[-1] >= _PARALLEL_N:
        with compiled.threads():
            failed[0] = not (_factor_test(args[0][0]) and _sweep_parallel(
                args[0][0], args[1][0], float(args[2][0]), args[3][0]))
    else:
        with compiled.threads():
            _batch(*args)
    return out.mT, torch.from_numpy(failed)

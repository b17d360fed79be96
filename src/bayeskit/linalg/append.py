"""Grow or shrink a Cholesky factor: append rows/columns, delete rows/columns."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bayeskit.errors import ArgumentTypeError, NonFiniteError, ShapeError
from bayeskit.linalg.cholesky import jittered_cholesky
from bayeskit.linalg.direct import solve_lower_strided
from bayeskit.linalg.update import cholesky_update_lowrank
from bayeskit.validation import (
    as_indices,
    check_cholesky_factor,
    check_floating,
    check_square,
    raise_if_not_pd,
)

__all__ = ["cholesky_append", "cholesky_delete"]


def cholesky_append(
    chol: torch.Tensor,
    cross: torch.Tensor,
    corner: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    jitter: bool = False,
) -> torch.Tensor:
    """Factor of the bordered matrix ``[[A, C], [C^T, D]]`` from the factor of ``A``.

    With ``B = L^{-1} C`` the new factor is ``[[L, 0], [B^T, chol(D - B^T B)]]``: one
    triangular solve, O(N^2 K), plus the copy of ``L`` into the larger output.

    Args:
        chol: ``[..., N, N]`` lower factor of ``A``.
        cross: ``[..., N, K]`` the new columns ``C``.
        corner: ``[..., K, K]`` the new diagonal block ``D`` (lower triangle read).
        out: optional ``[..., N+K, N+K]`` output. If ``chol`` is already the top-left
            block of ``out`` (a view into it, as in a preallocated growing buffer), the
            O(N^2) copy is skipped and only the new rows are written.
        jitter: instead of raising when the Schur complement ``D - B^T B`` is (numerically)
            singular, as when a new point repeats an old one, factor it with a diagonal
            jitter: ``10 eps max|diag D|`` first, then :func:`jittered_cholesky`'s escalation.

    Returns:
        ``[..., N+K, N+K]`` lower factor (column-major unless ``out`` says otherwise).

    Raises:
        NotPositiveDefiniteError: the bordered matrix is not positive definite.
        ShapeError: malformed shapes (``NonFiniteError``, ``TypeError``: NaN/inf or
            non-numeric input).

    Examples:
        >>> A = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> L = cholesky_append(torch.linalg.cholesky(A[:1, :1]), A[:1, 1:], A[1:, 1:])
        >>> torch.allclose(L, torch.linalg.cholesky(A))
        True
    """
    # the diagonal and a probe above it; the lower triangle is checked through the solve,
    # which reads it (a full-matrix check would cost as much as the append itself)
    n = check_cholesky_factor("chol", chol, full=False)
    k = check_square("corner", corner)
    check_floating("cross", cross)
    if cross.dim() < 2 or cross.shape[-2:] != (n, k):
        raise ShapeError(
            f"cross must have shape [..., N, K] = [..., {n}, {k}] to match chol "
            f"{tuple(chol.shape)} and corner {tuple(corner.shape)}, got {tuple(cross.shape)}"
        )
    if not (chol.dtype == cross.dtype == corner.dtype):
        raise ArgumentTypeError(
            f"chol, cross and corner must share a dtype, got {chol.dtype}, {cross.dtype}, "
            f"{corner.dtype}"
        )
    if not bool(torch.isfinite(cross).all()) or not bool(torch.isfinite(corner).all()):
        raise NonFiniteError("cross or corner contains NaN or infinite values")
    batch = torch.broadcast_shapes(chol.shape[:-2], cross.shape[:-2], corner.shape[:-2])
    B = _solve_lower(chol, cross)  # [..., N, K]
    if not bool(torch.isfinite(B).all()):
        raise NonFiniteError("chol contains NaN/inf or is numerically singular")
    schur = corner - B.mT @ B
    if jitter:
        floor = 10 * torch.finfo(schur.dtype).eps * corner.detach().diagonal(
            dim1=-2, dim2=-1).abs().amax(-1).clamp_min(torch.finfo(schur.dtype).tiny)
        eye = torch.eye(k, dtype=schur.dtype, device=schur.device)
        L22, _ = jittered_cholesky(schur + floor[..., None, None] * eye)
    else:
        L22, info = torch.linalg.cholesky_ex(schur)
        raise_if_not_pd(info > 0, "the bordered matrix [[A, C], [C^T, D]]")

    size = n + k
    if out is None:
        # Column-major, like torch.linalg.cholesky, so later updates take the fast path.
        out = torch.empty(*batch, size, size, dtype=chol.dtype, device=chol.device).mT
        reuse = False
    else:
        if out.shape != (*batch, size, size):
            raise ShapeError(f"out must have shape {(*batch, size, size)}, got {tuple(out.shape)}")
        top = out[..., :n, :n]
        reuse = top.data_ptr() == chol.data_ptr() and top.stride() == chol.stride()
    if not reuse:  # only chol's lower triangle is read (and copied)
        # in R = L^T space: both are row-major there, so this is a plain strided copy
        torch.triu(chol.expand(*batch, n, n).mT, out=out[..., :n, :n].mT)
    out[..., :n, n:] = 0
    out[..., n:, :n] = B.mT
    out[..., n:, n:] = L22
    return out


def _solve_lower(L: torch.Tensor, B: torch.Tensor, panel: int = 256) -> torch.Tensor:
    """``L^{-1} B`` for lower-triangular ``L``, without copying a strided ``L``.

    ``torch.linalg.solve_triangular`` copies a factor that is a view into a larger buffer
    (leading dimension != N), which costs as much as the whole append. Such a view
    (unbatched, no autograd) goes to BLAS's ``trsm`` directly where torch's BLAS is
    reachable (:mod:`bayeskit.linalg.direct`), else (``BAYESKIT_DIRECT_LAPACK=0`` too) to a
    blocked forward substitution: panel products through ``addmm``, which takes strided
    operands as they are, and small triangular solves. ``benchmarks/bench_cholesky.py``
    times the append both ways ("preallocated, no direct trsm (panel route)") and ``trsm``
    alone.
    """
    n = L.shape[-1]
    strided = L.dim() == 2 and B.dim() == 2 and not (L.is_contiguous() or L.mT.is_contiguous())
    needs_grad = torch.is_grad_enabled() and (L.requires_grad or B.requires_grad)
    if not strided or needs_grad:
        return torch.linalg.solve_triangular(L, B, upper=False)
    X = solve_lower_strided(L, B)
    if X is not None:
        return X
    if n <= panel:
        return torch.linalg.solve_triangular(L, B, upper=False)
    X = torch.empty(B.shape, dtype=B.dtype, device=B.device)
    for j0 in range(0, n, panel):
        j1 = min(n, j0 + panel)
        rhs = B[j0:j1]
        if j0:
            rhs = torch.addmm(rhs, L[j0:j1, :j0], X[:j0], alpha=-1.0)
        X[j0:j1] = torch.linalg.solve_triangular(L[j0:j1, j0:j1], rhs, upper=False)
    return X


def cholesky_delete(
    chol: torch.Tensor, indices: int | Sequence[int] | torch.Tensor
) -> torch.Tensor:
    """Factor of ``A`` with the rows and columns ``indices`` removed, in O(N^2) per index.

    Removing indices ``K`` leaves ``A_kk = L[k, k] L[k, k]^T + L[k, K] L[k, K]^T`` for the
    kept set ``k``: the kept rows of ``L`` are triangular except for the removed columns,
    which are folded back in by a rank-|K| update of the trailing block (only rows after
    the first removed index change).

    Args:
        chol: ``[..., N, N]`` lower factor of ``A``.
        indices: int, sequence of ints or 1-D integer tensor (negative values count from
            the end); the same indices are removed in every batch element.

    Returns:
        ``[..., N - |K|, N - |K|]`` lower factor.

    Examples:
        >>> A = torch.tensor([[4.0, 2, 1], [2, 5, 3], [1, 3, 6]], dtype=torch.float64)
        >>> L = cholesky_delete(torch.linalg.cholesky(A), 1)
        >>> torch.allclose(L, torch.linalg.cholesky(A[[0, 2]][:, [0, 2]]))
        True
    """
    n = check_cholesky_factor("chol", chol)
    idx = as_indices(indices, "indices", n)
    if idx.numel() == 0:
        return chol.clone()
    removed = torch.zeros(n, dtype=torch.bool)
    removed[idx] = True
    keep = torch.nonzero(~removed).reshape(-1).to(chol.device)
    gone = torch.nonzero(removed).reshape(-1).to(chol.device)
    first = int(gone[0])
    # Work on R = L^T so the result comes out column-major like torch.linalg.cholesky.
    R = chol.mT
    new = R.index_select(-2, keep).index_select(-1, keep).mT
    if first >= new.shape[-1]:
        return new  # only trailing rows/columns were removed
    tail = keep[first:]
    folded = R.index_select(-2, gone).index_select(-1, tail).mT  # L[tail, K]: [..., n_t, |K|]
    new[..., first:, first:] = cholesky_update_lowrank(new[..., first:, first:], folded)
    return new

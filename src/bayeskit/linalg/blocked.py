"""``(L L^T)^-1`` from a lower Cholesky factor in blocked matrix products.

LAPACK's ``potri`` runs at under half the speed of a matrix product on some machines (MKL
on an AMD EPYC, float64, N = 2000: 27 against 69 Gflop/s; ``benchmarks/bench_gp.py
--inverse``). This module does ``potri``'s own arithmetic, in the order of LAPACK's blocked
``trtri`` and ``lauum``, with every large step a product of panels of ``b =``
:data:`PANEL` rows (``N^3 / 3`` multiply-adds as in LAPACK, and ``3 b / 2N`` of that more
for the diagonal blocks, taken as full products):

1. ``W = L^-1`` in place, block rows top-down: ``W_ii = L_ii^-1`` (a ``b x b`` triangular
   solve) and ``W[i, :i] = -W_ii (L[i, :i] W[:i, :i])``, the inner product taken block
   column by block column of the triangle ``W[:i, :i]``;
2. the lower triangle of ``W^T W`` in place, block rows top-down:
   ``S[i, :i+1] = W[i:, i]^T W[i:, :i+1]`` (rows above ``i`` of ``W``'s columns are zero);
3. the lower triangle mirrored onto the upper one.

Its rounding is of ``potri``'s order: on a GP kernel matrix of condition number 2e8 the float32
result lies 1.2e-5 of the largest entry from the float64 truth at N = 2000 where ``potri``'s
lies 2.5e-5, for every panel width (``tests/linalg/test_lapack.py``). (The first version
walked block columns up from the bottom, ``S11 = (A A^T)^-1 + Y^T S22 Y`` with
``Y = B A^-1``; it amplified the trailing block's rounding by ``|Y|^2`` at every step:
4.3e-4 at N = 2000 in float32, 1.3e-12 in float64.) On an Intel Xeon (2 cores) it took
1.17-1.76x ``potri``'s time at N = 1000-4000; on an AMD EPYC (Zen 4, 2 cores) 0.84-1.02x at
N = 2000, 0.83-0.95x at 4000 and 1.11x at 1500 (``bench_gp.py --inverse``, four runs), so
:func:`~bayeskit.linalg.lapack_backend` does not choose it by itself.
"""

from __future__ import annotations

import torch

__all__ = ["PANEL"]

#: rows per block: 2-6 % faster than 384 at N = 1000-4000 (one run on an Intel Xeon;
#: ``benchmarks/bench_gp.py --inverse --inverse-panels 256 384``)
PANEL = 256


def _blocked_cholesky_inverse(chol: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^-1`` for lower factors ``chol [..., N, N]`` (only the lower triangle is
    read), row-major and exactly symmetric, in block rows of :data:`PANEL` (the module's
    docstring). Not differentiable. Unchecked: :func:`bayeskit.linalg.cholesky_inverse`
    (``backend="blocked"``) validates the factor, names a non-finite result and routes
    here."""
    n, b = chol.shape[-1], PANEL
    with torch.no_grad():
        X = torch.tril(chol.detach().reshape(-1, n, n))  # a row-major copy, zeros above
        eye = torch.eye(min(b, n), dtype=X.dtype, device=X.device)
        work = torch.empty(X.shape[0], min(b, n), n, dtype=X.dtype, device=X.device)
        starts = range(0, n, b)
        for i0 in starts:  # 1: X <- W = L^-1
            i1 = min(i0 + b, n)
            W_ii = torch.linalg.solve_triangular(X[:, i0:i1, i0:i1], eye[: i1 - i0, : i1 - i0],
                                                 upper=False).tril_()
            if i0:
                T = work[:, : i1 - i0, :i0]  # L[i, :i] W[:i, :i], the triangle's zeros skipped
                for k0 in range(0, i0, b):
                    k1 = min(k0 + b, i0)
                    torch.matmul(X[:, i0:i1, k0:i0], X[:, k0:i0, k0:k1], out=T[:, :, k0:k1])
                torch.matmul(W_ii, T, out=X[:, i0:i1, :i0])
                X[:, i0:i1, :i0].neg_()
            X[:, i0:i1, i0:i1] = W_ii
        for i0 in starts:  # 2: X's lower triangle <- W^T W's; rows of block i no longer read
            i1 = min(i0 + b, n)
            R = work[:, : i1 - i0, :i1]
            torch.matmul(X[:, i0:, i0:i1].mT, X[:, i0:, :i1], out=R)
            X[:, i0:i1, :i1] = R
        _mirror_lower(X)  # 3
    return X.view(chol.shape)


def _mirror_lower(A: torch.Tensor, block: int = 256) -> None:
    """Copy the lower triangle of the square ``A [..., n, n]`` onto its upper one, in
    blocks (a transposed copy in cache-sized pieces)."""
    n = A.shape[-1]
    for i in range(0, n, block):
        j = min(i + block, n)
        A[..., i:j, j:] = A[..., j:, i:j].mT
        D = A[..., i:j, i:j]
        D.copy_(D.tril() + D.tril(-1).mT)

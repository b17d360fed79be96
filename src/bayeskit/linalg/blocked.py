"""``(L L^T)^-1`` from a lower Cholesky factor by block columns, in matrix products.

LAPACK's ``potri`` (a triangular inverse, then ``L^-T L^-1``) runs at under half the speed
of a matrix product on some machines (MKL on an AMD EPYC, float64, N = 2000: 27 against
69 Gflop/s; ``benchmarks/bench_gp.py --inverse``). Nearly the same flops (``2 N^3 / 3``
and ``3 b / 4N`` of that more) can be arranged as products of an ``m x m`` matrix with an
``m x b`` panel. Split the trailing
part of the factor from row ``s`` as

    L[s:, s:] = [[A, 0], [B, C]]   (A: b x b, the next block column up),
    Y = B A^-1,   S22 = (C C^T)^-1   (the part already inverted),
    (L[s:, s:] L[s:, s:]^T)^-1 = [[(A A^T)^-1 - Y^T S21,  S21^T],
                                  [S21,                    S22  ]],   S21 = -S22 Y,

(block inversion of ``[[A^-1, 0], [-C^-1 B A^-1, C^-1]]``) and walk ``s`` up from the
bottom in steps of ``b =`` :data:`PANEL` rows: per step a triangular solve with ``b``
columns, one ``m x m`` by ``m x b`` product (most of the flops), one ``b x m`` by ``m x b``
product and LAPACK's ``potri`` on the ``b x b`` block. Rounding, measured
(``tests/linalg/test_lapack.py``): on a GP kernel matrix of condition number 2e8 the float32
result is 2.7e-5 of the largest entry from the float64 truth where ``potri``'s is 1.9e-5,
and in float64 the two routes differ by 1.2e-13 of it.
"""

from __future__ import annotations

import torch

__all__ = ["PANEL"]

#: rows per block column: of 128, 256, 384 and 512 the fastest at N = 2000-4000 and within
#: 2 % of 256 at 1500 on an AMD EPYC (``benchmarks/bench_gp.py --inverse-panels``)
PANEL = 384


def _blocked_cholesky_inverse(chol: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^-1`` for lower factors ``chol [..., N, N]`` (only the lower triangle is
    read), row-major and exactly symmetric, in block columns of :data:`PANEL` rows. Not
    differentiable. Unchecked: :func:`bayeskit.linalg.cholesky_inverse` (``backend=
    "blocked"``) validates the factor, names a non-finite result and routes here."""
    n, b = chol.shape[-1], PANEL
    with torch.no_grad():
        L = chol.detach().reshape(-1, n, n)
        S = torch.empty(L.shape, dtype=chol.dtype, device=chol.device)
        s = max(n - b, 0)
        S[:, s:, s:] = torch.cholesky_inverse(L[:, s:, s:])
        while s > 0:
            e, s = s, max(s - b, 0)
            A, B = L[:, s:e, s:e], L[:, e:, s:e]
            S11, S21 = S[:, s:e, s:e], S[:, e:, s:e]
            Y = torch.linalg.solve_triangular(A, B, upper=False, left=False)  # Y A = B
            torch.bmm(S[:, e:, e:], Y, out=S21)
            S21.neg_()
            S11.copy_(torch.cholesky_inverse(A))
            S11.baddbmm_(Y.mT, S21, alpha=-1)
            _mirror_lower(S11)  # the product above is symmetric only to rounding
            S[:, s:e, e:] = S21.mT
    return S.view(chol.shape)


def _mirror_lower(A: torch.Tensor, block: int = 256) -> None:
    """Copy the lower triangle of the square ``A [..., n, n]`` onto its upper one, in
    blocks (a transposed copy in cache-sized pieces)."""
    n = A.shape[-1]
    for i in range(0, n, block):
        j = min(i + block, n)
        A[..., i:j, j:] = A[..., j:, i:j].mT
        D = A[..., i:j, i:j]
        D.copy_(D.tril() + D.tril(-1).mT)

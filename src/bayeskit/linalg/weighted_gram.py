"""Weighted Gram matrices ``A^T diag(w) A`` of one ``A`` for many weight vectors ``w``.

A Gibbs sampler forms one per chain per sweep: the posterior precision of a linear-Gaussian
step (``A`` the design, ``w`` the Pólya-gamma draws) and the capacitance matrix of a
low-rank preconditioner (``A`` the eigenvectors, ``w`` the inverse pseudo-noise). Written
as ``sum_n w_n a_n a_n^T``, the whole batch is one matrix product of the weights with a
table of the rows' outer products; the table is symmetric, so only its upper triangles are
kept (packed): ``D (D + 1) / 2`` columns, half the multiply-adds of the batched
``A^T diag(w) A``, and one large product instead of a batch of small ones.
"""

from __future__ import annotations

import torch

from bayeskit.errors import ArgumentTypeError, ShapeError
from bayeskit.validation import check_finite, check_floating

__all__ = ["WeightedGram"]

#: the packed table is built where it holds at most this many entries (128 MiB in float64)
TABLE_ENTRIES = 2**24


class WeightedGram:
    """``w [..., N] -> A^T diag(w) A [..., D, D]`` for one ``A [N, D]``, built once.

    The table ``[N, D (D + 1) / 2]`` of the upper triangles of ``a_n a_n^T`` (``a_n`` the
    rows of ``A``) is built where it has at most 2^24 entries; each call is then one product
    ``w @ table`` and a gather into the symmetric result. Without the table (``packed=False``
    or too large) each call is the batched product ``(A^T * w) @ A``. Both give the same
    matrices to rounding; neither records gradients through ``A`` (detached).

    Args:
        A: ``[N, D]`` floating, finite.
        packed: build the table (default ``None``: where it fits, see above).

    Examples:
        >>> A = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
        >>> gram = WeightedGram(A)
        >>> w = torch.tensor([[0.5, 1.0, 2.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
        >>> G = gram(w)  # two weight vectors: [2, 2, 2]
        >>> bool(torch.allclose(G[0], A.T @ torch.diag(w[0]) @ A)), bool(torch.equal(G[1], A.T @ A))
        (True, True)
    """

    def __init__(self, A: torch.Tensor, *, packed: bool | None = None):
        if not isinstance(A, torch.Tensor):
            raise ArgumentTypeError(f"A must be a tensor [N, D], got {type(A).__name__}")
        check_floating("A", A)
        if A.dim() != 2 or not A.numel():
            raise ShapeError(f"A must be [N, D] with N, D >= 1, got {tuple(A.shape)}")
        check_finite("A", A)
        if packed is not None and not isinstance(packed, bool):
            raise ArgumentTypeError(f"packed must be True, False or None, got {packed!r}")
        self.A = A.detach().clone()
        n, d = A.shape
        if packed is None:
            packed = n * d * (d + 1) // 2 <= TABLE_ENTRIES
        self.table = self.unpack = None
        if packed:
            rows, cols = torch.triu_indices(d, d, device=A.device)
            self.table = self.A[:, rows] * self.A[:, cols]  # [N, D (D + 1) / 2]
            unpack = torch.empty(d, d, dtype=torch.long, device=A.device)
            position = torch.arange(rows.shape[0], device=A.device)
            unpack[rows, cols] = position
            unpack[cols, rows] = position
            self.unpack = unpack  # [D, D]: where each entry of the Gram matrix lies

    @property
    def size(self) -> int:
        """``N``, the number of rows (and of weights)."""
        return self.A.shape[0]

    @property
    def packed(self) -> bool:
        """Whether calls go through the table."""
        return self.table is not None

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """``A^T diag(w) A`` ``[..., D, D]`` for finite weights ``w [..., N]`` of ``A``'s dtype."""
        if not isinstance(w, torch.Tensor):
            raise ArgumentTypeError(f"w must be a tensor [..., {self.size}], got "
                                    f"{type(w).__name__}")
        check_floating("w", w)
        if w.dim() < 1 or w.shape[-1] != self.size:
            raise ShapeError(f"w must be [..., {self.size}] (one weight per row of A), got "
                             f"{tuple(w.shape)}")
        if w.dtype != self.A.dtype or w.device != self.A.device:
            raise ArgumentTypeError(f"w is {w.dtype} on {w.device} but A is {self.A.dtype} "
                                    f"on {self.A.device}; use one dtype and device")
        check_finite("w", w)
        return self._unchecked(w)

    def _unchecked(self, w: torch.Tensor) -> torch.Tensor:
        """:meth:`__call__` without the checks (for callers in linalg that made them)."""
        if self.table is not None:
            return (w @ self.table)[..., self.unpack]
        return (self.A.mT * w.unsqueeze(-2)) @ self.A

"""Structure of a matrix that lets a caller skip work, detected once."""

from __future__ import annotations

import torch

from bayeskit.errors import ShapeError
from bayeskit.validation import check_floating, check_square

__all__ = ["identity_multiple"]


def identity_multiple(A: torch.Tensor) -> float | None:
    """``s`` where the square matrix ``A [N, N]`` is exactly ``s I``, else ``None``.

    A prior precision ``s I`` (a whitened Gaussian process's prior, or a scalar
    ``prior_precision``) turns a quadratic form ``b^T A b`` into ``s |b|^2`` and a draw
    from ``N(m, A^-1)`` into ``m + eps / sqrt(s)``: no matrix product, no triangular solve.
    One pass over ``A``; call it once and keep the answer.

    Examples:
        >>> identity_multiple(2.0 * torch.eye(3, dtype=torch.float64))
        2.0
        >>> identity_multiple(torch.diag(torch.tensor([1.0, 2.0]))) is None
        True
    """
    check_floating("A", A)
    n = check_square("A", A)
    if A.dim() != 2:
        raise ShapeError(f"A must be one [N, N] matrix, got {tuple(A.shape)}")
    if n == 0:
        return None
    s = A[0, 0]
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    return float(s) if bool((A == s * eye).all()) else None

"""Cholesky factorisation with escalating diagonal jitter, and triangular helpers."""

from __future__ import annotations

import torch

from bayeskit.linalg._checks import check_finite, check_square, raise_if_not_pd

__all__ = ["jittered_cholesky", "cholesky_solve", "cholesky_logdet"]


def jittered_cholesky(
    A: torch.Tensor,
    *,
    initial_jitter: float | None = None,
    max_tries: int = 6,
    growth: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower Cholesky factor of ``A``, adding diagonal jitter only where it is needed.

    First tries a plain factorisation. Batch elements that fail are retried with
    ``jitter = initial_jitter * growth**k`` (k = 0, 1, ...) times the mean of their diagonal
    added to the diagonal, up to ``max_tries`` times; elements that succeed keep
    zero jitter.

    Args:
        A: ``[..., N, N]`` symmetric matrix (only the lower triangle is read).
        initial_jitter: first relative jitter; default ``1e-10`` for float64 and ``1e-6``
            for float32.
        max_tries: number of jitter levels tried after the plain attempt.
        growth: factor between successive jitter levels.

    Returns:
        ``(L, jitter)``: ``L: [..., N, N]`` lower factor of ``A + diag(jitter)``, and
        ``jitter: [...]`` the absolute jitter added to each batch element (0 where none).

    Raises:
        NotPositiveDefiniteError: still failing at the largest jitter (named in the
            message, with the batch index). NonFiniteError: NaN/inf in ``A``.

    Example:
        >>> A = torch.ones(3, 3, dtype=torch.float64)  # rank 1: plain Cholesky fails
        >>> L, jitter = jittered_cholesky(A)
        >>> bool(jitter > 0)
        True
    """
    n = check_square("A", A)
    check_finite("A", A)
    if max_tries < 0:
        raise ValueError(f"max_tries must be >= 0, got {max_tries}")
    if initial_jitter is None:
        initial_jitter = 1e-10 if A.dtype == torch.float64 else 1e-6
    if not initial_jitter > 0:
        raise ValueError(f"initial_jitter must be positive, got {initial_jitter}")
    L, info = torch.linalg.cholesky_ex(A)
    jitter = torch.zeros(A.shape[:-2], dtype=A.dtype, device=A.device)
    failed = info > 0
    if n == 0 or not bool(failed.any()):
        return L, jitter
    scale = A.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(torch.finfo(A.dtype).tiny)
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    level = initial_jitter
    for _ in range(max_tries):
        trial = torch.where(failed, level * scale, jitter)
        L_try, info = torch.linalg.cholesky_ex(A + trial[..., None, None] * eye)
        newly_ok = failed & (info == 0)
        L = torch.where(newly_ok[..., None, None], L_try, L)
        jitter = torch.where(newly_ok, trial, jitter)
        failed = failed & (info > 0)
        if not bool(failed.any()):
            break
        level *= growth
    largest = level / growth * float(scale.max()) if max_tries else None
    raise_if_not_pd(failed, "A", jitter=largest)
    return L, jitter


def cholesky_solve(chol: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Solve ``(L L^T) X = B`` given the lower factor ``L: [..., N, N]``, ``B: [..., N, K]``."""
    return torch.cholesky_solve(B, chol, upper=False)


def cholesky_logdet(chol: torch.Tensor) -> torch.Tensor:
    """``log det(L L^T) = 2 sum log diag(L)`` for ``L: [..., N, N]``; returns ``[...]``."""
    return 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)

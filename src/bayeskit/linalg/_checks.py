"""Cheap argument checks shared by the linalg functions (shapes, dtypes, finiteness)."""

from __future__ import annotations

import torch

from bayeskit.errors import NonFiniteError, NotPositiveDefiniteError, ShapeError

__all__ = [
    "check_floating",
    "check_square",
    "check_finite",
    "first_true_index",
    "raise_if_not_pd",
]


def check_floating(name: str, x: torch.Tensor) -> None:
    """Raise ``TypeError`` unless ``x`` is a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float32 or float64), got {x.dtype}; "
            f"convert it with {name}.double()"
        )


def check_square(name: str, x: torch.Tensor) -> int:
    """Check ``x`` has shape ``[..., N, N]`` and return ``N``."""
    check_floating(name, x)
    if x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(
            f"{name} must have shape [..., N, N] (a batch of square matrices), "
            f"got shape {tuple(x.shape)}"
        )
    return x.shape[-1]


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` if ``x`` holds NaN or infinity."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"{name} contains NaN or infinite values; clean the input first")


def first_true_index(mask: torch.Tensor) -> tuple[int, ...] | None:
    """Index of the first ``True`` of a boolean tensor, or ``None`` if there is none."""
    if mask.dim() == 0:
        return () if bool(mask) else None
    hits = torch.nonzero(mask)
    if hits.shape[0] == 0:
        return None
    return tuple(int(i) for i in hits[0])


def raise_if_not_pd(failed: torch.Tensor, what: str, *, jitter: float | None = None) -> None:
    """Raise :class:`NotPositiveDefiniteError` if any batch element of ``failed`` is true.

    Args:
        failed: boolean tensor over the batch shape, true where a factorisation failed.
        what: human-readable description of the matrix, used in the message.
        jitter: largest jitter tried, reported in the message when given.
    """
    index = first_true_index(failed)
    if index is None:
        return
    where = f" at batch index {index}" if index else ""
    extra = f" even with diagonal jitter {jitter:.3g}" if jitter is not None else ""
    raise NotPositiveDefiniteError(
        f"{what} is not positive definite{where}{extra}", batch_index=index or None,
        jitter=jitter,
    )

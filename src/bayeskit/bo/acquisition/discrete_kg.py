"""Exact knowledge gradient over a finite set of alternatives (Frazier, Powell & Dayanik
2009, Algorithm 1), in the minimisation convention.

For alternatives with current means ``mu_i`` and per-outcome moves ``s_i`` (the
``sigma_tilde`` of :class:`bayeskit.bo.GPPosterior`), measuring a candidate changes the
means to ``mu_i + s_i Z`` with ``Z ~ N(0, 1)``, and

    KG = min_i mu_i - E[min_i (mu_i + s_i Z)] = E[max_i (a_i + b_i Z)] - max_i a_i

with ``a = -mu`` and ``b = s`` (``Z`` is symmetric). The upper envelope of the lines
``a_i + b_i z`` is piecewise linear; with its lines sorted by slope and breakpoints
``c_j = (a_j - a_{j+1}) / (b_{j+1} - b_j)``,

    KG = sum_j (b_{j+1} - b_j) f(-|c_j|),   f(z) = z Phi(z) + phi(z).

The envelope is found after one sort by vectorised pruning passes and a stack scan, for
the whole batch at once in NumPy; the final sum is torch, differentiable in ``mean`` and
``sigma_tilde``.
"""

from __future__ import annotations

import numpy as np
import torch

from bayeskit.bo.acquisition.analytic import log_h
from bayeskit.errors import NonFiniteError, ShapeError
from bayeskit.validation import as_param

__all__ = ["knowledge_gradient_discrete", "expected_max_gain"]


def _hull_passes(a_s: np.ndarray, b_s: np.ndarray, alive: np.ndarray, max_passes: int) -> bool:
    """Drop (in place from ``alive``) points on or below the segment joining their
    surviving neighbours; a dropped point is never a hull vertex, so all rows and points
    are tested at once. Returns True when a pass changed nothing: the survivors are then
    exactly the hull's vertices (each lies strictly above its neighbours' segment)."""
    B, A = a_s.shape
    idx = np.broadcast_to(np.arange(A), (B, A))
    rows = np.arange(B)[:, None]
    for _ in range(max_passes):
        left = np.maximum.accumulate(np.where(alive, idx, -1), axis=1)
        right = np.minimum.accumulate(np.where(alive, idx, A)[:, ::-1], axis=1)[:, ::-1]
        lft = np.concatenate([np.full((B, 1), -1), left[:, :-1]], 1)
        rgt = np.concatenate([right[:, 1:], np.full((B, 1), A)], 1)
        inner = alive & (lft >= 0) & (rgt < A)
        lc, rc = np.clip(lft, 0, A - 1), np.clip(rgt, 0, A - 1)
        al, bl = a_s[rows, lc], b_s[rows, lc]
        ar, br = a_s[rows, rc], b_s[rows, rc]
        below = inner & ((a_s - al) * (br - bl) <= (ar - al) * (b_s - bl))
        if not below.any():
            return True
        alive &= ~below
    return False


def _hull_stack(a_s: np.ndarray, b_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Monotone-chain scan over points sorted by ``(b, a)``, all rows advancing together
    (one push or pop per row per step, at most 2A steps): positions ``[B, A]`` of the hull
    vertices (first ``size`` entries valid) and ``size`` ``[B]``."""
    B, A = a_s.shape
    stack = np.zeros((B, A), dtype=np.int64)
    size = np.zeros(B, dtype=np.int64)
    ptr = np.zeros(B, dtype=np.int64)
    active = np.arange(B)
    while active.size:
        j = ptr[active]
        aj, bj = a_s[active, j], b_s[active, j]
        sz = size[active]
        top = stack[active, np.maximum(sz - 1, 0)]
        below = stack[active, np.maximum(sz - 2, 0)]
        a2, b2 = a_s[active, top], b_s[active, top]
        a1, b1 = a_s[active, below], b_s[active, below]
        tie = (sz >= 1) & (b2 == bj)
        # the top is not a vertex if it lies on or below the segment from the one below to j
        dominated = (sz >= 2) & ((a2 - a1) * (bj - b1) <= (aj - a1) * (b2 - b1))
        pop = tie | dominated
        size[active[pop]] -= 1
        push = active[~pop]
        stack[push, size[push]] = ptr[push]
        size[push] += 1
        ptr[push] += 1
        active = active[ptr[active] < A]
    return stack, size


def _envelope(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``[B, W]`` (padded) of the upper envelope's lines sorted by slope, and the
    envelope sizes ``[B]``; ``a``, ``b``: ``[B, A]``.

    The envelope's lines are the vertices of the upper convex hull of the points
    ``(b_i, a_i)``. After sorting by slope, vectorised pruning passes
    (:func:`_hull_passes`) remove non-vertices, usually until none is left; if a pass
    budget runs out first, an exact stack scan (:func:`_hull_stack`) over the survivors
    finishes the job.
    """
    B, A = a.shape
    order = np.lexsort((a, b), axis=-1)  # by slope, ties by intercept
    a_s = np.take_along_axis(a, order, -1)
    b_s = np.take_along_axis(b, order, -1)
    alive = np.ones((B, A), dtype=bool)
    alive[:, :-1] = b_s[:, :-1] != b_s[:, 1:]  # of equal slopes only the highest can count
    converged = _hull_passes(a_s, b_s, alive, max_passes=8)
    count = alive.sum(1)
    W = int(count.max())
    pos = np.argsort(~alive, axis=1, kind="stable")[:, :W]  # survivors first, in order
    if converged:
        return np.take_along_axis(order, pos, -1), count
    # padding repeats the last survivor (a tie, popped again by the stack)
    pos = np.where(np.arange(W)[None] < count[:, None], pos,
                   np.take_along_axis(pos, (count - 1)[:, None], 1))
    stack, size = _hull_stack(np.take_along_axis(a_s, pos, 1), np.take_along_axis(b_s, pos, 1))
    width = int(size.max())
    hull = np.take_along_axis(pos, stack[:, :width], 1)
    return np.take_along_axis(order, hull, -1), size


def expected_max_gain(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``E[max_i (a_i + b_i Z)] - max_i a_i`` for ``Z ~ N(0, 1)``; ``a``, ``b``: ``[..., A]``."""
    batch = a.shape[:-1]
    A = a.shape[-1]
    a2 = a.reshape(-1, A)
    b2 = b.reshape(-1, A)
    idx, size = _envelope(a2.detach().cpu().numpy(), b2.detach().cpu().numpy())
    idx = torch.from_numpy(idx).to(a.device)  # only the envelope's lines enter the sum
    A = idx.shape[-1]
    size = torch.from_numpy(size).to(a.device)
    ea = torch.gather(a2, -1, idx)
    eb = torch.gather(b2, -1, idx)
    da = ea[:, :-1] - ea[:, 1:]
    db = eb[:, 1:] - eb[:, :-1]
    valid = torch.arange(A - 1, device=a.device) < (size[:, None] - 1)
    db_safe = torch.where(valid, db, torch.ones_like(db))
    z = -(torch.where(valid, da, torch.zeros_like(da)) / db_safe).abs()
    f = torch.exp(log_h(z))  # z Phi(z) + phi(z) without cancellation (EI's h)
    gain = torch.where(valid, db * f, torch.zeros_like(f)).sum(-1)
    return gain.reshape(batch)


def knowledge_gradient_discrete(mean, sigma_tilde) -> torch.Tensor:
    """Exact KG ``min(mean) - E[min(mean + sigma_tilde Z)]`` over ``A`` alternatives.

    Args:
        mean: ``[..., A]`` current posterior means of the alternatives.
        sigma_tilde: ``[..., A]`` change of each mean per standardised outcome of the
            measurement being scored (broadcasts with ``mean``; leading dims are candidates).

    Returns:
        ``[...]`` KG values (>= 0), differentiable in both inputs.

    Examples:
        >>> mu = torch.tensor([0.0, 0.0], dtype=torch.float64)
        >>> s = torch.tensor([-1.0, 1.0], dtype=torch.float64)
        >>> round(float(knowledge_gradient_discrete(mu, s)), 6)  # E|Z| = sqrt(2/pi)
        0.797885
    """
    mean, sigma_tilde = as_param(mean, "mean"), as_param(sigma_tilde, "sigma_tilde")
    dtype = torch.promote_types(mean.dtype, sigma_tilde.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float64  # integer input: float64
    mean, sigma_tilde = mean.to(dtype), sigma_tilde.to(dtype)
    if mean.dim() == 0 or mean.shape[-1] == 0:
        raise ShapeError(f"mean must be [..., A] with A >= 1, got {tuple(mean.shape)}")
    try:
        mean, sigma_tilde = torch.broadcast_tensors(mean, sigma_tilde)
    except RuntimeError as err:
        raise ShapeError(f"mean {tuple(mean.shape)} and sigma_tilde "
                         f"{tuple(sigma_tilde.shape)} do not broadcast") from err
    if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(sigma_tilde).all())):
        raise NonFiniteError("mean and sigma_tilde must be finite")
    return expected_max_gain(-mean, sigma_tilde)

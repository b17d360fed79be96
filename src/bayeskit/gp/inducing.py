"""Choosing inducing inputs ``Z`` ``[M, D]`` from the training inputs ``X`` ``[N, D]``."""

from __future__ import annotations

import torch

from bayeskit.errors import ArgumentValueError, ShapeError
from bayeskit.gp.kernels import Kernel
from bayeskit.validation import as_indices, as_inputs, as_int, as_scalar, as_tensor

__all__ = ["random_subset", "kmeans", "greedy_variance"]

F64 = torch.float64


def _check(X, M: int) -> torch.Tensor:
    X = as_inputs(X, "X")
    M = as_int(M, "M", positive=True)
    if M > X.shape[0]:
        raise ArgumentValueError(f"need 1 <= M <= N to choose M inducing points from N = "
                                 f"{X.shape[0]} inputs, got M = {M}; use fewer inducing points")
    return X


def random_subset(X, M: int, *, seed: int = 0) -> torch.Tensor:
    """``M`` distinct rows of ``X`` chosen uniformly at random."""
    X = _check(X, M)
    idx = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))[:M]
    return X[idx].clone()


def kmeans(X, M: int, *, seed: int = 0) -> torch.Tensor:
    """The ``M`` cluster centres of k-means (scikit-learn, k-means++ initialisation)."""
    from sklearn.cluster import KMeans

    X = _check(X, M)
    km = KMeans(n_clusters=M, n_init=3, random_state=seed).fit(X.numpy())
    return torch.as_tensor(km.cluster_centers_, dtype=F64)


def greedy_variance(X, M: int, kernel: Kernel, *, threshold: float = 0.0,
                    quality=None, first=None) -> torch.Tensor:
    """Greedy conditional-variance selection (Burt, Rasmussen & van der Wilk 2019): repeatedly
    add the input whose prior variance given the points chosen so far is largest, i.e. a
    pivoted partial Cholesky factorisation of ``K_XX`` in O(N M^2). Stops early when no
    remaining conditional variance exceeds ``threshold`` or ``1e-12`` of the largest prior
    variance (a numerical duplicate); then fewer than ``M`` rows return.

    With ``quality`` ``[N]`` (nonnegative) the score is ``quality_i^2`` times the
    conditional variance: the greedy MAP of a determinantal point process with the
    quality-diversity kernel ``q_i k(x_i, x_j) q_j`` (Chen, Zhang & Zhou 2018), which Moss,
    Ober & Picheny (2023, "Inducing point allocation for sparse Gaussian processes in
    high-throughput Bayesian optimisation") use to spend the inducing points on promising
    regions; a point's conditional variance must still exceed that floor.

    With ``first`` (row indices) those rows are taken first, in that order (each only if
    its conditional variance exceeds the floor), and the greedy choice fills the rest given
    them: e.g. the observations nearest a BO incumbent, which a variance criterion would
    drop as near-duplicates although they resolve the optimum.

    Args:
        X: ``[N, D]`` candidate inputs; M: how many to choose (at most N).
        kernel: the covariance whose conditional variances drive the choice.
        threshold: stop when no candidate's conditional variance exceeds this.
        quality: optional ``[N]`` nonnegative weights (default: all equal).
        first: optional sequence of at most ``M`` distinct row indices to take first
            (negative values count from the end).

    Returns:
        ``[M', D]`` chosen rows of ``X`` (a copy), ``M' <= M``, in the order chosen.

    Examples:
        >>> from bayeskit.gp import SquaredExponential
        >>> X = torch.linspace(0, 1, 50, dtype=torch.float64)[:, None]
        >>> Z = greedy_variance(X, 5, SquaredExponential(0.2))
        >>> Z.shape
        torch.Size([5, 1])
        >>> q = torch.exp(-10 * X[:, 0])        # favour small x
        >>> bool(greedy_variance(X, 5, SquaredExponential(0.2), quality=q).mean()
        ...      < Z.mean())
        True
        >>> Z = greedy_variance(X, 3, SquaredExponential(0.2), first=[10, 11])
        >>> [round(z, 3) for z in Z[:, 0].tolist()]     # rows 10 and 11, then the far end
        [0.204, 0.224, 1.0]
    """
    X = _check(X, M)
    threshold = as_scalar(threshold, "threshold", nonnegative=True)
    if quality is not None:
        quality = as_tensor(quality, "quality", dtype=F64, ndim=1, nonnegative=True)
        if quality.shape[0] != X.shape[0]:
            raise ShapeError(f"quality must have one entry per row of X ({X.shape[0]}), got "
                             f"{quality.shape[0]}")
    first = [] if first is None else as_indices(first, "first", X.shape[0]).tolist()
    if len(first) > M:
        raise ArgumentValueError(f"first names {len(first)} rows, more than M = {M}")
    with torch.no_grad():
        var = kernel.diag(X).clone().to(F64)
        floor = max(threshold, 1e-12 * float(var.max()))
        weight = None if quality is None else quality * quality
        rows = torch.zeros(M, X.shape[0], dtype=F64)  # partial Cholesky factor, row by row
        chosen = []
        forced = list(first)
        while len(chosen) < M:
            if forced:
                i = forced.pop(0)
                if float(var[i]) <= floor:
                    continue
            else:
                score = var if weight is None else torch.where(var > floor, var * weight, -1.0)
                i = int(torch.argmax(score))
                if float(var[i]) <= floor or float(score[i]) < 0:
                    break
            m = len(chosen)
            chosen.append(i)
            k_i = kernel(X[i:i + 1], X)[0].to(F64)
            row = (k_i - rows[:m, i] @ rows[:m]) / var[i].sqrt()
            rows[m] = row
            var = (var - row * row).clamp_min(0)
            var[chosen] = -1.0
    return X[chosen].clone()


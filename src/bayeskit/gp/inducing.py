"""Choosing inducing inputs ``Z`` ``[M, D]`` from the training inputs ``X`` ``[N, D]``."""

from __future__ import annotations

import torch

from bayeskit.errors import ArgumentValueError
from bayeskit.gp.kernels import Kernel
from bayeskit.validation import as_inputs, as_int

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


def greedy_variance(X, M: int, kernel: Kernel, *, threshold: float = 0.0) -> torch.Tensor:
    """Greedy conditional-variance selection (Burt, Rasmussen & van der Wilk 2019): repeatedly
    add the input whose prior variance given the points chosen so far is largest, i.e. a
    pivoted partial Cholesky factorisation of ``K_XX`` in O(N M^2). Stops early when the
    largest remaining variance falls to ``threshold`` (then fewer than ``M`` rows return).
    """
    X = _check(X, M)
    with torch.no_grad():
        var = kernel.diag(X).clone().to(F64)
        rows = torch.zeros(M, X.shape[0], dtype=F64)  # partial Cholesky factor, row by row
        chosen = []
        for m in range(M):
            i = int(torch.argmax(var))
            if float(var[i]) <= threshold:
                break
            chosen.append(i)
            k_i = kernel(X[i:i + 1], X)[0].to(F64)
            row = (k_i - rows[:m, i] @ rows[:m]) / var[i].sqrt()
            rows[m] = row
            var = (var - row * row).clamp_min(0)
            var[chosen] = -1.0
    return X[chosen].clone()

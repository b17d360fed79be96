"""q(f) from q(u): the one implementation of the sparse-GP conditional (whitened or not).

With ``K_mm = L L^T``, ``A = L^-1 K_mn`` and ``q(u) = N(q_mu, S S^T)`` (``S = q_sqrt``, lower
triangular ``[M, M]``):

- whitened (``u = L v``, ``q(v) = N(q_mu, S S^T)``): ``mean = A^T q_mu``,
  ``var = diag(K_nn) - |A|^2 + |S^T A|^2`` per column;
- unwhitened: ``B = L^-T A = K_mm^-1 K_mn``, ``mean = B^T q_mu``,
  ``var = diag(K_nn) - |A|^2 + |S^T B|^2``.
"""

from __future__ import annotations

import torch

__all__ = ["conditional"]


def conditional(Kmn: torch.Tensor, L: torch.Tensor, Knn_diag: torch.Tensor, q_mu: torch.Tensor,
                q_sqrt: torch.Tensor, *, whiten: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Marginals of ``q(f_n)``: mean ``[N]`` and variance ``[N]``.

    Args:
        Kmn: ``[M, N]`` cross-covariance; L: ``[M, M]`` Cholesky factor of ``K_mm``;
        Knn_diag: ``[N]``; q_mu: ``[M]``; q_sqrt: ``[M, M]`` lower triangular.
    """
    A = torch.linalg.solve_triangular(L, Kmn, upper=False)
    proj = A if whiten else torch.linalg.solve_triangular(L.mT, A, upper=True)
    mean = proj.mT @ q_mu
    SA = q_sqrt.mT @ proj
    var = Knn_diag - (A * A).sum(0) + (SA * SA).sum(0)
    return mean, var.clamp_min(0)

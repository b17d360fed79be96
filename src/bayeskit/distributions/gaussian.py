"""Gaussian conditioning and sampling shared by every model (Gibbs steps, GP posteriors, ...).

The posterior of ``beta ~ N(m, S^-1)`` given pseudo-observations ``z = Phi beta + e``,
``e ~ N(0, diag(1/w))``, is ``N(mu, P^-1)`` with ``P = Phi^T diag(w) Phi + S`` and
``P mu = Phi^T diag(w) z + S m``. Two exact samplers: the precision form (cost D^3) and
Matheron's rule through the N x N system (cost N^3), for D > N.
"""

from __future__ import annotations

import torch

from bayeskit.linalg._checks import raise_if_not_pd

__all__ = ["sample_from_precision", "sample_linear_gaussian_posterior"]


def sample_from_precision(
    precision: torch.Tensor, shift: torch.Tensor, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw from ``N(P^-1 b, P^-1)`` given the precision ``P: [..., D, D]``, ``b: [..., D]``.

    Returns ``(mean, sample)``, each ``[..., D]``: with ``P = L L^T``, the mean solves two
    triangular systems and the sample adds ``L^-T eps``.

    Example:
        >>> P = torch.eye(2, dtype=torch.float64) * 4
        >>> mean, x = sample_from_precision(P, torch.ones(2, dtype=torch.float64))
        >>> mean
        tensor([0.2500, 0.2500], dtype=torch.float64)
    """
    L, info = torch.linalg.cholesky_ex(precision)
    raise_if_not_pd(info > 0, "the posterior precision")
    mean = torch.cholesky_solve(shift.unsqueeze(-1), L).squeeze(-1)
    eps = torch.randn(shift.shape, dtype=shift.dtype, device=shift.device, generator=generator)
    noise = torch.linalg.solve_triangular(L.mT, eps.unsqueeze(-1), upper=True).squeeze(-1)
    return mean, mean + noise


def sample_linear_gaussian_posterior(
    Phi: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor, prior_mean: torch.Tensor,
    prior_precision: torch.Tensor, *, method: str = "auto",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One exact draw of ``beta`` given weighted pseudo-observations (see module docstring).

    Args:
        Phi: ``[N, D]`` design. weights: ``[..., N]`` positive ``w``. targets: ``[..., N]``
            the quantity ``Phi^T diag(w) z`` is built from, passed as ``w * z``.
        prior_mean: ``[D]``. prior_precision: ``[D, D]``.
        method: ``"precision"`` (D x D), ``"matheron"`` (N x N) or ``"auto"`` (the smaller).

    Returns:
        ``[..., D]``.
    """
    n, d = Phi.shape
    if method == "auto":
        method = "precision" if d <= n else "matheron"
    if method == "precision":
        P = Phi.mT @ (weights.unsqueeze(-1) * Phi) + prior_precision
        shift = targets @ Phi + prior_precision @ prior_mean
        return sample_from_precision(P, shift, generator=generator)[1]
    if method != "matheron":
        raise ValueError(f"method must be 'auto', 'precision' or 'matheron', got {method!r}")
    # Matheron: beta0 ~ prior, e0 ~ N(0, W^-1); beta = beta0 + S^-1 Phi^T (Phi S^-1 Phi^T
    # + W^-1)^-1 (z - Phi beta0 - e0), where z = targets / w.
    batch = weights.shape[:-1]
    Ls = torch.linalg.cholesky(prior_precision)
    eps = torch.randn(*batch, d, dtype=Phi.dtype, device=Phi.device, generator=generator)
    beta0 = prior_mean + torch.linalg.solve_triangular(
        Ls.mT, eps.unsqueeze(-1), upper=True).squeeze(-1)
    e0 = torch.randn(*batch, n, dtype=Phi.dtype, device=Phi.device,
                     generator=generator) / weights.sqrt()
    prior_cov_PhiT = torch.cholesky_solve(Phi.mT, Ls)  # S^-1 Phi^T: [D, N]
    K = Phi @ prior_cov_PhiT + torch.diag_embed(1.0 / weights)
    resid = targets / weights - (beta0 @ Phi.mT) - e0
    Lk, info = torch.linalg.cholesky_ex(K)
    raise_if_not_pd(info > 0, "Phi S^-1 Phi^T + W^-1")
    alpha = torch.cholesky_solve(resid.unsqueeze(-1), Lk).squeeze(-1)
    return beta0 + alpha @ prior_cov_PhiT.mT

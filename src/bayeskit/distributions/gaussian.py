"""The Gaussian floor: every Gaussian identity bayeskit's models, acquisitions and samplers
use, written once, batched over leading dimensions and differentiable.

- :func:`conditional`: ``q(f_n)`` from ``q(u)`` in the shape of GPflow's
  ``base_conditional`` (exact GP predictions, SGPR, SVGP, the GP classifier, BO).
- :func:`gauss_kl`: ``KL[N(m, S S^T) || N(0, K)]`` (``K = I`` when whitened).
- :func:`moments_to_natural`, :func:`natural_to_moments`: ``(m, S S^T) <-> (S^-1 m, S^-1)``
  through Cholesky factors (natural-gradient steps).
- :func:`standard_normal`: ``N(0, 1)`` draws as ``torch.randn``, on the CPU from the
  compiled parallel streams (the samplers' noise);
- :func:`sample_mvn`: draws from a covariance or a precision factor with a generator;
  :func:`sample_from_precision`, :func:`sample_linear_gaussian_posterior` (Gibbs steps).
- :func:`gauss_hermite`, :func:`gauss_hermite_expectation`: ``E_{N(m, v)}[g(f)]``.
- :func:`append_observations`: the exact observation update of a Cholesky-form posterior
  through :func:`bayeskit.linalg.cholesky_append`; :func:`condition_whitened`: the same
  update of a Gaussian ``N(f, S S^T)`` observed through a linear map (a rank-q Cholesky
  update); :func:`fantasy_sigma`: how the posterior mean moves per standardised outcome of a
  new noisy observation.

Shapes: ``M`` inducing (or conditioning) points, ``N`` prediction points, ``...`` batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from bayeskit import compiled
from bayeskit.distributions.normal_kernels import MIN_SIZE, fill_standard_normal
from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.linalg import (
    WeightedGram,
    cholesky_append,
    cholesky_inverse,
    cholesky_plus_diagonal,
    cholesky_update_lowrank,
    identity_multiple,
    jittered_cholesky,
    solve_lower,
    solve_plus_diagonal,
)
from bayeskit.validation import (
    all_finite,
    as_int,
    as_scalar,
    check_batch_shapes,
    check_cholesky_factor,
    check_finite,
    check_generator,
    check_same_dtype,
    check_square,
    check_tensor,
    raise_if_not_pd,
)

__all__ = [
    "conditional",
    "cross_covariance",
    "gauss_kl",
    "diagonal_gauss_kl",
    "whitened_variance_reduction",
    "whitened_sparse_terms",
    "moments_to_natural",
    "natural_to_moments",
    "standard_normal",
    "sample_mvn",
    "sample_from_precision",
    "sample_linear_gaussian_posterior",
    "MatheronParts",
    "matheron_parts",
    "gauss_hermite",
    "gauss_hermite_expectation",
    "append_observations",
    "condition_whitened",
    "fantasy_sigma",
]


def conditional(Kmn: torch.Tensor, Lm: torch.Tensor, Knn: torch.Tensor, f: torch.Tensor, *,
                q_sqrt: torch.Tensor | None = None, full_cov: bool = False,
                white: bool = False, projection: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (co)variance of ``f_n`` given ``u ~ N(f, S S^T)`` at the ``M`` points.

    With ``A = Lm^-1 Kmn`` (``Lm Lm^T = Kmm``):

    - ``white=True`` (``u = Lm v``, ``f`` and ``S`` describe ``v``): ``mean = A^T f``;
    - ``white=False``: ``B = Lm^-T A = Kmm^-1 Kmn``, ``mean = B^T f``, and ``S`` uses ``B``;
    - ``cov = Knn - A^T A + (S^T P)^T (S^T P)`` with ``P = A`` or ``B`` (no last term when
      ``q_sqrt`` is ``None``: ``u`` known exactly).

    The exact GP posterior is the case ``Lm = chol(K + noise I)``, ``f = Lm^-1 (y - m)``,
    ``white=True``, ``q_sqrt=None``.

    Args:
        Kmn: ``[..., M, N]``. Lm: ``[..., M, M]`` lower Cholesky factor of ``Kmm``.
        Knn: ``[..., N]`` prior variances, or ``[..., N, N]`` with ``full_cov``.
        f: ``[..., M]``. q_sqrt: ``[..., M, M]`` any square root ``S`` of ``q(u)``'s (or
            ``q(v)``'s) covariance, or ``None``.
        projection: ``A = Lm^-1 Kmn`` if the caller already has it (one triangular solve
            shared with, e.g., a natural-gradient step on the same batch).

    Returns:
        ``mean [..., N]`` and ``var [..., N]`` (clamped at 0) or ``cov [..., N, N]``.

    Examples:
        >>> Kmm = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
        >>> Kmn = torch.tensor([[1.0], [0.3]], dtype=torch.float64)
        >>> Lm = torch.linalg.cholesky(Kmm)
        >>> mean, var = conditional(Kmn, Lm, torch.tensor([2.0], dtype=torch.float64),
        ...                         torch.zeros(2, dtype=torch.float64))
        >>> round(float(var), 6)  # 2 - Kmn^T Kmm^-1 Kmn
        1.497143
    """
    # Kmn is [M, N]: its finiteness is read off the [N] results below (a NaN or inf in
    # column n reaches mean_n), not by a pass over it, except for the full covariance
    check_tensor("Kmn", Kmn, min_dim=2, finite=full_cov)
    m = check_square("Lm", Lm)
    check_finite("Lm", Lm)
    check_tensor("Knn", Knn, min_dim=2 if full_cov else 1)
    check_tensor("f", f, min_dim=1)
    if Kmn.shape[-2] != m or f.shape[-1] != m:
        raise ShapeError(f"Kmn [..., M, N], Lm [..., M, M] and f [..., M] must share M: got "
                         f"{tuple(Kmn.shape)}, {tuple(Lm.shape)}, {tuple(f.shape)}")
    if Knn.shape[-1] != Kmn.shape[-1]:
        raise ShapeError(f"Knn must be [..., N{', N' if full_cov else ''}] with N = "
                         f"{Kmn.shape[-1]}, got {tuple(Knn.shape)}")
    if q_sqrt is not None:
        check_tensor("q_sqrt", q_sqrt, min_dim=2)
        if q_sqrt.shape[-2:] != (m, m):
            raise ShapeError(f"q_sqrt must be [..., {m}, {m}], got {tuple(q_sqrt.shape)}")
    A = solve_lower(Lm, Kmn, names=("Lm", "Kmn")) if projection is None else projection
    if A.shape != Kmn.shape:
        raise ShapeError(f"projection must have Kmn's shape {tuple(Kmn.shape)}, got "
                         f"{tuple(A.shape)}")
    if full_cov:
        proj = A if white else torch.linalg.solve_triangular(
            Lm.mT.expand(*A.shape[:-2], *Lm.shape[-2:]) if Lm.dim() < A.dim() else Lm.mT, A,
            upper=True)
        mean = (f.unsqueeze(-2) @ proj).squeeze(-2)
        cov = Knn - A.mT @ A
        if q_sqrt is not None:
            SP = q_sqrt.mT @ proj
            cov = cov + SP.mT @ SP
        _check_moments(Kmn, A, mean, cov)
        return mean, cov
    if not white:  # B = Lm^-T A enters only as B^T f = A^T (Lm^-1 f) and S^T B = (Lm^-1 S)^T A
        f = solve_lower(Lm, f.unsqueeze(-1), names=("Lm", "f")).squeeze(-1)
        q_sqrt = None if q_sqrt is None else solve_lower(Lm, q_sqrt, names=("Lm", "q_sqrt"))
    if q_sqrt is None:
        mean, var = (f.unsqueeze(-2) @ A).squeeze(-2), Knn - (A * A).sum(-2)
    else:
        eye = torch.eye(m, dtype=q_sqrt.dtype, device=q_sqrt.device)
        mean, quad = _ProjectedMoments.apply(A, f, eye - q_sqrt @ q_sqrt.mT)
        var = Knn - quad
    _check_moments(Kmn, A, mean, var)
    return mean, var.clamp_min(0)


def _check_moments(Kmn, A, mean, var) -> None:
    """Non-finite moments: name a non-finite ``Kmn`` or projection, else the overflow."""
    if not (all_finite(mean) and all_finite(var)):
        check_finite("Kmn", Kmn)
        check_finite("projection", A)
        raise NonFiniteError("conditional's moments overflowed from finite inputs; rescale "
                             "Kmn (e.g. the kernel's variance)")


class _ProjectedMoments(torch.autograd.Function):
    """``(A^T f, colsum(A * (D A)))`` for ``A [..., M, N]``, ``f [..., M]``, symmetric
    ``D [..., M, M]``: the whitened marginals of ``q(f)`` with ``D = I - S S^T`` (``var = Knn
    - colsum(A * (D A))`` equals ``Knn - |A|^2 + |S^T A|^2`` column-wise).

    The backward pass reuses ``D A`` from the forward pass: ``dA = f g_m^T + 2 (D A)
    diag(g_q)`` (``g_q``: the gradient of the second output) is elementwise over ``[M, N]``,
    where autograd through ``S^T A`` runs another ``M x M x N`` product (with a transposed
    output) and an outer product; ``dD = A diag(g_q) A^T`` only when ``D`` needs it
    (forward + backward at M = 100, N = 1024: 708 against 974 us, ``bench_floor.py``).
    First derivatives only."""

    @staticmethod
    def forward(ctx, A, f, D):
        DA = D @ A
        ctx.save_for_backward(A, f, D, DA)
        return (f.unsqueeze(-2) @ A).squeeze(-2), (A * DA).sum(-2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_mean, g_quad):
        A, f, D, DA = ctx.saved_tensors
        need_A, need_f, need_D = ctx.needs_input_grad
        d_A = d_f = d_D = None
        if need_A:
            d_A = torch.zeros_like(A) if g_quad is None else DA * (2 * g_quad.unsqueeze(-2))
            if g_mean is not None:
                if d_A.dim() == 2 and f.dim() == 1:  # BLAS ger, in place
                    d_A.addr_(f, g_mean)
                else:
                    d_A = d_A + f.unsqueeze(-1) * g_mean.unsqueeze(-2)
            d_A = d_A.sum_to_size(A.shape)
        if need_f and g_mean is not None:
            d_f = (A @ g_mean.unsqueeze(-1)).squeeze(-1).sum_to_size(f.shape)
        if need_D and g_quad is not None:
            d_D = ((A * g_quad.unsqueeze(-2)) @ A.mT).sum_to_size(D.shape)
        return d_A, d_f, d_D


def whitened_variance_reduction(gram: torch.Tensor, Lm: torch.Tensor,
                                q_sqrt: torch.Tensor) -> torch.Tensor:
    """``sum_n (Knn_n - var_n)`` of the whitened ``q(f)`` over ``N`` points, from their Gram
    matrix ``gram = K_mn K_nm`` alone: with ``A = Lm^-1 K_mn`` each point's variance is
    ``Knn_n - |A_n|^2 + |S^T A_n|^2``, and the sum of the reductions is

        <C, I - S S^T>,   C = Lm^-1 gram Lm^-T          ([M, M]: no M x N solve)

    (what an SVGP with a Gaussian likelihood needs: ``sum_n var_n`` for its bound).

    Args:
        gram: ``[M, M]`` symmetric, ``K_mn K_nm``. Lm: ``[M, M]`` lower Cholesky factor of
            ``K_mm``. q_sqrt: ``[M, M]`` lower triangular ``S``.

    Returns:
        a scalar, differentiable in all three (first derivatives by a written-out backward
        pass: 4 instead of 6 ``M x M x M`` operations against autograd through the solves).

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> Kmn = torch.randn(3, 5, dtype=torch.float64, generator=g)
        >>> Lm = torch.linalg.cholesky(Kmn @ Kmn.mT + torch.eye(3, dtype=torch.float64))
        >>> S = 0.5 * torch.eye(3, dtype=torch.float64)
        >>> Knn = torch.full((5,), 10.0, dtype=torch.float64)
        >>> _, var = conditional(Kmn, Lm, Knn, torch.zeros(3, dtype=torch.float64),
        ...                      q_sqrt=S, white=True)
        >>> torch.allclose(whitened_variance_reduction(Kmn @ Kmn.mT, Lm, S), (Knn - var).sum())
        True
    """
    _check_whitened_parts(Lm, gram=gram, q_sqrt=q_sqrt)
    return _ProjectedTrace.apply(gram, Lm, q_sqrt)


def _check_whitened_parts(Lm: torch.Tensor, **square: torch.Tensor) -> int:
    """The checks the whitened identities share: ``Lm`` one ``[M, M]`` lower factor, each
    of ``square`` finite and ``[M, M]`` like it, one dtype. Returns ``M``."""
    for name, t in (*square.items(), ("Lm", Lm)):
        check_tensor(name, t, min_dim=2)
    m = check_square("Lm", Lm)
    for name, t in square.items():
        if t.shape != Lm.shape:
            raise ShapeError(f"{name} must be [{m}, {m}] like Lm, got {tuple(t.shape)}")
    if Lm.dim() != 2:
        raise ShapeError(f"Lm must be one [M, M] factor, got {tuple(Lm.shape)}")
    check_cholesky_factor("Lm", Lm, full=False)
    check_same_dtype(Lm=Lm, **square)
    return m


def _whitened_trace(L: torch.Tensor, P: torch.Tensor, S: torch.Tensor, *,
                    overwrite: bool = False):
    """``(C, C S, <C, I - S S^T>)`` with ``C = L^-1 P L^-T`` for symmetric ``P``: two
    triangular solves and one product, the forward pass of both whitened identities.
    ``overwrite``: ``P`` is the caller's temporary (``L^-1 P`` is written into it)."""
    # P.mT holds P's values in LAPACK's (column-major) layout, where torch's solve writes
    # into its right-hand side without copying it: X = L^-1 P in place. Then C = L^-1 X^T
    # (P symmetric), a second solve from the left: MKL's right solve C L^T = X of this
    # square size is several times slower (benchmarks/bench_floor.py, "L^-1 B" at
    # N = K = 256, plain vs transposed; solve_lower's note)
    B = P.mT if overwrite else P.mT.clone()
    X = torch.linalg.solve_triangular(L, B, upper=False, out=B)
    C = torch.linalg.solve_triangular(L, X.mT, upper=False)
    CS = C @ S
    return C, CS, C.diagonal().sum() - (S * CS).sum()


class _ProjectedTrace(torch.autograd.Function):
    """``<C, I - S S^T>`` with ``C = L^-1 P L^-T`` for symmetric ``P`` and lower ``L``, ``S``.

    Forward: two triangular solves and one product. Backward, with ``D = I - S S^T``,
    ``E = L^-T D`` and ``G = L^-T E^T = L^-T D L^-1``: ``dP = G``, ``dS = -2 C S`` (kept from
    the forward pass), ``dL = -2 tril(E C)``: two solves and two products, where autograd
    through the solves and the product runs two solves and four products.
    """

    @staticmethod
    def forward(ctx, P, L, S):
        C, CS, value = _whitened_trace(L, P, S)
        ctx.save_for_backward(L, S, C, CS)
        return value

    @staticmethod
    def backward(ctx, g):
        L, S, C, CS = ctx.saved_tensors
        D = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device) - S @ S.mT
        E = torch.linalg.solve_triangular(L.mT, D, upper=True)
        G = torch.linalg.solve_triangular(L.mT, E.mT, upper=True)
        return g * G, -2 * g * torch.tril(E @ C), -2 * g * CS


def whitened_sparse_terms(Kmm: torch.Tensor, Lm: torch.Tensor, Kmn: torch.Tensor,
                          q_mu: torch.Tensor, q_sqrt: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """The whitened ``q(f)``'s means at a batch and its summed variance reduction, from the
    batch's cross-covariances and ``M x M`` work only (no ``M x N`` solve):

        mean      = K_nm w,                               w = Lm^-T q_mu      ([N])
        reduction = sum_n (Knn_n - var_n) = <Lm^-1 P Lm^-T, I - S S^T>,  P = K_mn K_nm

    (what an SVGP with a Gaussian likelihood needs; see :func:`whitened_variance_reduction`
    for the reduction alone).

    ``Lm`` is ``Kmm``'s lower Cholesky factor (with any constant jitter, computed without a
    graph); the gradient reaches ``Kmm`` as if ``Lm = chol(Kmm + jitter I)`` were
    differentiated, written out in one pass: with ``D = I - S S^T``, ``C = Lm^-1 P Lm^-T``
    and ``u = Lm^-1 w_bar``, ``Kmm_bar = sym(Lm^-T Phi(-2 g D C - q_mu u^T) Lm^-1)``
    (``Phi``: the lower triangle with the diagonal halved; Murray 2016's Cholesky adjoint,
    using that ``Lm^T tril(X)`` and ``Lm^T X`` share their lower triangle), and
    ``Kmn_bar = 2 g Lm^-T D Lm^-1 K_mn + w mean_bar^T`` in one ``M x M x N`` product.
    Against autograd through the factorisation this saves one ``M^3`` product and torch's
    elementwise passes.

    Args:
        Kmm: ``[M, M]`` prior covariance of the inducing values (carries the gradient).
        Lm: ``[M, M]`` its lower Cholesky factor (not differentiated).
        Kmn: ``[M, N]``. q_mu: ``[M]``. q_sqrt: ``[M, M]`` lower triangular ``S``.

    Returns:
        ``(mean [N], reduction)``; first derivatives only.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> Kmn = torch.randn(3, 5, dtype=torch.float64, generator=g)
        >>> Kmm = Kmn @ Kmn.mT + torch.eye(3, dtype=torch.float64)
        >>> Lm = torch.linalg.cholesky(Kmm)
        >>> q_mu, S = torch.ones(3, dtype=torch.float64), 0.5 * torch.eye(3, dtype=torch.float64)
        >>> mean, red = whitened_sparse_terms(Kmm, Lm, Kmn, q_mu, S)
        >>> Knn = torch.full((5,), 10.0, dtype=torch.float64)
        >>> m_ref, var = conditional(Kmn, Lm, Knn, q_mu, q_sqrt=S, white=True)
        >>> torch.allclose(mean, m_ref), torch.allclose(red, (Knn - var).sum())
        (True, True)
    """
    m = _check_whitened_parts(Lm, Kmm=Kmm, q_sqrt=q_sqrt)
    check_tensor("Kmn", Kmn, min_dim=2)
    check_tensor("q_mu", q_mu, min_dim=1)
    if Kmn.dim() != 2 or Kmn.shape[0] != m or q_mu.shape != (m,):
        raise ShapeError(f"Kmn must be [{m}, N] and q_mu [{m}], got {tuple(Kmn.shape)} and "
                         f"{tuple(q_mu.shape)}")
    check_same_dtype(Lm=Lm, Kmn=Kmn, q_mu=q_mu)
    return _WhitenedSparseTerms.apply(Kmm, Lm.detach(), Kmn, q_mu, q_sqrt)


class _WhitenedSparseTerms(torch.autograd.Function):
    """See :func:`whitened_sparse_terms`. Forward: a vector solve, the ``M x M x N`` Gram
    product, two triangular solves and one ``M x M`` product; backward: two ``M x M``
    products, two triangular solves with ``2M`` right-hand sides (``G = Lm^-T D Lm^-1`` and
    ``Kmm_bar`` share them) and one ``M x M x N`` product."""

    @staticmethod
    def forward(ctx, Kmm, L, Kmn, q_mu, S):
        w = torch.linalg.solve_triangular(L.mT, q_mu.unsqueeze(-1), upper=True).squeeze(-1)
        C, CS, reduction = _whitened_trace(L, Kmn @ Kmn.mT, S, overwrite=True)
        ctx.save_for_backward(L, Kmn, q_mu, S, w, C, CS)
        return Kmn.mT @ w, reduction

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_mean, g_red):
        L, Kmn, q_mu, S, w, C, CS = ctx.saved_tensors
        m = L.shape[-1]
        g_r = 0.0 if g_red is None else float(g_red)
        if g_mean is None:
            g_mean = torch.zeros(Kmn.shape[-1], dtype=Kmn.dtype, device=Kmn.device)
        D = torch.eye(m, dtype=L.dtype, device=L.device) - S @ S.mT
        w_bar = Kmn @ g_mean
        u = torch.linalg.solve_triangular(L, w_bar.unsqueeze(-1), upper=False).squeeze(-1)
        X = (-2 * g_r) * (D @ C)
        X.addr_(q_mu, u, alpha=-1)
        # one pair of solves for both L^-T D L^-1 and L^-T Phi L^-1, each in place in a
        # column-major [M, 2M] buffer (torch's solve copies any other layout): the buffer's
        # transpose, [2M, M] row-major, takes D^T = D and Phi^T as two row blocks
        rhs = torch.empty(2 * m, m, dtype=L.dtype, device=L.device)
        rhs[:m] = D
        torch.triu(X.mT, out=rhs[m:])
        rhs[m:].diagonal().mul_(0.5)
        E = torch.linalg.solve_triangular(L.mT, rhs.mT, upper=True, out=rhs.mT)
        rhs2 = torch.cat([E[:, :m], E[:, m:]], dim=0)  # [E1^T, E2^T] column-major, transposed
        F = torch.linalg.solve_triangular(L.mT, rhs2.mT, upper=True, out=rhs2.mT)
        G, K_bar = F[:, :m], F[:, m:]
        K_bar = 0.5 * (K_bar + K_bar.mT)
        Kmn_bar = (g_r * (G + G.mT) @ Kmn).addr_(w, g_mean)  # P = K_mn K_nm's gradient
        return K_bar, None, Kmn_bar, u, (-2 * g_r) * CS


def cross_covariance(Kmx: torch.Tensor, Kmx2: torch.Tensor, Lm: torch.Tensor,
                     Kxx2: torch.Tensor, *, q_sqrt: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """The whitened conditional's covariance between two point sets (the ``full_cov`` case
    of :func:`conditional` for ``X != X2``):
    ``Kxx2 - A1^T A2 + (S^T A1)^T (S^T A2)`` with ``A = Lm^-1 Kmx``.

    Args:
        Kmx: ``[..., M, Q]``. Kmx2: ``[..., M, Q2]``. Lm: ``[..., M, M]``.
        Kxx2: ``[..., Q, Q2]``. q_sqrt: ``[..., M, M]`` or ``None``.

    Returns:
        ``[..., Q, Q2]``.

    Examples:
        >>> Lm = torch.eye(2, dtype=torch.float64)
        >>> K = torch.ones(2, 1, dtype=torch.float64)
        >>> float(cross_covariance(K, K, Lm, torch.full((1, 1), 3.0, dtype=torch.float64)))
        1.0
    """
    A1, A2 = (solve_lower(Lm, K, names=("Lm", name))
              for K, name in ((Kmx, "Kmx"), (Kmx2, "Kmx2")))
    cov = Kxx2 - A1.mT @ A2
    if q_sqrt is not None:
        cov = cov + (q_sqrt.mT @ A1).mT @ (q_sqrt.mT @ A2)
    return cov


def gauss_kl(q_mu: torch.Tensor, q_sqrt: torch.Tensor, K_cholesky: torch.Tensor | None = None
             ) -> torch.Tensor:
    """``KL[N(q_mu, S S^T) || N(0, K)]`` with ``K = L L^T`` (``K = I`` when
    ``K_cholesky`` is ``None``, the whitened case). ``S`` lower triangular.

    Args:
        q_mu: ``[..., M]``. q_sqrt: ``[..., M, M]`` lower triangular, positive diagonal.
        K_cholesky: ``[..., M, M]`` or ``None``.

    Returns:
        ``[...]``.

    Examples:
        >>> S = torch.eye(2, dtype=torch.float64)
        >>> float(gauss_kl(torch.zeros(2, dtype=torch.float64), S))
        0.0
    """
    check_tensor("q_mu", q_mu, min_dim=1)
    m = q_mu.shape[-1]
    check_tensor("q_sqrt", q_sqrt, min_dim=2)
    if q_sqrt.shape[-2:] != (m, m) or m == 0:
        raise ShapeError(f"q_sqrt must be [..., {m}, {m}] (M >= 1) to match q_mu "
                         f"{tuple(q_mu.shape)}, got {tuple(q_sqrt.shape)}")
    if K_cholesky is not None:
        check_tensor("K_cholesky", K_cholesky, min_dim=2)
        if K_cholesky.shape[-2:] != (m, m):
            raise ShapeError(f"K_cholesky must be [..., {m}, {m}], got "
                             f"{tuple(K_cholesky.shape)}")
    logdet_S = 2 * q_sqrt.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    if K_cholesky is None:
        return 0.5 * ((q_sqrt * q_sqrt).sum((-2, -1)) + (q_mu * q_mu).sum(-1) - m - logdet_S)
    LiS = solve_lower(K_cholesky, q_sqrt, names=("K_cholesky", "q_sqrt"))
    Lim = solve_lower(K_cholesky, q_mu.unsqueeze(-1), names=("K_cholesky", "q_mu")).squeeze(-1)
    logdet_K = 2 * K_cholesky.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * ((LiS * LiS).sum((-2, -1)) + (Lim * Lim).sum(-1) - m + logdet_K - logdet_S)


def diagonal_gauss_kl(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """``KL[N(mean, diag(exp(log_variance))) || N(0, I)]`` summed over the last axis:
    ``(exp(log_variance) + mean^2 - 1 - log_variance).sum(-1) / 2``, a VAE's analytic KL.

    In the log-variance itself: no variance is formed and logged again, so the value and its
    gradient ``(exp(log_variance) - 1) / 2`` stay exact where the variance underflows.

    Args:
        mean: ``[..., L]``. log_variance: ``[..., L]``, the same shape.

    Returns:
        ``[...]``.

    Raises:
        NonFiniteError: the KL is not finite (NaN or infinite ``mean`` or ``log_variance``,
            or a variance or squared mean that overflows).

    Examples:
        >>> mean = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
        >>> diagonal_gauss_kl(mean, torch.zeros_like(mean))  # [B, L] -> [B]: |mean|^2 / 2
        tensor([0.0000, 0.5000], dtype=torch.float64)
    """
    check_tensor("mean", mean, min_dim=1, finite=False)
    check_tensor("log_variance", log_variance, min_dim=1, finite=False)
    if mean.shape != log_variance.shape or mean.shape[-1] == 0:
        raise ShapeError(f"mean and log_variance must share one shape [..., L] with L >= 1, "
                         f"got {tuple(mean.shape)} and {tuple(log_variance.shape)}")
    check_same_dtype(mean=mean, log_variance=log_variance)
    kl = 0.5 * (log_variance.exp() + mean * mean - 1 - log_variance).sum(-1)
    if not all_finite(kl):  # one check of the result: finite inputs give a finite KL
        check_finite("mean", mean)
        check_finite("log_variance", log_variance)
        big = torch.finfo(kl.dtype).max
        raise NonFiniteError(f"the KL overflows {kl.dtype}: log_variance must stay below "
                             f"{math.log(big):.0f} and |mean| below {math.sqrt(big):.1e}")
    return kl


def moments_to_natural(mean: torch.Tensor, cov_cholesky: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(eta, Lambda) = (Sigma^-1 mean, Sigma^-1)`` from ``mean [..., M]`` and a lower
    Cholesky factor of ``Sigma`` ``[..., M, M]`` (no explicit inverse of ``Sigma``);
    ``Lambda`` exactly symmetric.

    Examples:
        >>> eta, P = moments_to_natural(torch.ones(2, dtype=torch.float64),
        ...                             2 * torch.eye(2, dtype=torch.float64))
        >>> eta.tolist(), P.diagonal().tolist()
        ([0.25, 0.25], [0.25, 0.25])
    """
    prec = cholesky_inverse(cov_cholesky, name="cov_cholesky")
    check_tensor("mean", mean, min_dim=1)
    check_same_dtype(mean=mean, cov_cholesky=cov_cholesky)
    if mean.shape[-1] != cov_cholesky.shape[-1]:
        raise ShapeError(f"mean must be [..., {cov_cholesky.shape[-1]}] to match cov_cholesky, "
                         f"got {tuple(mean.shape)}")
    check_batch_shapes("batch", mean=mean.shape[:-1], cov_cholesky=cov_cholesky.shape[:-2])
    eta = torch.cholesky_solve(mean.unsqueeze(-1), cov_cholesky).squeeze(-1)
    return eta, prec


def natural_to_moments(eta: torch.Tensor, precision: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, L_Sigma)`` from natural parameters: ``mean = Lambda^-1 eta`` and a lower
    Cholesky factor of ``Sigma = Lambda^-1``. A precision that is not positive definite
    (jitter included) raises :class:`~bayeskit.errors.NotPositiveDefiniteError`.

    Examples:
        >>> P = 4 * torch.eye(2, dtype=torch.float64)
        >>> mean, L = natural_to_moments(torch.ones(2, dtype=torch.float64), P)
        >>> mean.tolist(), L.diagonal().tolist()
        ([0.25, 0.25], [0.5, 0.5])
    """
    # Reverse Cholesky: factor the precision with rows and columns flipped, J P J = F F^T,
    # so P = R R^T with R = J F J upper triangular, and Sigma = R^-T R^-1 has the lower
    # factor R^-T: one factorisation and one triangular inverse (no Cholesky of a computed
    # covariance; 194 against 334 us at M = 100, float64, 2 AMD cores: bench_floor.py).
    flipped = (0.5 * (precision + precision.mT)).flip(-1, -2)
    F, _ = jittered_cholesky(flipped)
    R = F.flip(-1, -2)
    eye = torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)
    L_sigma = torch.linalg.solve_triangular(R.mT, eye.expand_as(R), upper=False)
    mean = (L_sigma @ (L_sigma.mT @ eta.unsqueeze(-1))).squeeze(-1)
    return mean, L_sigma


def standard_normal(*shape: int, dtype: torch.dtype = torch.float64, device=None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """``[*shape]`` independent ``N(0, 1)`` draws, as ``torch.randn(*shape, ...)``.

    From ``normal_kernels.MIN_SIZE`` (1024) draws, on the CPU, in float32 or float64 and with
    the compiled kernels on (:mod:`bayeskit.compiled`), the draws come from counter-based
    streams seeded by one number from ``generator``, blocks of ``compiled.BLOCK`` draws in
    parallel (Marsaglia's polar method: :mod:`bayeskit.distributions.normal_kernels`),
    2.6-3.7x torch's one-thread fill at 4e4-1.5e5 draws on 2 cores (``bench_gpc_gibbs.py
    --normals``); the result depends on the generator and the shape only, not on the
    number of threads. Otherwise (fewer draws, CUDA, other
    dtypes, kernels off) it is ``torch.randn`` with ``generator``. The samplers draw their
    noise here: a GP-classification Gibbs sweep of 64 chains needs ~2e5 normals.

    Examples:
        >>> x = standard_normal(2, 3, generator=torch.Generator().manual_seed(0))
        >>> x.shape, x.dtype
        (torch.Size([2, 3]), torch.float64)
        >>> y = standard_normal(2, 3, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(x, y)
        True
    """
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = tuple(shape[0])
    shape = tuple(as_int(n, "shape", nonnegative=True) for n in shape)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ArgumentTypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    try:
        device = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as err:
        raise ArgumentValueError(f"device must be a torch.device or a name such as 'cpu' or "
                                 f"'cuda', got {device!r}") from err
    if device.type not in ("cpu", "meta"):
        try:  # a device this torch build or machine lacks: torch asserts or errors opaquely
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError) as err:
            raise ArgumentValueError(f"device {str(device)!r} is not available here ({err}); "
                                     "draw on 'cpu' or install a torch build for it") from err
    check_generator(generator, device=device)
    size = math.prod(shape)
    if (size < MIN_SIZE or device.type != "cpu" or dtype not in (torch.float32, torch.float64)
            or not compiled.enabled()):
        return torch.randn(shape, dtype=dtype, device=device, generator=generator)
    out = np.empty(size, dtype=np.float64 if dtype == torch.float64 else np.float32)
    return torch.from_numpy(fill_standard_normal(out, compiled.seed_from(generator))
                            ).reshape(shape)


def sample_mvn(mean: torch.Tensor, *, scale_tril: torch.Tensor | None = None,
               precision_tril: torch.Tensor | None = None, sample_shape: tuple[int, ...] = (),
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Draws ``[*sample_shape, ..., D]`` from ``N(mean, Sigma)``.

    Give exactly one factor: ``scale_tril`` ``L`` with ``Sigma = L L^T`` (draw
    ``mean + L eps``) or ``precision_tril`` ``L`` with ``Sigma^-1 = L L^T`` (draw
    ``mean + L^-T eps``, one triangular solve, no inverse).

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = sample_mvn(torch.zeros(3, dtype=torch.float64),
        ...                scale_tril=torch.eye(3, dtype=torch.float64),
        ...                sample_shape=(4,), generator=g)
        >>> x.shape
        torch.Size([4, 3])
    """
    check_generator(generator)
    if (scale_tril is None) == (precision_tril is None):
        raise ArgumentValueError("give exactly one of scale_tril and precision_tril")
    factor = scale_tril if scale_tril is not None else precision_tril
    check_tensor("mean", mean, min_dim=1)
    check_generator(generator, device=mean.device)
    n = check_square("scale_tril" if scale_tril is not None else "precision_tril", factor)
    check_finite("the factor", factor)
    if mean.shape[-1] != n or n == 0:
        raise ShapeError(f"mean [..., D] and the factor [..., D, D] must share D >= 1: got "
                         f"{tuple(mean.shape)} and {tuple(factor.shape)}")
    batch = check_batch_shapes("batch", mean=mean.shape[:-1], factor=factor.shape[:-2])
    batch = (*batch, n)
    eps = standard_normal(*sample_shape, *batch, dtype=mean.dtype, device=mean.device,
                          generator=generator).unsqueeze(-1)
    if scale_tril is not None:
        noise = (scale_tril @ eps).squeeze(-1)
    elif precision_tril.dim() == 2:  # one factor: every draw a column of one solve
        flat = eps.reshape(-1, n).mT
        noise = torch.linalg.solve_triangular(precision_tril.mT, flat, upper=True).mT
        noise = noise.reshape(eps.shape[:-1])
    else:
        U = precision_tril.mT.expand(*eps.shape[:-2], *precision_tril.shape[-2:])
        noise = torch.linalg.solve_triangular(U, eps, upper=True).squeeze(-1)
    return mean + noise


def sample_from_precision(
    precision: torch.Tensor, shift: torch.Tensor, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw from ``N(P^-1 b, P^-1)`` given the precision ``P: [..., D, D]``, ``b: [..., D]``.

    Returns ``(mean, sample)``, each ``[..., D]``: with ``P = L L^T``, the mean solves two
    triangular systems and the sample adds ``L^-T eps``.

    Examples:
        >>> P = torch.eye(2, dtype=torch.float64) * 4
        >>> mean, x = sample_from_precision(P, torch.ones(2, dtype=torch.float64))
        >>> mean
        tensor([0.2500, 0.2500], dtype=torch.float64)
    """
    L, info = torch.linalg.cholesky_ex(precision)
    raise_if_not_pd(info > 0, "the posterior precision")
    mean = torch.cholesky_solve(shift.unsqueeze(-1), L).squeeze(-1)
    return mean, sample_mvn(mean, precision_tril=L, generator=generator)


class MatheronParts(NamedTuple):
    """What :func:`matheron_parts` returns (see there): a named tuple.

    Examples:
        >>> Phi = torch.ones(3, 2, dtype=torch.float64)
        >>> Ls, cov_PhiT, gram, scale = matheron_parts(Phi, torch.eye(2, dtype=torch.float64))
        >>> cov_PhiT.shape, gram.shape, scale
        (torch.Size([2, 3]), torch.Size([3, 3]), 1.0)
    """

    prior_tril: torch.Tensor
    prior_cov_PhiT: torch.Tensor
    gram: torch.Tensor
    prior_scale: float | None


def matheron_parts(Phi: torch.Tensor, prior_precision: torch.Tensor) -> MatheronParts:
    """What the Matheron form of :func:`sample_linear_gaussian_posterior` needs of the
    design and prior alone, compute once for many draws; a named tuple of the Cholesky
    factor ``prior_tril`` of ``S`` ``[D, D]``, ``prior_cov_PhiT = S^-1 Phi^T`` ``[D, N]``,
    the prior Gram matrix ``gram = Phi S^-1 Phi^T`` ``[N, N]`` and ``prior_scale``: ``s``
    where ``S = s I`` (the prior draw is then ``m + eps / sqrt(s)``, no triangular solve),
    else ``None``.

    Examples:
        >>> Phi = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
        >>> parts = matheron_parts(Phi, 2 * torch.eye(2, dtype=torch.float64))
        >>> bool(torch.allclose(parts.gram, Phi @ Phi.T / 2)), parts.prior_scale
        (True, 2.0)
    """
    check_tensor("Phi", Phi, min_dim=2)
    check_tensor("prior_precision", prior_precision, min_dim=2)
    if Phi.dim() != 2 or prior_precision.shape != (Phi.shape[1],) * 2:
        raise ShapeError(f"Phi must be [N, D] and prior_precision [D, D]; got "
                         f"{tuple(Phi.shape)} and {tuple(prior_precision.shape)}")
    return _matheron_parts(Phi, prior_precision)


def _matheron_parts(Phi, prior_precision) -> MatheronParts:
    Ls, info = torch.linalg.cholesky_ex(prior_precision)
    raise_if_not_pd(info > 0, "the prior precision")
    prior_cov_PhiT = torch.cholesky_solve(Phi.mT, Ls)  # S^-1 Phi^T: [D, N]
    # s I found once; a prior precision that autograd records keeps the solve (its draw
    # then carries the gradient through the factor)
    scale = None if prior_precision.requires_grad else identity_multiple(prior_precision)
    return MatheronParts(Ls, prior_cov_PhiT, Phi @ prior_cov_PhiT, scale)


def sample_linear_gaussian_posterior(
    Phi: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor, prior_mean: torch.Tensor,
    prior_precision: torch.Tensor, *, method: str = "auto",
    generator: torch.Generator | None = None, weighted_gram: WeightedGram | None = None,
    matheron_parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    eigenpairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """One exact draw of ``beta`` given weighted pseudo-observations.

    The posterior of ``beta ~ N(m, S^-1)`` given ``z = Phi beta + e``, ``e ~ N(0,
    diag(1/w))``, is ``N(mu, P^-1)`` with ``P = Phi^T diag(w) Phi + S`` and ``P mu = Phi^T
    diag(w) z + S m``. Two exact samplers: the precision form (cost D^3) and Matheron's
    rule through the N x N system (cost N^3), for D > N.

    Args:
        Phi: ``[N, D]`` design. weights: ``[..., N]`` positive ``w``. targets: ``[..., N]``
            the quantity ``Phi^T diag(w) z`` is built from, passed as ``w * z``.
        prior_mean: ``[D]``. prior_precision: ``[D, D]``.
        method: ``"precision"`` (D x D), ``"matheron"`` (N x N) or ``"auto"`` (the smaller).
        weighted_gram: optional :class:`~bayeskit.linalg.WeightedGram` of ``Phi``: the
            precision form then builds ``Phi^T diag(w) Phi`` for a whole batch of weights
            as one matrix product with its packed table (worth it for small D and many
            draws from one design, as in a Gibbs sampler).
        matheron_parts: optional :func:`matheron_parts` of ``(Phi, prior_precision)``: the
            Matheron form then costs one N x N Cholesky factorisation per draw (the prior
            Gram matrix ``Phi S^-1 Phi^T`` is not rebuilt; GP classification in function
            space, where D = N).
        eigenpairs: optional top eigenpairs of the prior Gram matrix
            (:func:`bayeskit.linalg.low_rank_eigenpairs`, or a
            :class:`~bayeskit.linalg.LowRankPreconditioner` of them, cheaper over many
            draws): the Matheron form then solves its
            N x N system by preconditioned conjugate gradients
            (:func:`bayeskit.linalg.solve_plus_diagonal`, relative residual 1e-10 in float64)
            instead of factorising it, one ``[..., N] @ [N, N]`` product per iteration.

    Returns:
        ``[..., D]``.
    """
    n, d = Phi.shape
    if method == "auto":
        method = "precision" if d <= n else "matheron"
    if method == "precision" and eigenpairs is not None:
        raise ArgumentValueError("eigenpairs serve the Matheron form's N x N solve; pass "
                                 "method='matheron' (or drop eigenpairs)")
    if method == "precision":
        if weighted_gram is None:
            P = Phi.mT @ (weights.unsqueeze(-1) * Phi) + prior_precision
        else:
            if not isinstance(weighted_gram, WeightedGram):
                raise ArgumentTypeError(f"weighted_gram must be linalg.WeightedGram(Phi), got "
                                        f"{type(weighted_gram).__name__}")
            # one pass over [N, D]: a table of another design would give a wrong posterior
            if weighted_gram.A.shape != Phi.shape or not torch.equal(weighted_gram.A, Phi):
                raise ArgumentValueError("weighted_gram was built from another design than "
                                         "Phi; build it as linalg.WeightedGram(Phi)")
            P = weighted_gram(weights) + prior_precision
        shift = targets @ Phi + prior_precision @ prior_mean
        return sample_from_precision(P, shift, generator=generator)[1]
    if method != "matheron":
        raise ArgumentValueError(f"method must be 'auto', 'precision' or 'matheron', got "
                                 f"{method!r}")
    # Matheron: beta0 ~ prior, e0 ~ N(0, W^-1); beta = beta0 + S^-1 Phi^T (Phi S^-1 Phi^T
    # + W^-1)^-1 (z - Phi beta0 - e0), where z = targets / w.
    batch = weights.shape[:-1]
    Ls, prior_cov_PhiT, gram, prior_scale = (matheron_parts if matheron_parts is not None
                                             else _matheron_parts(Phi, prior_precision))
    if prior_scale is not None:  # S = s I: no solve (the same draw to rounding)
        beta0 = prior_mean + standard_normal(*batch, d, dtype=Phi.dtype, device=Phi.device,
                                             generator=generator) / math.sqrt(prior_scale)
    else:
        beta0 = sample_mvn(prior_mean.expand(*batch, d), precision_tril=Ls,
                           generator=generator)
    e0 = standard_normal(*batch, n, dtype=Phi.dtype, device=Phi.device,
                         generator=generator) / weights.sqrt()
    resid = targets / weights - (beta0 @ Phi.mT) - e0
    differentiable = torch.is_grad_enabled() and any(
        t.requires_grad for t in (Phi, weights, targets, prior_mean, gram))
    if differentiable:  # (cholesky_plus_diagonal and the iterative solve detach)
        Lk, info = torch.linalg.cholesky_ex(gram + torch.diag_embed(1.0 / weights))
    elif eigenpairs is not None:
        alpha = solve_plus_diagonal(gram, 1.0 / weights, resid, eigenpairs=eigenpairs)
        return beta0 + alpha @ prior_cov_PhiT.mT
    else:  # samplers: one buffer, factorised in place
        Lk, info = cholesky_plus_diagonal(gram, 1.0 / weights)
    raise_if_not_pd(info > 0, "Phi S^-1 Phi^T + W^-1")
    alpha = torch.cholesky_solve(resid.unsqueeze(-1), Lk).squeeze(-1)
    return beta0 + alpha @ prior_cov_PhiT.mT


def gauss_hermite(num_points: int, *, dtype: torch.dtype = torch.float64,
                  device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``x`` and weights ``w`` (summing to 1) with ``E_{N(0,1)}[g(z)] ~ sum w_i
    g(x_i)``, exact for polynomials of degree ``< 2 num_points``.

    Examples:
        >>> x, w = gauss_hermite(3)
        >>> round(float((w * x ** 2).sum()), 12)
        1.0
    """
    x, w = np.polynomial.hermite_e.hermegauss(int(num_points))
    return (torch.as_tensor(x, dtype=dtype, device=device),
            torch.as_tensor(w / w.sum(), dtype=dtype, device=device))


def gauss_hermite_expectation(fn: Callable[[torch.Tensor], torch.Tensor], mean: torch.Tensor,
                              var: torch.Tensor, num_points: int = 20) -> torch.Tensor:
    """``E_{f ~ N(mean, var)}[fn(f)]`` elementwise by Gauss-Hermite quadrature; ``fn`` gets
    ``[..., num_points]`` and must return the same shape.

    Examples:
        >>> m = torch.tensor([1.0], dtype=torch.float64)
        >>> v = torch.tensor([4.0], dtype=torch.float64)
        >>> round(float(gauss_hermite_expectation(lambda f: f ** 2, m, v)), 12)  # m^2 + v
        5.0
    """
    x, w = gauss_hermite(num_points, dtype=mean.dtype, device=mean.device)
    f = mean.unsqueeze(-1) + var.clamp_min(0).sqrt().unsqueeze(-1) * x
    return (fn(f) * w).sum(-1)


def append_observations(L: torch.Tensor, f: torch.Tensor, cross: torch.Tensor,
                        corner: torch.Tensor, resid_new: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact update of a Cholesky-form posterior by ``q`` new observations.

    With ``L L^T = K + noise I`` of the ``N`` observations and ``f = L^-1 (y - m)``,
    appending points whose covariances are ``cross = K(X, X_new)`` ``[N, q]`` and ``corner
    = K(X_new, X_new) + noise I`` ``[q, q]`` extends ``L`` by
    :func:`~bayeskit.linalg.cholesky_append` (O(N^2 q), no refactorisation) and ``f`` by
    its new rows ``L22^-1 (r_new - L21 f)``.

    Args:
        L: ``[N, N]``. f: ``[..., N]`` (a leading batch: several outcome vectors, e.g.
            fantasies). cross: ``[N, q]``. corner: ``[q, q]``. resid_new: ``[..., q]``
            ``y_new - m(X_new)``.

    Returns:
        ``(L_new [N+q, N+q], f_new [..., N+q])``.
    """
    n = L.shape[-1]
    L_new = cholesky_append(L, cross, corner)
    L21, L22 = L_new[..., n:, :n], L_new[..., n:, n:]
    rhs = resid_new - (f.unsqueeze(-2) @ L21.mT).squeeze(-2)
    f_tail = torch.linalg.solve_triangular(
        L22.expand(*rhs.shape[:-1], *L22.shape), rhs.unsqueeze(-1), upper=False).squeeze(-1)
    f_new = torch.cat([f.expand(*rhs.shape[:-1], n), f_tail], -1)
    return L_new, f_new


def condition_whitened(f: torch.Tensor, q_sqrt: torch.Tensor, H: torch.Tensor,
                       resid: torch.Tensor, noise: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Condition ``v ~ N(f, S S^T)`` on ``y = H v + e``, ``e ~ N(0, noise I)``: the Kalman
    update of a whitened sparse posterior, with the covariance factor updated in rank ``q``.

    With ``G = S^T H^T`` the posterior covariance is ``S (I + G G^T / noise)^-1 S^T``
    (Woodbury), so its factor is ``S U^-T`` where ``U U^T = I + G G^T / noise`` is a rank-q
    *update* of the identity (:func:`~bayeskit.linalg.cholesky_update_lowrank`, O(K^2 q);
    never a downdate, so it cannot lose positive definiteness), and the mean moves by
    ``S_new S_new^T H^T resid / noise``. O(K^3) for the new factor, once.

    Args:
        f: ``[..., K]`` prior mean (a leading batch: several outcome vectors).
        q_sqrt: ``[K, K]`` any square root ``S`` of the prior covariance.
        H: ``[q, K]`` observation map. resid: ``[..., q]`` ``y - H f``.
        noise: observation noise variance (scalar tensor, > 0).

    Returns:
        ``(f_new [..., K], S_new [K, K])``.

    Examples:
        >>> S = torch.eye(2, dtype=torch.float64)  # v ~ N(0, I), observe v_0 + v_1
        >>> H = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
        >>> f, S_new = condition_whitened(torch.zeros(2, dtype=torch.float64), S, H,
        ...                               torch.tensor([2.0], dtype=torch.float64),
        ...                               torch.tensor(1.0, dtype=torch.float64))
        >>> [round(v, 12) for v in f.tolist()]  # gain H^T / (H H^T + noise) = [1/3, 1/3]
        [0.666666666667, 0.666666666667]
        >>> torch.allclose(S_new @ S_new.mT, torch.tensor([[2.0, -1.0], [-1.0, 2.0]],
        ...                                             dtype=torch.float64) / 3)
        True
    """
    k = check_square("q_sqrt", q_sqrt)
    check_finite("q_sqrt", q_sqrt)
    check_tensor("H", H, min_dim=2)
    check_tensor("f", f, min_dim=1)
    check_tensor("resid", resid, min_dim=1)
    noise = torch.as_tensor(as_scalar(noise, "noise", positive=True), dtype=q_sqrt.dtype,
                            device=q_sqrt.device)
    if H.dim() != 2 or H.shape[-1] != k or f.shape[-1] != k or resid.shape[-1] != H.shape[-2]:
        raise ShapeError(f"f [..., K], q_sqrt [K, K], H [q, K] and resid [..., q] must agree: "
                         f"got {tuple(f.shape)}, {tuple(q_sqrt.shape)}, {tuple(H.shape)}, "
                         f"{tuple(resid.shape)}")
    check_batch_shapes("leading (outcome)", f=f.shape[:-1], resid=resid.shape[:-1])
    G = q_sqrt.mT @ H.mT  # [K, q]
    eye = torch.eye(k, dtype=q_sqrt.dtype, device=q_sqrt.device)
    U = cholesky_update_lowrank(eye, G / noise.sqrt())
    S_new = torch.linalg.solve_triangular(U, q_sqrt.mT, upper=False).mT
    HS = H @ S_new  # [q, K]
    f_new = f + ((resid / noise) @ HS) @ S_new.mT
    return f_new, S_new


def fantasy_sigma(cross: torch.Tensor, cov_new: torch.Tensor, noise: torch.Tensor
                  ) -> torch.Tensor:
    """``sigma_tilde = k_n(X, X_c) C^-T`` with ``C C^T = k_n(X_c, X_c) + noise I``: how the
    posterior mean at ``X`` moves per standardised outcome ``Z ~ N(0, I_q)`` observed at
    ``X_c`` (Frazier et al. 2009, eq. 7 for ``q = 1``): ``mu_{n+q} = mu_n + sigma_tilde Z``.

    Args:
        cross: ``[..., Q, q]`` posterior covariances ``k_n(X, X_c)``.
        cov_new: ``[..., q, q]`` posterior covariance ``k_n(X_c, X_c)`` (for ``q = 1`` the
            variance ``[..., 1, 1]``).
        noise: observation noise variance (scalar tensor).

    Returns:
        ``[..., Q, q]``.
    """
    q = cov_new.shape[-1]
    if q == 1:  # one point: the appended Cholesky entry is a square root
        return cross / torch.sqrt(cov_new[..., 0, :].clamp_min(0) + noise)[..., None, :]
    eye = torch.eye(q, dtype=cov_new.dtype, device=cov_new.device)
    C, _ = jittered_cholesky(cov_new + noise * eye)
    C = C.expand(*cross.shape[:-2], q, q) if C.dim() < cross.dim() else C
    return torch.linalg.solve_triangular(C, cross.mT, upper=False).mT

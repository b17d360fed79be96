"""Rank-1 and rank-M updates and downdates of a Cholesky factor in O(N^2 M), loop-free in N.

Given the lower factor ``L`` of ``A`` and ``U: [N, M]``, the factor of ``A + a U U^T`` is
``L L1`` where ``L1`` is the lower factor of ``I + a P P^T`` with ``P = L^{-1} U``
(Seeger 2004; Gill, Golub, Murray & Saunders 1974, method C1 in matrix form). ``L1`` is
semiseparable: ``L1[k, j] = p_k^T g_j`` below the diagonal. We split the columns into blocks
of ``b`` and write, block by block (J), with block generators ``G_J: [b, M]``::

    L1 = blockdiag(T_J) + { P_K G_J^T  for block K below block J }
    (L L1)[:, J] = L[:, J] T_J + W_J G_J^T,    W_J = sum_{K > J} L[:, K] P_K

``T_J`` is the Cholesky factor of the Schur complement ``I + P_J S_J P_J^T`` with
``S_J = a (I + a sum_{K<J} P_K^T P_K)^{-1}`` (an ``M x M`` matrix per block), and
``G_J = T_J^{-1} P_J S_J``. Everything is a batched matmul, a triangular solve or a small
batched Cholesky, so the cost is O(N^2 (b + 2M)) flops with no Python loop over N.
We compute in "R space" (``R = L^T``), where a factor from ``torch.linalg.cholesky``
(column-major) is a contiguous row-major matrix and the blocks are plain views.
"""

from __future__ import annotations

import torch

from bayeskit import compiled
from bayeskit.errors import ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.linalg import kernels
from bayeskit.validation import (
    as_param,
    check_cholesky_factor,
    check_factor_dtype,
    check_floating,
    check_same_dtype,
    check_square,
    first_true_index,
    raise_if_not_pd,
)

__all__ = ["cholesky_update", "cholesky_update_lowrank"]


def cholesky_update(
    chol: torch.Tensor,
    u: torch.Tensor,
    multiplier: float | torch.Tensor = 1.0,
    *,
    block_size: int | None = None,
) -> torch.Tensor:
    """Lower Cholesky factor of ``chol @ chol.mT + multiplier * u u^T`` in O(N^2).

    Same semantics as ``tfp.math.cholesky_update``; a negative ``multiplier`` downdates.

    Args:
        chol: ``[..., N, N]`` lower-triangular factor with a positive diagonal and zeros
            above it (as returned by ``torch.linalg.cholesky``).
        u: ``[..., N]`` update vector; batch dimensions broadcast against ``chol``'s.
        multiplier: scalar or tensor broadcastable to the batch shape.
        block_size: column block size (see :func:`cholesky_update_lowrank`).

    Returns:
        ``[..., N, N]`` lower factor of the updated matrix (column-major like
        ``torch.linalg.cholesky``).

    Raises:
        NotPositiveDefiniteError: the downdated matrix is not positive definite.
        ShapeError, NonFiniteError, TypeError: bad shapes, NaN/inf, or non-float inputs.

    Examples:
        >>> A = torch.tensor([[4.0, 2.0], [2.0, 3.0]], dtype=torch.float64)
        >>> u = torch.tensor([1.0, 1.0], dtype=torch.float64)
        >>> L = cholesky_update(torch.linalg.cholesky(A), u)
        >>> torch.allclose(L @ L.mT, A + torch.outer(u, u))
        True
    """
    check_floating("u", u)
    if u.dim() < 1:
        raise ShapeError(f"u must have shape [..., N], got a scalar of shape {tuple(u.shape)}")
    return cholesky_update_lowrank(chol, u.unsqueeze(-1), multiplier, block_size=block_size)


def _default_block_size(n: int, m: int) -> int:
    # Small blocks keep the flop count N^2 (b + 2M) near the memory-bound floor; the tail
    # sums W take N^2 M / b numbers, so b >= 2M keeps them at most half an N x N matrix
    # (peak extra memory, output included, stays below two N x N matrices).
    b = 8
    while b < 2 * m and b < 256:
        b *= 2
    return max(1, min(b, n))


def _block_generators(P: torch.Tensor, alpha: torch.Tensor, b: int):
    """Block generators of the Cholesky factor of ``I + alpha P P^T``.

    Args:
        P: ``[B, nb*b, M]`` (front-padded with zero rows to a multiple of ``b``).
        alpha: ``[B]`` multipliers.

    Returns:
        ``T: [B, nb, b, b]`` diagonal blocks, ``G: [B, nb, b, M]`` generators and a
        ``[B]`` boolean mask, true where ``I + alpha P P^T`` is not positive definite.
    """
    B, n_pad, M = P.shape
    nb = n_pad // b
    Pb = P.reshape(B, nb, b, M)
    gram = Pb.mT @ Pb  # [B, nb, M, M]
    before = torch.cumsum(gram, dim=1) - gram  # sum over blocks K < J
    eye_m = torch.eye(M, dtype=P.dtype, device=P.device)
    a = alpha.view(B, 1, 1, 1)
    Q = eye_m + a * before
    CQ, info_q = torch.linalg.cholesky_ex(Q)
    X = a * torch.cholesky_solve(Pb.mT, CQ).mT  # P_J S_J, [B, nb, b, M]
    eye_b = torch.eye(b, dtype=P.dtype, device=P.device)
    T, info_t = torch.linalg.cholesky_ex(eye_b + X @ Pb.mT)
    failed = ((info_q > 0) | (info_t > 0)).any(dim=-1)
    # cholesky_ex leaves a partial factor where it fails; a non-finite generator (e.g. a
    # downdate that is singular to working precision) counts as a failure as well.
    G = torch.linalg.solve_triangular(T, X, upper=False)
    failed = failed | ~torch.isfinite(G).all(dim=(-1, -2, -3))
    return T, G, failed


def _rank1_generators(p: torch.Tensor, alpha: torch.Tensor):
    """Closed-form Cholesky of ``I + alpha p p^T`` for ``p: [B, N]`` (Gill et al. 1974, C1).

    With ``t_j = 1 + alpha sum_{k<=j} p_k^2`` (``t_0 = 1``) the factor has diagonal
    ``d_j = sqrt(t_j / t_{j-1})`` and entries ``p_r gamma_j`` below it, where
    ``gamma_j = alpha p_j / sqrt(t_j t_{j-1})``. Returns ``(d, gamma, failed)``.
    """
    t = 1.0 + alpha[:, None] * torch.cumsum(p * p, dim=-1)
    t_prev = torch.cat([torch.ones_like(t[:, :1]), t[:, :-1]], dim=-1)
    failed = ~((t > 0) & torch.isfinite(t)).all(dim=-1)
    d = torch.sqrt(t / t_prev)
    gamma = alpha[:, None] * p / torch.sqrt(t * t_prev)
    return d, gamma, failed


def _rank1_blocks(p_pad: torch.Tensor, alpha: torch.Tensor, b: int):
    """Block form (``T, G, failed``) of :func:`_rank1_generators` for front-padded ``p``."""
    B, n_pad = p_pad.shape
    d, gamma, failed = _rank1_generators(p_pad, alpha)
    pb, gb = p_pad.reshape(B, -1, b), gamma.reshape(B, -1, b)
    T = torch.tril(pb.unsqueeze(-1) * gb.unsqueeze(-2), diagonal=-1)
    T = T + torch.diag_embed(d.reshape(B, -1, b))
    return T, gb.unsqueeze(-1), failed


def _rank1_small(R: torch.Tensor, p: torch.Tensor, alpha: torch.Tensor):
    """Rank-1 update by elementwise ops and one cumsum, best for batches of small factors.

    Works on ``R = L^T: [B, N, N]`` (row-major for a column-major ``L``) and returns
    ``R1 = (L L1)^T`` with ``R1[j, i] = R[j, i] d_j + gamma_j sum_{k>j} R[k, i] p_k``.
    The tail sum is the column total minus the inclusive prefix sum, so entries below the
    diagonal of ``R1`` (where both are bitwise equal) come out exactly zero.
    """
    d, gamma, failed = _rank1_generators(p, alpha)
    out = R * p.unsqueeze(-1)
    out.cumsum_(-2)
    total = out[..., -1:, :].clone()
    torch.sub(total, out, out=out)
    out.mul_(gamma.unsqueeze(-1)).addcmul_(R, d.unsqueeze(-1))
    return out, failed


def _reverse_exclusive_cumsum(Y: torch.Tensor, dim: int) -> torch.Tensor:
    """``out[J] = sum_{K > J} Y[K]`` along ``dim``, in place on ``Y`` (which it returns).

    Computed as total minus inclusive prefix so entries whose later terms are all exactly
    zero come out exactly zero (this keeps the result exactly triangular).
    """
    Y = Y.cumsum_(dim)
    total = Y.narrow(dim, Y.shape[dim] - 1, 1).clone()
    return Y.neg_().add_(total)


def cholesky_update_lowrank(
    chol: torch.Tensor,
    U: torch.Tensor,
    multiplier: float | torch.Tensor = 1.0,
    *,
    block_size: int | None = None,
) -> torch.Tensor:
    """Lower Cholesky factor of ``chol @ chol.mT + multiplier * U @ U.mT`` in O(N^2 M).

    Equivalent to ``M`` successive rank-1 updates (TFP's ``cholesky_update`` applied to each
    column). Up to rank 64 on the CPU without gradients, a compiled column sweep
    (:mod:`bayeskit.linalg.kernels`) applies the ``M`` rotations per column in cache;
    otherwise one blocked pass with batched matrix products, loop-free in ``N``.
    Differentiable with respect to ``chol``, ``U`` and ``multiplier``.

    Accuracy: the sweep's updates are orthogonal rotations, accurate to rounding for any
    factor. The blocked route works through ``chol^-1 U``, so its error grows with the
    factor's conditioning (with one diagonal entry of ``1e-2`` in an O(1) 40 x 40 factor
    ``|L' L'^T - A| / |A|`` is 3e-12 at rank 1 and 6e-8 at rank 4, against 6e-16 from the
    sweep: ``benchmarks/bench_cholesky.py --accuracy``). It checks its updated diagonal on
    8 rows: an update (every multiplier > 0) off by more than ``64 eps`` there, or
    whose ``chol^-1 U`` overflows, is redone by a blocked QR of ``[chol^T; U^T]``
    (orthogonal, accurate to rounding, differentiable; the update then takes 2.4-3.3x as
    long: ``bench_cholesky.py --redo``); such a downdate
    is refused when it lost more than ``eps^(1/3)`` (ArgumentValueError), since a downdate
    is only as well-conditioned as the solve with ``chol``.

    Args:
        chol: ``[..., N, N]`` lower-triangular factor with a positive diagonal and zeros
            above it. Column-major factors (what ``torch.linalg.cholesky`` returns) take
            the fastest path; any layout is accepted.
        U: ``[..., N, M]`` update factor; batch dimensions broadcast with ``chol``'s.
        multiplier: scalar or tensor broadcastable to the batch shape; negative downdates.
        block_size: columns per block (default: 8 for M = 1, doubling while below 2M, at
            most 256). Any value gives the same result up to rounding.

    Returns:
        ``[..., N, N]`` lower factor of the updated matrix.

    Raises:
        NotPositiveDefiniteError: a downdate leaves a matrix that is not positive definite
            (the message names the batch index).
        ArgumentValueError: a downdate on the blocked route with ``chol`` too
            ill-conditioned (above).
        ShapeError: shapes do not fit. NonFiniteError: NaN/inf in the inputs.
        TypeError: non-floating inputs or mismatched dtypes.

    Examples:
        >>> A = torch.eye(3, dtype=torch.float64) * 2
        >>> U = torch.ones(3, 2, dtype=torch.float64)
        >>> L = cholesky_update_lowrank(torch.linalg.cholesky(A), U)
        >>> torch.allclose(L @ L.mT, A + U @ U.mT)
        True
    """
    # a column-major batch of factors is checked by the compiled sweep, which reads the
    # diagonal anyway (check_cholesky_factor's test for that layout, which runs, for its
    # message, where a factor failed it): gathering the diagonal of a batch first costs a
    # cache line per entry (256 factors of 100 x 100, bench_cholesky.py: the public call's
    # time over the sweep's alone fell from 1.2-1.5 ms to 0.4-0.7 ms of 2.1-3.6 ms).
    # One factor, another layout (whose probe reads rows) and every other route are
    # checked here first (for one large factor that was the faster order in
    # bench_cholesky.py's interleaved rounds, though not in back-to-back calls).
    n = check_square("chol", chol)
    check_factor_dtype("chol", chol)
    checked_in_sweep = chol.dim() > 2 and chol.stride(-2) == 1
    if not checked_in_sweep:
        check_cholesky_factor("chol", chol, full=False)
    check_floating("U", U)
    if U.dim() < 2 or U.shape[-2] != n:
        raise ShapeError(
            f"U must have shape [..., N, M] with N = {n} to match chol {tuple(chol.shape)}, "
            f"got {tuple(U.shape)}"
        )
    check_same_dtype(chol=chol, U=U)
    alpha = as_param(multiplier, "multiplier").to(dtype=chol.dtype, device=chol.device)
    batch = torch.broadcast_shapes(chol.shape[:-2], U.shape[:-2], alpha.shape)
    m = U.shape[-1]
    if not bool(torch.isfinite(alpha).all()):
        raise NonFiniteError("multiplier contains NaN or infinite values")
    if not bool(torch.isfinite(U).all()):
        raise NonFiniteError("U contains NaN or infinite values")
    if not bool(torch.isfinite((U * U).sum(-2) * alpha.abs().unsqueeze(-1)).all()):
        raise NonFiniteError(f"multiplier * U U^T overflows {U.dtype} (entries up to "
                             f"{float(U.abs().max()):.3g}); rescale the update")
    if m == 0 or n == 0:
        if checked_in_sweep:
            check_cholesky_factor("chol", chol, full=False)
        return chol.expand(*batch, n, n).clone()

    b = block_size if block_size is not None else _default_block_size(n, m)
    if b < 1:
        raise ArgumentValueError(f"block_size must be a positive integer, got {b}")
    b = min(b, n)

    L = chol.expand(*batch, n, n).reshape(-1, n, n) if batch else chol.unsqueeze(0)
    Uf = U.expand(*batch, n, m).reshape(-1, n, m) if batch else U.unsqueeze(0)
    a = alpha.expand(batch).reshape(-1) if batch else alpha.reshape(1)
    grad = torch.is_grad_enabled() and (L.requires_grad or Uf.requires_grad or a.requires_grad)
    if (m <= _KERNEL_M and (m > 1 or n <= _KERNEL_RANK1_N) and not grad
            and compiled.enabled(L, Uf, a)):
        out, failed = kernels.lowrank_update_batch(L, Uf, a)
        if not bool(failed.any()):  # otherwise the path below explains what went wrong
            return out.reshape(*batch, n, n) if batch else out[0]

    if checked_in_sweep:
        check_cholesky_factor("chol", chol, full=False)
    out = _blocked_update(L, Uf, a, b, batch, grad)
    return out.mT.reshape(*batch, n, n) if batch else out.mT[0]


def _blocked_update(L: torch.Tensor, U: torch.Tensor, a: torch.Tensor, b: int,
                    batch: torch.Size, grad: bool) -> torch.Tensor:
    """``R1 = (L L1)^T`` through ``P = L^-1 U`` (the module docstring), falling back to the
    orthogonal route for an update (every multiplier > 0) whose factor is too
    ill-conditioned for it; a downdate of such a factor is refused."""
    n, m = U.shape[-2:]
    update = bool((a > 0).all())
    if not bool(torch.isfinite(L.diagonal(dim1=-2, dim2=-1)).all()):
        raise NonFiniteError("chol contains NaN/inf on its diagonal")
    P = torch.linalg.solve_triangular(L, U, upper=False)  # [B, N, M]
    if not bool(torch.isfinite(P).all()):
        if not bool(torch.isfinite(torch.tril(L)).all()):
            raise NonFiniteError("chol contains NaN/inf in its lower triangle")
        if update:  # chol is numerically singular: L^-1 U overflows
            return _orthogonal_update(L.mT, (U * a.sqrt()[:, None, None]).mT)
        raise NonFiniteError("chol is numerically singular (L^{-1} U is not finite): "
                             "recompute the factor of the downdated matrix")
    if m == 1 and n <= _SMALL_N and not grad:
        out, failed = _rank1_small(L.mT, P[..., 0], a)
    else:
        nb = -(-n // b)
        pad = nb * b - n
        P_pad = torch.nn.functional.pad(P, (0, 0, pad, 0)) if pad else P
        if m == 1:
            T, G, failed = _rank1_blocks(P_pad[..., 0], a, b)
        else:
            T, G, failed = _block_generators(P_pad, a, b)
        if not (update and bool(failed.any())):
            out = _apply_blocks(L.mT, P_pad, T, G, b, pad)
    if update and (bool(failed.any())
                   or _digits_lost(L, U, a, out, 64 * torch.finfo(L.dtype).eps).any()):
        return _orthogonal_update(L.mT, (U * a.sqrt()[:, None, None]).mT)
    _raise_not_pd(failed, batch, a)
    _check_digits(L, U, a, out, batch)
    return out


def _orthogonal_update(R: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """``R1`` with ``R1^T R1 = R^T R + V^T V`` for upper ``R = L^T: [B, N, N]`` and
    ``V: [B, M, N]``, by a blocked QR of the stacked ``[R; V]`` (orthogonal, so accurate to
    rounding whatever ``R``'s conditioning; differentiable; any device).

    Block by block of ``w`` columns: the QR ``Q1 T`` of ``[R_JJ; V_J]`` gives the new
    diagonal block ``T`` and the new block row ``Q1^T [R_J,rest; V_rest]``; an orthonormal
    complement ``C`` of ``Q1`` carries the rest of the update on, ``V <- C^T (I - Q1 Q1^T)
    [R_J,rest; V_rest]``. The result depends on ``C`` only through ``C C^T = I - Q1 Q1^T``,
    whose derivative ``C C^T`` alone reproduces to first order (a projector's ``dP = dP P +
    P dP``), so ``C`` is taken without gradient. The flops are ``N^2 (w + M)^2 / (2 w)``
    with ``w = max(32, 4 M)``, more than the blocked route's, so this runs only where that
    route cannot keep its digits (a redone update takes 2.4-3.3x the time of the blocked
    formula alone at N = 500 and 2000, ranks 1 and 16: ``bench_cholesky.py --redo``).
    """
    B, n, _ = R.shape
    M = V.shape[1]
    grad = torch.is_grad_enabled() and (R.requires_grad or V.requires_grad)
    w_max = min(n, max(32, 4 * M), 256)
    rows = []
    for j0 in range(0, n, w_max):
        j1 = min(j0 + w_max, n)
        w = j1 - j0
        lead = torch.cat([R[:, j0:j1, j0:j1], V[:, :, :w]], dim=1)  # [B, w + M, w]
        Q1, T = torch.linalg.qr(lead)  # T exactly upper triangular
        sign = torch.sign(T.diagonal(dim1=-2, dim2=-1)).unsqueeze(-1)
        block = T
        if j1 < n:
            with torch.no_grad():
                C = torch.linalg.qr(lead, mode="complete")[0][..., w:]  # [B, w + M, M]
            trailing = torch.cat([R[:, j0:j1, j1:], V[:, :, w:]], dim=1)
            block_row = Q1.mT @ trailing
            V = C.mT @ trailing
            if grad:
                V = V - (C.mT @ Q1) @ block_row  # zero in value, carries dP
            block = torch.cat([block, block_row], dim=2)
        rows.append(torch.nn.functional.pad(block * sign, (j0, 0)))
    return torch.cat(rows, dim=1)


# Up to this size a rank-1 update is faster with elementwise ops and one cumsum than with
# blocked products (a cumsum down the rows of a larger matrix is cache-unfriendly).
_SMALL_N = 256
# Up to this rank the compiled column sweep (linalg.kernels) replaces both when it can run
# (no gradient, CPU): it touches each entry once per rotation, in cache, where the blocked
# route makes several passes of small products. One factor, 2 threads, AMD EPYC
# (`bench_cholesky.py --routes 1 4 16 32 64 128 --sizes 200 500 1000 2000 4000`, RESULTS.md):
# the blocked route takes 1.7-2.7x the sweep's time at N = 2000 up to rank 64 and 1.5x at
# rank 128; at N = 4000 it ties at ranks 2-4 (0.99-1.05x) and takes 1.1-1.3x from rank 16.
# A rank-1 sweep runs on one thread per factor: above N = 2048 it is no faster than the
# blocked route (0.86-1.04x; both are bound by the fresh 32+ MiB output's page faults), and
# with more cores the blocked route's products scale, so rank 1 stays there.
_KERNEL_M = 64
_KERNEL_RANK1_N = 2048


def _raise_not_pd(failed: torch.Tensor, batch: torch.Size, alpha: torch.Tensor) -> None:
    """A downdate that leaves a matrix that is not positive definite, or an update that
    failed in floating point (the blocked route solves with ``chol``: an ill-conditioned
    factor makes ``chol^-1 U`` overflow)."""
    if not bool(failed.any()):
        return
    if bool((alpha[failed] < 0).all()):
        what = "the downdated matrix chol @ chol.mT + multiplier * U @ U.mT"
    else:
        what = ("the updated matrix chol @ chol.mT + multiplier * U @ U.mT (chol is too "
                "ill-conditioned for the blocked route, which solves with it: recompute the "
                "factor, or update on the CPU without gradients, where the compiled sweep "
                "runs)")
    raise_if_not_pd(failed.reshape(batch) if batch else failed[0], what)


def _check_digits(L: torch.Tensor, U: torch.Tensor, alpha: torch.Tensor, R1: torch.Tensor,
                  batch: torch.Size) -> None:
    """Refuse a blocked-route result that lost most of its digits (downdates, and batches
    mixing updates with downdates: a pure update is redone instead). The route works through
    ``L^-1 U``, so an ill-conditioned ``L`` spoils it (``bench_cholesky.py --accuracy``):
    rows of the new factor must keep the squared norm ``|L_i|^2 + alpha |U_i|^2`` (the
    updated diagonal) to ``eps^(1/3)`` of ``|L_i|^2 + |alpha| |U_i|^2`` (6e-6 in float64).
    Checked on 8 evenly spaced rows, the last included: a tiny pivot spoils every row
    from its own to the last (every row would cost two passes over N x N temporaries)."""
    lost, worst = _digits_lost(L, U, alpha, R1, torch.finfo(L.dtype).eps ** (1 / 3),
                               with_error=True)
    if bool(lost.any()):
        index = first_true_index(lost.reshape(batch) if batch else lost[0])
        where = f" at batch index {index}" if batch else ""
        raise ArgumentValueError(
            f"chol is too ill-conditioned for the blocked low-rank update{where}: the result "
            f"lost most of its digits (relative error {float(worst.max()):.1e} on the "
            "new diagonal). Recompute the factor of chol @ chol.mT + multiplier * U @ U.mT, or "
            "run the downdate on the CPU without gradients, where the compiled sweep runs "
            "(updates alone, every multiplier > 0, are redone accurately on this route)")


def _digits_lost(L: torch.Tensor, U: torch.Tensor, alpha: torch.Tensor, R1: torch.Tensor,
                 tol: float, with_error: bool = False):
    """``[B]`` mask of :func:`_check_digits`' test at relative tolerance ``tol`` (and the
    worst relative errors). An update is redone by the orthogonal route above ``64 eps``:
    the blocked route's error on these rows stays below ``3 eps`` for well-conditioned
    factors (2.5 eps at most over N = 100 and 700, ranks 1-16, condition numbers up to
    ~400, float32 and float64: the cases of ``test_well_conditioned_updates_are_never_redone``),
    and a redo costs time, never accuracy, so that test is much tighter than the refusal of
    a downdate."""
    n = L.shape[-1]
    rows = torch.linspace(0, n - 1, min(n, 8), device=L.device).round().long().unique()
    with torch.no_grad():
        Li, Ui = L[:, rows, :], U[:, rows, :]
        old, add = (Li * Li).sum(-1), (Ui * Ui).sum(-1) * alpha.unsqueeze(-1)
        Ri = R1[:, :, rows]
        err = ((Ri * Ri).sum(-2) - old - add).abs() / (old + add.abs())
        worst = err.amax(-1)
    lost = ~(worst <= tol)
    return (lost, worst) if with_error else lost


def _apply_blocks(R: torch.Tensor, P_pad: torch.Tensor, T: torch.Tensor, G: torch.Tensor,
                  b: int, pad: int) -> torch.Tensor:
    """Return ``R1 = (L L1)^T`` given ``R = L^T: [B, N, N]`` and the block generators."""
    B, n, _ = R.shape
    nb = T.shape[1]
    M = P_pad.shape[-1]
    if R.stride(-1) != 1:
        # A row-major chol makes R column-major; one transposing copy is far cheaper than
        # the per-matrix fallbacks strided batched products would take.
        R = R.contiguous()
    grad = torch.is_grad_enabled() and (
        R.requires_grad or P_pad.requires_grad or T.requires_grad or G.requires_grad
    )
    if B > 1:
        # Pad R at the front so every block is full: the padded rows are zero and their
        # generators identity/zero, so they only produce zero rows that we slice away.
        R_pad = torch.nn.functional.pad(R, (0, 0, pad, 0)) if pad else R
        Rb = R_pad.reshape(B * nb, b, n)  # a view for column-major factors
        Y = torch.bmm(P_pad.reshape(B * nb, b, M).mT, Rb).view(B, nb, M, n)
        W = _reverse_exclusive_cumsum(Y, dim=1).view(B * nb, M, n)
        Gf, Tf = G.reshape(B * nb, b, M), T.reshape(B * nb, b, b)
        if grad:
            out = torch.baddbmm(torch.bmm(Gf, W), Tf.mT, Rb)
        else:
            out = torch.bmm(Gf, W).baddbmm_(Tf.mT, Rb)
        out = out.view(B, nb * b, n)
        return out[:, pad:, :] if pad else out
    return _apply_blocks_unbatched(R[0], P_pad[0, pad:], T[0], G[0], b, pad, grad).unsqueeze(0)


def _num_groups(n: int, m: int) -> int:
    """How many groups of block rows to use for an unbatched ``N x N`` factor, rank ``m``.

    A group skips the columns left of its first row, where R is zero, so more groups cut
    the work from N^2 (b + 2M) towards half of it, at the price of a narrow copy per group.
    That pays when flops dominate (larger M); for small M the update is bound by memory
    traffic and first touches of the output, and one dense pass is faster (measured in
    benchmarks/bench_cholesky.py).
    """
    if m < 4 or n < 600:
        return 1
    return min(8, round(n / 300))


def _apply_blocks_unbatched(R: torch.Tensor, P: torch.Tensor, T: torch.Tensor,
                            G: torch.Tensor, b: int, pad: int, grad: bool) -> torch.Tensor:
    """Unbatched ``R1 = (L L1)^T`` for ``R: [N, N]``, ``P: [N, M]``, ``T/G`` front-padded.

    The first block holds ``h = b - pad`` rows (the ragged head); the rest are full blocks,
    taken in groups from the last to the first while a running ``carry`` holds the sum of
    ``P_K^T R_K`` over all blocks already done (the tail sums ``W`` of later groups).
    """
    n, m = P.shape
    nb = T.shape[0]
    h = b - pad
    n_main = nb - 1
    n_groups = max(1, min(_num_groups(n, m), n_main))
    edges = [round(i * n_main / n_groups) for i in range(n_groups + 1)]
    carry = R.new_zeros(m, n)
    outT = None if grad else torch.empty(n, n, dtype=R.dtype, device=R.device)
    workspace = None
    pieces = []  # grad mode: (row start, rows [rows, n - r0]) from the last group to the first
    for k0, k1 in reversed(list(zip(edges[:-1], edges[1:], strict=True))):
        if k1 == k0:
            continue
        # One group uses the full width (contiguous views, written in place); several skip
        # the zero columns left of r0 and go through a reused contiguous workspace.
        r0, r1 = h + k0 * b, h + k1 * b
        c0 = 0 if n_groups == 1 else r0
        Rg = R[r0:r1, c0:].unflatten(0, (k1 - k0, b))  # [ng, b, n - c0], no copy
        Pg = P[r0:r1].unflatten(0, (k1 - k0, b))
        W = torch.bmm(Pg.mT, Rg).cumsum_(0)  # inclusive prefix sums within the group
        group_total = W[-1].clone()
        W.neg_().add_(group_total).add_(carry[:, c0:])  # sum over all later blocks
        if grad:
            carry = carry.clone()
        carry[:, c0:] += group_total
        Tg, Gg = T[1 + k0:1 + k1], G[1 + k0:1 + k1]
        if grad:
            block = torch.baddbmm(torch.bmm(Gg, W), Tg.mT, Rg)
            pieces.append((c0, block.reshape(r1 - r0, n - c0)))
            continue
        if n_groups == 1:
            block = outT[r0:r1, c0:].view(k1 - k0, b, n - c0) if c0 == 0 else None
        else:
            block = None
        if block is None:
            size = (r1 - r0) * (n - c0)
            if workspace is None or workspace.numel() < size:
                workspace = torch.empty(size, dtype=R.dtype, device=R.device)
            block = workspace[:size].view(k1 - k0, b, n - c0)
        torch.bmm(Gg, W, out=block)
        block.baddbmm_(Tg.mT, Rg)
        if block.data_ptr() != outT[r0:r1, c0:].data_ptr():
            outT[r0:r1, c0:] = block.view(r1 - r0, n - c0)
        if c0:
            outT[r0:r1, :c0] = 0
    head = torch.addmm(G[0, pad:] @ carry, T[0, pad:, pad:].mT, R[:h])
    if grad:
        rows = [head] + [torch.nn.functional.pad(blk, (c0, 0)) for c0, blk in reversed(pieces)]
        return torch.cat(rows)
    outT[:h] = head
    return outT

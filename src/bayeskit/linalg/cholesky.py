"""Cholesky factorisation with escalating diagonal jitter, and triangular helpers."""

from __future__ import annotations

import torch

from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.linalg import openblas
from bayeskit.linalg.blocked import _blocked_cholesky_inverse, _mirror_lower
from bayeskit.linalg.direct import cholesky_in_place
from bayeskit.linalg.lapack import lapack_backend
from bayeskit.validation import (
    all_finite,
    as_int,
    as_scalar,
    check_cholesky_factor,
    check_factor_dtype,
    check_finite,
    check_floating,
    check_square,
    raise_if_not_pd,
    raise_singular_factor,
)

__all__ = ["jittered_cholesky", "stabilised_cholesky", "cholesky_solve", "cholesky_logdet",
           "cholesky_plus_diagonal", "cholesky_inverse"]


#: matrix size from which cholesky_plus_diagonal calls potrf directly: below it the direct
#: call took 0.46-0.96x torch's time (a Python call per matrix against a zeroing pass in
#: cache), from 512 1.01-1.16x (ad hoc, Intel Xeon; bench_cholesky.py's "no direct potrf"
#: rows at N = 569 and 2000)
_DIRECT_FROM = 512


def cholesky_plus_diagonal(K: torch.Tensor, diagonal: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower Cholesky factors of ``K + diag(d)`` in one new buffer and no other copy.

    ``K: [..., N, N]`` symmetric (one triangle is read), ``diagonal: [..., N]``; the batch
    shapes broadcast, so one ``K`` with a batch of diagonals gives a batch of factors (the
    Gibbs sampler's Matheron step, an exact GP's ``K + noise I``). ``K`` is copied once and
    LAPACK factorises the column-major view of the copy in place, where torch's
    ``cholesky_ex`` copies its input into column-major order and back (1.27x faster than
    building ``K + diag(d)`` and calling it, 4 diagonals at N = 569, on an AMD EPYC; 1.39-1.61x
    on an Intel Xeon: ``benchmarks/bench_cholesky.py``). On the CPU, from N = 512, LAPACK's
    ``potrf`` is called directly (:func:`bayeskit.linalg.direct.cholesky_in_place`), which
    zeroes the upper triangle along rows where ``cholesky_ex`` does it across strides. Not
    differentiable (for samplers and hand-written gradients).

    Returns:
        ``(L, info)`` as :func:`torch.linalg.cholesky_ex`: ``L [..., N, N]`` lower (upper
        triangle zero), ``info [...]`` > 0 where the matrix is not positive definite.

    Examples:
        >>> K = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
        >>> L, info = cholesky_plus_diagonal(K, torch.tensor([[0.0, 0.0], [1.0, 1.0]],
        ...                                                   dtype=torch.float64))
        >>> L.shape, info.tolist()  # two factors: of K and of K + I
        (torch.Size([2, 2, 2]), [0, 0])
        >>> bool(torch.allclose(L[1] @ L[1].T, K + torch.eye(2, dtype=torch.float64)))
        True
    """
    n = check_square("K", K)
    check_floating("diagonal", diagonal)
    if diagonal.dim() < 1 or diagonal.shape[-1] != n:
        raise ShapeError(f"diagonal must be [..., {n}] to match K, got {tuple(diagonal.shape)}")
    if diagonal.dtype != K.dtype:
        raise ArgumentTypeError(f"diagonal is {diagonal.dtype} but K is {K.dtype}; use one "
                                "dtype")
    check_finite("diagonal", diagonal)
    batch = torch.broadcast_shapes(K.shape[:-2], diagonal.shape[:-1])
    buf = K.detach().expand(*batch, n, n).clone(memory_format=torch.contiguous_format)
    A = buf.mT  # column-major; equal to the copy because K is symmetric
    A.diagonal(dim1=-2, dim2=-1).add_(diagonal.detach())
    # LAPACK directly: torch's zeroing pass runs across strides (see _DIRECT_FROM)
    info = cholesky_in_place(buf) if n >= _DIRECT_FROM else None
    if info is None:
        info = torch.empty(batch, dtype=torch.int32, device=K.device)
        torch.linalg.cholesky_ex(A, out=(A, info))
    d = A.diagonal(dim1=-2, dim2=-1)
    if bool((info > 0).any()) or not bool(torch.isfinite(d[info == 0]).all()):
        # LAPACK stops at a NaN pivot as at a negative one, and runs through infinity:
        # tell those apart from "not positive definite" (O(N^2), on this path only)
        check_finite("K", K)
        if not bool(torch.isfinite(d[info == 0]).all()):
            raise NonFiniteError("the factorisation of K + diag(d) overflowed")
    return A, info


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

    Examples:
        >>> A = torch.ones(3, 3, dtype=torch.float64)  # rank 1: plain Cholesky fails
        >>> L, jitter = jittered_cholesky(A)
        >>> bool(jitter > 0)
        True
    """
    n = check_square("A", A)
    check_factor_dtype("A", A)
    check_finite("A", A)
    max_tries = as_int(max_tries, "max_tries", nonnegative=True)
    growth = as_scalar(growth, "growth", low=1.0, low_open=True)
    if initial_jitter is None:
        initial_jitter = 1e-10 if A.dtype == torch.float64 else 1e-6
    initial_jitter = as_scalar(initial_jitter, "initial_jitter", positive=True)
    L, info = torch.linalg.cholesky_ex(A)
    jitter = torch.zeros(A.shape[:-2], dtype=A.dtype, device=A.device)
    failed = info > 0
    if n == 0 or not bool(failed.any()):
        return L, jitter
    # the jitter is a constant (not differentiated), scaled by the mean diagonal
    scale = A.detach().diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(
        torch.finfo(A.dtype).tiny)
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


def stabilised_cholesky(K: torch.Tensor, relative_jitter: float) -> torch.Tensor:
    """Lower factor of ``K + relative_jitter * mean(diag K) I`` (the jitter constant, not
    differentiated), falling back to :func:`jittered_cholesky`'s escalation if even that
    fails: the rule for inducing-point covariances ``K_uu`` (SGPR, SVGP).

    Args:
        K: ``[..., M, M]``. relative_jitter: ``>= 0``.

    Examples:
        >>> L = stabilised_cholesky(torch.ones(2, 2, dtype=torch.float64), 1e-6)
        >>> L.shape
        torch.Size([2, 2])
    """
    check_square("K", K)
    relative_jitter = as_scalar(relative_jitter, "relative_jitter", nonnegative=True)
    K = K.clone()
    scale = K.diagonal(dim1=-2, dim2=-1).mean(-1).detach()
    K.diagonal(dim1=-2, dim2=-1).add_((relative_jitter * scale)[..., None])
    return jittered_cholesky(K)[0]


def _check_factor(chol: torch.Tensor, name: str = "chol") -> int:
    n = check_square(name, chol)
    check_factor_dtype(name, chol)
    check_finite(name, chol)
    d = chol.diagonal(dim1=-2, dim2=-1)
    if d.numel() and not bool((d > 0).all()):
        raise ArgumentValueError(f"{name} must be a lower Cholesky factor with a positive "
                                 f"diagonal; its smallest diagonal entry is {float(d.min()):.4g}")
    return n


def cholesky_solve(chol: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Solve ``(L L^T) X = B`` given the lower factor ``L: [..., N, N]``, ``B: [..., N, K]``.

    Examples:
        >>> L = 2 * torch.eye(2, dtype=torch.float64)
        >>> cholesky_solve(L, torch.ones(2, 1, dtype=torch.float64)).flatten().tolist()
        [0.25, 0.25]
    """
    n = _check_factor(chol)
    check_floating("B", B)
    if B.dim() < 2 or B.shape[-2] != n:
        raise ShapeError(f"B must be [..., {n}, K] to match chol, got {tuple(B.shape)}")
    check_finite("B", B)
    if B.dtype != chol.dtype:
        raise ArgumentTypeError(f"B is {B.dtype} but chol is {chol.dtype}; use one dtype")
    X = torch.cholesky_solve(B, chol, upper=False)
    if not bool(torch.isfinite(X).all()):
        raise_singular_factor("the solve", "chol", chol.diagonal(dim1=-2, dim2=-1))
    return X


_WIDE = 1024  # columns of B from which the transposed solve is faster (measured, below)


def solve_lower(chol: torch.Tensor, B: torch.Tensor, *,
                names: tuple[str, str] = ("chol", "B")) -> torch.Tensor:
    """``L^-1 B`` for a lower Cholesky factor ``L: [..., N, N]`` and ``B: [..., N, K]``
    (broadcast over the batch dimensions); row-major (contiguous) for a wide ``B``.

    LAPACK works column-major: ``torch.linalg.solve_triangular(L, B)`` copies a row-major
    ``B`` and returns a column-major result, which every later elementwise pass then reads
    across strides. For wide ``B`` (``K >= 1024`` on the CPU) this solves the transposed
    system ``X L^T = B^T`` (``left=False``) instead, which reads ``B^T``'s memory as it is
    and returns ``X^T`` row-major. ``benchmarks/bench_floor.py`` (float64, 2 AMD EPYC cores,
    plain ``solve_triangular`` / this function with its checks, us): N = 100: 493 / 369 at
    K = 1024, 1974 / 1420 at K = 4096; N = 256: 1937 / 1427 at K = 1024. Narrower ``B`` (and
    CUDA tensors) take the plain solve, because there the transposed one is several times
    slower (same script: 488 vs 3984 us at N = K = 256, 57 vs 495 at N = K = 100). The
    checks (factor, result's finiteness) cost ~25 us per call. The same arithmetic (one
    triangular solve) either way; differentiable.

    ``names``: the two arguments' names in error messages (for a caller passing its own
    arguments through).

    Examples:
        >>> L = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
        >>> solve_lower(L, torch.tensor([[2.0, 4.0], [3.0, 5.0]], dtype=torch.float64)).tolist()
        [[1.0, 2.0], [2.0, 3.0]]
        >>> solve_lower(L, torch.ones(2, 2048, dtype=torch.float64)).is_contiguous()  # wide
        True
    """
    name_l, name_b = names
    n = _check_factor(chol, name_l)
    check_floating(name_b, B)
    if B.dim() < 2 or B.shape[-2] != n:
        raise ShapeError(f"{name_b} must be [..., {n}, K] to match {name_l}, got "
                         f"{tuple(B.shape)}")
    if B.dtype != chol.dtype:
        raise ArgumentTypeError(f"{name_b} is {B.dtype} but {name_l} is {chol.dtype}; use one "
                                "dtype")
    if chol.dim() < B.dim():
        chol = chol.expand(*B.shape[:-2], *chol.shape[-2:])
    if B.shape[-1] >= _WIDE and B.device.type == "cpu":
        X = torch.linalg.solve_triangular(chol.mT, B.mT, upper=True, left=False).mT
    else:
        X = torch.linalg.solve_triangular(chol, B, upper=False)
    if not all_finite(X):  # one pass over the result, not over B and X
        check_finite(name_b, B)
        raise_singular_factor("the solve", name_l, chol.diagonal(dim1=-2, dim2=-1))
    return X


def cholesky_logdet(chol: torch.Tensor) -> torch.Tensor:
    """``log det(L L^T) = 2 sum log diag(L)`` for ``L: [..., N, N]``; returns ``[...]``.

    Examples:
        >>> float(cholesky_logdet(2 * torch.eye(3, dtype=torch.float64)))  # log 64
        4.1588830833596715
    """
    _check_factor(chol)
    return 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)


def cholesky_inverse(chol: torch.Tensor, *, backend: str | None = None,
                     name: str = "chol") -> torch.Tensor:
    """``(L L^T)^-1`` for lower Cholesky factors ``chol [..., N, N]``; exactly symmetric
    (on CUDA under autograd to rounding), row-major.

    The inverse an exact GP's gradient needs (``d/dK log det K = K^-1``), from the factor;
    never ``torch.linalg.inv``. ``backend``: LAPACK's ``potri`` on torch's library or on
    SciPy's OpenBLAS, or the same arithmetic in blocked products (:func:`lapack_backend`;
    ``None``: its automatic choice). Differentiable
    (through torch's route) when ``chol`` requires a gradient. ``name``: the argument's
    name in error messages.

    Raises:
        ArgumentValueError: a non-positive diagonal entry, or nonzeros above the diagonal
        (a full matrix or an upper factor, which LAPACK would silently read as its lower
        triangle); NonFiniteError: a non-finite factor, or an inverse that overflows;
        ShapeError, ArgumentTypeError: not a batch of square floating matrices.

    Examples:
        >>> L = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
        >>> cholesky_inverse(L).tolist()  # inv([[4, 2], [2, 2]])
        [[0.5, -0.5], [-0.5, 1.0]]
        >>> torch.equal(cholesky_inverse(L, backend="blocked"), cholesky_inverse(L))
        True
    """
    # the O(N^2) probe, not a full pass: a NaN below the diagonal shows in the result
    check_cholesky_factor(name, chol, full=False)
    route = lapack_backend(chol, backend)
    if not chol.numel():
        route = "torch"
    if route == "blocked":
        inv = _blocked_cholesky_inverse(chol)
    elif route == "openblas":
        buf = chol.mT.clone(memory_format=torch.contiguous_format)  # buf.mT: the factor
        info = openblas.cholesky_inverse_in_place(buf)
        if bool((info != 0).any()):  # a zero pivot (the probe above finds a negative one)
            raise_singular_factor("the inverse", name, chol.diagonal(dim1=-2, dim2=-1))
        inv = buf.mT  # its lower triangle holds the inverse's
        _mirror_lower(inv)
    else:
        inv = torch.cholesky_inverse(chol)
        if inv.device.type != "cpu" and not inv.requires_grad:
            # CUDA's version solves against the identity: symmetric only to rounding
            _mirror_lower(inv)
    if not all_finite(inv):
        check_finite(name, chol)  # a NaN or inf in the factor, named as such
        raise_singular_factor("the inverse", name, chol.diagonal(dim1=-2, dim2=-1))
    # exactly symmetric (the CPU's potri fills one triangle, mirrored): the transpose of a
    # column-major result is the same matrix in row-major order, the layout elementwise
    # products with it want
    return inv if inv.stride(-1) == 1 else inv.mT

"""Preconditioned conjugate gradients for K + diag(d): against a direct solve."""

import pytest
import torch

from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.linalg import LowRankPreconditioner, low_rank_eigenpairs, solve_plus_diagonal


def _problem(dtype, n=60, batch=(3,), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g, dtype=torch.float64)
    K = 4 * torch.exp(-torch.cdist(x, x) ** 2 / 0.5)  # smooth: a fast decaying spectrum
    d = 0.5 + 2 * torch.rand(*batch, n, generator=g, dtype=torch.float64)
    b = torch.randn(*batch, n, generator=g, dtype=torch.float64)
    return K.to(dtype), d.to(dtype), b.to(dtype)


def _direct(K, d, b):
    """The float64 reference by a Cholesky solve (K + diag(d) is positive definite)."""
    L = torch.linalg.cholesky((K + torch.diag_embed(d)).double())
    return torch.cholesky_solve(b.double().unsqueeze(-1), L).squeeze(-1)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-8), (torch.float32, 2e-4)])
@pytest.mark.parametrize("rank", [None, 1, 10, 60])
def test_matches_a_direct_solve(dtype, rtol, rank):
    K, d, b = _problem(dtype)
    eig = None if rank is None else low_rank_eigenpairs(K, rank)
    x = solve_plus_diagonal(K, d, b, eigenpairs=eig)
    assert x.dtype == dtype and x.shape == b.shape
    ref = _direct(K, d, b)
    assert float((x.double() - ref).abs().max()) <= rtol * float(ref.abs().max())


def test_a_good_preconditioner_needs_few_iterations():
    # with K's eigenvalues above min(d) in the preconditioner the system is well conditioned:
    # 10 iterations reach 1e-10, where the diagonal preconditioner alone does not
    K, d, b = _problem(torch.float64, n=200)
    eig = low_rank_eigenpairs(K, above=float(d.min()))
    ref = _direct(K, d, b)
    x = solve_plus_diagonal(K, d, b, eigenpairs=eig, max_iter=10, tol=1e-10)
    assert float((x - ref).abs().max()) <= 1e-8 * float(ref.abs().max())
    assert eig[0].shape[0] < 40  # a low rank


def test_unconverged_rows_fall_back_to_a_direct_solve():
    K, d, b = _problem(torch.float64, batch=(4,))
    d[1] = 1e-6  # row 1 ill conditioned: two iterations leave it unconverged
    x = solve_plus_diagonal(K, d, b, max_iter=2)
    ref = _direct(K, d, b)
    assert torch.allclose(x, ref, rtol=1e-7, atol=1e-9)
    x0 = solve_plus_diagonal(K, d, b, max_iter=0)  # all rows directly
    assert torch.allclose(x0, ref, rtol=1e-7, atol=1e-9)


def test_batch_shapes_and_a_zero_right_hand_side():
    K, d, b = _problem(torch.float64, batch=(2, 3))
    b[0, 1] = 0.0
    x = solve_plus_diagonal(K, d, b, eigenpairs=low_rank_eigenpairs(K, 5))
    assert x.shape == (2, 3, 60) and bool((x[0, 1] == 0).all())
    assert torch.allclose(x, _direct(K, d, b), rtol=1e-8, atol=1e-10)


def test_eigenpairs_are_the_largest():
    K, _, _ = _problem(torch.float64)
    lam, V = low_rank_eigenpairs(K, 4)
    full = torch.linalg.eigvalsh(K)
    assert torch.allclose(lam, full.flip(0)[:4])
    assert torch.allclose(K @ V, V * lam, atol=1e-10)
    lam_above, _ = low_rank_eigenpairs(K, above=1.0)
    assert lam_above.shape[0] == int((full > 1.0).sum()) and bool((lam_above > 1.0).all())
    assert low_rank_eigenpairs(K, 3, above=1.0)[0].shape[0] == min(3, lam_above.shape[0])
    assert low_rank_eigenpairs(K, above=1e9)[0].shape[0] == 1  # at least one pair


def test_invalid_inputs_are_named():
    K, d, b = _problem(torch.float64)
    with pytest.raises(ArgumentValueError, match="diagonal must be positive"):
        solve_plus_diagonal(K, -d, b)
    with pytest.raises(ShapeError, match="rhs"):
        solve_plus_diagonal(K, d, b[..., :5])
    with pytest.raises(ShapeError, match="one shape"):
        solve_plus_diagonal(K, d, b[0])
    with pytest.raises(ArgumentTypeError, match="diagonal is torch.float32"):
        solve_plus_diagonal(K, d.float(), b)
    with pytest.raises(NonFiniteError):
        solve_plus_diagonal(K, d, b * float("nan"))
    with pytest.raises(ShapeError, match="eigenpairs"):
        solve_plus_diagonal(K, d, b, eigenpairs=(torch.ones(2, dtype=K.dtype), K[:, :3]))
    with pytest.raises(ArgumentValueError, match="eigenvalues must be positive"):
        solve_plus_diagonal(K, d, b, eigenpairs=(-torch.ones(2, dtype=K.dtype), K[:, :2]))
    with pytest.raises(ArgumentTypeError, match="pair of tensors"):
        solve_plus_diagonal(K, d, b, eigenpairs=[1.0, 2.0])
    with pytest.raises(ArgumentTypeError, match="eigenpairs are torch.float32"):
        lam, V = low_rank_eigenpairs(K, 3)
        solve_plus_diagonal(K, d, b, eigenpairs=(lam.float(), V.float()))
    with pytest.raises(ShapeError, match="one \\[N, N\\]"):
        solve_plus_diagonal(K.expand(2, 60, 60), d, b)
    with pytest.raises(ArgumentValueError, match="rank"):
        low_rank_eigenpairs(K)
    with pytest.raises(ArgumentValueError, match="rank"):
        low_rank_eigenpairs(K, 61)


def test_eigenpairs_keep_only_positive_eigenvalues():
    x = torch.linspace(0, 1, 40, dtype=torch.float64)
    K = torch.exp(-(x[:, None] - x) ** 2 / 0.5)  # numerically rank-deficient
    lam, V = low_rank_eigenpairs(K, 40)
    assert 0 < lam.shape[0] < 40 and bool((lam > 0).all())
    with pytest.raises(ArgumentValueError, match="no positive eigenvalue"):
        low_rank_eigenpairs(torch.zeros(3, 3, dtype=torch.float64), 2)


def test_a_non_finite_k_is_named_before_iterating():
    K, d, b = _problem(torch.float64)
    K[0, 1] = float("nan")
    with pytest.raises(NonFiniteError, match="K"):
        solve_plus_diagonal(K, d, b)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_preconditioner_with_and_without_the_packed_table(dtype, tol):
    """The packed table's capacitance (one product for the batch) and the batched
    V^T diag(w) V give the same P^-1 r, and both are the dense inverse of
    V diag(lam) V^T + diag(d) (float64 reference)."""
    K, d, b = _problem(dtype, batch=(2, 3))
    lam, V = low_rank_eigenpairs(K, 7)
    packed, plain = LowRankPreconditioner(lam, V), LowRankPreconditioner(lam, V, packed=False)
    assert packed.capacitance.packed and not plain.capacitance.packed
    P = (V @ torch.diag(lam) @ V.T).double() + torch.diag_embed(d.double())
    ref = torch.linalg.solve(P, b.double().unsqueeze(-1)).squeeze(-1)
    for pre in (packed, plain):
        out = pre.inverse(d)(b)
        assert out.dtype == dtype and out.shape == b.shape
        assert float((out.double() - ref).abs().max()) <= tol * float(ref.abs().max())
    # the caller's tensors are copied, not kept: changing them afterwards changes nothing
    lam2, V2 = lam.clone(), V.clone()
    pre = LowRankPreconditioner(lam2, V2)
    before = pre.inverse(d)(b)
    lam2.mul_(2.0)
    V2.zero_()
    assert torch.equal(pre.inverse(d)(b), before)
    # the solve is the same with either, and with the bare pair
    x = solve_plus_diagonal(K, d, b, eigenpairs=packed)
    assert torch.allclose(x, solve_plus_diagonal(K, d, b, eigenpairs=(lam, V)),
                          rtol=10 * tol, atol=10 * tol * float(x.abs().max()))


def test_preconditioner_arguments_are_named():
    K, d, b = _problem(torch.float64)
    lam, V = low_rank_eigenpairs(K, 3)
    with pytest.raises(ArgumentTypeError, match="lam and V must be tensors"):
        LowRankPreconditioner(lam.tolist(), V)
    with pytest.raises(ArgumentTypeError, match="one dtype"):
        LowRankPreconditioner(lam.float(), V)
    with pytest.raises(ShapeError, match=r"V \[N, r\]"):
        LowRankPreconditioner(lam, V[:, :2])
    with pytest.raises(ShapeError, match="N, r >= 1"):
        LowRankPreconditioner(lam, V[:0])
    with pytest.raises(ArgumentValueError, match="positive"):
        LowRankPreconditioner(-lam, V)
    with pytest.raises(NonFiniteError):
        LowRankPreconditioner(lam * float("nan"), V)
    with pytest.raises(ArgumentTypeError, match="packed must be"):
        LowRankPreconditioner(lam, V, packed="yes")
    pre = LowRankPreconditioner(lam, V)
    with pytest.raises(ShapeError, match=r"V \[30, r\]"):
        solve_plus_diagonal(K[:30, :30], d[..., :30], b[..., :30], eigenpairs=pre)
    with pytest.raises(ArgumentTypeError, match="eigenpairs are torch.float64"):
        solve_plus_diagonal(K.float(), d.float(), b.float(), eigenpairs=pre)
    with pytest.raises(ShapeError, match=r"d must be \[\.\.\., 60\]"):
        pre.inverse(d[..., :5])
    with pytest.raises(ArgumentValueError, match="d must be positive"):
        pre.inverse(-d)
    with pytest.raises(ArgumentTypeError, match="one dtype"):
        pre.inverse(d.float())
    apply = pre.inverse(d)  # r of another shape used to broadcast silently ([60] into [3, 60])
    for bad in (b[0], b[..., :5], b.float()):
        with pytest.raises(ShapeError, match="r must be"):
            apply(bad)

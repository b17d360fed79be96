"""linalg.direct (BLAS/LAPACK called in torch's library) against float64 brute force and
torch's own routes."""

import pytest
import torch

from bayeskit.linalg import cholesky_append, cholesky_plus_diagonal
from bayeskit.linalg.direct import (
    available,
    cholesky_in_place,
    cholesky_inverse_in_place,
    solve_lower_strided,
)
from tests.conftest import random_spd

DTYPES = [torch.float64, torch.float32]


def _strided_factor(n, capacity, dtype, row_major, gen):
    """A lower factor as the top-left block of a larger buffer whose other entries are NaN."""
    L = torch.linalg.cholesky(random_spd(n, generator=gen)).to(dtype)
    buf = torch.full((capacity, capacity), float("nan"), dtype=dtype)
    if not row_major:
        buf = buf.mT
    view = buf[:n, :n]
    view.copy_(L + torch.triu(torch.full_like(L, float("nan")), 1))  # upper triangle NaN
    return view, L


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row_major", [False, True])
@pytest.mark.parametrize("n,k", [(1, 1), (5, 1), (300, 1), (300, 4)])
def test_trsm_matches_brute_force_and_reads_only_the_lower_triangle(dtype, row_major, n, k,
                                                                    gen):
    view, L = _strided_factor(n, n + 7, dtype, row_major, gen)
    before = view.clone()
    B = torch.randn(n, k, dtype=dtype, generator=gen)
    X = solve_lower_strided(view, B)
    if not available("trsm", dtype):  # no BLAS reachable here: the caller's torch route runs
        assert X is None
        return
    truth = torch.linalg.solve_triangular(L.double(), B.double(), upper=False)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(X.double(), truth, atol=tol * truth.abs().max(), rtol=0)
    assert X.dtype == dtype and X.shape == (n, k) and X.stride(0) == 1
    torch.testing.assert_close(view, before, equal_nan=True)  # the factor is untouched


def test_trsm_inapplicable_calls_return_none(gen):
    view, _ = _strided_factor(6, 9, torch.float64, False, gen)
    B = torch.randn(6, 2, dtype=torch.float64, generator=gen)
    assert solve_lower_strided(view[::2, ::2], B[::2]) is None  # no unit stride
    assert solve_lower_strided(view.expand(2, 6, 6), B) is None  # batched
    assert solve_lower_strided(view, B.float()) is None  # mixed dtypes
    assert solve_lower_strided(view.half(), B.half()) is None  # no half-precision trsm
    assert solve_lower_strided(view, B[:5]) is None  # shapes do not match
    assert solve_lower_strided(view, B[:, :0]) is None  # nothing to solve
    assert solve_lower_strided(view, B.clone().requires_grad_(True)) is None  # autograd
    assert not available("trsm", torch.float16) and not available("potrf", torch.complex128)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (2, 3, 40, 40), (300, 300)])
def test_potrf_in_place_matches_brute_force(dtype, shape, gen):
    A = random_spd(shape[-1], shape[:-2], generator=gen)
    buf = A.to(dtype).clone()
    below = torch.ones(shape[-2:], dtype=torch.bool).tril(-1)
    buf.masked_fill_(below, float("nan"))  # never read: LAPACK reads the lower of buf.mT
    info = cholesky_in_place(buf)
    if not available("potrf", dtype):
        assert info is None
        return
    assert info.shape == shape[:-2] and info.dtype == torch.int32 and not info.any()
    truth = torch.linalg.cholesky(A)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(buf.mT.double(), truth, atol=tol * truth.abs().max(), rtol=0)
    assert not torch.triu(buf.mT, 1).any()  # upper triangle zeroed, as torch's


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (2, 3, 40, 40), (300, 300)])
def test_factor_left_untriangled_then_inverted_in_place(dtype, shape, gen):
    """potrf without the zeroing, then potri on the same buffer: the inverse's upper
    triangle (row-major) against float64 brute force; the other triangle never read."""
    A = random_spd(shape[-1], shape[:-2], generator=gen)
    buf = A.to(dtype).clone()
    below = torch.ones(shape[-2:], dtype=torch.bool).tril(-1)
    buf.masked_fill_(below, float("nan"))
    info = cholesky_in_place(buf, zero_triangle=False)
    if not available("potri", dtype) or info is None:
        assert cholesky_inverse_in_place(buf) is None or info is None
        return
    assert not info.any() and torch.isnan(buf[..., below]).all()  # left as it was
    info = cholesky_inverse_in_place(buf)
    assert info.shape == shape[:-2] and info.dtype == torch.int32 and not info.any()
    truth = torch.linalg.inv(A)
    tol = 1e-11 if dtype == torch.float64 else 1e-4
    upper = ~below
    torch.testing.assert_close(buf[..., upper].double(), truth[..., upper],
                               atol=tol * truth.abs().max(), rtol=0)
    assert torch.isnan(buf[..., below]).all()  # never written either


def test_potri_reports_a_zero_pivot_and_inapplicable_calls(gen):
    L = torch.linalg.cholesky(random_spd(5, generator=gen))
    L[2, 2] = 0.0
    buf = L.mT.contiguous()
    info = cholesky_inverse_in_place(buf)
    if info is None:
        pytest.skip("no direct potri on this machine")
    assert int(info) == 3
    for bad in (buf.mT, buf.half(), buf.clone().requires_grad_(True)):
        before = bad.detach().clone()
        assert cholesky_inverse_in_place(bad) is None
        torch.testing.assert_close(bad.detach(), before)


def test_potrf_reports_the_first_failing_minor_per_matrix(gen):
    A = random_spd(6, (3,), generator=gen)
    A[1, 3, 3] = -1.0  # leading minor of order 4 of the second matrix not positive definite
    buf = A.clone()
    info = cholesky_in_place(buf)
    if info is None:
        pytest.skip("no direct potrf on this machine")
    assert info.tolist() == torch.linalg.cholesky_ex(A).info.tolist() == [0, 4, 0]


def test_potrf_inapplicable_calls_leave_the_buffer_alone(gen):
    A = random_spd(5, generator=gen)
    for buf in (A.mT.contiguous().mT[:, :4], A.half(), torch.empty(0, 0, dtype=torch.float64),
                A.clone().requires_grad_(True)):
        before = buf.detach().clone()
        assert cholesky_in_place(buf) is None
        torch.testing.assert_close(buf.detach(), before)


def test_switched_off_by_the_environment(monkeypatch, gen):
    monkeypatch.setenv("BAYESKIT_DIRECT_LAPACK", "0")
    view, _ = _strided_factor(6, 9, torch.float64, False, gen)
    assert solve_lower_strided(view, torch.ones(6, 1, dtype=torch.float64)) is None
    assert cholesky_in_place(random_spd(4, generator=gen)) is None
    assert cholesky_inverse_in_place(torch.eye(4, dtype=torch.float64)) is None
    assert not available("trsm", torch.float64) and not available("potri", torch.float64)


@pytest.mark.parametrize("direct", ["1", "0"])
def test_factor_of_k_plus_diagonal_on_either_route(direct, gen, monkeypatch):
    monkeypatch.setenv("BAYESKIT_DIRECT_LAPACK", direct)
    K = random_spd(520, generator=gen)  # from 512 the direct route
    d = torch.rand(2, 520, dtype=torch.float64, generator=gen)
    L, info = cholesky_plus_diagonal(K, d)
    assert not info.any()
    torch.testing.assert_close(L, torch.linalg.cholesky(K + torch.diag_embed(d)))
    assert L.stride(-2) == 1 and not torch.triu(L, 1).any()


@pytest.mark.parametrize("direct", [True, False])
def test_growing_buffer_on_either_route(direct, gen, monkeypatch):
    """The append into a buffer gives the same factor through trsm and the panel route."""
    calls = []

    def route(L, B):
        calls.append(L.shape[0])
        return solve_lower_strided(L, B) if direct else None

    monkeypatch.setattr("bayeskit.linalg.append.solve_lower_strided", route)
    A = random_spd(900, generator=gen)
    buf = torch.zeros(900, 900, dtype=torch.float64).mT
    n = 500
    buf[:n, :n] = torch.linalg.cholesky(A[:n, :n])
    while n < 900:
        out = cholesky_append(buf[:n, :n], A[:n, n:n + 80], A[n:n + 80, n:n + 80],
                              out=buf[:n + 80, :n + 80])
        assert out.data_ptr() == buf.data_ptr()
        n += 80
    torch.testing.assert_close(buf, torch.linalg.cholesky(A), atol=1e-11, rtol=1e-11)
    assert calls == [500, 580, 660, 740, 820]  # every append asked for the strided solve

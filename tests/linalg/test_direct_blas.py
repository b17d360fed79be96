"""solve_lower_strided (BLAS trsm on a strided view) against a float64 brute-force solve."""

import pytest
import torch

from bayeskit.linalg import cholesky_append
from bayeskit.linalg.direct_blas import available, solve_lower_strided
from tests.conftest import random_spd


def _strided_factor(n, capacity, dtype, row_major, gen):
    """A lower factor as the top-left block of a larger buffer whose other entries are NaN."""
    L = torch.linalg.cholesky(random_spd(n, generator=gen)).to(dtype)
    buf = torch.full((capacity, capacity), float("nan"), dtype=dtype)
    if not row_major:
        buf = buf.mT
    view = buf[:n, :n]
    view.copy_(L + torch.triu(torch.full_like(L, float("nan")), 1))  # upper triangle NaN
    return view, L


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("row_major", [False, True])
@pytest.mark.parametrize("n,k", [(1, 1), (5, 1), (300, 1), (300, 4)])
def test_matches_brute_force_and_reads_only_the_lower_triangle(dtype, row_major, n, k, gen):
    view, L = _strided_factor(n, n + 7, dtype, row_major, gen)
    before = view.clone()
    B = torch.randn(n, k, dtype=dtype, generator=gen)
    X = solve_lower_strided(view, B)
    if not available(dtype):  # no BLAS reachable here: the caller's eager route runs instead
        assert X is None
        return
    truth = torch.linalg.solve_triangular(L.double(), B.double(), upper=False)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(X.double(), truth, atol=tol * truth.abs().max(), rtol=0)
    assert X.dtype == dtype and X.shape == (n, k) and X.stride(0) == 1
    torch.testing.assert_close(view, before, equal_nan=True)  # the factor is untouched


def test_inapplicable_calls_return_none(gen):
    view, _ = _strided_factor(6, 9, torch.float64, False, gen)
    B = torch.randn(6, 2, dtype=torch.float64, generator=gen)
    assert solve_lower_strided(view[::2, ::2], B[::2]) is None  # no unit stride
    assert solve_lower_strided(view.expand(2, 6, 6), B) is None  # batched
    assert solve_lower_strided(view, B.float()) is None  # mixed dtypes
    assert solve_lower_strided(view.half(), B.half()) is None  # no half-precision trsm
    assert solve_lower_strided(view, B[:5]) is None  # shapes do not match
    assert solve_lower_strided(view, B[:, :0]) is None  # nothing to solve
    assert solve_lower_strided(view, B.clone().requires_grad_(True)) is None  # autograd
    with torch.no_grad():
        X = solve_lower_strided(view, B.clone().requires_grad_(True))
    assert X is None or not X.requires_grad
    assert not available(torch.float16) and not available(torch.complex128)


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

"""jittered_cholesky and the small Cholesky helpers."""

import pytest
import torch

from bayeskit.errors import NonFiniteError, NotPositiveDefiniteError, ShapeError
from bayeskit.linalg import cholesky_logdet, cholesky_solve, jittered_cholesky, solve_lower
from tests.conftest import random_spd


def test_positive_definite_needs_no_jitter(gen):
    A = random_spd(8, (2,), generator=gen)
    L, jitter = jittered_cholesky(A)
    assert jitter.shape == (2,) and bool((jitter == 0).all())
    torch.testing.assert_close(L, torch.linalg.cholesky(A))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_singular_matrix_gets_smallest_sufficient_jitter(dtype):
    x = torch.linspace(0, 1, 30, dtype=dtype)
    A = torch.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / 0.5**2)  # numerically singular
    good = torch.eye(30, dtype=dtype)
    L, jitter = jittered_cholesky(torch.stack([A, good]))
    assert jitter[0] > 0 and jitter[1] == 0
    recon = L[0] @ L[0].mT
    torch.testing.assert_close(recon, A + jitter[0] * torch.eye(30, dtype=dtype),
                               atol=1e-5 if dtype == torch.float32 else 1e-12, rtol=0)
    # the plain factorisation fails, and so does every jitter level below the one chosen
    assert int(torch.linalg.cholesky_ex(A).info) > 0
    first = (1e-10 if dtype == torch.float64 else 1e-6) * A.diagonal().mean()
    if jitter[0] > first * 1.5:
        lower = jitter[0] / 10
        assert int(torch.linalg.cholesky_ex(A + lower * torch.eye(30, dtype=dtype)).info) > 0


def test_indefinite_matrix_raises_naming_jitter_and_index():
    A = torch.stack([torch.eye(3), -torch.eye(3)]).double()
    with pytest.raises(NotPositiveDefiniteError, match=r"batch index \(1,\).*jitter") as err:
        jittered_cholesky(A, max_tries=3)
    assert err.value.jitter == pytest.approx(1e-10 * 100)


def test_nan_input_raises():
    with pytest.raises(NonFiniteError):
        jittered_cholesky(torch.full((2, 2), float("nan"), dtype=torch.float64))


def test_solve_and_logdet(gen):
    A = random_spd(6, generator=gen)
    b = torch.randn(6, 2, dtype=torch.float64, generator=gen)
    L = torch.linalg.cholesky(A)
    torch.testing.assert_close(cholesky_solve(L, b), torch.linalg.solve(A, b))
    torch.testing.assert_close(cholesky_logdet(L), torch.logdet(A))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_solve_lower_is_the_triangular_solve_row_major_and_broadcast(gen, dtype):
    L = torch.linalg.cholesky(random_spd(5, generator=gen)).to(dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for width in (7, 1024, 1500):  # the plain solve; the transposed one (wide B)
        B = torch.randn(3, 5, width, dtype=torch.float64, generator=gen).to(dtype)
        X = solve_lower(L, B)  # one factor for a batch of right-hand sides
        assert X.shape == B.shape and X.dtype == dtype
        assert X.is_contiguous() or width < 1024
        ref = torch.linalg.solve_triangular(L.double(), B.double(), upper=False)
        torch.testing.assert_close(X.double(), ref, rtol=tol, atol=tol)
    # differentiable: the gradient of <X, W> in B is L^-T W
    Bg = B[0].clone().requires_grad_()
    W = torch.ones_like(Bg)
    (solve_lower(L, Bg) * W).sum().backward()
    torch.testing.assert_close(Bg.grad.double(), torch.linalg.solve_triangular(
        L.double().mT, W.double(), upper=True), rtol=tol, atol=tol)


def test_solve_lower_refuses_bad_arguments(gen):
    L = torch.linalg.cholesky(random_spd(4, generator=gen))
    B = torch.ones(4, 2, dtype=torch.float64)
    with pytest.raises(ShapeError, match="B must be"):
        solve_lower(L, torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="dtype"):
        solve_lower(L, B.float())
    with pytest.raises(NonFiniteError, match="B contains"):
        solve_lower(L, B.index_fill(0, torch.tensor([2]), float("nan")))
    wide = torch.ones(4, 1024, dtype=torch.float64)
    with pytest.raises(NonFiniteError, match="Kmn contains"):
        solve_lower(L, wide.index_fill(1, torch.tensor([9]), float("inf")), names=("Lm", "Kmn"))
    with pytest.raises(ValueError, match="positive diagonal"):
        solve_lower(L * torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64), B)

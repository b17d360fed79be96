"""Defects of issue 14 in linalg: factors that are not factors, overflow, unvalidated
solves and log-determinants, jitter settings."""

import pytest
import torch

from bayeskit.errors import ArgumentTypeError, ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.linalg import (
    cholesky_append,
    cholesky_delete,
    cholesky_logdet,
    cholesky_solve,
    cholesky_update,
    jittered_cholesky,
)

F64 = torch.float64


def factor(n=4):
    A = torch.randn(n, n, dtype=F64, generator=torch.Generator().manual_seed(0))
    A = A @ A.T + n * torch.eye(n, dtype=F64)
    return A, torch.linalg.cholesky(A)


def test_update_refuses_the_matrix_or_an_upper_factor():
    A, L = factor()
    u = torch.ones(4, dtype=F64)
    with pytest.raises(ArgumentValueError, match="above the diagonal"):
        cholesky_update(A, u)
    with pytest.raises(ArgumentValueError, match="above the diagonal"):
        cholesky_update(L.mT, u)
    bad = L.clone()
    bad[0, 0] = -1.0
    with pytest.raises(ArgumentValueError, match="positive diagonal"):
        cholesky_update(bad, u)


def test_update_overflow_is_reported_as_overflow():
    _, L = factor()
    with pytest.raises(NonFiniteError, match="overflows"):
        cholesky_update(L, torch.ones(4, dtype=F64) * 1e200)


def test_append_and_delete_refuse_non_finite_factors():
    _, L = factor()
    bad = L.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(NonFiniteError):
        cholesky_append(bad, torch.zeros(4, 1, dtype=F64), torch.ones(1, 1, dtype=F64))
    with pytest.raises(NonFiniteError):
        cholesky_delete(bad, [0])
    inf = L.clone()
    inf[3, 0] = float("inf")
    with pytest.raises(NonFiniteError):
        cholesky_append(inf, torch.zeros(4, 1, dtype=F64), torch.ones(1, 1, dtype=F64))


def test_solve_and_logdet_validate():
    A, L = factor()
    bad = L.clone()
    bad[2, 2] = -0.5
    with pytest.raises(ArgumentValueError, match="positive diagonal"):
        cholesky_logdet(bad)
    with pytest.raises(ShapeError):
        cholesky_logdet(L[:, :3])
    with pytest.raises(ShapeError):
        cholesky_solve(L, torch.ones(3, 1, dtype=F64))
    x = cholesky_solve(L, torch.ones(4, 1, dtype=F64))
    torch.testing.assert_close(A @ x, torch.ones(4, 1, dtype=F64))
    assert float(cholesky_logdet(L)) == pytest.approx(float(torch.logdet(A)))


def test_jitter_settings_are_checked():
    with pytest.raises(ValueError, match="growth"):
        jittered_cholesky(-torch.eye(2, dtype=F64), growth=0)
    with pytest.raises(ValueError, match="max_tries"):
        jittered_cholesky(torch.eye(2, dtype=F64), max_tries=-1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_refused_clearly(dtype):
    """No Cholesky routine has half-precision kernels (torch's LAPACK nor ours): each
    names the argument and the conversion instead of an opaque NotImplementedError."""
    L, u = torch.eye(3, dtype=dtype), torch.ones(3, dtype=dtype)
    calls = [lambda: cholesky_update(L, u), lambda: cholesky_delete(L, 0),
             lambda: cholesky_append(L, torch.zeros(3, 1, dtype=dtype),
                                     torch.ones(1, 1, dtype=dtype)),
             lambda: cholesky_solve(L, u[:, None]), lambda: cholesky_logdet(L),
             lambda: jittered_cholesky(L)]
    for call in calls:
        with pytest.raises(ArgumentTypeError, match="float32 or float64"):
            call()


def test_append_refuses_the_matrix_or_an_upper_factor():
    """cholesky_append read only the lower triangle and checked only the diagonal, so the
    matrix A or an upper factor passed by mistake gave a wrong factor silently."""
    A, L = factor()
    for wrong in (A, L.mT):
        with pytest.raises(ArgumentValueError, match="above the diagonal"):
            cholesky_append(wrong, torch.zeros(4, 1, dtype=F64), torch.ones(1, 1, dtype=F64))

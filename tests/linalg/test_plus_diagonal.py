"""cholesky_plus_diagonal: the in-place factorisation of K + diag(d) against torch's."""

import pytest
import torch

from bayeskit.errors import NonFiniteError, ShapeError
from bayeskit.linalg import cholesky_plus_diagonal


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_K_many_diagonals_match_torch(dtype):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(30, 30, dtype=torch.float64, generator=g)
    K = (X @ X.T / 30).to(dtype)
    d = (torch.rand(5, 30, dtype=torch.float64, generator=g) + 0.1).to(dtype)
    L, info = cholesky_plus_diagonal(K, d)
    assert L.shape == (5, 30, 30) and info.tolist() == [0] * 5
    expected = torch.linalg.cholesky(K + torch.diag_embed(d))
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(L, expected, rtol=tol, atol=tol)
    assert bool((L.triu(1) == 0).all())
    assert K.stride() == (30, 1)  # the input is left as it was
    torch.testing.assert_close(K, (X @ X.T / 30).to(dtype))


def test_info_marks_the_matrices_that_are_not_positive_definite():
    K = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)  # eigenvalues 3, -1
    _, info = cholesky_plus_diagonal(K, torch.tensor([[0.0, 0.0], [2.0, 2.0]],
                                                      dtype=torch.float64))
    assert info[0] > 0 and info[1] == 0


def test_bad_inputs_are_named():
    K = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ShapeError, match="diagonal"):
        cholesky_plus_diagonal(K, torch.ones(4, dtype=torch.float64))
    bad = K.clone()
    bad[0, 2] = bad[2, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="K"):
        cholesky_plus_diagonal(bad, torch.ones(3, dtype=torch.float64))
    with pytest.raises(NonFiniteError):
        cholesky_plus_diagonal(K, torch.tensor([1.0, float("inf"), 1.0], dtype=torch.float64))

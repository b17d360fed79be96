"""WeightedGram: A^T diag(w) A for a batch of weights, packed table or batched product,
against the float64 brute force."""

import pytest
import torch

from bayeskit.errors import ArgumentTypeError, NonFiniteError, ShapeError
from bayeskit.linalg import WeightedGram


def brute_force(A, w):
    A64, w64 = A.double(), w.double()
    return torch.stack([A64.T @ torch.diag(row) @ A64 for row in w64.reshape(-1, A.shape[0])]
                       ).reshape(*w.shape[:-1], A.shape[1], A.shape[1])


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("packed", [None, True, False])
@pytest.mark.parametrize("shape", [(7, 1), (30, 4), (5, 9)])
def test_matches_brute_force(dtype, tol, packed, shape):
    g = torch.Generator().manual_seed(sum(shape))
    A = torch.randn(*shape, dtype=dtype, generator=g)
    w = torch.randn(2, 3, shape[0], dtype=dtype, generator=g)  # any sign, a 2-D batch
    gram = WeightedGram(A, packed=packed)
    assert gram.packed == (packed is not False)  # small tables: packed by default
    G = gram(w)
    assert G.shape == (2, 3, shape[1], shape[1]) and G.dtype == dtype
    torch.testing.assert_close(G.double(), brute_force(A, w), rtol=tol, atol=tol)
    if gram.packed:
        assert torch.equal(G, G.mT)  # each entry computed once
    torch.testing.assert_close(gram(w[0, 0]), G[0, 0])  # an unbatched w: [D, D]


def test_copies_its_matrix_and_the_default_packs_only_small_tables(monkeypatch):
    A = torch.ones(4, 2, dtype=torch.float64)
    gram = WeightedGram(A)
    A.mul_(2.0)  # the caller's array changes afterwards: the Gram matrices do not
    assert torch.equal(gram(torch.ones(4, dtype=torch.float64)), torch.full((2, 2), 4.0,
                                                                            dtype=torch.float64))
    import bayeskit.linalg.weighted_gram as module

    monkeypatch.setattr(module, "TABLE_ENTRIES", 3 * 4 * 5 // 2 - 1)
    assert not WeightedGram(torch.ones(3, 4)).packed  # 30 entries > 29: the batched product
    assert WeightedGram(torch.ones(3, 3)).packed  # 18 entries


def test_bad_arguments_are_named():
    A = torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(ArgumentTypeError, match="A must be a tensor"):
        WeightedGram(A.tolist())
    with pytest.raises(ArgumentTypeError):
        WeightedGram(A.long())
    with pytest.raises(ShapeError, match=r"A must be \[N, D\]"):
        WeightedGram(A[0])
    with pytest.raises(ShapeError, match=r"A must be \[N, D\]"):
        WeightedGram(A[:0])
    with pytest.raises(NonFiniteError, match="A"):
        WeightedGram(A * float("nan"))
    with pytest.raises(ArgumentTypeError, match="packed must be"):
        WeightedGram(A, packed="yes")
    gram = WeightedGram(A)
    with pytest.raises(ShapeError, match=r"w must be \[\.\.\., 5\]"):
        gram(torch.ones(4, dtype=torch.float64))
    with pytest.raises(ShapeError, match=r"w must be \[\.\.\., 5\]"):
        gram(torch.tensor(1.0, dtype=torch.float64))
    with pytest.raises(ArgumentTypeError, match="use one dtype"):
        gram(torch.ones(5))
    with pytest.raises(ArgumentTypeError, match="w must be a tensor"):
        gram([1.0] * 5)
    with pytest.raises(NonFiniteError, match="w"):
        gram(torch.full((5,), float("inf"), dtype=torch.float64))

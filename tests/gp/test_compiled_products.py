"""The compiled ``(G * K) @ B`` against the eager product, and the SE kernel's gradients
with it and without it."""

import pytest
import torch

from bayeskit import compiled
from bayeskit.gp import GPR, SquaredExponential
from bayeskit.gp.compiled_products import can_run, symmetric_weighted_product, weighted_product
from tests.conftest import on_one_thread


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(1, 1), (37, 5), (300, 1029)])
@torch.no_grad()  # as inside a backward pass without create_graph
def test_matches_the_eager_product_on_any_thread_count(dtype, shape):
    g = torch.Generator().manual_seed(0)
    G = torch.randn(*shape, dtype=dtype, generator=g)
    K = torch.rand(*shape, dtype=dtype, generator=g)
    B = torch.randn(shape[1], 17, dtype=dtype, generator=g)
    assert can_run(G, K)
    ours = weighted_product(G, K, B)
    serial = on_one_thread(weighted_product, G, K, B)
    assert torch.equal(ours, serial)  # each row on one thread, in one order
    ref = ((G.double() * K.double()) @ B.double()).to(dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(ours, ref, rtol=tol, atol=tol * shape[1] ** 0.5)


def test_falls_back_where_it_cannot_run():
    G = torch.randn(6, 4, dtype=torch.float64)
    K = torch.rand(6, 4, dtype=torch.float64)
    B = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        assert can_run(G, K)
        for args in ((G.mT.contiguous().mT, K), (G[None], K[None]), (G.float(), K)):
            assert not can_run(*args)
        with compiled.use_compiled(False):
            assert not can_run(G, K)
    assert not can_run(G, K)  # grad mode (create_graph): the differentiable eager product
    Gg = G.clone().requires_grad_(True)
    weighted_product(Gg, K, B).sum().backward()
    torch.testing.assert_close(Gg.grad, (B.sum(-1)[None] * K))

    def under_vmap(g):  # vmap's batched tensors have no storage numba could read
        with torch.no_grad():
            assert not can_run(g, K)
            return weighted_product(g, K, B)
    Gs = torch.randn(3, 6, 4, dtype=torch.float64)
    torch.testing.assert_close(torch.func.vmap(under_vmap)(Gs), (Gs * K) @ B)


def test_gp_gradients_with_and_without_the_compiled_product():
    """The exact GP's -MLL gradients (lengthscales, variance, noise) agree either way."""
    g = torch.Generator().manual_seed(1)
    X = torch.rand(150, 3, dtype=torch.float64, generator=g)
    y = torch.sin(5 * X).sum(-1)
    grads = []
    for on in (True, False):
        m = GPR(X, y, SquaredExponential(torch.tensor([0.3, 0.5, 0.7]), 1.2),
                noise_variance=0.05)
        with compiled.use_compiled(on):
            (-m.log_marginal_likelihood()).backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [1, 5, 128, 129, 300])
def test_symmetric_product_reads_one_triangle_and_matches_brute_force(dtype, n):
    g = torch.Generator().manual_seed(n)
    A = torch.randn(n, n, dtype=torch.float64, generator=g)
    S, K = A + A.T, torch.rand(n, n, dtype=torch.float64, generator=g)
    K = K + K.T
    alpha = torch.randn(n, dtype=torch.float64, generator=g)
    B = torch.randn(n, 17, dtype=torch.float64, generator=g)
    expected = ((0.3 * (S - torch.outer(alpha, alpha))) * K) @ B
    below = torch.ones(n, n, dtype=torch.bool).tril(-1)
    S_, K_ = (M.to(dtype).masked_fill(below, float("nan")) for M in (S, K))  # never read
    got = symmetric_weighted_product(S_, K_, alpha.to(dtype), 0.3, B.to(dtype))
    assert got.dtype == dtype and got.shape == (n, 17)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got.double(), expected, rtol=0,
                               atol=tol * n * expected.abs().max())

"""linalg.gram: A A^T and A v against float64 brute force, and their gradients against
autograd through the plain products (and finite differences)."""

import pytest
import torch

import bayeskit.linalg.gram as gram_module
from bayeskit.linalg.gram import gram

F64 = torch.float64


@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (64, 10), (65, 7), (200, 300), (2, 3, 70, 20)])
def test_products_match_brute_force_and_are_exactly_symmetric(dtype, shape):
    g = torch.Generator().manual_seed(sum(shape))
    A = torch.randn(*shape, dtype=F64, generator=g)
    v = torch.randn(shape[-1], dtype=F64, generator=g)
    P, Av = gram(A.to(dtype), v.to(dtype))
    assert P.dtype == Av.dtype == dtype
    assert P.shape == shape[:-1] + (shape[-2],) and Av.shape == shape[:-1]
    assert torch.equal(P, P.mT)
    tol = 1e-12 if dtype == F64 else 1e-5
    scale = shape[-1] ** 0.5
    torch.testing.assert_close(P.double(), A @ A.mT, rtol=0, atol=tol * scale * 4)
    torch.testing.assert_close(Av.double(), A @ v, rtol=0, atol=tol * scale * 4)
    assert gram(A.to(dtype))[1] is None


@pytest.mark.parametrize("shape", [(130, 40), (2, 70, 9)])
def test_gradients_match_autograd_through_the_plain_products(shape):
    g = torch.Generator().manual_seed(1)
    A0 = torch.randn(*shape, dtype=F64, generator=g)
    v0 = torch.randn(shape[-1], dtype=F64, generator=g)
    W = torch.randn(*shape[:-1], shape[-2], dtype=F64, generator=g)  # not symmetric
    w = torch.randn(*shape[:-1], dtype=F64, generator=g)
    grads = []
    for fn in (gram, lambda A, v: (A @ A.mT, A @ v)):
        A, v = A0.clone().requires_grad_(True), v0.clone().requires_grad_(True)
        P, Av = fn(A, v)
        ((P * W).sum() + (Av * w).sum()).backward()
        grads.append((A.grad, v.grad))
    for ours, reference in zip(*grads, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)


def test_first_and_second_derivatives_by_finite_differences(monkeypatch):
    monkeypatch.setattr(gram_module, "PANEL", 2)  # several blocks on a small matrix
    g = torch.Generator().manual_seed(2)
    A = torch.randn(5, 4, dtype=F64, generator=g, requires_grad=True)
    v = torch.randn(4, dtype=F64, generator=g, requires_grad=True)
    torch.testing.assert_close(gram(A.detach())[0], A.detach() @ A.detach().mT, rtol=0,
                               atol=1e-14)
    assert torch.autograd.gradcheck(lambda A, v: gram(A, v), (A, v))
    assert torch.autograd.gradgradcheck(lambda A, v: gram(A, v), (A, v))
    assert torch.autograd.gradcheck(lambda A: gram(A)[0], (A,))

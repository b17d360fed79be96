"""Exact discrete KG against deterministic quadrature of its definition."""

import math

import numpy as np
import pytest
import torch

from bayeskit.bo import knowledge_gradient_discrete
from bayeskit.errors import NonFiniteError, ShapeError

F64 = torch.float64


def kg_quadrature(mean: np.ndarray, s: np.ndarray) -> float:
    """min(mean) - E[min(mean + s Z)] by the trapezoid rule on a fine z grid (abs. error
    ~1e-10 for these sizes): an independent reference that never builds an envelope."""
    z = np.linspace(-14, 14, 400_001)
    phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    low = np.full_like(z, np.inf)
    for m, b in zip(mean, s, strict=True):
        np.minimum(low, m + b * z, out=low)
    return float(mean.min() - np.trapezoid(low * phi, z))


@pytest.mark.parametrize("A", [1, 2, 3, 7, 40])
def test_matches_quadrature_random(A):
    g = np.random.default_rng(A)
    mean, s = g.normal(size=(4, A)), g.normal(size=(4, A))
    got = knowledge_gradient_discrete(torch.tensor(mean), torch.tensor(s))
    assert got.shape == (4,)
    for i in range(4):
        assert abs(float(got[i]) - kg_quadrature(mean[i], s[i])) < 1e-8


def test_ties_duplicates_and_grid_like_lines():
    # smooth GP-like curves on a fine grid: hundreds of nearly collinear envelope lines,
    # exact duplicates and equal slopes
    x = np.linspace(-1, 2, 600)
    mean = np.sin(3 * x) + x**2 - 0.7 * x
    s = 0.3 * np.exp(-0.5 * (x - 0.4) ** 2 / 0.2**2)
    mean = np.concatenate([mean, mean[:50], [mean.min() + 1.0]])
    s = np.concatenate([s, s[:50], [s[10]]])
    got = float(knowledge_gradient_discrete(torch.tensor(mean), torch.tensor(s)))
    assert got == pytest.approx(kg_quadrature(mean, s), abs=1e-9)


def test_closed_forms_and_invariances():
    two = knowledge_gradient_discrete(torch.tensor([0.0, 0.0], dtype=F64),
                                      torch.tensor([-1.0, 1.0], dtype=F64))
    assert float(two) == pytest.approx(math.sqrt(2 / math.pi), abs=1e-14)  # E|Z|
    # equal slopes: nothing can change the argmin, KG = 0
    same = knowledge_gradient_discrete(torch.randn(5, dtype=F64), torch.full((5,), 0.7, dtype=F64))
    assert float(same) == pytest.approx(0.0, abs=1e-15)
    g = torch.Generator().manual_seed(1)
    mean, s = torch.randn(3, 20, dtype=F64, generator=g), torch.randn(3, 20, dtype=F64, generator=g)
    base = knowledge_gradient_discrete(mean, s)
    assert bool((base >= 0).all())
    perm = torch.randperm(20, generator=g)
    assert torch.allclose(knowledge_gradient_discrete(mean[:, perm], s[:, perm]), base)
    # shifting all means, flipping all slopes, or adding a common slope leaves KG unchanged
    assert torch.allclose(knowledge_gradient_discrete(mean + 3.0, s), base)
    assert torch.allclose(knowledge_gradient_discrete(mean, -s), base)
    assert torch.allclose(knowledge_gradient_discrete(mean, s + 2.0), base)


def test_batching_broadcast_and_float32():
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(30, dtype=F64, generator=g)
    s = torch.randn(2, 3, 30, dtype=F64, generator=g)
    got = knowledge_gradient_discrete(mean, s)
    assert got.shape == (2, 3)
    assert torch.allclose(got[1, 2], knowledge_gradient_discrete(mean, s[1, 2]))
    f32 = knowledge_gradient_discrete(mean.float(), s.float())
    assert f32.dtype == torch.float32
    assert torch.allclose(f32.double(), got, atol=1e-5)


def test_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(12, dtype=F64, generator=g).requires_grad_(True)
    s = torch.randn(12, dtype=F64, generator=g).requires_grad_(True)
    assert torch.autograd.gradcheck(knowledge_gradient_discrete, (mean, s))


def test_bad_input():
    with pytest.raises(NonFiniteError, match="finite"):
        knowledge_gradient_discrete(torch.tensor([0.0, math.nan]), torch.tensor([1.0, 2.0]))
    with pytest.raises(ShapeError, match="broadcast"):
        knowledge_gradient_discrete(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ShapeError, match="A >= 1"):
        knowledge_gradient_discrete(torch.zeros(0), torch.zeros(0))


def test_integer_means_are_not_truncated():
    """Issue 14: integer means cast sigma_tilde to int (KG 0.0 instead of 0.399)."""
    from bayeskit.bo import knowledge_gradient_discrete

    kg = knowledge_gradient_discrete(torch.tensor([0, 0]), torch.tensor([-0.5, 0.5]))
    assert float(kg) == pytest.approx(0.5 * (2 / math.pi) ** 0.5, rel=1e-6)  # 0.399 (float32)

import pytest
import torch

from bayeskit.bo import maximize_box, minimize_box
from bayeskit.errors import NonFiniteError, ShapeError
from bayeskit.validation import as_bounds as check_bounds

F64 = torch.float64


def test_interior_and_boundary_optima():
    b = torch.tensor([[-2.0, -2.0], [2.0, 1.0]], dtype=F64)
    target = torch.tensor([0.5, 3.0], dtype=F64)  # second coordinate outside: optimum on the face
    x, v = minimize_box(lambda x: ((x - target) ** 2).sum(-1), b,
                        generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x, torch.tensor([0.5, 1.0], dtype=F64), atol=1e-6)
    assert float(v) == pytest.approx(4.0, abs=1e-9)


def test_multimodal_needs_restarts():
    b = torch.tensor([[-1.0], [2.0]], dtype=F64)
    f = lambda x: -(torch.sin(3 * x) + x**2 - 0.7 * x)[..., 0]  # noqa: E731
    x, v = maximize_box(f, b, num_restarts=8, generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(-1, 2, 300001, dtype=F64)[:, None]
    assert float(v) >= float(f(grid).max()) - 1e-9


def test_check_bounds_errors():
    with pytest.raises(ValueError, match="lower bound must be < upper"):
        check_bounds([[0.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ShapeError, match=r"\[2, D\]"):
        check_bounds(torch.zeros(3, 2))
    with pytest.raises(NonFiniteError):
        check_bounds([[0.0], [float("inf")]])
    assert check_bounds([0.0, 1.0]).shape == (2, 1)

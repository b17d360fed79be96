"""Standard test problems for Bayesian optimisation (minimisation).

Each problem is a :class:`TestProblem`: a vectorised callable on ``[..., D]`` tensors with
its box ``bounds`` ``[2, D]`` and known global minimum.

Examples:
    >>> import torch
    >>> f = branin()
    >>> float(f(torch.tensor([[torch.pi, 2.275]], dtype=torch.float64)))  # doctest: +ELLIPSIS
    0.3978...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bayeskit.validation import as_int

__all__ = ["TestProblem", "reference_1d", "branin", "hartmann6", "levy"]

F64 = torch.float64


@dataclass(frozen=True)
class TestProblem:
    """``fn`` maps ``[..., D]`` to ``[...]``; ``bounds`` is ``[2, D]`` (lower, upper)."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    bounds: torch.Tensor
    minimum: float
    noise_std: float = 0.0

    __test__ = False  # not a pytest class

    @property
    def dim(self) -> int:
        return self.bounds.shape[-1]

    def __call__(self, x) -> torch.Tensor:
        return self.fn(torch.as_tensor(x, dtype=F64))


def _reference_1d(x: torch.Tensor) -> torch.Tensor:
    x = x[..., 0]
    return torch.sin(3 * x) + x**2 - 0.7 * x


def reference_1d() -> TestProblem:
    """The reference's running example ``f(x) = sin(3x) + x^2 - 0.7x`` on ``[-1, 2]``.

    Its global minimum on the box is ``f(-0.359394...) = -0.500360`` (found numerically).
    """
    return TestProblem("sin(3x) + x^2 - 0.7x", _reference_1d,
                       torch.tensor([[-1.0], [2.0]], dtype=F64), -0.500360)


def _branin(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., 0], x[..., 1]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * torch.cos(x1) + 10


def branin() -> TestProblem:
    """Branin on ``[-5, 10] x [0, 15]``; three global minima of value ``0.397887``."""
    return TestProblem("Branin", _branin, torch.tensor([[-5.0, 0.0], [10.0, 15.0]], dtype=F64),
                       0.397887)


_H6_ALPHA = torch.tensor([1.0, 1.2, 3.0, 3.2], dtype=F64)
_H6_A = torch.tensor([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                      [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]], dtype=F64)
_H6_P = 1e-4 * torch.tensor([[1312, 1696, 5569, 124, 8283, 5886],
                             [2329, 4135, 8307, 3736, 1004, 9991],
                             [2348, 1451, 3522, 2883, 3047, 6650],
                             [4047, 8828, 8732, 5743, 1091, 381]], dtype=F64)


def _hartmann6(x: torch.Tensor) -> torch.Tensor:
    inner = (_H6_A * (x[..., None, :] - _H6_P) ** 2).sum(-1)
    return -(_H6_ALPHA * torch.exp(-inner)).sum(-1)


def hartmann6() -> TestProblem:
    """Hartmann-6 on ``[0, 1]^6``; global minimum ``-3.32237``."""
    return TestProblem("Hartmann-6", _hartmann6,
                       torch.stack([torch.zeros(6, dtype=F64), torch.ones(6, dtype=F64)]),
                       -3.32237)


def _levy(x: torch.Tensor) -> torch.Tensor:
    w = 1 + (x - 1) / 4
    first = torch.sin(math.pi * w[..., 0]) ** 2
    middle = ((w[..., :-1] - 1) ** 2 * (1 + 10 * torch.sin(math.pi * w[..., :-1] + 1) ** 2)
              ).sum(-1)
    last = (w[..., -1] - 1) ** 2 * (1 + torch.sin(2 * math.pi * w[..., -1]) ** 2)
    return first + middle + last


def levy(dim: int = 10) -> TestProblem:
    """Levy on ``[-10, 10]^dim`` (BORE's 10-D benchmark); global minimum 0 at ``x = 1``.

    Examples:
        >>> float(levy(10)(torch.ones(1, 10, dtype=torch.float64))) < 1e-30
        True
    """
    dim = as_int(dim, "dim", low=2)
    return TestProblem(f"Levy-{dim}", _levy, torch.tensor([[-10.0] * dim, [10.0] * dim],
                                                          dtype=F64), 0.0)

"""Mean functions ``m(X): [..., N, D] -> [..., N]`` as ``nn.Module``s."""

from __future__ import annotations

import torch
from torch import nn

from bayeskit.errors import ShapeError
from bayeskit.validation import as_int, as_scalar, as_tensor, check_tensor

__all__ = ["ZeroMean", "ConstantMean", "LinearMean"]

F64 = torch.float64


class ZeroMean(nn.Module):
    """``m(x) = 0``.

    Examples:
        >>> ZeroMean()(torch.ones(3, 2))
        tensor([0., 0., 0.])
    """

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        _check_inputs(X)
        return torch.zeros(X.shape[:-1], dtype=X.dtype, device=X.device)


class ConstantMean(nn.Module):
    """``m(x) = c``, learnable unless ``learn=False``.

    Examples:
        >>> ConstantMean(2.5, learn=False)(torch.ones(3, 2, dtype=torch.float64))
        tensor([2.5000, 2.5000, 2.5000], dtype=torch.float64)
    """

    def __init__(self, value: float = 0.0, learn: bool = True):
        super().__init__()
        value = as_scalar(value, "value")
        self.constant = nn.Parameter(torch.tensor(value, dtype=F64), requires_grad=learn)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        _check_inputs(X)
        return self.constant.to(X.dtype).expand(X.shape[:-1])


class LinearMean(nn.Module):
    """``m(x) = w . x + b`` with learnable ``w`` ``[D]`` and ``b``.

    Examples:
        >>> m = LinearMean(2, weight=torch.tensor([1.0, -1.0]), bias=0.5)
        >>> m(torch.tensor([[2.0, 1.0]], dtype=torch.float64))
        tensor([1.5000], dtype=torch.float64, grad_fn=<AddBackward0>)
    """

    def __init__(self, dim: int, weight: torch.Tensor | None = None, bias: float = 0.0):
        super().__init__()
        dim = as_int(dim, "dim", positive=True)
        w = torch.zeros(dim, dtype=F64) if weight is None else as_tensor(weight, "weight",
                                                                         dtype=F64, ndim=1)
        if w.shape[0] != dim:
            raise ShapeError(f"weight must have dim = {dim} entries, got {w.shape[0]}")
        self.weight = nn.Parameter(w.clone())
        self.bias = nn.Parameter(torch.tensor(as_scalar(bias, "bias"), dtype=F64))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        _check_inputs(X)
        if X.shape[-1] != self.weight.shape[0]:
            raise ShapeError(f"X has {X.shape[-1]} features but this LinearMean has "
                             f"{self.weight.shape[0]} weights")
        return X @ self.weight.to(X.dtype) + self.bias.to(X.dtype)


def _check_inputs(X) -> None:
    """Mean-function inputs: a finite floating tensor ``[..., N, D]``."""
    check_tensor("X", X, min_dim=2)

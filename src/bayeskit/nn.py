"""The one multilayer-perceptron builder (flows' conditioners, VAE encoders and decoders,
density-ratio critics and classifiers).

Weights are initialised as ``torch.nn.Linear`` does by default (uniform in
``+-1/sqrt(fan_in)``), but from the given ``generator`` when there is one, so library code
never needs to seed torch's global generator.

Examples:
    >>> net = mlp((3, 16, 1), generator=torch.Generator().manual_seed(0))
    >>> net(torch.zeros(5, 3)).shape
    torch.Size([5, 1])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from bayeskit.errors import ArgumentTypeError, ShapeError
from bayeskit.validation import as_int, check_generator

__all__ = ["mlp"]


def mlp(sizes: Sequence[int], *, activation: type[nn.Module] = nn.ReLU,
        dtype: torch.dtype | None = None, generator: torch.Generator | None = None,
        zero_last: bool = False) -> nn.Sequential:
    """Linear layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ``activation``
    between them (none after the last).

    Args:
        sizes: layer widths, at least two, each a positive integer.
        dtype: parameter dtype (default torch's default dtype).
        generator: initialise the weights from it (default: torch's global generator).
        zero_last: start the last layer at zero (a flow layer then starts at the identity).
    """
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise ArgumentTypeError(f"sizes must be a sequence of layer widths, got {sizes!r}")
    sizes = [as_int(s, "sizes", positive=True) for s in sizes]
    if len(sizes) < 2:
        raise ShapeError(f"an MLP needs at least two positive layer sizes, got {sizes}")
    check_generator(generator, device="cpu")  # the layers are made on the CPU
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = nn.Linear(a, b, dtype=dtype)
        last = i == len(sizes) - 2
        with torch.no_grad():
            if last and zero_last:
                lin.weight.zero_()
                lin.bias.zero_()
            elif generator is not None:
                bound = 1.0 / math.sqrt(a)
                lin.weight.uniform_(-bound, bound, generator=generator)
                lin.bias.uniform_(-bound, bound, generator=generator)
        layers.append(lin)
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)

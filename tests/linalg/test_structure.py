"""identity_multiple: s for exactly s I, None otherwise."""

import pytest
import torch

from bayeskit.errors import ArgumentTypeError, ShapeError
from bayeskit.linalg import identity_multiple


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_multiples_of_the_identity_and_others(dtype):
    eye = torch.eye(4, dtype=dtype)
    assert identity_multiple(eye) == 1.0
    assert identity_multiple(0.25 * eye) == 0.25
    assert identity_multiple(torch.zeros(3, 3, dtype=dtype)) == 0.0
    assert identity_multiple(torch.diag(torch.tensor([1.0, 1.0, 2.0], dtype=dtype))) is None
    off = eye.clone()
    off[3, 0] = 1e-30  # one tiny entry off the diagonal
    assert identity_multiple(off) is None
    assert identity_multiple(eye * float("nan")) is None
    assert identity_multiple(torch.zeros(0, 0, dtype=dtype)) is None


def test_bad_arguments_are_named():
    with pytest.raises(ShapeError, match=r"one \[N, N\] matrix"):
        identity_multiple(torch.eye(2).expand(3, 2, 2))
    with pytest.raises(ShapeError):
        identity_multiple(torch.ones(2, 3))
    with pytest.raises(ArgumentTypeError):
        identity_multiple(torch.eye(2, dtype=torch.int64))

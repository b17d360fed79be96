"""Shared fixtures: seeded generators and random SPD matrices."""

import pytest
import torch


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def random_spd(n, batch=(), dtype=torch.float64, generator=None, cond_shift=0.5):
    """A well-conditioned SPD matrix ``X X^T / n + cond_shift * I`` of shape ``batch + (n, n)``."""
    X = torch.randn(*batch, n, n + 3, dtype=dtype, generator=generator)
    return X @ X.mT / max(n, 1) + cond_shift * torch.eye(n, dtype=dtype)

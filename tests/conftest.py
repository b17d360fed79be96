"""Shared fixtures: seeded generators and random SPD matrices."""

import pytest
import torch

from bayeskit import compiled


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(params=["compiled", "eager"])
def backend(request):
    """Run a test with the numba kernels (bayeskit.compiled) and with the eager torch code."""
    if request.param == "compiled" and not compiled.available():
        pytest.skip("numba is not installed")
    with compiled.use_compiled(request.param == "compiled"):
        yield request.param


@pytest.fixture
def eager():
    """For tests that patch or inspect the eager code's internals."""
    with compiled.use_compiled(False):
        yield


def on_one_thread(fn, *args):
    """``fn(*args)`` with one torch thread (compiled kernels then run serially, without an
    OpenMP region), restoring the thread count afterwards."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        return fn(*args)
    finally:
        torch.set_num_threads(threads)


def random_spd(n, batch=(), dtype=torch.float64, generator=None, cond_shift=0.5):
    """A well-conditioned SPD matrix ``X X^T / n + cond_shift * I`` of shape ``batch + (n, n)``."""
    X = torch.randn(*batch, n, n + 3, dtype=dtype, generator=generator)
    return X @ X.mT / max(n, 1) + cond_shift * torch.eye(n, dtype=dtype)


# Property-based tests: a fast profile in `make test`, a long one on demand
# (HYPOTHESIS_PROFILE=long make test, or pytest tests/test_properties.py).
try:
    import os

    from hypothesis import HealthCheck, settings

    settings.register_profile("fast", max_examples=30, deadline=None, derandomize=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("long", max_examples=1000, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass

"""bayeskit.compiled: the kernel policy (switch, threads, random streams)."""

import math

import numpy as np
import pytest
import torch

from bayeskit import compiled
from bayeskit.distributions import sample_polya_gamma

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


@compiled.jit
def _uniforms(seed, block, n):
    s = compiled.block_state(seed, block)
    out = np.empty(n)
    for i in range(n):
        out[i] = compiled.uniform(s)
    return out


def test_uniform_streams_are_uniform_on_the_half_open_unit_interval():
    n = 200_000
    u = _uniforms(123, 0, n)
    assert u.min() > 0.0 and u.max() <= 1.0
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 4 * math.sqrt(1 / 180 / n)  # Var of (u - 1/2)^2 = 1/180
    # neighbouring streams and seeds are uncorrelated
    for other in (_uniforms(123, 1, n), _uniforms(124, 0, n)):
        assert abs(np.corrcoef(u, other)[0, 1]) < 4 / math.sqrt(n)
    assert np.array_equal(u, _uniforms(123, 0, n))


def test_draws_do_not_depend_on_the_number_of_threads():
    threads = torch.get_num_threads()
    c = torch.linspace(-5, 5, 20_000, dtype=torch.float64)
    draws = []
    try:
        for k in (1, 2):
            torch.set_num_threads(k)
            draws.append(sample_polya_gamma(2.5, c, generator=torch.Generator().manual_seed(1)))
            assert torch.get_num_threads() == k  # the kernel left torch's setting alone
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(draws[0], draws[1])


def test_switch_and_devices():
    cpu = torch.zeros(2)
    with compiled.use_compiled(False):
        assert not compiled.enabled(cpu)
        with compiled.use_compiled(True):
            assert compiled.enabled(cpu)
        assert not compiled.enabled(cpu)
    assert compiled.enabled(cpu)
    assert not compiled.enabled(cpu, torch.zeros(2, device="meta"))


def test_generator_drives_the_seed():
    a = compiled.seed_from(torch.Generator().manual_seed(5))
    b = compiled.seed_from(torch.Generator().manual_seed(5))
    c = compiled.seed_from(torch.Generator().manual_seed(6))
    assert a == b != c and 0 <= a < 2**63

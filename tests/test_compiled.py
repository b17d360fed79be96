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


@compiled.jit
def _normal_pairs(seed, n):
    s = compiled.block_state(seed, 0)
    out = np.empty((n, 2))
    for i in range(n):
        out[i, 0], out[i, 1] = compiled.normal_pair(s)
    return out


def test_normal_pairs_are_independent_standard_normals():
    n = 100_000
    x = _normal_pairs(7, n)
    for col in (x[:, 0], x[:, 1]):
        assert abs(col.mean()) < 4 / math.sqrt(n)
        assert abs(col.var() - 1) < 4 * math.sqrt(2 / n)
        assert abs((col**4).mean() - 3) < 4 * math.sqrt(96 / n)  # Var z^4 = 105 - 9
    # the pair's two members are uncorrelated, and so are their squares
    assert abs(np.corrcoef(x[:, 0], x[:, 1])[0, 1]) < 4 / math.sqrt(n)
    assert abs(np.corrcoef(x[:, 0] ** 2, x[:, 1] ** 2)[0, 1]) < 4 / math.sqrt(n)


def test_launch_runs_one_block_serially_and_many_in_parallel():
    calls = []

    def blocks(out, first, stop):
        calls.append(("serial", first, stop))

    def parallel(out):
        calls.append(("parallel",))

    compiled.launch(blocks, parallel, compiled.BLOCK, (None,))
    compiled.launch(blocks, parallel, 0, (None,))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        compiled.launch(blocks, parallel, compiled.BLOCK + 1, (None,))
        torch.set_num_threads(1)
        compiled.launch(blocks, parallel, compiled.BLOCK + 1, (None,))
    finally:
        torch.set_num_threads(threads)
    assert calls == [("serial", 0, 1), ("serial", 0, 0), ("parallel",), ("serial", 0, 2)]

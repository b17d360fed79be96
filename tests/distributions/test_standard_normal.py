"""bayeskit.distributions.gaussian.standard_normal: N(0, 1) draws from the compiled streams
(torch.randn below MIN_SIZE, off the CPU or with the kernels off)."""

import math

import pytest
import torch
from scipy import stats

from bayeskit import compiled
from bayeskit.distributions.gaussian import standard_normal
from bayeskit.distributions.normal_kernels import MIN_SIZE
from bayeskit.errors import ArgumentTypeError, ArgumentValueError


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_draws_are_standard_normal(dtype):
    n = 200_000
    x = standard_normal(n, dtype=dtype, generator=gen(0))
    assert x.dtype == dtype and x.shape == (n,)
    x = x.double()
    assert abs(float(x.mean())) < 4 / math.sqrt(n)
    assert abs(float(x.var()) - 1) < 4 * math.sqrt(2 / n)
    assert stats.kstest(x.numpy(), "norm").pvalue > 1e-3
    # neighbours (within a pair, across pairs and across the blocks' streams) uncorrelated
    for lag in (1, 2, compiled.BLOCK):
        r = float(torch.corrcoef(torch.stack([x[:-lag], x[lag:]]))[0, 1])
        assert abs(r) < 4 / math.sqrt(n)


def test_tail_mass_matches_the_normal():
    n = 2_000_000
    x = standard_normal(n, generator=gen(1))
    p = 2 * stats.norm.sf(3.5)  # 4.7e-4: ~930 draws expected
    count = int((x.abs() > 3.5).sum())
    assert abs(count - n * p) < 5 * math.sqrt(n * p)


def test_the_generator_decides_the_draws_and_advances():
    g = gen(3)
    a, b = standard_normal(5000, generator=g), standard_normal(5000, generator=g)
    assert not torch.equal(a, b)
    assert torch.equal(a, standard_normal(5000, generator=gen(3)))
    assert not torch.equal(a, standard_normal(5000, generator=gen(4)))


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_draws_do_not_depend_on_the_number_of_threads():
    threads = torch.get_num_threads()
    n = 3 * compiled.BLOCK + 1  # several blocks, an odd end
    draws = []
    try:
        for k in (1, 2):
            torch.set_num_threads(k)
            draws.append(standard_normal(n, generator=gen(2)))
            assert torch.get_num_threads() == k
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(draws[0], draws[1])


def test_small_sizes_and_kernels_off_are_torch_randn():
    small = (MIN_SIZE - 1,)
    assert torch.equal(standard_normal(*small, generator=gen(5)),
                       torch.randn(small, dtype=torch.float64, generator=gen(5)))
    with compiled.use_compiled(False):
        assert torch.equal(standard_normal(4, 1000, generator=gen(5)),
                           torch.randn(4, 1000, dtype=torch.float64, generator=gen(5)))
    assert torch.equal(standard_normal(3, dtype=torch.float16, generator=gen(5)),
                       torch.randn(3, dtype=torch.float16, generator=gen(5)))


def test_shapes():
    g = gen(0)
    assert standard_normal(2, 3000, generator=g).shape == (2, 3000)
    assert standard_normal((2, 3000), generator=g).shape == (2, 3000)
    assert standard_normal(torch.Size([4, 0]), generator=g).shape == (4, 0)
    assert standard_normal(generator=g).shape == ()


def test_invalid_arguments():
    with pytest.raises(ArgumentValueError, match="shape"):
        standard_normal(-1)
    with pytest.raises(ArgumentTypeError, match="shape"):
        standard_normal("3")
    with pytest.raises(ArgumentTypeError, match="dtype"):
        standard_normal(3, dtype=torch.int64)
    with pytest.raises(ArgumentTypeError, match="generator"):
        standard_normal(3, generator=0)
    with pytest.raises(ArgumentValueError, match="generator"):
        standard_normal(3, device="meta", generator=gen(0))
    for device in ("nowhere", 3.5):
        with pytest.raises(ArgumentValueError, match="device"):
            standard_normal(3, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_a_device_this_machine_lacks_is_named():
    """torch raised AssertionError('Torch not compiled with CUDA enabled') here."""
    with pytest.raises(ArgumentValueError, match="device 'cuda' is not available here"):
        standard_normal(3, device="cuda")

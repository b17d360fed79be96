"""PolyaGamma: exact moments, KS against the exact CDF, density vs high precision, envelope."""

import math

import pytest
import torch

from bayeskit import compiled
from bayeskit.distributions import (
    PolyaGamma,
    polya_gamma_cdf,
    polya_gamma_log_prob,
    polya_gamma_mean,
    polya_gamma_variance,
    sample_polya_gamma,
)
from bayeskit.distributions import polyagamma as pgmod
from bayeskit.distributions.polyagamma import envelopes, proposals, samplers, series
from bayeskit.errors import NonFiniteError

F64 = torch.float64


def _moment_z(w: torch.Tensor, b: float, c: float) -> tuple[float, float]:
    """Errors of the sample mean and variance in units of their standard errors."""
    n = w.numel()
    m = float(polya_gamma_mean(torch.tensor(b, dtype=F64), torch.tensor(c, dtype=F64)))
    v = float(polya_gamma_variance(torch.tensor(b, dtype=F64), torch.tensor(c, dtype=F64)))
    d = w - w.mean()
    m4 = float((d**4).mean())
    return ((float(w.mean()) - m) / math.sqrt(v / n),
            (float(w.var()) - v) / math.sqrt(max(m4 - v * v, 1e-300) / n))


@pytest.mark.parametrize("b", [0.1, 0.5, 1.0, 2.7, 5.0, 10.0, 100.0])
@pytest.mark.parametrize("c", [0.0, 1.5, 10.0, 50.0])
def test_sample_moments_match_closed_forms(b, c, backend):
    """Mean and variance within 4 standard errors (exactness, not an approximation)."""
    n = 4000 if b == 100.0 else 40000
    g = torch.Generator().manual_seed(int(100 * b + c))
    w = sample_polya_gamma(torch.full((n,), b, dtype=F64), c, generator=g)
    assert bool((w > 0).all())
    zm, zv = _moment_z(w, b, c)
    assert abs(zm) < 4 and abs(zv) < 4, (zm, zv)


@pytest.mark.parametrize("b,c", [(1.0, 0.0), (0.3, 2.0), (2.7, 1.5), (7.0, 0.5), (1.0, 12.0)])
def test_kolmogorov_smirnov_against_exact_cdf(b, c, backend):
    n = 6000
    g = torch.Generator().manual_seed(7)
    w, _ = torch.sort(sample_polya_gamma(torch.full((n,), b, dtype=F64), c, generator=g))
    F = polya_gamma_cdf(w, torch.tensor(b, dtype=F64), torch.tensor(c, dtype=F64))
    i = torch.arange(1, n + 1, dtype=F64)
    D = float(torch.maximum(i / n - F, F - (i - 1) / n).max())
    assert D < 1.95 / math.sqrt(n), D  # KS critical value at level 0.001


@pytest.mark.parametrize("b,c", [(0.05, 0.0), (0.5, 3.0), (1.0, 0.0), (1.0, 40.0),
                                 (2.7, 1.5), (4.0, 0.0), (9.0, 2.0)])
def test_log_prob_integrates_to_one_and_matches_cdf(b, c):
    mean = float(polya_gamma_mean(torch.tensor(b, dtype=F64), torch.tensor(c, dtype=F64)))
    sd = math.sqrt(float(polya_gamma_variance(torch.tensor(b, dtype=F64),
                                              torch.tensor(c, dtype=F64))))
    # the tail beyond hi holds < 1e-6 (it decays like exp(-rate * w)); further out the
    # series would cancel, which log_prob reports by raising (tested below)
    hi = max(mean + 12 * sd, 18 / (math.pi**2 / 2 + c * c / 2))
    # log-spaced grid resolves the sharp rise near zero
    w = torch.logspace(math.log10(hi) - 9, math.log10(hi), 200001, dtype=F64)
    p = polya_gamma_log_prob(w, torch.tensor(b, dtype=F64), torch.tensor(c, dtype=F64)).exp()
    assert float(torch.trapezoid(p, w)) == pytest.approx(1.0, abs=2e-6)
    cdf = polya_gamma_cdf(w[::20000], torch.tensor(b, dtype=F64), torch.tensor(c, dtype=F64))
    integral = torch.cat([torch.zeros(1, dtype=F64), torch.cumulative_trapezoid(p, w)])[::20000]
    torch.testing.assert_close(cdf, integral, atol=3e-6, rtol=0)


def test_log_prob_matches_high_precision_series():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50

    def ref(w, b, c):
        x = 4 * mp.mpf(w)
        s = mp.mpf(0)
        for n in range(400):
            a = (mp.power(2, b) * mp.gamma(n + b) / (mp.gamma(b) * mp.factorial(n))
                 * (2 * n + b) / mp.sqrt(2 * mp.pi * x**3) * mp.exp(-(2 * n + b) ** 2 / (2 * x)))
            s += (-1) ** n * a
            if n > 10 and a < mp.mpf(10) ** -45:
                break
        return float(mp.log(4 * mp.cosh(mp.mpf(c) / 2) ** b * mp.exp(-mp.mpf(c) ** 2 * w / 2) * s))

    for b, c, w in [(1.0, 0.0, 0.05), (1.0, 0.0, 0.3), (1.0, 3.0, 1.2), (0.1, 0.0, 0.02),
                    (0.1, 5.0, 0.4), (2.7, 1.5, 0.5), (4.0, 0.0, 2.0), (3.3, 30.0, 0.06),
                    (1.0, 0.0, 3.0), (6.0, 1.0, 1.1)]:
        ours = float(polya_gamma_log_prob(torch.tensor(w, dtype=F64), torch.tensor(b, dtype=F64),
                                          torch.tensor(c, dtype=F64)))
        assert ours == pytest.approx(ref(w, b, c), abs=1e-11), (b, c, w)


@pytest.mark.parametrize("h", [0.01, 0.2, 0.5, 0.9, 1.0, 1.3, 2.0, 2.5, 3.7, 4.0])
def test_envelope_bounds_the_density(h):
    """a_0 >= f left of t(h), C (pi/2)^h x^(h-1) e^(-pi^2 x/8)/Gamma(h) >= f right of it."""
    hh = torch.tensor([h], dtype=F64)
    t = float(envelopes.truncation_point(hh))
    log_c = float((series.jstar_log_density(torch.tensor([t], dtype=F64), hh)
                   - series.log_kernel_right(torch.tensor([t], dtype=F64), hh)).clamp_min(0))
    if h >= 1:
        log_c = 0.0
    x = torch.cat([torch.logspace(-3, math.log10(t), 400, dtype=F64),
                   torch.linspace(t, 8.0, 2000, dtype=F64)[1:]])
    hx = hh.expand_as(x)
    log_f = series.jstar_log_density(x, hx)
    left = x <= t
    bound = torch.where(left, series.log_a0(x, hx), log_c + series.log_kernel_right(x, hx))
    finite = torch.isfinite(log_f)
    assert bool((log_f[finite] <= bound[finite] + 1e-10).all())


def test_reproducible_with_a_generator(backend):
    a = sample_polya_gamma(2.5, 1.0, (1000,), generator=torch.Generator().manual_seed(3))
    b = sample_polya_gamma(2.5, 1.0, (1000,), generator=torch.Generator().manual_seed(3))
    c = sample_polya_gamma(2.5, 1.0, (1000,), generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_distribution_api_shapes_and_dtypes():
    d = PolyaGamma(torch.tensor([[1.0], [3.0], [20.0]]), torch.tensor([0.0, 1.0, -2.0, 4.0]))
    assert d.batch_shape == (3, 4) and d.event_shape == ()
    s = d.sample((5,), generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 3, 4) and s.dtype == torch.float32
    assert d.log_prob(s).shape == (5, 3, 4)
    assert d.cdf(s).shape == (5, 3, 4)
    torch.testing.assert_close(d.mean[0, 1], torch.tensor(math.tanh(0.5) / 2))
    e = d.expand((2, 3, 4))
    assert e.batch_shape == (2, 3, 4) and e.sample().shape == (2, 3, 4)
    with pytest.raises(ValueError, match="support"):  # torch's argument validation
        d.log_prob(torch.tensor(-1.0))
    loose = PolyaGamma(1.0, 0.0, validate_args=False)
    assert float(loose.log_prob(torch.tensor(-1.0))) == -math.inf
    # c enters only through |c|
    torch.testing.assert_close(polya_gamma_log_prob(torch.tensor(0.3), 1.0, -2.0),
                               polya_gamma_log_prob(torch.tensor(0.3), 1.0, 2.0))


def test_moments_closed_forms_and_limits():
    b = torch.tensor(2.0, dtype=F64)
    assert float(polya_gamma_mean(b, torch.tensor(0.0, dtype=F64))) == pytest.approx(0.5)
    assert float(polya_gamma_variance(b, torch.tensor(0.0, dtype=F64))) == pytest.approx(2 / 24)
    for c in (1e-5, 1e-3, 0.5, 3.0, 80.0):
        ct = torch.tensor(c, dtype=F64)
        mean = 2 * math.tanh(c / 2) / (2 * c)
        if c < 1e-2:  # sinh(c) - c cancels: use its series
            var = 2 * (1 / 6 + c * c / 120 + c**4 / 5040) / 4 / math.cosh(c / 2) ** 2
        else:
            var = 2 * (math.sinh(c) - c) / (4 * c**3) / math.cosh(c / 2) ** 2
        assert float(polya_gamma_mean(b, ct)) == pytest.approx(mean, rel=1e-9)
        assert float(polya_gamma_variance(b, ct)) == pytest.approx(var, rel=1e-6)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="b must be positive"):
        PolyaGamma(0.0, 1.0)
    with pytest.raises(ValueError, match="b must be positive"):
        sample_polya_gamma(torch.tensor([1.0, -2.0]), 0.0)
    with pytest.raises(NonFiniteError):
        PolyaGamma(1.0, float("nan"))
    with pytest.raises(ValueError):
        PolyaGamma(float("inf"), 0.0)


def test_normal_approximation_is_opt_in_and_close_for_large_b():
    b, c, n = 200.0, 1.0, 10000
    g = torch.Generator().manual_seed(0)
    approx = sample_polya_gamma(torch.full((n,), b, dtype=F64), c, generator=g, method="normal")
    exact = sample_polya_gamma(torch.full((n,), b, dtype=F64), c, generator=g)
    zm, zv = _moment_z(approx, b, c)
    assert abs(zm) < 4 and abs(zv) < 4
    # two-sample KS distance between the approximation and exact draws (critical 0.027)
    both, _ = torch.sort(torch.cat([approx, exact]))
    cdf_a = torch.searchsorted(torch.sort(approx)[0], both, right=True) / n
    cdf_e = torch.searchsorted(torch.sort(exact)[0], both, right=True) / n
    assert float((cdf_a - cdf_e).abs().max()) < 0.027
    with pytest.raises(ValueError, match="method"):
        sample_polya_gamma(1.0, 0.0, method="saddle")


def test_series_failures_fall_back_or_are_reported():
    # where the series cancels the CDF falls back to Laplace inversion
    assert 0 < float(polya_gamma_cdf(torch.tensor(50.0), torch.tensor(200.0),
                                     torch.tensor(0.0))) < 1
    # the density falls back to Fourier inversion there (and under a tilt centred on the
    # point, far into the tails: 8.5 sd below the mean here)
    assert math.isfinite(float(polya_gamma_log_prob(torch.tensor(50.0), 200.0, 0.0)))
    assert math.isfinite(float(polya_gamma_log_prob(torch.tensor(27.0), 200.0, 0.0)))
    # a series that has not converged (b = 5000 needs thousands of terms) reports it
    from bayeskit.distributions.polyagamma.series import jstar_log_density_and_error

    _, err = jstar_log_density_and_error(torch.tensor([5000.0], dtype=F64),
                                         torch.tensor([5000.0], dtype=F64))
    assert float(err) == math.inf
    # at the mean of moderate b the series is accurate and no error is raised
    assert math.isfinite(float(polya_gamma_log_prob(torch.tensor(2.5), 10.0, 0.0)))


@pytest.mark.parametrize("b,c", [(10.0, 3.0), (32.0, 1.0)])
def test_fourier_inversion_agrees_with_the_series(b, c):
    from bayeskit.distributions.polyagamma.fourier import fourier_log_density
    from bayeskit.distributions.polyagamma.series import jstar_log_density_and_error

    m = float(polya_gamma_mean(b, c))
    sd = math.sqrt(float(polya_gamma_variance(b, c)))
    w = torch.linspace(m - 2 * sd, m + 2 * sd, 41, dtype=F64)
    _, series_err = jstar_log_density_and_error(4 * w, torch.full_like(w, b))
    assert float(series_err.max()) < 1e-9
    log_p, err = fourier_log_density(w, b, c)
    assert float(err.max()) < 1e-9
    torch.testing.assert_close(log_p, polya_gamma_log_prob(w, b, c), rtol=0, atol=1e-9)


@pytest.mark.parametrize("b,c", [(200.0, 0.0), (1000.0, 2.0), (5000.0, 0.5), (100.0, 30.0)])
def test_large_b_density_is_normalised_with_the_exact_moments(b, c):
    """Where the series cancels the density still integrates to 1 and has the closed-form
    mean and variance (trapezoid over +-6 sd; the near-normal tails beyond hold ~2e-9)."""
    m = float(polya_gamma_mean(b, c))
    sd = math.sqrt(float(polya_gamma_variance(b, c)))
    w = torch.linspace(m - 6 * sd, m + 6 * sd, 1201, dtype=F64)
    p = polya_gamma_log_prob(w, b, c).exp()
    mass = torch.trapezoid(p, w)
    mean = torch.trapezoid(p * w, w) / mass
    var = torch.trapezoid(p * (w - mean) ** 2, w) / mass
    assert abs(float(mass) - 1) < 1e-6
    assert abs(float(mean) / m - 1) < 1e-7
    assert abs(float(var) / sd**2 - 1) < 1e-5


def test_envelope_acceptance_rates():
    """The figures quoted in the module docstring and RESULTS.md."""
    rate = pgmod.envelope_acceptance_rate
    assert rate(1.0) == pytest.approx(0.9993, abs=1e-4)  # Devroye's famous 0.99919...
    assert rate(2.0) == pytest.approx(0.904, abs=2e-3)
    assert rate(4.0) == pytest.approx(0.691, abs=2e-3)
    for b in (0.01, 0.1, 0.5, 0.9):
        assert rate(b) > 0.98
    for b, c in ((1.0, 3.0), (2.7, 10.0), (0.3, 50.0)):
        assert 0.5 < rate(b, c) <= 1.0


def test_shape_one_sampler_is_exact_for_mixed_tilts(backend):
    """b = 1 with c ~ N(0, 2^2) (both left envelopes, Rayleigh and inverse Gaussian, in one
    call): the mean and variance of sum_i (w_i - E w_i) are those of independent draws."""
    n = 200_000
    g = torch.Generator().manual_seed(11)
    c = 2 * torch.randn(n, dtype=F64, generator=g)
    assert 0.05 < float((c.abs() / 2 > samplers.Z_IG).double().mean()) < 0.5
    w = sample_polya_gamma(1.0, c, generator=g)
    one = torch.ones((), dtype=F64)
    d = w - polya_gamma_mean(one, c)
    v = polya_gamma_variance(one, c)
    assert abs(float(d.sum()) / math.sqrt(float(v.sum()))) < 4
    e = d * d - v  # zero mean; its spread estimated from the draws
    assert abs(float(e.sum())) / math.sqrt(float((e * e).sum())) < 4


@pytest.mark.parametrize("c", [2.0, 3.0])  # either side of the envelope switch at c = 2.47
def test_shape_one_kolmogorov_smirnov_near_the_envelope_switch(c, backend):
    n = 6000
    g = torch.Generator().manual_seed(3)
    w, _ = torch.sort(sample_polya_gamma(1.0, torch.full((n,), c, dtype=F64), generator=g))
    F = polya_gamma_cdf(w, torch.tensor(1.0, dtype=F64), torch.tensor(c, dtype=F64))
    i = torch.arange(1, n + 1, dtype=F64)
    assert float(torch.maximum(i / n - F, F - (i - 1) / n).max()) < 1.95 / math.sqrt(n)


def test_shape_one_series_test_agrees_with_the_general_one():
    """Where the two-term test decides, it decides as the general alternating-series test."""
    g = torch.Generator().manual_seed(5)
    n = 100_000
    left = torch.rand(n, generator=g) < 0.5
    x = torch.where(left, 0.02 + (samplers.T1 - 0.02) * torch.rand(n, dtype=F64, generator=g),
                    samplers.T1 + 5 * torch.rand(n, dtype=F64, generator=g))
    v = 1.2 * torch.rand(n, dtype=F64, generator=g)
    accepted, undecided = samplers.h1_series_test(x, left, v.log())
    one = torch.ones((), dtype=F64)
    # the general test compares against f / a_0 of the left series: rescale right-piece v
    rel = torch.where(left, torch.zeros_like(x),
                      series.log_kernel_right(x, one, torch.zeros_like(x)) - series.log_a0(x, one))
    reference = proposals.accept(x, one, v * rel.exp())
    decided = ~undecided
    assert int(undecided.sum()) == 0 or int(undecided.sum()) < 5
    assert torch.equal(accepted[decided], reference[decided])
    assert 0.1 < float(accepted.double().mean()) < 0.95


def test_shape_one_undecided_draws_are_settled_exactly(monkeypatch, eager):
    """Force a tenth of the draws through the general fallback: still exact moments."""
    original = samplers.h1_series_test
    g_mark = torch.Generator().manual_seed(9)

    def leaky(x, left, log_v):
        accepted, undecided = original(x, left, log_v)
        extra = torch.rand(x.numel(), generator=g_mark) < 0.1
        return accepted & ~extra, undecided | extra

    monkeypatch.setattr(samplers, "h1_series_test", leaky)
    g = torch.Generator().manual_seed(12)
    for c in (0.0, 4.0):
        w = sample_polya_gamma(1.0, torch.full((40_000,), c, dtype=F64), generator=g)
        zm, zv = _moment_z(w, 1.0, c)
        assert abs(zm) < 4 and abs(zv) < 4, (c, zm, zv)


@pytest.mark.parametrize("b", [3.0, 10.0])
def test_integer_shape_sums_of_shape_one_draws_are_exact(b, monkeypatch, backend):
    """Integer b is sampled as a sum of b shape-1 draws (also when b * n exceeds one pass
    of materialised draws): moments with mixed tilts."""
    n = 60_000
    g = torch.Generator().manual_seed(int(b))
    c = 2 * torch.randn(n, dtype=F64, generator=g)
    monkeypatch.setattr(samplers, "H1_MAX_WORK", 50_000)  # force several passes
    w = sample_polya_gamma(b, c, generator=g)
    bt = torch.tensor(b, dtype=F64)
    d = w - polya_gamma_mean(bt, c)
    v = polya_gamma_variance(bt, c)
    assert abs(float(d.sum()) / math.sqrt(float(v.sum()))) < 4
    e = d * d - v
    assert abs(float(e.sum())) / math.sqrt(float((e * e).sum())) < 4


@pytest.mark.parametrize("max_work", [None, 1000])  # 1000: too many draws, chunk route
def test_varying_integer_shapes_binomial_counts(monkeypatch, max_work, backend):
    if max_work is not None:
        monkeypatch.setattr(samplers, "H1_MAX_WORK", max_work)
    n = 40_000
    g = torch.Generator().manual_seed(21)
    b = torch.randint(1, 8, (n,), generator=g).to(F64)
    c = 3 * torch.randn(n, dtype=F64, generator=g)
    w = sample_polya_gamma(b, c, generator=g)
    d = w - polya_gamma_mean(b, c)
    v = polya_gamma_variance(b, c)
    assert abs(float(d.sum()) / math.sqrt(float(v.sum()))) < 4
    e = d * d - v
    assert abs(float(e.sum())) / math.sqrt(float((e * e).sum())) < 4


@pytest.mark.parametrize("b", [1.0, 3.0])
@pytest.mark.parametrize("c", [1500.0, 1e5, -1e8])
def test_huge_tilts_sample_exactly(b, c, backend):
    """Both envelope masses underflow beyond |c| ~ 1500: the piece probability is computed
    in log space (this once looped forever)."""
    n = 20_000
    g = torch.Generator().manual_seed(int(b))
    w = sample_polya_gamma(b, torch.full((n,), c, dtype=F64), generator=g)
    assert bool(torch.isfinite(w).all()) and bool((w > 0).all())
    zm, zv = _moment_z(w, b, c)
    assert abs(zm) < 4 and abs(zv) < 4, (zm, zv)


def test_issue_14_edge_values_and_parameters():
    from bayeskit.distributions.polyagamma import polya_gamma_log_cdf
    from bayeskit.errors import ArgumentValueError

    d = PolyaGamma(torch.tensor(1.0, dtype=F64), 0.0)
    assert float(d.log_prob(torch.tensor(math.inf, dtype=F64))) == -math.inf
    assert float(d.cdf(torch.tensor(math.inf, dtype=F64))) == 1.0
    with pytest.raises(NonFiniteError):
        polya_gamma_cdf(math.nan, 1.0, 0.0)
    with pytest.raises(NonFiniteError):
        polya_gamma_log_prob(math.nan, 1.0, 0.0)
    with pytest.raises(ArgumentValueError, match="b must be positive"):
        polya_gamma_mean(-1.0, 0.5)
    with pytest.raises(ArgumentValueError, match="b must be positive"):
        polya_gamma_variance(-1.0, 0.5)
    with pytest.raises(ArgumentValueError, match="b must be positive"):
        polya_gamma_log_prob(0.3, 0.0, 0.5)
    # validate_args=False skips the argument checks, as in torch.distributions
    assert float(PolyaGamma(torch.tensor(-1.0), 0.0, validate_args=False).b) == -1.0
    # log_cdf where the CDF underflows: agrees with log(cdf) where both are representable
    assert float(polya_gamma_log_cdf(0.01, 10.0, 3.0)) < -700
    w = torch.tensor([0.05, 0.2, 0.8], dtype=F64)
    torch.testing.assert_close(polya_gamma_log_cdf(w, 2.0, 1.0),
                               torch.log(polya_gamma_cdf(w, 2.0, 1.0)), rtol=1e-12, atol=1e-14)
    # where the series would be 5.6e-6 off, the Laplace inversion gives every digit
    # (reference: the series at 160 digits, 0.9929921649474577)
    assert float(polya_gamma_cdf(16.38, 50.0, 0.0)) == pytest.approx(0.9929921649474577,
                                                                     rel=1e-14)


def test_unbounded_requests_are_refused_and_large_shapes_stay_in_memory():
    from bayeskit.errors import ArgumentValueError

    with pytest.raises(ArgumentValueError, match="method='normal'"):
        sample_polya_gamma(1e12, 0.0)
    w = sample_polya_gamma(1e12, torch.zeros(10, dtype=F64), method="normal")
    assert bool(torch.isfinite(w).all())


def test_moments_continue_analytically_to_imaginary_tilts():
    """The Fourier density tilts by k = c^2 < 0 too: there the mean is tan(a/2)/(2a), and
    on both sides d mean / dk = -var / 2 (finite differences), continuous through k = 0."""
    from bayeskit.distributions.polyagamma.series import unit_moments

    k = torch.tensor([-9.0, -4.0, -1e-7, 1e-7, 1.0, 25.0], dtype=F64)
    mean, var = unit_moments(k.abs().sqrt(), k < 0)
    a = k.abs().sqrt()
    torch.testing.assert_close(mean[:2], torch.tan(a[:2] / 2) / (2 * a[:2]))
    h = 1e-5
    up = unit_moments((k + h).abs().sqrt(), (k + h) < 0)[0]
    down = unit_moments((k - h).abs().sqrt(), (k - h) < 0)[0]
    torch.testing.assert_close((up - down) / (2 * h), -var / 2, rtol=1e-5, atol=1e-9)
    assert abs(float(mean[2] - mean[3])) < 1e-8 and abs(float(var[2] - var[3])) < 1e-8


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_compiled_series_tests_decide_as_the_eager_ones():
    """The kernels' scalar series tests (Devroye's for shape 1, the left series for any h)
    give the eager vectorised decisions on random (x, v)."""
    from bayeskit.distributions.polyagamma import kernels

    g = torch.Generator().manual_seed(8)
    n = 3000
    one = torch.ones((), dtype=F64)
    x_left = 0.02 + (samplers.T1 - 0.02) * torch.rand(n, dtype=F64, generator=g)
    x_right = samplers.T1 + 5 * torch.rand(n, dtype=F64, generator=g)
    v = 1.2 * torch.rand(n, dtype=F64, generator=g)
    # and v in the band the first terms leave open (above the squeeze, up to 1): the series
    # to its later terms, at the smallest rates (x near 2/pi on both sides)
    near = samplers.T1 * (1 + 0.2 * (torch.rand(n, dtype=F64, generator=g) - 0.5))
    band = kernels.SERIES_SQUEEZE + (1.0 - kernels.SERIES_SQUEEZE) * 1.01 * torch.rand(
        n, dtype=F64, generator=g)
    rel = series.log_kernel_right(x_right, one, torch.zeros_like(x_right)) - series.log_a0(
        x_right, one)
    rel_near = series.log_kernel_right(near, one, torch.zeros_like(near)) - series.log_a0(
        near, one)
    for x, rate, scale, vs in ((x_left, 4 / x_left, torch.ones_like(v), v),
                               (x_right, math.pi**2 * x_right, rel.exp(), v),
                               (near, torch.where(near <= samplers.T1, 4 / near,
                                                  math.pi**2 * near),
                                torch.where(near <= samplers.T1, 1.0, rel_near.exp()), band)):
        ours = torch.tensor([kernels._devroye_series(float(vi), float(ri))
                             for vi, ri in zip(vs, rate, strict=True)])
        assert torch.equal(ours, proposals.accept(x, one, vs * scale))
        assert 0.01 < float(ours.double().mean()) < 0.999
    for h in (0.4, 2.7):
        x = 0.05 + 3 * torch.rand(n, dtype=F64, generator=g)
        ht = torch.tensor(h, dtype=F64)
        ours = torch.tensor([kernels._series_accept(float(xi), h, float(vi))
                             for xi, vi in zip(x, v, strict=True)])
        assert torch.equal(ours, proposals.accept(x, ht, v))
        assert 0.05 < float(ours.double().mean()) < 0.95
        # the scalar envelope pieces equal the eager ones
        lg = math.lgamma(h)
        for xi in x[:50].tolist():
            xt = torch.tensor(xi, dtype=F64)
            assert math.isclose(kernels._log_a0(xi, h), float(series.log_a0(xt, ht)),
                                rel_tol=1e-13, abs_tol=1e-13)
            assert math.isclose(kernels._log_kernel_right(xi, h, lg),
                                float(series.log_kernel_right(xt, ht)),
                                rel_tol=1e-13, abs_tol=1e-13)


def _mp_log_cdf(w: float, b: float, c: float, dps: int) -> tuple[float, float]:
    """``(log F, log(1 - F))`` by the left series at ``dps`` digits (cancellation is only a
    matter of precision there)."""
    mp = pytest.importorskip("mpmath")
    with mp.workdps(dps):
        w, b, c = mp.mpf(w), mp.mpf(b), abs(mp.mpf(c))
        x, z = 4 * w, c / 2
        sx = mp.sqrt(x)
        total, n = mp.mpf(0), 0
        while True:
            m = 2 * n + b
            term = mp.gamma(n + b) / mp.factorial(n) * (
                mp.exp(-m * z) * mp.ncdf(z * sx - m / sx)
                + mp.exp(m * z) * mp.ncdf(-z * sx - m / sx))
            total += (-1) ** n * term
            if n > 5 and term < mp.mpf(10) ** (10 - dps) * abs(total):
                break
            n += 1
        f = mp.cosh(z) ** b * mp.power(2, b) / mp.gamma(b) * total
        return float(mp.log(f)), float(mp.log(1 - f))


@pytest.mark.parametrize("b,c,dps", [(50.0, 0.0, 160), (200.0, 30.0, 400), (100.0, 2.0, 260)])
def test_large_b_cdf_matches_high_precision_series_in_both_tails(b, c, dps):
    """The CDF where the float64 series cancels: relative to F in the left tail and to
    1 - F in the right tail (down to 1e-85), against the series at hundreds of digits."""
    m = float(polya_gamma_mean(b, c))
    sd = math.sqrt(float(polya_gamma_variance(b, c)))
    for z in (-8.0, -3.0, -0.2, 0.0, 0.7, 4.0, 12.0, 30.0):
        w = m + z * sd
        ours = float(pgmod.polya_gamma_log_cdf(torch.tensor(w, dtype=F64), b, c))
        log_f, log_q = _mp_log_cdf(w, b, c, dps)
        # the documented bound everywhere: 1e-6 relative to F (absolute in log F)
        assert abs(ours - log_f) < 1e-6, (b, c, z)
        # in the tails, where only the inversion works, far better than that
        if z <= -3:
            assert ours == pytest.approx(log_f, rel=1e-10), (b, c, z)
        elif z >= 3:  # log F = log(1 - Q): relative accuracy of Q
            assert -math.expm1(ours) == pytest.approx(math.exp(log_q), rel=1e-10), (b, c, z)


@pytest.mark.parametrize("b,c", [(1e3, 2.0), (1e5, 1.0), (1e7, 0.0)])
def test_huge_b_cdf_is_the_integral_of_the_density(b, c):
    """dF/dw (central difference) equals the density, which comes from a different
    inversion (tilted Fourier integral); F is increasing with F(mean) near 1/2."""
    m = float(polya_gamma_mean(b, c))
    sd = math.sqrt(float(polya_gamma_variance(b, c)))
    z = torch.tensor([-6.0, -2.0, -0.5, 0.0, 0.5, 2.0, 6.0], dtype=F64)
    w, dw = m + z * sd, 1e-4 * sd
    log_f = pgmod.polya_gamma_log_cdf(torch.cat([w - dw, w + dw]), b, c)
    lo, hi = log_f[:7], log_f[7:]
    # F(w + dw) - F(w - dw) relative to F (left) or 1 - F (right) keeps the digits
    slope = torch.where(z <= 0, (hi.exp() - lo.exp()), (-torch.expm1(lo) + torch.expm1(hi)))
    torch.testing.assert_close(slope / (2 * dw), polya_gamma_log_prob(w, b, c).exp(),
                               rtol=1e-6, atol=0)
    assert bool((hi > lo).all())
    assert abs(math.exp(float(log_f[3])) - 0.5) < 0.02


@pytest.mark.parametrize("b", [25.0, 50.0, 100.0])
def test_density_and_cdf_accept_the_distributions_own_samples(b):
    """The issue's reproducer: log_prob / cdf used to raise on PG(b, 0)'s own draws."""
    d = PolyaGamma(torch.tensor(b, dtype=F64), torch.tensor(0.0, dtype=F64))
    w = d.sample((400,), generator=torch.Generator().manual_seed(5))
    assert bool(torch.isfinite(d.log_prob(w)).all())
    cdf = d.cdf(w)
    assert bool(((cdf > 0) & (cdf < 1)).all())
    # the empirical CDF of the draws against the exact CDF (KS at n = 400: 1.63/20)
    ecdf = torch.arange(1, 401, dtype=F64) / 400
    assert float((torch.sort(cdf)[0] - ecdf).abs().max()) < 1.63 / 20


@pytest.mark.parametrize("b", [1.0, 1.5, 7.5])
def test_huge_tilt_draws_are_tiny_not_errors(backend, b):
    """c = 1e300 puts PG(b, c) near b / (2c): the compiled kernels divided by an
    underflowed draw and raised ZeroDivisionError (found by the long hypothesis profile)."""
    w = sample_polya_gamma(b, torch.full((64,), 1e300, dtype=F64),
                           generator=torch.Generator().manual_seed(0))
    assert bool(((w >= 0) & (w <= 1e-299)).all())

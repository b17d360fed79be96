"""Rational-quadratic splines: closed-form inverse, tails, monotonicity, derivative."""

import pytest
import torch

from bayeskit.distributions.splines import (
    MIN_BIN,
    affine_spline,
    rational_quadratic_spline,
    spline,
    spline_parameters,
)

F64 = torch.float64


def _random_spline(n=2000, bins=8, bound=3.0, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    raw = scale * torch.randn(n, 3 * bins - 1, generator=g, dtype=F64)
    return spline_parameters(raw, bound), raw


def test_inverse_is_the_closed_form_root_to_1e10():
    params, _ = _random_spline(scale=1.0)
    x = torch.linspace(-2.999, 2.999, 2000, dtype=F64)
    y, log_d = rational_quadratic_spline(x, *params)
    x_back, log_d_inv = rational_quadratic_spline(y, *params, inverse=True)
    assert float((x_back - x).abs().max()) < 1e-10
    assert float((log_d + log_d_inv).abs().max()) < 1e-10


def test_inverse_is_backward_stable_on_extreme_splines():
    """With raw outputs of sd 3 some bins are nearly flat (slopes ~1e-7): there x itself is
    ill-conditioned (an ulp of y moves x by ~1e-9), but the computed root maps back onto y
    to ~100 ulps."""
    params, _ = _random_spline(scale=3.0)
    x = torch.linspace(-2.999, 2.999, 2000, dtype=F64)
    y, log_d = rational_quadratic_spline(x, *params)
    x_back, _ = rational_quadratic_spline(y, *params, inverse=True)
    y_again, _ = rational_quadratic_spline(x_back, *params)
    assert float((y_again - y).abs().max()) < 1e-12  # ~100 ulps at |y| ~ 3
    # the forward error is the backward error times the inverse's slope
    assert bool(((x_back - x).abs() <= 1e-12 / log_d.exp()).all())


def test_log_slope_matches_autograd_and_map_is_monotone():
    params, _ = _random_spline(n=500)
    x = torch.linspace(-3.5, 3.5, 500, dtype=F64, requires_grad=True)
    y, log_d = rational_quadratic_spline(x, *params)
    (dy,) = torch.autograd.grad(y.sum(), x)
    assert float((dy.log() - log_d.detach()).abs().max()) < 1e-10
    assert bool((dy > 0).all())
    # one spline on a fine grid: strictly increasing
    one = [p[:1] for p in params]
    grid = torch.linspace(-4, 4, 10_001, dtype=F64)
    out, _ = rational_quadratic_spline(grid, *one)
    assert bool((out.diff() > 0).all())


def test_tails_are_exactly_the_identity_and_knots_are_interpolated():
    (kx, ky, d), _ = _random_spline(n=3)
    x = torch.tensor([-1e6, -3.0001, 3.0001, 50.0], dtype=F64)
    y, log_d = rational_quadratic_spline(x, kx[:1], ky[:1], d[:1])
    assert torch.equal(y, x) and torch.equal(log_d, torch.zeros(4, dtype=F64))
    # the spline passes through its knots with slope 1 at both ends (continuous derivative)
    yk, log_dk = rational_quadratic_spline(kx[0, 1:-1], kx[0], ky[0], d[0])
    assert torch.allclose(yk, ky[0, 1:-1], atol=1e-12)
    assert torch.allclose(log_dk.exp(), d[0, 1:-1], atol=1e-10)
    assert float(d[0, 0]) == pytest.approx(1.0, abs=1e-12)
    assert float(d[0, -1]) == pytest.approx(1.0, abs=1e-12)


def test_parameters_respect_the_floors_and_zero_is_identity(backend):
    (kx, ky, d), _ = _random_spline(scale=30.0)
    for knots in (kx, ky):
        assert bool((knots.diff(dim=-1) >= 2 * 3.0 * MIN_BIN * (1 - 1e-9)).all())
        assert torch.allclose(knots[:, 0], torch.full_like(knots[:, 0], -3.0), atol=1e-12)
        assert torch.allclose(knots[:, -1], torch.full_like(knots[:, -1], 3.0), atol=1e-12)
    assert bool((d > 0).all())
    x = torch.linspace(-5, 5, 11, dtype=F64)
    y, log_d = spline(x, torch.zeros(11, 23, dtype=F64), 3.0)
    assert torch.allclose(y, x, atol=1e-12) and torch.allclose(log_d, 0 * x, atol=1e-12)


def test_extreme_raw_outputs_stay_finite_in_float32(backend):
    raw = torch.tensor([[1e4] * 8 + [-1e4] * 8 + [1e4] * 7], dtype=torch.float32)
    x = torch.linspace(-2.9, 2.9, 7)
    y, log_d = spline(x, raw.expand(7, 23), 3.0)
    assert bool(torch.isfinite(y).all() and torch.isfinite(log_d).all())
    x_back, _ = spline(y, raw.expand(7, 23), 3.0, inverse=True)
    # knot derivatives of 1e4 make the float32 round trip ill-conditioned, but never NaN
    assert float((x_back - x).abs().max()) < 1e-2


def test_bad_parameter_count():
    with pytest.raises(ValueError, match="3K - 1"):
        spline_parameters(torch.zeros(3, 7), 3.0)


# --- the compiled spline (bayeskit.distributions.spline_kernels) against the eager code -----

def _value_and_grads(x, raw, bound, inverse, weights, affine=False):
    x, raw = x.clone().requires_grad_(), raw.clone().requires_grad_()
    if affine:
        out, log_d = affine_spline(x, raw, bound, inverse=inverse, max_log_scale=2.0)
    else:
        out, log_d = spline(x, raw, bound, inverse=inverse)
    g_x, g_raw = torch.autograd.grad((out * weights[0]).sum() + (log_d * weights[1]).sum(),
                                     (x, raw))
    return [t.detach() for t in (out, log_d, g_x, g_raw)]


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("inverse", [False, True])
def test_compiled_spline_equals_eager_values_and_gradients(inverse, affine):
    """Values, log-slopes and the hand-written backward (gradients in x and in every raw
    output, through the normalised bin sizes, the softplus and, for the affine spline, the
    shift and squashed log-scale) equal autograd of the eager code in float64: points
    inside the interval, in the tails, and exactly on knots."""
    from bayeskit import compiled

    if not compiled.available():
        pytest.skip("numba is not installed")
    g = torch.Generator().manual_seed(3)
    bins, bound = 6, 2.5
    raw = 2 * torch.randn(300, 3, 3 * bins - 1 + 2 * affine, generator=g, dtype=F64)
    x = 2 * torch.randn(300, 3, generator=g, dtype=F64)
    x[0] = torch.tensor([-3.0, 2.5, 4.0], dtype=F64)  # a tail point and the interval's end
    x[1], raw[1] = 0.0, 0.0  # identity spline: 0 is a knot
    weights = torch.randn(2, 300, 3, generator=g, dtype=F64)
    with compiled.use_compiled(False):
        ref = _value_and_grads(x, raw, bound, inverse, weights, affine)
    with compiled.use_compiled(True):
        got = _value_and_grads(x, raw, bound, inverse, weights, affine)
    for name, a, b in zip(("output", "log-slope", "grad x", "grad raw"), ref, got,
                          strict=True):
        scale = float(a.abs().max()) + 1.0
        assert float((a - b).abs().max()) < 1e-9 * scale, name
    if not affine:  # tails: the identity, zero log-slope, no gradient to the parameters
        assert bool((got[0][0, 2] == x[0, 2]) & (got[1][0, 2] == 0))
        assert bool((got[3][0, 2] == 0).all())


@pytest.mark.parametrize("inverse", [False, True])
def test_compiled_spline_in_float32_is_as_close_to_float64_as_eager(inverse):
    """float32 input: the kernel computes in float64 and rounds once, so it is at least as
    close to the float64 result as the eager float32 code is."""
    from bayeskit import compiled

    if not compiled.available():
        pytest.skip("numba is not installed")
    g = torch.Generator().manual_seed(4)
    raw = torch.randn(2000, 3 * 8 - 1, generator=g, dtype=F64)
    x = 1.5 * torch.randn(2000, generator=g, dtype=F64)
    with compiled.use_compiled(False):
        exact = spline(x, raw, 3.0, inverse=inverse)
        eager = spline(x.float(), raw.float(), 3.0, inverse=inverse)
    with compiled.use_compiled(True):
        fused = spline(x.float(), raw.float(), 3.0, inverse=inverse)
    assert fused[0].dtype == torch.float32
    for e, a, b in zip(exact, eager, fused, strict=True):
        assert float((b.double() - e).abs().max()) <= float((a.double() - e).abs().max()) + 1e-6


def test_compiled_spline_broadcasts_and_parallel_matches_serial():
    """Shared parameters broadcast against a batch of inputs; the parallel kernel (above
    PARALLEL_MIN elements) gives the serial kernel's numbers."""
    from bayeskit import compiled
    from bayeskit.distributions import spline_kernels

    if not compiled.available():
        pytest.skip("numba is not installed")
    g = torch.Generator().manual_seed(5)
    raw = torch.randn(3 * 4 - 1, generator=g, dtype=F64)
    x = torch.randn(spline_kernels.PARALLEL_MIN + 5, generator=g, dtype=F64)
    with compiled.use_compiled(True):
        big = spline(x, raw, 3.0)
        small = spline(x[:100], raw, 3.0)
    with compiled.use_compiled(False):
        eager = spline(x[:100], raw, 3.0)
    assert torch.equal(big[0][:100], small[0]) and torch.equal(big[1][:100], small[1])
    assert float((small[0] - eager[0]).abs().max()) < 1e-12

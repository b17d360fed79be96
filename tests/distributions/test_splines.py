"""Rational-quadratic splines: closed-form inverse, tails, monotonicity, derivative."""

import pytest
import torch

from bayeskit.distributions.splines import (
    MIN_BIN,
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


def test_parameters_respect_the_floors_and_zero_is_identity():
    (kx, ky, d), _ = _random_spline(scale=30.0)
    for knots in (kx, ky):
        assert bool((knots.diff(dim=-1) >= 2 * 3.0 * MIN_BIN * (1 - 1e-9)).all())
        assert torch.allclose(knots[:, 0], torch.full_like(knots[:, 0], -3.0), atol=1e-12)
        assert torch.allclose(knots[:, -1], torch.full_like(knots[:, -1], 3.0), atol=1e-12)
    assert bool((d > 0).all())
    x = torch.linspace(-5, 5, 11, dtype=F64)
    y, log_d = spline(x, torch.zeros(11, 23, dtype=F64), 3.0)
    assert torch.allclose(y, x, atol=1e-12) and torch.allclose(log_d, 0 * x, atol=1e-12)


def test_extreme_raw_outputs_stay_finite_in_float32():
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

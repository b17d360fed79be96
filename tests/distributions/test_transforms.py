"""Transforms: invariants via check_transform, the banana's density and moments."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal
from torch.distributions.transforms import AffineTransform, ComposeTransform, ExpTransform

from bayeskit.distributions.transforms import (
    Banana,
    InlineTransform,
    banana_distribution,
    check_transform,
)
from bayeskit.errors import NonFiniteError, ShapeError
from bayeskit.plotting import evaluate_on_grid

F64 = torch.float64


def _x(shape, seed=0):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _affine_inline(**kw):
    A = torch.tensor([[2.0, 0.0], [0.5, 1.5]], dtype=F64)
    return InlineTransform(lambda x: x @ A.T, lambda y: torch.linalg.solve(A, y.mT).mT, **kw)


TRANSFORMS = {
    "banana K=2": (Banana(), (4, 2)),
    "banana K=3 curved": (Banana(curvature=0.5, shift=-2.0), (3, 3)),
    "banana K=5 batched": (Banana(), (2, 3, 5)),
    "inline with log-det": (_affine_inline(log_abs_det_jacobian=lambda x, y: torch.full(
        x.shape[:-1], math.log(3.0), dtype=x.dtype)), (5, 2)),
    "inline autodiff log-det": (InlineTransform(
        lambda x: torch.stack([x[..., 0], x[..., 1] + torch.sin(x[..., 0])], -1),
        lambda y: torch.stack([y[..., 0], y[..., 1] - torch.sin(y[..., 0])], -1)), (6, 2)),
    "inline constant Jacobian": (_affine_inline(constant_jacobian=True), (2, 4, 2)),
    "inline elementwise": (InlineTransform(torch.sinh, torch.asinh, event_dim=0), (7,)),
    "compose with torch affine": (ComposeTransform([Banana(), AffineTransform(
        torch.zeros(2, dtype=F64), torch.tensor([2.0, 3.0], dtype=F64), event_dim=1)]), (4, 2)),
    "torch exp (elementwise)": (ExpTransform(), (3, 2)),
}


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_every_transform_passes_the_checks(name):
    t, shape = TRANSFORMS[name]
    report = check_transform(t, _x(shape))
    assert report["round_trip"] < 1e-10 and report["log_det"] < 1e-8


def test_check_transform_catches_wrong_log_det_and_shape():
    wrong = _affine_inline(log_abs_det_jacobian=lambda x, y: torch.zeros(x.shape[:-1], dtype=F64))
    with pytest.raises(AssertionError, match="autodiff"):
        check_transform(wrong, _x((3, 2)))
    bad_shape = _affine_inline(log_abs_det_jacobian=lambda x, y: torch.zeros(x.shape, dtype=F64))
    with pytest.raises(AssertionError, match="shape"):
        check_transform(bad_shape, _x((3, 2)))
    not_inverse = InlineTransform(lambda x: 2 * x, lambda y: y, event_dim=0)
    with pytest.raises(AssertionError, match="inverse"):
        check_transform(not_inverse, _x((3,)))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_banana_keeps_every_coordinate(k):
    """The reference slices x[..., 2:-1] and loses the last coordinate for K >= 3."""
    x = _x((10, k))
    y = Banana()(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y[..., 2:], x[..., 2:])
    torch.testing.assert_close(y[..., 1], x[..., 1] - x[..., 0] ** 2 - 1)


def test_banana_density_integrates_to_one_on_a_grid():
    p = banana_distribution(rho=0.95)
    grid, logp = evaluate_on_grid(p.log_prob, (-6, 6), (-40, 6), num=(601, 1301))
    mass = torch.trapezoid(torch.trapezoid(logp.exp(), grid.axes[1], dim=1), grid.axes[0])
    assert abs(float(mass) - 1) < 1e-3


def test_banana_sample_moments_and_log_prob():
    rho, b, s = 0.95, 1.0, 1.0
    p = banana_distribution(rho=rho)
    torch.manual_seed(0)
    y = p.sample((200_000,))
    n = y.shape[0]
    assert abs(float(y[:, 0].mean())) < 4 / math.sqrt(n)
    assert abs(float(y[:, 1].mean()) + b + s) < 4 * math.sqrt(1 + 2 * b * b) / math.sqrt(n)
    assert float(y[:, 1].var()) == pytest.approx(1 + 2 * b * b, rel=0.03)
    assert float(torch.cov(y.T)[0, 1]) == pytest.approx(rho, rel=0.03)
    base = MultivariateNormal(torch.zeros(2, dtype=F64),
                              torch.tensor([[1, rho], [rho, 1]], dtype=F64))
    torch.testing.assert_close(p.log_prob(y[:100]), base.log_prob(Banana().inv(y[:100])))
    assert p.rsample((5,)).shape == (5, 2)


def test_bad_inputs():
    with pytest.raises(ShapeError, match="K >= 2"):
        Banana()(torch.zeros(3, 1, dtype=F64))
    with pytest.raises(NonFiniteError):
        Banana()(torch.tensor([[float("nan"), 0.0]], dtype=F64))
    with pytest.raises(ValueError, match="rho"):
        banana_distribution(rho=1.0)
    with pytest.raises(ValueError, match="event_dim"):
        InlineTransform(torch.exp, torch.log, event_dim=2)


def test_elementwise_inline_transform_has_a_sign_and_a_cache():
    """Issue 14: event_dim=0 had no sign (TransformedDistribution.cdf failed) and no
    with_cache."""
    from torch.distributions import Normal, TransformedDistribution

    from bayeskit.distributions.transforms import InlineTransform

    up = InlineTransform(torch.exp, torch.log, event_dim=0)
    down = InlineTransform(lambda x: -x, lambda y: -y, event_dim=0)
    assert up.sign == 1 and down.sign == -1
    base = Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    lognormal = TransformedDistribution(base, [up])
    x = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(lognormal.cdf(x), base.cdf(torch.log(x)))
    torch.testing.assert_close(TransformedDistribution(base, [down]).cdf(x), 1 - base.cdf(-x))
    cached = up.with_cache(1)
    assert cached is not up and cached._cache_size == 1 and cached.sign == 1
    with pytest.raises(ValueError, match="event_dim"):
        _ = InlineTransform(torch.exp, torch.log, event_dim=1).sign

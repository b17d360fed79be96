"""The wider kernel family against scikit-learn, kernel algebra, and mean functions."""

import math

import numpy as np
import pytest
import torch
from sklearn.gaussian_process import kernels as sk

from bayeskit.gp import (
    GPR,
    Linear,
    LinearMean,
    Matern,
    Periodic,
    Product,
    RationalQuadratic,
    Scale,
    SquaredExponential,
    Sum,
)

F64 = torch.float64


def data(n=7, d=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, dtype=F64, generator=g), torch.randn(n + 2, d, dtype=F64, generator=g)


@pytest.mark.parametrize("ours, theirs", [
    (RationalQuadratic(alpha=0.7, lengthscale=1.3, variance=2.0),
     2.0 * sk.RationalQuadratic(length_scale=1.3, alpha=0.7)),
    (Periodic(period=2.5, lengthscale=0.8, variance=1.5),
     1.5 * sk.ExpSineSquared(length_scale=0.8, periodicity=2.5)),
    (Linear(variance=0.6, offset=0.3), 0.6 * sk.DotProduct(sigma_0=0.5**0.5)),
])
def test_kernels_match_scikit_learn(ours, theirs):
    X, X2 = data()
    got = ours(X, X2).detach().numpy()
    expected = theirs(X.numpy(), X2.numpy())  # DotProduct: 0.6 (x.x' + 0.5) = ours
    assert np.allclose(got, expected, atol=1e-12)
    assert torch.allclose(ours.diag(X), ours(X).diagonal())


def test_algebra_builds_sums_and_products():
    X, X2 = data(d=2)
    se, per, lin = SquaredExponential(0.7), Periodic(1.2, 0.9), Linear(0.5)
    k = se * per + lin
    assert isinstance(k, Sum) and isinstance(k.kernels[0], Product)
    expected = se(X, X2) * per(X, X2) + lin(X, X2)
    assert torch.allclose(k(X, X2), expected)
    assert torch.allclose(k.diag(X), k(X).diagonal())
    flat = se + per + lin  # sums flatten
    assert isinstance(flat, Sum) and len(flat.kernels) == 3
    scaled = Scale(se * per, variance=3.0)
    assert torch.allclose(scaled(X, X2), 3 * expected - 3 * lin(X, X2))
    # parameters of every part are registered (and so trained)
    assert len(list(k.parameters())) == len(list(se.parameters())) + len(
        list(per.parameters())) + len(list(lin.parameters()))
    # batched inputs and positive definiteness
    Xb = torch.randn(3, 6, 2, dtype=F64)
    Kb = (se * per + RationalQuadratic(2.0) + Matern(1.5))(Xb)
    assert Kb.shape == (3, 6, 6)
    assert bool((torch.linalg.eigvalsh(Kb) > -1e-10).all())


def test_gradients_of_new_kernels():
    X, X2 = data(n=3, d=2)
    for k in (RationalQuadratic(1.5, torch.tensor([0.7, 1.2])), Periodic(2.0, 0.9),
              Linear(0.5, 0.1)):
        assert torch.autograd.gradcheck(lambda x, k=k: k(x, X2), (X.clone().requires_grad_(),))
        k(X, X2).sum().backward()
        assert all(p.grad is not None and bool(torch.isfinite(p.grad).all())
                   for p in k.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("lengthscale", [0.9, [0.7, 1.3]])
def test_periodic_matches_its_written_out_formula(dtype, lengthscale):
    """k = v exp(-2 sum_d sin^2(pi (x_d - x'_d) / p) / l_d^2), value and the gradients of
    period, lengthscales and variance, scalar and ARD lengthscales."""
    X, X2 = (t.to(dtype) for t in data(n=5, d=2))
    k = Periodic(1.7, torch.tensor(lengthscale, dtype=F64), variance=1.4).to(dtype)
    got = k(X, X2)
    p, ls, v = k.period, k.lengthscale, k.variance
    s = torch.sin(math.pi * (X[:, None, :] - X2[None, :, :]) / p) / ls
    expected = v * torch.exp(-2 * (s * s).sum(-1))
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == F64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(got, expected, **tol)
    w = torch.randn(got.shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    params = list(k.parameters())
    for a, b in zip(torch.autograd.grad((w * got).sum(), params),
                    torch.autograd.grad((w * expected).sum(), params), strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_periodic_product_form_matches_the_differences_far_from_the_origin():
    """The kernel's exponent comes from one product of cos/sin features: against the
    differences' formula at N = 120, D = 3, inputs up to 60 periods from the origin, values
    and every gradient (inputs, period, lengthscales, variance) in float64."""
    g = torch.Generator().manual_seed(5)
    X = torch.rand(120, 3, dtype=F64, generator=g) * 50 + 10
    X2 = torch.rand(40, 3, dtype=F64, generator=g) * 50 + 10
    k = Periodic(0.9, torch.tensor([0.4, 1.1, 2.5], dtype=F64), variance=0.8)
    for other in (None, X2):
        Xg = X.clone().requires_grad_()
        got = k(Xg, other)
        B = Xg if other is None else other
        s = torch.sin(math.pi * (Xg[:, None, :] - B[None, :, :]) / k.period) / k.lengthscale
        expected = k.variance * torch.exp(-2 * (s * s).sum(-1))
        torch.testing.assert_close(got, expected, rtol=1e-11, atol=1e-13)
        w = torch.randn(got.shape, dtype=F64, generator=g)
        params = [Xg, *k.parameters()]
        for a, b in zip(torch.autograd.grad((w * got).sum(), params),
                        torch.autograd.grad((w * expected).sum(), params), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * float(b.abs().max()))


def test_gpr_with_a_linear_mean_extrapolates_the_trend():
    g = torch.Generator().manual_seed(0)
    X = torch.linspace(0, 10, 60, dtype=F64)[:, None]
    noise = 0.05 * torch.randn(60, dtype=F64, generator=g)
    y = 2.0 * X[:, 0] + 1.0 + torch.sin(2 * X[:, 0]) + noise
    linear = GPR(X, y, SquaredExponential(0.5), noise_variance=0.01,
                 mean_function=LinearMean(1)).fit()
    constant = GPR(X, y, SquaredExponential(0.5), noise_variance=0.01).fit()
    far = torch.tensor([[14.0]], dtype=F64)
    assert float(linear.predict_f(far)[0]) == pytest.approx(29.0, abs=2.0)
    assert abs(float(constant.predict_f(far)[0]) - 29.0) > 5.0
    w = linear.mean_function.weight.detach()
    assert float(w[0]) == pytest.approx(2.0, abs=0.2)
    # conditioning keeps the mean function
    more = linear.condition_on_observations(far, torch.tensor([29.0], dtype=F64))
    assert float(more.predict_f(far)[0]) == pytest.approx(29.0, abs=0.2)


def test_map_fit_with_a_log_prior_pulls_toward_the_prior():
    g = torch.Generator().manual_seed(1)
    X = torch.rand(15, 1, dtype=F64, generator=g)
    y = torch.sin(6 * X[:, 0]) + 0.1 * torch.randn(15, dtype=F64, generator=g)
    ml = GPR(X, y, SquaredExponential(0.3), noise_variance=0.05).fit()
    target = 3.0

    def prior(model):  # a tight log-normal prior around lengthscale 3
        return -((torch.log(model.kernel.lengthscale) - math.log(target)) ** 2).sum() / (2 * 0.01)

    map_fit = GPR(X, y, SquaredExponential(0.3), noise_variance=0.05).fit(log_prior=prior)
    l_ml = float(ml.kernel.lengthscale.detach())
    l_map = float(map_fit.kernel.lengthscale.detach())
    assert abs(math.log(l_map / target)) < abs(math.log(l_ml / target))
    assert abs(math.log(l_map / target)) < 0.3
    with torch.no_grad():  # MAP trades marginal likelihood for prior mass
        assert float(map_fit.log_marginal_likelihood()) <= float(ml.log_marginal_likelihood())

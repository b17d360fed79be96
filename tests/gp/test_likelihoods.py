"""Likelihoods: variational expectations against Monte Carlo and closed forms; SVGP classifier."""

import math

import pytest
import torch

from bayeskit.distributions.gaussian import gauss_hermite
from bayeskit.gp import SquaredExponential
from bayeskit.gp.likelihoods import Bernoulli, Gaussian, Poisson, StudentT
from bayeskit.gp.svgp import SVGP

F64 = torch.float64


def _mc(lik, y, mean, var, n=400_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = mean + var.sqrt() * torch.randn(n, *mean.shape, dtype=F64, generator=g)
    vals = lik.log_prob(y, f)
    return vals.mean(0), vals.std(0) / math.sqrt(n)


@pytest.mark.parametrize("lik,y", [
    (Gaussian(0.3), torch.tensor([0.2, -1.0, 2.0], dtype=F64)),
    (Bernoulli("logit"), torch.tensor([1.0, 0.0, 1.0], dtype=F64)),
    (Bernoulli("probit"), torch.tensor([0.0, 1.0, 1.0], dtype=F64)),
    (Poisson(), torch.tensor([0.0, 3.0, 7.0], dtype=F64)),
    (StudentT(3.0, 0.5), torch.tensor([0.1, 2.0, -3.0], dtype=F64)),
])
def test_variational_expectations_match_monte_carlo(lik, y):
    mean = torch.tensor([0.3, -0.5, 1.2], dtype=F64)
    var = torch.tensor([0.2, 1.0, 0.5], dtype=F64)
    with torch.no_grad():
        ve = lik.variational_expectations(y, mean, var)
        ref, se = _mc(lik, y, mean, var)
    assert bool(((ve - ref).abs() < 4 * se + 1e-10).all()), (ve, ref, se)


def test_quadrature_is_exact_for_polynomials_and_closed_forms_agree():
    x, w = gauss_hermite(10)
    assert float((w * x**4).sum()) == pytest.approx(3.0, abs=1e-12)  # E z^4 = 3
    mean, var = torch.tensor([0.4], dtype=F64), torch.tensor([0.7], dtype=F64)
    y = torch.tensor([2.0], dtype=F64)
    p = Poisson(num_points=40)
    quad = p._quad(lambda f: p.log_prob(y.unsqueeze(-1), f), mean, var)
    torch.testing.assert_close(quad, p.variational_expectations(y, mean, var))
    b = Bernoulli("probit", num_points=60)
    torch.testing.assert_close(Likelihood_predict(b, mean, var), b.predict_mean(mean, var))
    with pytest.raises(ValueError, match="link"):
        Bernoulli("cloglog")


def Likelihood_predict(lik, mean, var):  # noqa: N802 - quadrature of the conditional mean
    return lik._quad(lik.conditional_mean, mean, var)


def test_svgp_classifier_with_bernoulli_likelihood():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(300, 1, dtype=F64, generator=g) * 6 - 3
    p_true = torch.sigmoid(3 * torch.sin(X[:, 0]))
    y = (torch.rand(300, dtype=F64, generator=g) < p_true).to(F64)
    model = SVGP(X[::15].clone(), SquaredExponential(1.0, 2.0), likelihood=Bernoulli(),
                 num_data=300)
    hist = model.fit(X, y, epochs=100, batch_size=100, lr=0.05)
    assert hist[-1] > hist[0]
    with torch.no_grad():
        p = model.predict_y(torch.tensor([[-1.6], [1.6]], dtype=F64))[0]
    assert float(p[0]) < 0.25 and float(p[1]) > 0.75

"""SGPR: the collapsed bound against a dense reference, tightness at Z = X, predictions."""

import math

import numpy as np
import pytest
import torch

from bayeskit.errors import ShapeError
from bayeskit.gp import GPR, SGPR, SquaredExponential

F64 = torch.float64


def _data(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, dtype=F64, generator=g) * 4
    y = torch.sin(X[:, 0]) * torch.cos(X[:, 1]) + 0.1 * torch.randn(n, dtype=F64, generator=g)
    return X, y


def test_bound_matches_dense_formula():
    X, y = _data()
    Z = X[::6]
    k = SquaredExponential(0.9, 1.3)
    model = SGPR(X, y, Z, k, noise_variance=0.05, mean=0.2, jitter=0.0)
    with torch.no_grad():
        Kuu = k(Z) + 0.0 * torch.eye(len(Z), dtype=F64)
        Kuf = k(Z, X)
        Q = Kuf.T @ torch.linalg.solve(Kuu, Kuf)
        cov = Q + 0.05 * torch.eye(len(X), dtype=F64)
        mvn = torch.distributions.MultivariateNormal(torch.full((len(X),), 0.2, dtype=F64), cov)
        ref = mvn.log_prob(y) - 0.5 * (k.diag(X).sum() - Q.diagonal().sum()) / 0.05
        assert float(model.elbo()) == pytest.approx(float(ref), rel=1e-9)


def test_bound_is_tight_and_predictions_exact_when_z_equals_x():
    X, y = _data(40, 1)
    k = SquaredExponential(0.7, 1.1)
    exact = GPR(X, y, k, noise_variance=0.1)
    sparse = SGPR(X, y, X, k, noise_variance=0.1, jitter=1e-12)
    with torch.no_grad():
        sparse.mean_constant = exact.mean_constant
        assert float(sparse.elbo()) == pytest.approx(float(exact.log_marginal_likelihood()),
                                                     abs=1e-6)
    Xs = torch.rand(5, 2, dtype=F64) * 4
    for a, b in zip(sparse.predict_f(Xs), exact.predict_f(Xs), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_bound_is_below_the_exact_evidence_and_fit_improves_it():
    X, y = _data(80, 2)
    k = SquaredExponential(1.0, 1.0)
    sparse = SGPR(X, y, X[:8], k, noise_variance=0.1)
    exact = GPR(X, y, SquaredExponential(1.0, 1.0), noise_variance=0.1)
    with torch.no_grad():
        assert float(sparse.elbo()) < float(exact.log_marginal_likelihood())
    before = float(sparse.elbo().detach())
    sparse.fit(max_iter=100)
    after = float(sparse.elbo().detach())
    assert after > before and math.isfinite(after)
    _, var = sparse.predict_f(X[:3])
    assert bool((var >= 0).all())


def test_bad_inducing_points():
    X, y = _data(10, 3)
    with pytest.raises(ShapeError, match="inducing_points"):
        SGPR(X, y, np.zeros((3, 3)))


def test_reference_value_from_anchors():
    """ANCHORS.md: -bound/N = 1.418632 (GPyTorch) for this data and default hyperparameters."""
    n = 10_000
    torch.manual_seed(0)
    X = torch.rand(n, 8, dtype=F64)
    y = torch.sin(2 * math.pi * X).sum(-1) + 0.1 * torch.randn(n, dtype=F64)
    k = SquaredExponential(torch.full((8,), 0.69315), 0.69315)
    model = SGPR(X, y, X[:256], k, noise_variance=0.69325, learn_mean=False, jitter=0.0)
    with torch.no_grad():
        assert float(-model.elbo()) / n == pytest.approx(1.418632, abs=5e-7)

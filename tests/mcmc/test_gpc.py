"""GP classification by Pólya-gamma Gibbs against importance sampling of the exact posterior."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from bayeskit.gp import SquaredExponential
from bayeskit.mcmc import PolyaGammaGPClassifier, gp_classification_gibbs


def _is_reference(K, y, n_draws=400_000, seed=0):
    """Posterior mean and sd of f by importance sampling (t proposal at the Laplace mode)."""
    n = len(y)
    Kinv = np.linalg.inv(K)
    f = np.zeros(n)
    for _ in range(50):
        p = 1 / (1 + np.exp(-f))
        grad = y - p - Kinv @ f
        H = np.diag(p * (1 - p)) + Kinv
        f = f + np.linalg.solve(H, grad)
    cov = np.linalg.inv(H)
    L = np.linalg.cholesky(cov)
    rng = np.random.default_rng(seed)
    nu = 6.0
    z = rng.standard_normal((n_draws, n))
    w = rng.chisquare(nu, n_draws) / nu
    draws = f + (z @ L.T) / np.sqrt(w)[:, None]
    logp = (y * draws - np.logaddexp(0, draws)).sum(1) - 0.5 * np.einsum(
        "ij,jk,ik->i", draws, Kinv, draws)
    dev = np.linalg.solve(L, (draws - f).T).T
    logq = -0.5 * (nu + n) * np.log1p((dev**2).sum(1) / nu)
    lw = logp - logq
    wt = np.exp(lw - lw.max())
    wt /= wt.sum()
    mean = wt @ draws
    return mean, np.sqrt(wt @ (draws - mean) ** 2)


@pytest.mark.parametrize("metropolis_steps", [0, 2])
def test_latent_posterior_matches_importance_sampling(metropolis_steps):
    X = torch.linspace(-2, 2, 8, dtype=torch.float64)[:, None]
    y = np.array([0, 0, 1, 0, 1, 1, 1, 0], dtype=float)
    K = SquaredExponential(lengthscale=1.0, variance=2.0)(X).detach()
    L, v, _ = gp_classification_gibbs(K, torch.as_tensor(y), num_samples=1500, burn_in=100,
                                      num_chains=8, metropolis_steps=metropolis_steps,
                                      generator=torch.Generator().manual_seed(2))
    f = (v @ L.mT).reshape(-1, 8).numpy()
    mean, sd = _is_reference(K.numpy() + 1e-10 * np.eye(8), y)
    assert np.all(np.abs(f.mean(0) - mean) < 0.1 * sd), (f.mean(0), mean, sd)
    assert np.all(np.abs(f.std(0) / sd - 1) < 0.1)


def test_classifier_api():
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(60, 1))
    y = (rng.random(60) < 1 / (1 + np.exp(-3 * np.sin(X[:, 0])))).astype(int)
    clf = PolyaGammaGPClassifier(kernel=SquaredExponential(lengthscale=1.0, variance=4.0),
                                 num_samples=150, burn_in=50, num_chains=2, random_state=0)
    clf.fit(X, y)
    proba = clf.predict_proba(np.array([[-1.5], [1.5]]))
    assert proba.shape == (2, 2) and proba[0, 1] < 0.5 < proba[1, 1]
    assert clf.score(X, y) > 0.7
    lo, hi = clf.predict_interval(np.array([[-1.5], [1.5]]), level=0.9)
    assert np.all(lo <= proba[:, 1]) and np.all(proba[:, 1] <= hi)
    table = clf.summary()
    assert len(table) == 60 and "r_hat" in table.columns
    assert clone(clf).get_params()["num_samples"] == 150
    assert cross_val_score(clone(clf), X, y, cv=2).mean() > 0.6
    with pytest.raises(ValueError, match="Only binary classification"):
        clf.fit(X, y + (X[:, 0] > 1))
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.zeros((2, 3)))


def test_conjugate_gradient_solver_gives_the_cholesky_draws():
    """solver="cg" solves the same N x N systems iteratively and consumes the same random
    numbers, so with one seed the chains agree with the factorising solver's to 1e-7 (the
    CG tolerance, 1e-10 relative residual, times the condition number)."""
    rng = np.random.default_rng(1)
    X = torch.as_tensor(rng.uniform(-3, 3, size=(40, 2)))
    y = torch.as_tensor((np.sin(X[:, 0].numpy()) + 0.3 * rng.standard_normal(40) > 0) * 1.0)
    K = SquaredExponential(lengthscale=1.5, variance=4.0)(X).detach()
    draws = {}
    for solver in ("cholesky", "cg"):
        L, v, _ = gp_classification_gibbs(K, y, num_samples=20, burn_in=10, num_chains=3,
                                          metropolis_steps=1, solver=solver,
                                          generator=torch.Generator().manual_seed(3))
        draws[solver] = v @ L.mT
    torch.testing.assert_close(draws["cg"], draws["cholesky"], rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="solver"):
        gp_classification_gibbs(K, y, solver="lu")


@pytest.mark.parametrize("n,expected", [(199, "matheron"), (200, "cg")])
def test_auto_solver_switches_to_conjugate_gradients_at_200_points(monkeypatch, n, expected):
    import bayeskit.mcmc.gpc as gpc

    seen = {}

    def record(data, **kwargs):
        seen["method"] = kwargs["method"]
        raise KeyboardInterrupt  # stop before sampling

    monkeypatch.setattr(gpc, "run_gibbs", record)
    with pytest.raises(KeyboardInterrupt):
        gp_classification_gibbs(torch.eye(n, dtype=torch.float64),
                                torch.zeros(n, dtype=torch.float64))
    assert seen["method"] == expected



def test_classifier_keeps_a_copy_of_the_training_inputs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    X_new = rng.normal(size=(5, 2))
    clf = PolyaGammaGPClassifier(num_samples=20, burn_in=10, num_chains=1,
                                 random_state=0).fit(X, y)
    before = clf.predict_proba(X_new)
    X[:] = 0.0  # the caller reuses its array: the fitted model must not change
    np.testing.assert_array_equal(clf.predict_proba(X_new), before)

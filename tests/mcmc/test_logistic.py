"""The scikit-learn estimator: API contract, predictions, ArviZ export, errors."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bayeskit.mcmc import PolyaGammaLogisticRegression, polynomial_basis

FAST = dict(num_samples=150, burn_in=50, num_chains=2, random_state=0)


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.5 + 2 * X[:, 0] - X[:, 1])))).astype(int)
    return X, y


def test_fit_predict_and_sklearn_tools():
    X, y = _data()
    clf = PolyaGammaLogisticRegression(**FAST).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (60, 2) and np.allclose(proba.sum(1), 1)
    assert clf.score(X, y) > 0.75
    assert clf.coef_samples_.shape == (2, 150, 3) and clf.coef_[1] > 0.5
    lo, hi = clf.predict_interval(X[:5], level=0.9)
    assert np.all(lo <= proba[:5, 1]) and np.all(proba[:5, 1] <= hi)
    params = clf.get_params()
    assert params["num_samples"] == 150 and clone(clf).get_params() == params
    pipe = make_pipeline(StandardScaler(), PolyaGammaLogisticRegression(**FAST))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.7


def test_same_seed_same_draws():
    X, y = _data()
    a = PolyaGammaLogisticRegression(**FAST).fit(X, y).coef_samples_
    b = PolyaGammaLogisticRegression(**FAST).fit(X, y).coef_samples_
    assert np.array_equal(a, b)


def test_polynomial_basis_and_binomial_counts():
    x = np.linspace(-3, 3, 30)[:, None]
    n = np.full(30, 10)
    rng = np.random.default_rng(1)
    counts = rng.binomial(10, 1 / (1 + np.exp(-(x[:, 0] - 0.3 * x[:, 0] ** 2))))
    clf = PolyaGammaLogisticRegression(basis=polynomial_basis(3), prior_precision=2.0, **FAST)
    clf.fit(x, counts, n_trials=n)
    assert clf.coef_samples_.shape[-1] == 3
    assert abs(clf.coef_[1] - 1.0) < 0.4 and abs(clf.coef_[2] + 0.3) < 0.2


def test_arviz_export_and_summary():
    pytest.importorskip("arviz")
    X, y = _data()
    clf = PolyaGammaLogisticRegression(**FAST).fit(X, y)
    idata = clf.to_arviz()
    assert idata.posterior["beta"].shape == (2, 150, 3)
    table = clf.summary()
    assert {"mean", "r_hat", "ess_bulk"} <= set(table.columns) and len(table) == 3


def test_bad_labels_and_inputs():
    X, y = _data()
    labels = np.where(y > 0, "yes", "no")  # any two classes, strings too
    assert set(PolyaGammaLogisticRegression(**FAST).fit(X, labels).predict(X)) <= {"yes", "no"}
    with pytest.raises(ValueError, match="Only binary classification"):
        PolyaGammaLogisticRegression(**FAST).fit(X, y + (X[:, 0] > 1))
    with pytest.raises(ValueError):
        PolyaGammaLogisticRegression(**FAST).fit(np.vstack([X[:-1], [[np.nan, 0]]]), y)
    with pytest.raises(ValueError):
        PolyaGammaLogisticRegression(**FAST).fit(X[:10], y)
    clf = PolyaGammaLogisticRegression(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :1])
    with pytest.raises(ValueError, match="degree"):
        polynomial_basis(0)


def test_summary_names_coefficients_and_arviz_is_optional(monkeypatch):
    import sys

    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.normal(size=60), "dose": rng.normal(size=60)})
    y = (X["age"] - X["dose"] + 0.3 * rng.normal(size=60) > 0).astype(int)
    clf = PolyaGammaLogisticRegression(num_samples=100, burn_in=50).fit(X, y)
    assert list(clf.feature_names_in_) == ["age", "dose"]
    assert list(clf.summary().index) == ["beta[intercept]", "beta[age]", "beta[dose]"]
    clf.fit(X.to_numpy(), y)  # plain arrays: default names, no stale feature_names_in_
    assert not hasattr(clf, "feature_names_in_")
    assert clf.coefficient_names() == ["intercept", "x0", "x1"]
    monkeypatch.setitem(sys.modules, "arviz", None)  # as if ArviZ were not installed
    with pytest.raises(ImportError, match=r"bayeskit\[mcmc\]"):
        clf.summary()

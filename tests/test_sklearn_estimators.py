"""Every bayeskit estimator passes scikit-learn's own estimator checks (small settings so
the suite stays fast; binary-only classifiers declare it through their tags)."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayeskit.gp.estimators import (
    GPRegressor,
    PolyaGammaSVGPClassifier,
    SparseGPRegressor,
    SVGPClassifier,
)
from bayeskit.mcmc import PolyaGammaGPClassifier, PolyaGammaLogisticRegression

ESTIMATORS = [
    GPRegressor(max_iter=20),
    SparseGPRegressor(max_iter=20),
    SparseGPRegressor(method="svgp", epochs=20, max_iter=20),
    SVGPClassifier(num_inducing=10, epochs=10),
    PolyaGammaSVGPClassifier(num_inducing=10, epochs=5, random_state=0),
    PolyaGammaSVGPClassifier(num_inducing=10, epochs=5, random_state=0, multiclass="softmax"),
    PolyaGammaLogisticRegression(num_samples=50, burn_in=20),
    PolyaGammaGPClassifier(num_samples=50, burn_in=20),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_compliance(estimator, check):
    """Each check raises on a violation; the estimator handed to it must come back
    untouched (checks work on clones: a check that fitted or re-parametrised the original
    would make the next check test something else)."""
    before = clone(estimator).get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # SGPR's all-noise warning on noise
        check(estimator)
    assert set(estimator.get_params()) == set(before)
    assert all(estimator.get_params()[k] is v or estimator.get_params()[k] == v
               for k, v in before.items() if not hasattr(v, "get_params"))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_binary_only_classifiers_declare_it(estimator):
    tags = get_tags(estimator)
    multi = type(estimator).__name__ == "PolyaGammaSVGPClassifier"
    if tags.classifier_tags is not None:
        assert tags.classifier_tags.multi_class is multi
    else:
        assert tags.regressor_tags is not None


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_fitted_estimators_do_not_share_the_callers_arrays(estimator):
    """Fit, then overwrite the training arrays in place: predictions must not move (a model
    holding a view of the caller's array would follow it)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    y = (X[:, 0] > 0).astype(float) if tags_say_classifier(estimator) else np.sin(X[:, 0])
    X_new = rng.normal(size=(6, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fitted = clone(estimator).fit(X, y)
    before = fitted.predict(X_new)
    X[:] = 0.0
    y[:] = 0.0
    np.testing.assert_array_equal(fitted.predict(X_new), before)


def tags_say_classifier(estimator) -> bool:
    return get_tags(estimator).classifier_tags is not None

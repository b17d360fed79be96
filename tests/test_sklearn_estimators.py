"""Every bayeskit estimator passes scikit-learn's own estimator checks (small settings so
the suite stays fast; binary-only classifiers declare it through their tags)."""

import warnings

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

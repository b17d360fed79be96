"""Every bayeskit estimator passes scikit-learn's own estimator checks (small settings so
the suite stays fast; binary-only classifiers declare it through their tags)."""

import warnings

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
    SparseGPRegressor(),
    SparseGPRegressor(method="svgp", epochs=20),
    SVGPClassifier(num_inducing=10, epochs=10),
    PolyaGammaSVGPClassifier(num_inducing=10, epochs=5, random_state=0),
    PolyaGammaLogisticRegression(num_samples=50, burn_in=20),
    PolyaGammaGPClassifier(num_samples=50, burn_in=20),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_compliance(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # SGPR's all-noise warning on noise
        check(estimator)

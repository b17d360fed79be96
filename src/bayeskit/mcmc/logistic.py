"""scikit-learn estimator: Bayesian logistic regression by Pólya-gamma Gibbs sampling."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from bayeskit.errors import ArgumentValueError
from bayeskit.mcmc._posterior import PosteriorClassifierMixin, import_arviz
from bayeskit.mcmc.gibbs import BinomialRegressionData, run_gibbs
from bayeskit.sklearn_compat import binary_labels, check_features, check_training_data
from bayeskit.validation import as_int

__all__ = ["PolyaGammaLogisticRegression", "polynomial_basis"]


def polynomial_basis(degree: int) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> [1, x, ..., x^(degree-1)]`` for 1-D inputs ``[N, 1]`` (the reference's basis).

    Examples:
        >>> polynomial_basis(3)(np.array([[2.0]]))
        array([[1., 2., 4.]])
    """
    degree = as_int(degree, "degree", positive=True)

    def basis(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != 1:
            raise ArgumentValueError(f"polynomial_basis expects one feature [N, 1], got {X.shape}")
        return np.power(X, np.arange(degree))

    return basis


class PolyaGammaLogisticRegression(PosteriorClassifierMixin, ClassifierMixin, BaseEstimator):
    """Bayesian logistic regression with exact Gibbs sampling (Polson, Scott & Windle 2013).

    Prior ``beta ~ N(0, prior_precision^-1 I)`` on the coefficients of the features
    ``[1, X]`` (or of ``basis(X)``); posterior draws by the Pólya-gamma Gibbs sampler, several
    chains at once. Predictions average ``sigmoid(phi^T beta)`` over the draws.

    Parameters:
        prior_precision: scalar precision ``alpha`` of the Gaussian prior.
        fit_intercept: prepend a constant feature (ignored when ``basis`` is given).
        basis: optional callable mapping ``X [N, F]`` to features ``[N, D]``.
        num_samples, burn_in, thin, num_chains: Gibbs run lengths.
        metropolis_steps: independence Metropolis steps from the Laplace approximation
            after each sweep (:func:`bayeskit.mcmc.run_gibbs`): exact, and several times
            the effective samples per draw on nearly separable data; 0 for plain Gibbs.
        random_state: seed for reproducible draws.

    Attributes (after ``fit``): ``classes_`` (``[0, 1]``), ``coef_samples_ [C, S, D]``,
    ``coef_`` (posterior mean), ``n_features_in_``.

    Examples:
        >>> X = np.linspace(-2, 2, 40)[:, None]
        >>> y = (X[:, 0] + 0.3 * np.sin(7 * X[:, 0]) > 0).astype(int)
        >>> clf = PolyaGammaLogisticRegression(num_samples=200, burn_in=100).fit(X, y)
        >>> clf.predict(np.array([[-1.5], [1.5]]))
        array([0, 1])
    """

    def __init__(self, prior_precision: float = 1.0, fit_intercept: bool = True,
                 basis: Callable | None = None, num_samples: int = 1000, burn_in: int = 500,
                 thin: int = 1, num_chains: int = 4, metropolis_steps: int = 0,
                 random_state: int | None = None):
        self.prior_precision = prior_precision
        self.fit_intercept = fit_intercept
        self.basis = basis
        self.num_samples = num_samples
        self.burn_in = burn_in
        self.thin = thin
        self.num_chains = num_chains
        self.metropolis_steps = metropolis_steps
        self.random_state = random_state

    def _features(self, X: np.ndarray) -> np.ndarray:
        if self.basis is not None:
            Phi = np.asarray(self.basis(X), dtype=float)
            if Phi.ndim != 2 or Phi.shape[0] != X.shape[0]:
                raise ArgumentValueError(f"basis must return [N, D] features, got shape "
                                         f"{Phi.shape}")
            return Phi
        if self.fit_intercept:
            return np.hstack([np.ones((X.shape[0], 1)), X])
        return X

    def fit(self, X, y, n_trials=None):
        """Sample the posterior. ``y`` holds labels in {0, 1}, or success counts out of
        ``n_trials`` (binomial regression)."""
        columns = getattr(X, "columns", None)  # a DataFrame: keep its feature names
        X, y = check_training_data(X, y, dtype=np.float64, y_numeric=n_trials is not None)
        if columns is not None and all(isinstance(c, str) for c in columns):
            self.feature_names_in_ = np.asarray(columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        if n_trials is None:  # any two classes; the larger is "1"
            y, self.classes_ = binary_labels(y)
        else:
            self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        data = BinomialRegressionData.create(
            self._features(X), y, 1 if n_trials is None else np.asarray(n_trials, float),
            prior_precision=self.prior_precision)
        seed = 0 if self.random_state is None else int(self.random_state)
        result = run_gibbs(data, num_samples=self.num_samples, burn_in=self.burn_in,
                           thin=self.thin, num_chains=self.num_chains,
                           metropolis_steps=self.metropolis_steps,
                           generator=torch.Generator().manual_seed(seed))
        self.coef_samples_ = result.beta.numpy()
        self.coef_ = self.coef_samples_.reshape(-1, self.coef_samples_.shape[-1]).mean(0)
        return self

    def _prob_draws(self, X) -> np.ndarray:
        X = check_features(self, X, "coef_samples_")
        draws = self.coef_samples_.reshape(-1, self.coef_samples_.shape[-1])
        return 1.0 / (1.0 + np.exp(-(draws @ self._features(X).T)))  # [draws, N]

    def to_arviz(self):
        """The draws as ``arviz.InferenceData`` (chains kept), for R-hat, ESS and plots."""
        check_is_fitted(self, "coef_samples_")
        return import_arviz().from_dict(
            posterior={"beta": self.coef_samples_}, dims={"beta": ["coefficient"]},
            coords={"coefficient": self.coefficient_names()})

    def coefficient_names(self) -> list[str]:
        """Names of the coefficients: ``"intercept"`` then the feature names
        (``feature_names_in_`` when ``X`` was a DataFrame, else ``x0, x1, ...``); with a
        ``basis``, ``phi0, phi1, ...``."""
        check_is_fitted(self, "coef_samples_")
        d = self.coef_samples_.shape[-1]
        if self.basis is not None:
            return [f"phi{i}" for i in range(d)]
        names = [str(c) for c in getattr(self, "feature_names_in_",
                                         [f"x{i}" for i in range(self.n_features_in_)])]
        return (["intercept"] if self.fit_intercept else []) + names

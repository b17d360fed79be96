"""scikit-learn estimators over the GP models (layer 3: no math of their own)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from bayeskit.gp.exact import GPR
from bayeskit.gp.kernels import Kernel, SquaredExponential
from bayeskit.gp.likelihoods import Bernoulli
from bayeskit.gp.sgpr import SGPR
from bayeskit.gp.svgp import SVGP
from bayeskit.validation import as_binary_labels

__all__ = ["GPRegressor", "SparseGPRegressor", "SVGPClassifier"]

F64 = torch.float64


def _kernel(kernel: Kernel | None, d: int) -> Kernel:
    """A fresh copy of the given kernel (or an ARD squared exponential) for one fit."""
    import copy

    return copy.deepcopy(kernel) if kernel is not None else SquaredExponential(torch.ones(d))


class _GPRegressorBase(RegressorMixin, BaseEstimator):
    """Shared scaling: inputs per feature and targets are standardised (without overflow:
    statistics of ``v / max|v|``), so the fit does not depend on their units."""

    def predict(self, X, return_std: bool = False):
        check_is_fitted(self, "model_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fit with "
                             f"{self.n_features_in_}")
        mean, var = self.model_.predict_f(torch.as_tensor(self._scale_inputs(X)))
        mean = mean.detach().numpy() * self.y_scale_ + self.y_mean_
        if not return_std:
            return mean
        noise = float(self.model_.noise_variance.detach())
        return mean, np.sqrt(var.detach().numpy() + noise) * self.y_scale_

    @staticmethod
    def _location_scale(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        top = np.abs(v).max(axis=0)
        top = np.where(np.isfinite(top) & (top > 0), top, 1.0)
        u = v / top
        sd = u.std(axis=0)
        return u.mean(axis=0) * top, np.where(sd > 0, sd, 1.0) * top

    def _fit_input_scaling(self, X: np.ndarray) -> np.ndarray:
        self.X_loc_, self.X_scale_ = self._location_scale(X)
        return self._scale_inputs(X)

    def _scale_inputs(self, X: np.ndarray) -> np.ndarray:
        return (X - self.X_loc_) / self.X_scale_

    def _standardise(self, y):
        loc, scale = self._location_scale(y)
        self.y_mean_, self.y_scale_ = float(loc), float(scale)
        return (y - self.y_mean_) / self.y_scale_


class GPRegressor(_GPRegressorBase):
    """Exact GP regression, hyperparameters by type-II maximum likelihood.

    Targets are standardised internally; ``predict(X, return_std=True)`` gives the
    predictive standard deviation of new observations (noise included).
    """

    def __init__(self, kernel: Kernel | None = None, noise_variance: float = 0.1,
                 restarts: int = 0, max_iter: int = 200):
        self.kernel, self.noise_variance = kernel, noise_variance
        self.restarts, self.max_iter = restarts, max_iter

    def fit(self, X, y):
        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        self.n_features_in_ = X.shape[1]
        self.model_ = GPR(self._fit_input_scaling(X), self._standardise(y),
                          _kernel(self.kernel, X.shape[1]), noise_variance=self.noise_variance)
        self.model_.fit(max_iter=self.max_iter, restarts=self.restarts)
        return self


class SparseGPRegressor(_GPRegressorBase):
    """Sparse GP regression: ``method="sgpr"`` (collapsed bound, L-BFGS) or ``"svgp"``
    (minibatch Adam); ``num_inducing`` inducing inputs initialised on a random subset."""

    def __init__(self, kernel: Kernel | None = None, num_inducing: int = 50,
                 method: str = "sgpr", noise_variance: float = 0.1, epochs: int = 100,
                 batch_size: int = 256, lr: float = 0.05, random_state: int | None = None):
        self.kernel, self.num_inducing, self.method = kernel, num_inducing, method
        self.noise_variance, self.epochs, self.batch_size = noise_variance, epochs, batch_size
        self.lr, self.random_state = lr, random_state

    def fit(self, X, y):
        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        if self.method not in ("sgpr", "svgp"):
            raise ValueError(f"method must be 'sgpr' or 'svgp', got {self.method!r}")
        self.n_features_in_ = X.shape[1]
        rng = np.random.default_rng(self.random_state)
        X = self._fit_input_scaling(X)
        m = min(self.num_inducing, X.shape[0])
        Z = X[rng.choice(X.shape[0], m, replace=False)]
        ys = self._standardise(y)
        kern = _kernel(self.kernel, X.shape[1])
        if self.method == "sgpr":
            self.model_ = self._fit_sgpr(X, ys, Z, kern)
        else:
            # hyperparameters start where SGPR's collapsed bound (L-BFGS, with the all-noise
            # safeguard) puts them on up to 2 000 points, and q(u) at its optimum for them
            # (one full natural-gradient step on up to 10 000 points): Adam from the default
            # start stalled in a poor, noisy optimum on some seeds (R^2 0.41, noise 0.44)
            init = rng.permutation(X.shape[0])[:10_000]
            start = self._fit_sgpr(X[init[:2000]], ys[init[:2000]], Z, kern)
            self.model_ = SVGP(Z, start.kernel, noise_variance=float(
                start.noise_variance.detach()), num_data=X.shape[0])
            self.model_.natural_gradient_step(torch.as_tensor(X[init]),
                                              torch.as_tensor(ys[init]), 1.0)
            self.model_.fit(torch.as_tensor(X), torch.as_tensor(ys), epochs=self.epochs,
                            batch_size=self.batch_size, lr=self.lr,
                            seed=0 if self.random_state is None else int(self.random_state))
        return self


    def _fit_sgpr(self, X, ys, Z, kern):
        """SGPR from the given noise and, if that fit explains (almost) everything as
        noise, again from a small noise; the higher bound wins. A fit that still ends at
        the all-noise optimum is reported with a warning."""
        import copy
        import warnings

        fits = []
        for noise in dict.fromkeys((self.noise_variance, 0.01)):
            model = SGPR(X, ys, Z, copy.deepcopy(kern), noise_variance=noise).fit()
            with torch.no_grad():
                fits.append((float(model.elbo()), model))
            if float(model.noise_variance.detach()) < 0.9:  # not the all-noise optimum
                break
        best = max(fits, key=lambda f: f[0])[1]
        if float(best.noise_variance.detach()) >= 0.9:
            warnings.warn("the sparse GP explains (almost) all of the standardised targets "
                          "as noise (noise variance >= 0.9); more inducing points or another "
                          "kernel may find structure", RuntimeWarning, stacklevel=3)
        return best


class SVGPClassifier(ClassifierMixin, BaseEstimator):
    """Binary GP classification by SVGP with a Bernoulli likelihood (labels 0/1)."""

    def __init__(self, kernel: Kernel | None = None, num_inducing: int = 50,
                 link: str = "logit", epochs: int = 100, batch_size: int = 256,
                 lr: float = 0.05, random_state: int | None = None):
        self.kernel, self.num_inducing, self.link = kernel, num_inducing, link
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.random_state = random_state

    def fit(self, X, y):
        X, y = check_X_y(X, y, dtype=np.float64)
        y, self.classes_ = as_binary_labels(y)  # any two classes; the larger is "1"
        self.n_features_in_ = X.shape[1]
        rng = np.random.default_rng(self.random_state)
        m = min(self.num_inducing, X.shape[0])
        Z = X[rng.choice(X.shape[0], m, replace=False)]
        self.model_ = SVGP(Z, _kernel(self.kernel, X.shape[1]), num_data=X.shape[0],
                           likelihood=Bernoulli(self.link))
        self.model_.fit(torch.as_tensor(X), y, epochs=self.epochs,
                        batch_size=self.batch_size, lr=self.lr,
                        seed=0 if self.random_state is None else int(self.random_state))
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = check_array(X, dtype=np.float64)
        with torch.no_grad():
            p1 = self.model_.predict_y(torch.as_tensor(X))[0].numpy()
        return np.stack([1 - p1, p1], axis=1)

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

"""scikit-learn estimators over the GP models (layer 3: no math of their own)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets

from bayeskit.errors import ArgumentValueError
from bayeskit.gp.augmented import PolyaGammaSVGP
from bayeskit.gp.exact import GPR
from bayeskit.gp.kernels import Kernel, SquaredExponential
from bayeskit.gp.likelihoods import Bernoulli
from bayeskit.gp.model import data_scale
from bayeskit.gp.multiclass import LogisticSoftmaxSVGP
from bayeskit.gp.sgpr import SGPR
from bayeskit.gp.svgp import SVGP
from bayeskit.sklearn_compat import (
    BinaryClassifierMixin,
    binary_labels,
    check_features,
    check_training_data,
)
from bayeskit.validation import as_int, check_choice

__all__ = ["GPRegressor", "SparseGPRegressor", "SVGPClassifier", "PolyaGammaSVGPClassifier"]

F64 = torch.float64


def _kernel(kernel: Kernel | None, d: int) -> Kernel:
    """A fresh copy of the given kernel (or an ARD squared exponential) for one fit."""
    import copy

    return copy.deepcopy(kernel) if kernel is not None else SquaredExponential(torch.ones(d))



def _num_inducing(value, n: int) -> int:
    """The estimators' ``num_inducing`` (a positive whole number), at most ``n``."""
    return min(as_int(value, "num_inducing", positive=True), n)

class _GPRegressorBase(RegressorMixin, BaseEstimator):
    """Shared scaling: inputs per feature and targets are standardised (without overflow:
    statistics of ``v / max|v|``), so the fit does not depend on their units."""

    def predict(self, X, return_std: bool = False):
        X = check_features(self, X, "model_")
        mean, var = self.model_.predict_f(torch.as_tensor(self._scale_inputs(X)))
        mean = mean.detach().numpy() * self.y_scale_ + self.y_mean_
        if not return_std:
            return mean
        noise = float(self.model_.noise_variance.detach())
        return mean, np.sqrt(var.detach().numpy() + noise) * self.y_scale_

    @staticmethod
    def _location_scale(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        loc, scale = data_scale(torch.tensor(v))  # a copy: read-only arrays welcome
        return loc.numpy(), scale.numpy()

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
        X, y = check_training_data(X, y, dtype=np.float64, y_numeric=True)
        self.n_features_in_ = X.shape[1]
        self.model_ = GPR(self._fit_input_scaling(X), self._standardise(y),
                          _kernel(self.kernel, X.shape[1]), noise_variance=self.noise_variance)
        self.model_.fit(max_iter=self.max_iter, restarts=self.restarts)
        self.n_iter_ = self.model_.optimizer_iterations
        return self


class SparseGPRegressor(_GPRegressorBase):
    """Sparse GP regression: ``method="sgpr"`` (collapsed bound, L-BFGS) or ``"svgp"``
    (minibatch Adam); ``num_inducing`` inducing inputs initialised on a random subset.
    ``max_iter`` bounds the L-BFGS iterations of the SGPR fit (the model itself with
    ``"sgpr"``, the start of the hyperparameters with ``"svgp"``), as in
    :class:`GPRegressor`."""

    def __init__(self, kernel: Kernel | None = None, num_inducing: int = 50,
                 method: str = "sgpr", noise_variance: float = 0.1, epochs: int = 100,
                 batch_size: int = 256, lr: float = 0.05, random_state: int | None = None,
                 max_iter: int = 200):
        self.kernel, self.num_inducing, self.method = kernel, num_inducing, method
        self.noise_variance, self.epochs, self.batch_size = noise_variance, epochs, batch_size
        self.lr, self.random_state, self.max_iter = lr, random_state, max_iter

    def fit(self, X, y):
        X, y = check_training_data(X, y, dtype=np.float64, y_numeric=True)
        check_choice(self.method, "method", ("sgpr", "svgp"))
        self.n_features_in_ = X.shape[1]
        rng = np.random.default_rng(self.random_state)
        X = self._fit_input_scaling(X)
        m = _num_inducing(self.num_inducing, X.shape[0])
        Z = X[rng.choice(X.shape[0], m, replace=False)]
        ys = self._standardise(y)
        kern = _kernel(self.kernel, X.shape[1])
        if self.method == "sgpr":
            self.model_ = self._fit_sgpr(X, ys, Z, kern)
            self.n_iter_ = self.model_.optimizer_iterations
        else:
            # hyperparameters start where SGPR's collapsed bound (L-BFGS, with the all-noise
            # safeguard) puts them on up to 2 000 points, and q(u) at its optimum for them
            # (one full natural-gradient step on up to 10 000 points): Adam from the default
            # start stalled in a poor, noisy optimum on some seeds (R^2 0.41, noise 0.44)
            init = rng.permutation(X.shape[0])[:10_000]
            start = self._fit_sgpr(X[init[:2000]], ys[init[:2000]], Z, kern)
            # a noise that SGPR drove to the softplus floor (1e-6) starts just above it
            noise = max(float(start.noise_variance.detach()), 2e-6)
            self.model_ = SVGP(Z, start.kernel, noise_variance=noise, num_data=X.shape[0])
            self.model_.natural_gradient_step(torch.tensor(X[init]),
                                              torch.tensor(ys[init]), 1.0)
            self.model_.fit(torch.tensor(X), torch.tensor(ys), epochs=self.epochs,
                            batch_size=self.batch_size, lr=self.lr,
                            seed=0 if self.random_state is None else int(self.random_state))
            self.n_iter_ = self.epochs
        return self

    def _fit_sgpr(self, X, ys, Z, kern):
        """SGPR from the given noise; a fit that explains (almost) everything as noise is
        repeated by the model from a small noise and short lengthscales, with a warning if
        it stays there (:meth:`bayeskit.gp.GPR.fit`)."""
        import copy

        return SGPR(X, ys, Z, copy.deepcopy(kern),
                    noise_variance=self.noise_variance).fit(max_iter=self.max_iter)


class SVGPClassifier(BinaryClassifierMixin, ClassifierMixin, BaseEstimator):
    """Binary GP classification by SVGP with a Bernoulli likelihood (labels 0/1)."""

    def __init__(self, kernel: Kernel | None = None, num_inducing: int = 50,
                 link: str = "logit", epochs: int = 100, batch_size: int = 256,
                 lr: float = 0.05, random_state: int | None = None):
        self.kernel, self.num_inducing, self.link = kernel, num_inducing, link
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.random_state = random_state

    def fit(self, X, y):
        X, y = check_training_data(X, y, dtype=np.float64)
        y, self.classes_ = binary_labels(y)  # any two classes; the larger is "1"
        self.n_features_in_ = X.shape[1]
        rng = np.random.default_rng(self.random_state)
        m = _num_inducing(self.num_inducing, X.shape[0])
        Z = X[rng.choice(X.shape[0], m, replace=False)]
        self.model_ = SVGP(Z, _kernel(self.kernel, X.shape[1]), num_data=X.shape[0],
                           likelihood=Bernoulli(self.link))
        self.model_.fit(torch.tensor(X), y, epochs=self.epochs,
                        batch_size=self.batch_size, lr=self.lr,
                        seed=0 if self.random_state is None else int(self.random_state))
        return self

    def predict_proba(self, X) -> np.ndarray:
        X = check_features(self, X, "model_")
        with torch.no_grad():
            p1 = self.model_.predict_y(torch.tensor(X))[0].numpy()
        return np.stack([1 - p1, p1], axis=1)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] >= 0.5).astype(int)]


class PolyaGammaSVGPClassifier(ClassifierMixin, BaseEstimator):
    """GP classification by the Pólya-gamma augmented SVGP
    (:class:`~bayeskit.gp.PolyaGammaSVGP`: closed-form natural-gradient steps on ``q(u)``,
    Adam on the kernel and inducing points).

    Two classes: one model (the larger class is "1"). More classes: with
    ``multiclass="softmax"`` one joint model, the logistic-softmax likelihood made
    conjugate by augmentation (:class:`~bayeskit.gp.LogisticSoftmaxSVGP`, Galy-Fajou et
    al. 2019; ``K`` latent GPs sharing the kernel and inducing inputs); with ``"ovr"``
    (default) one binary model per class against the rest, probabilities normalised across
    classes. Inputs are standardised per feature; ``num_inducing`` inducing inputs start on
    a random subset.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(200, 2))
        >>> y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
        >>> clf = PolyaGammaSVGPClassifier(num_inducing=20, epochs=20, random_state=0)
        >>> clf.fit(X, y).score(X, y) > 0.9
        True
    """

    def __init__(self, kernel: Kernel | None = None, num_inducing: int = 50, epochs: int = 100,
                 batch_size: int = 256, lr: float = 0.05, tau: float = 1.0,
                 decay: float = 0.6, random_state: int | None = None,
                 multiclass: str = "ovr"):
        self.kernel, self.num_inducing, self.epochs = kernel, num_inducing, epochs
        self.batch_size, self.lr, self.tau, self.decay = batch_size, lr, tau, decay
        self.random_state, self.multiclass = random_state, multiclass

    def fit(self, X, y):
        X, y = check_training_data(X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ArgumentValueError(f"Classifier can't train when only one class is present: "
                                     f"{self.classes_.tolist()}")
        self.n_features_in_ = X.shape[1]
        self.X_loc_, self.X_scale_ = _GPRegressorBase._location_scale(X)
        Xs = torch.as_tensor((X - self.X_loc_) / self.X_scale_)
        rng = np.random.default_rng(self.random_state)
        m = _num_inducing(self.num_inducing, X.shape[0])
        check_choice(self.multiclass, "multiclass", ("ovr", "softmax"))
        seed = 0 if self.random_state is None else int(self.random_state)
        if self.multiclass == "softmax" and len(self.classes_) > 2:
            Z = Xs[rng.choice(X.shape[0], m, replace=False)]
            model = LogisticSoftmaxSVGP(Z, len(self.classes_), _kernel(self.kernel, X.shape[1]),
                                        num_data=X.shape[0])
            model.fit(Xs, torch.as_tensor(codes), epochs=self.epochs,
                      batch_size=self.batch_size, lr=self.lr, tau=self.tau, decay=self.decay,
                      seed=seed)
            self.models_, self.n_iter_ = [model], self.epochs
            return self
        targets = [codes == 1] if len(self.classes_) == 2 else \
            [codes == k for k in range(len(self.classes_))]
        self.models_ = []
        for target in targets:
            Z = Xs[rng.choice(X.shape[0], m, replace=False)]
            model = PolyaGammaSVGP(Z, _kernel(self.kernel, X.shape[1]), num_data=X.shape[0])
            model.fit(Xs, torch.as_tensor(target.astype(np.float64)), epochs=self.epochs,
                      batch_size=self.batch_size, lr=self.lr, tau=self.tau, decay=self.decay,
                      seed=0 if self.random_state is None else int(self.random_state))
            self.models_.append(model)
        self.n_iter_ = self.epochs
        return self

    def predict_proba(self, X) -> np.ndarray:
        X = check_features(self, X, "models_")
        Xs = torch.as_tensor((X - self.X_loc_) / self.X_scale_)
        if isinstance(self.models_[0], LogisticSoftmaxSVGP):
            return self.models_[0].predict_proba(Xs).numpy()
        with torch.no_grad():
            p = np.stack([m.predict_y(Xs)[0].numpy() for m in self.models_], axis=1)
        if p.shape[1] == 1:
            return np.concatenate([1 - p, p], axis=1)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

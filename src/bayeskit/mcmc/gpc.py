"""Gaussian-process classification by Pólya-gamma Gibbs sampling (function space).

Prior ``f ~ N(m, K)`` on the latent values at the training inputs (fixed kernel
hyperparameters). Whitening ``f = m + L v`` with ``K = L L^T`` turns the model into the
weight-space one with design ``Phi = L``, offset ``m`` and prior ``v ~ N(0, I)``:

    omega | f ~ PG(n, f),     v | omega ~ N(mu, (L^T Omega L + I)^-1),
    (L^T Omega L + I) mu = L^T (kappa - Omega m),

so the same Gaussian step serves both views (its precision has eigenvalues >= 1, well
conditioned whatever K is). Predictions at new inputs use the GP conditional
``f* | f ~ N(m* + K*x L^-T v, K** - K*x K^-1 Kx*)``.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from bayeskit.distributions.gaussian import conditional, gauss_hermite_expectation
from bayeskit.gp.kernels import Kernel, SquaredExponential
from bayeskit.linalg import jittered_cholesky
from bayeskit.mcmc._posterior import PosteriorClassifierMixin, import_arviz
from bayeskit.mcmc.gibbs import BinomialRegressionData, run_gibbs
from bayeskit.sklearn_compat import binary_labels, check_features, check_training_data
from bayeskit.validation import as_tensor, check_choice

__all__ = ["gp_classification_gibbs", "PolyaGammaGPClassifier"]

F64 = torch.float64
_CG_FROM = 200  # solver="auto": CG from this many points (gp_classification_gibbs)


def gp_classification_gibbs(K: torch.Tensor, y: torch.Tensor, *, mean: torch.Tensor | None = None,
                            n_trials: torch.Tensor | float = 1.0, num_samples: int = 500,
                            burn_in: int = 200, num_chains: int = 4,
                            generator: torch.Generator | None = None, solver: str = "auto",
                            **run_kwargs):
    """Sample the latent whitened values ``v`` (``f = m + L v``) of a GP classifier.

    Runs the weight-space sampler with design ``L``, prior ``N(0, I)`` and offset ``m``,
    so chains, checkpoints (``checkpoint=...``) and progress work as in :func:`run_gibbs`.

    Args:
        K: ``[N, N]`` prior covariance at the training inputs. y: ``[N]`` successes.
        mean: ``[N]`` prior mean (default 0). n_trials: trials per point (1: labels).
        solver: how each sweep solves its ``N x N`` system ``K + Omega^-1``: ``"cholesky"``
            (one factorisation per chain and sweep, ``N^3 / 3``), ``"cg"`` (conjugate
            gradients preconditioned by ``K``'s top eigenpairs, to a relative residual of
            1e-10: a few ``[C, N] @ [N, N]`` products per sweep for all chains;
            ``run_gibbs(method="cg")``) or ``"auto"``: ``"cg"`` from ``N = 200``
            (``bench_gpc_gibbs.py --crossover``, 16 chains, a smooth kernel: CG runs at
            0.76x the factorising sweep's speed at N = 100, 1.6x at 200, 2.9x at 400, 6.3x
            at 800). CG's iterations grow with ``K``'s spectrum beyond its top ``N / 4``
            eigenvalues over ``1 / omega``: a rough kernel with a large variance is where
            ``"cholesky"`` may be faster.

    Returns:
        ``(L, v_draws [C, S, N], jitter)`` where ``L`` is the (jittered) Cholesky factor.

    Examples:
        >>> from bayeskit.gp import SquaredExponential
        >>> x = torch.linspace(-2, 2, 6, dtype=torch.float64)[:, None]
        >>> K = SquaredExponential()(x).detach()
        >>> L, v, jitter = gp_classification_gibbs(K, (x[:, 0] > 0).double(), num_samples=100,
        ...                                        burn_in=50, num_chains=2,
        ...                                        generator=torch.Generator().manual_seed(0))
        >>> f = v @ L.mT  # latent draws f = L v: [chains, draws, N]
        >>> f.shape, bool((f[..., 3:].mean() > 0) and (f[..., :3].mean() < 0))
        (torch.Size([2, 100, 6]), True)
    """
    K = as_tensor(K, "K", dtype=F64, ndim=2, min_rows=1)
    check_choice(solver, "solver", ("auto", "cholesky", "cg"))
    if solver == "auto":
        solver = "cg" if K.shape[0] >= _CG_FROM else "cholesky"
    L, jitter = jittered_cholesky(K)
    data = BinomialRegressionData.create(L, y, n_trials, prior_precision=1.0, offset=mean)
    # D = N: the Matheron form, one N x N factorisation per chain and sweep with the prior
    # Gram matrix L L^T = K built once, runs 1.75x faster than the D x D precision
    # L^T diag(w) L + I at N = 569 (bench_gpc_gibbs.py, "precision form" row)
    result = run_gibbs(data, num_samples=num_samples, burn_in=burn_in, num_chains=num_chains,
                       generator=generator, method="matheron" if solver == "cholesky" else "cg",
                       **run_kwargs)
    return L, result.beta, jitter


class PolyaGammaGPClassifier(PosteriorClassifierMixin, ClassifierMixin, BaseEstimator):
    """GP classification with exact Pólya-gamma Gibbs sampling (fixed kernel).

    Parameters:
        kernel: a :class:`bayeskit.gp.Kernel` (default ``SquaredExponential()``); its
            hyperparameters are held fixed.
        num_samples, burn_in, num_chains, random_state: Gibbs run settings.
        metropolis_steps: independence Metropolis steps from the Laplace approximation
            after each sweep (:func:`bayeskit.mcmc.run_gibbs`); on the breast-cancer data
            4 steps give 1.8-2.4x the effective samples per second. 0 for plain Gibbs.
        solver: ``"auto"``, ``"cholesky"`` or ``"cg"``, each sweep's linear solve
            (:func:`gp_classification_gibbs`).

    Examples:
        >>> X = np.linspace(-3, 3, 30)[:, None]
        >>> y = (np.sin(2 * X[:, 0]) > 0).astype(int)
        >>> clf = PolyaGammaGPClassifier(num_samples=100, burn_in=50).fit(X, y)
        >>> clf.predict_proba(X[:2]).shape
        (2, 2)
    """

    def __init__(self, kernel: Kernel | None = None, num_samples: int = 500, burn_in: int = 200,
                 num_chains: int = 4, metropolis_steps: int = 0, solver: str = "auto",
                 random_state: int | None = None):
        self.kernel = kernel
        self.num_samples = num_samples
        self.burn_in = burn_in
        self.num_chains = num_chains
        self.metropolis_steps = metropolis_steps
        self.solver = solver
        self.random_state = random_state

    def _kernel(self) -> Kernel:
        return self.kernel if self.kernel is not None else SquaredExponential()

    def fit(self, X, y):
        X, y = check_training_data(X, y, dtype=np.float64)
        y, self.classes_ = binary_labels(y)  # any two classes; the larger is "1"
        self.n_features_in_ = X.shape[1]
        self.X_train_ = torch.tensor(X, dtype=F64)  # a copy: never a view of the caller's array
        with torch.no_grad():
            K = self._kernel()(self.X_train_)
            seed = 0 if self.random_state is None else int(self.random_state)
            self.L_, v, jitter = gp_classification_gibbs(
                K, torch.as_tensor(y), num_samples=self.num_samples, burn_in=self.burn_in,
                num_chains=self.num_chains, metropolis_steps=self.metropolis_steps,
                solver=self.solver, generator=torch.Generator().manual_seed(seed))
        self.jitter_ = float(jitter)
        self.v_samples_ = v
        self.f_samples_ = (v @ self.L_.mT).numpy()  # latent values at the training inputs
        return self

    def _latent_draws(self, X) -> tuple[torch.Tensor, torch.Tensor]:
        """Per posterior draw, the mean ``[S, M]`` and variance ``[M]`` of ``f*``."""
        X = torch.as_tensor(check_features(self, X, "v_samples_"), dtype=F64)
        with torch.no_grad():
            k = self._kernel()
            v = self.v_samples_.reshape(-1, self.v_samples_.shape[-1])
            # whitened: f = L v, so f* | v has mean K*x L^-T v and the prior-conditional
            # variance (the floor's conditional with q_sqrt=None)
            return conditional(k(self.X_train_, X), self.L_, k.diag(X), v, white=True)

    def _prob_draws(self, X) -> np.ndarray:
        """``[S, M]``: per posterior draw, ``E[sigmoid(f*)]`` over ``f* ~ N(mean, var)``
        by 32-point Gauss-Hermite quadrature."""
        mean, var = self._latent_draws(X)
        return gauss_hermite_expectation(torch.sigmoid, mean, var, 32).numpy()

    def to_arviz(self):
        """Latent values ``f`` at the training inputs as ``arviz.InferenceData``."""
        check_is_fitted(self, "f_samples_")
        return import_arviz().from_dict(posterior={"f": self.f_samples_},
                                        dims={"f": ["point"]})

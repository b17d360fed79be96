"""Shared prediction methods of the sampling-based classifiers."""

from __future__ import annotations

import numpy as np

from bayeskit.sklearn_compat import BinaryClassifierMixin
from bayeskit.validation import as_scalar

__all__ = ["PosteriorClassifierMixin", "import_arviz"]


def import_arviz():
    """``arviz``, or an ``ImportError`` that says how to install it (an optional extra)."""
    try:
        import arviz
    except ImportError as err:
        raise ImportError("posterior summaries and to_arviz need ArviZ, an optional "
                          "dependency: pip install 'bayeskit[mcmc]' (or pip install arviz)"
                          ) from err
    return arviz


class PosteriorClassifierMixin(BinaryClassifierMixin):
    """``predict_proba``, ``predict_interval``, ``predict`` and ``summary`` from draws.

    Subclasses implement ``_prob_draws(X) -> [S, M]`` (``P(y = 1 | x)`` for each posterior
    draw) and ``to_arviz()``.
    """

    def predict_proba(self, X) -> np.ndarray:
        """``[M, 2]``: posterior predictive class probabilities (average over draws)."""
        p1 = self._prob_draws(X).mean(0)
        return np.stack([1 - p1, p1], axis=1)

    def predict_interval(self, X, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Equal-tailed credible interval of ``P(y = 1 | x)`` over the posterior draws."""
        level = as_scalar(level, "level", low=0.0, high=1.0, low_open=True, high_open=True)
        p = self._prob_draws(X)
        return np.quantile(p, (1 - level) / 2, axis=0), np.quantile(p, (1 + level) / 2, axis=0)

    def predict(self, X) -> np.ndarray:
        """The more probable class (labels as given to ``fit``, see ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[(proba[:, 1] >= 0.5).astype(int)]

    def summary(self):
        """ArviZ summary table (mean, sd, HDI, ESS, R-hat) of the sampled quantities, one
        row per named coefficient or latent value (needs the ``mcmc`` extra)."""
        return import_arviz().summary(self.to_arviz())

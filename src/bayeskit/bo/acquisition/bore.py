"""BORE: Bayesian optimisation by density-ratio estimation (Tiao, Klein, Seeger, Bonilla,
Archambeau & Ramos, ICML 2021), minimisation convention.

Label the best ``gamma`` fraction of the observations ``z = 1`` (``y <= tau``, ``tau`` the
``gamma``-quantile) and the rest ``z = 0``. With ``l(x) = p(x | z = 1)`` and ``g(x) = p(x |
z = 0)``, the class probability of a classifier trained on these labels is

    pi(x) = P(z = 1 | x) = gamma l(x) / (gamma l(x) + (1 - gamma) g(x)) = gamma r_gamma(x),

``gamma`` times the ``gamma``-relative density ratio, which under the paper's conditions
orders candidates as expected improvement over ``tau`` does. The classifier is bayeskit's
:class:`~bayeskit.ratio.ClassifierDensityRatio` (an MLP) or any scikit-learn classifier with
``predict_proba``; the next point is the best of many uniform candidates by the MLP's logit
(multi-start L-BFGS-B on request: :meth:`BORE.optimize` says why it is not the default),
other classifiers use random and evolutionary search
(:func:`bayeskit.bo.optim.evolutionary_search`).

Examples:
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.rand(40, 1, dtype=torch.float64, generator=g)
    >>> acq = BORE(X, (X[:, 0] - 0.3) ** 2, gamma=0.25, epochs=200)
    >>> bool(acq(torch.tensor([[0.3]], dtype=torch.float64)) > 0.5)
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bayeskit.bo.optim import evolutionary_search, maximize_box_all, uniform_in_box
from bayeskit.errors import ShapeError
from bayeskit.ratio import ClassifierDensityRatio
from bayeskit.validation import (
    as_bounds,
    as_inputs,
    as_int,
    as_scalar,
    as_tensor,
    check_choice,
)

__all__ = ["BORE"]

F64 = torch.float64


class BORE:
    """The BORE acquisition ``pi(x) = P(y <= tau | x)`` from a classifier.

    Args:
        X: ``[n, D]`` evaluated inputs (float64). y: ``[n]`` their values (minimised).
        gamma: fraction of observations labelled good, in (0, 1) (paper: 0.25); at least
            one point is good and one bad (ties in ``y`` broken by order).
        classifier: ``None`` (the MLP) or a scikit-learn classifier with ``predict_proba``.
            In 6-10 dimensions a random forest did better than the MLP
            (``RandomForestClassifier(n_estimators=200, min_samples_leaf=2)``, 200
            evaluations: Levy-10 median regret 9.3 against 36.5, Hartmann-6 0.20 against
            0.30); in 2-D the MLP (Branin 0.0002 against 0.014): RESULTS.md, bench_bore.py.
        hidden, epochs, lr: the MLP's widths and full-batch Adam training (no hold-out:
            the samples are small).
        activation: the MLP's hidden activation. Tanh by default: on Branin (50
            evaluations, 3 seeds, ``benchmarks/bench_bore.py``) the median regret is 0.003
            against 0.24 with ReLU; on Hartmann-6 both give 1.7.
        seed: the MLP's initialisation.

    Calling the acquisition on ``x`` ``[..., D]`` gives ``pi(x)`` ``[...]``.
    """

    def __init__(self, X, y, *, gamma: float = 0.25, classifier=None,
                 hidden: tuple[int, ...] = (32, 32), epochs: int = 200, lr: float = 1e-2,
                 seed: int = 0, activation: type[nn.Module] = nn.Tanh):
        X = as_inputs(X, "X", dtype=F64, min_rows=2)
        y = as_tensor(y, "y", dtype=F64, ndim=1)
        if len(y) != len(X):
            raise ShapeError(f"X has {len(X)} rows and y {len(y)} values")
        self.gamma = as_scalar(gamma, "gamma", low=0.0, high=1.0, low_open=True,
                               high_open=True)
        n = len(y)
        n_good = min(max(1, math.ceil(self.gamma * n)), n - 1)
        order = torch.argsort(y, stable=True)
        good, bad = order[:n_good], order[n_good:]
        self.tau = float(y[order[n_good - 1]])
        self.log_odds = math.log(n_good / (n - n_good))
        self.ratio = ClassifierDensityRatio(
            hidden=hidden, epochs=as_int(epochs, "epochs", positive=True), lr=lr,
            val_fraction=0.0, seed=as_int(seed, "seed", nonnegative=True),
            classifier=classifier, min_samples=1, activation=activation).fit(X[good], X[bad])

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """``log pi / (1 - pi)`` at ``x`` ``[..., D]`` (differentiable for the MLP)."""
        return self.ratio.log_ratio_tensor(x) + self.log_odds

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(self.logit(x))

    def optimize(self, bounds: torch.Tensor, *, generator: torch.Generator | None = None,
                 method: str = "random", num_restarts: int = 4, raw_samples: int | None = None,
                 max_iter: int = 50, exclude: torch.Tensor | None = None,
                 min_distance: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x [D], pi(x) [])``: the best point in the box (by the logit: the same order
        as ``pi``, without the sigmoid's flat tails).

        ``method="random"`` (default): the best of ``raw_samples`` (default 2048) uniform
        candidates. ``"lbfgs"``: multi-start L-BFGS-B on the MLP's logit (``num_restarts``
        starts from the best of ``raw_samples``, default 512, uniform points). Measured
        (``benchmarks/bench_bore.py --bore-method lbfgs``, RESULTS.md): the refined
        maximiser of a small-sample classifier sits on the box's boundary in 97-100 % of
        the Hartmann-6 proposals (the logit keeps rising along directions the few good
        points do not pin down), and the loop stalls there: median simple regret after 200
        evaluations 0.52 against 0.30 with random candidates (5 seeds; random search 0.55),
        at 4.6x the time. Classifiers without gradients always use random (512 points)
        and evolutionary search.

        Points within ``min_distance`` (max norm) of a row of ``exclude`` (e.g. the
        evaluated inputs) are skipped for the next best, or a uniform draw when every
        candidate is excluded: a classifier is constant near its maximiser, and
        re-evaluating a point teaches it nothing."""
        check_choice(method, "method", ("random", "lbfgs"))
        if raw_samples is None:
            raw_samples = 2048 if method == "random" and self.ratio.differentiable else 512
        if self.ratio.differentiable and method == "lbfgs":
            xs, vs = maximize_box_all(self.logit, bounds, num_restarts=num_restarts,
                                      raw_samples=raw_samples, generator=generator,
                                      max_iter=max_iter)
        elif self.ratio.differentiable:
            xs = uniform_in_box(as_int(raw_samples, "raw_samples", positive=True),
                                as_bounds(bounds), generator=generator)
            with torch.no_grad():
                vs = self.logit(xs)
        else:
            x, v = evolutionary_search(lambda u: self.logit(u), bounds, generator=generator,
                                       raw_samples=raw_samples)
            xs, vs = x[None], v[None]
        order = torch.argsort(vs, descending=True)
        for i in order.tolist():
            if exclude is None or len(exclude) == 0 or bool(
                    ((exclude - xs[i]).abs().amax(-1) > min_distance).all()):
                return xs[i], self(xs[i][None])[0]
        x = uniform_in_box(1, bounds, generator=generator)[0]
        return x, self(x[None])[0]

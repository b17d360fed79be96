"""Sweep of the public API with invalid input (issue 14).

For every entry point in the registry below (a valid call of each public function and
class of the numeric packages), every argument is replaced in turn by each invalid value
that its kind of argument can never accept (arrays: None, a string, NaN, inf, a complex
array, a wrong number of dimensions, an empty array; numbers: None, a string, NaN, inf, a
boolean, a list), and the outcome is classified:

- ``clear``: a ``bayeskit.errors`` exception (the contract);
- ``opaque``: any other exception (a torch/LAPACK/Python internal error);
- ``nan``: returned non-finite numbers;
- ``accepted``: returned finite output for invalid input;
- ``hang``: still running after 60 s.

Run ``python tests/sweep_invalid_inputs.py`` for the table;
``tests/test_sweep.py`` runs it in ``make test`` and checks the clear rate.
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

from bayeskit.errors import BayeskitError

F64 = torch.float64


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(12, 2, dtype=F64, generator=g)
    y = torch.sin(4 * X[:, 0])
    A = torch.randn(4, 4, dtype=F64, generator=g)
    L = torch.linalg.cholesky(A @ A.T + 4 * torch.eye(4, dtype=F64))
    return X, y, L


# what torch cannot read as one sequence of integers (it would raise its own errors)
INDICES_UNREADABLE = {"set": {1, 2}, "None entry": [1, None], "nested": [[0, 1]],
                      "strings": ["a"], "beyond int64": 2**70}

ARRAY_BAD = {
    "None": None, "string": "abc", "NaN array": "nan", "inf array": "inf",
    "complex array": "complex", "wrong ndim": "ndim", "empty": "empty",
}
NUMBER_BAD = {"None": None, "string": "0.5", "NaN": math.nan, "inf": math.inf,
              "boolean": True, "list": [1.0, 2.0]}
#: which invalid values each kind of argument is swept with: ``batched`` arguments take any
#: leading dimensions (so another ndim is valid), ``param`` arguments are numbers or
#: broadcastable arrays (so a list is valid), ``optional`` numbers accept None (the
#: default), ``values`` are observations where NaN/inf are recorded as failures by design,
#: ``indices`` may be empty (one sequence: nested ones are refused), ``point`` is where a
#: density/CDF is evaluated (inf is a valid point: log p(inf) = -inf, F(inf) = 1)
BAD = {
    "array": ARRAY_BAD,
    "batched": {k: v for k, v in ARRAY_BAD.items() if k != "wrong ndim"},
    "batched-empty-ok": {k: v for k, v in ARRAY_BAD.items() if k not in ("wrong ndim", "empty")},
    "values": {k: v for k, v in ARRAY_BAD.items() if k in ("None", "string", "complex array")},
    "indices": {"None": None, "string": "abc", "complex array": "complex",
                **INDICES_UNREADABLE},
    "optional-indices": {"string": "abc", "complex array": "complex", **INDICES_UNREADABLE},
    "number": NUMBER_BAD,
    "param": {k: v for k, v in NUMBER_BAD.items() if k != "list"},
    "point": {k: v for k, v in NUMBER_BAD.items() if k not in ("list", "inf")},
    "optional": {k: v for k, v in NUMBER_BAD.items() if k != "None"},
    "optional-array": {k: v for k, v in ARRAY_BAD.items() if k != "None"},
    # a model, kernel, module or callable argument; "optional-object" also takes None
    "object": {"None": None, "string": "abc", "number": 1.5},
    "optional-object": {"string": "abc", "number": 1.5},
    # one of a fixed set of names
    "choice": {"None": None, "number": 1.5, "unknown name": "no-such-choice"},
    "optional-choice": {"number": 1.5, "unknown name": "no-such-choice"},
    # a file or folder path, or a text; "optional-path" also takes None
    "path": {"None": None, "number": 1.5, "empty string": ""},
    "optional-path": {"number": 1.5, "empty string": ""},
    "text": {"None": None, "number": 1.5},
    # a number whose infinity is passed on (sums of losses)
    "value-number": {k: v for k, v in NUMBER_BAD.items() if k != "inf"},
    # a parameter whose range the caller checks (NaN/inf passed on)
    "param-type": {k: v for k, v in NUMBER_BAD.items() if k in ("None", "string", "boolean")},
    # layer-1 checks of one property of a tensor the library already converted
    "tensor-type": {k: v for k, v in ARRAY_BAD.items() if k in ("None", "string",
                                                                 "complex array")},
    "square": {k: v for k, v in ARRAY_BAD.items() if k in ("None", "string", "complex array",
                                                            "wrong ndim")},
    "finite": {k: v for k, v in ARRAY_BAD.items() if k not in ("wrong ndim", "empty")},
    "rows": {k: v for k, v in ARRAY_BAD.items() if k in ("None", "string", "complex array",
                                                          "empty")},
    # an optional array of any leading shape (empty too)
    "optional-batched": {k: v for k, v in ARRAY_BAD.items() if k not in ("None", "wrong ndim",
                                                                          "empty")},
    # a batch shape that must broadcast against another
    "shape": {"None": None, "string": "abc", "not broadcasting": (4,)},
    # class labels: two classes, numbers
    "labels": {"None": None, "string": "abc", "NaN array": "nan", "complex array": "complex",
               "wrong ndim": "ndim", "empty": "empty", "one class": "one-class"},
}


def _bad_array(like, kind):
    a = torch.as_tensor(like).clone(memory_format=torch.contiguous_format)
    if kind in ("nan", "inf"):
        a = a.double().contiguous()
        a.view(-1)[0] = math.nan if kind == "nan" else math.inf
        return a
    if kind == "complex":
        return a.numpy().astype(np.complex128) + 1j
    if kind == "ndim":
        return a.reshape(-1)[None, None, None] if a.dim() >= 1 else a[None, None, None]
    if kind == "one-class":
        return np.zeros_like(np.asarray(like))
    if kind == "empty":
        return a.reshape(-1)[:0].reshape(0, *a.shape[1:]) if a.dim() else a.reshape(0)
    return kind


def registry() -> dict[str, tuple[Callable, dict[str, tuple[str, object]]]]:
    """name -> (function, {argument: (kind, valid value)}); kind is "array" or "number"."""
    from bayeskit import data as data_mod
    from bayeskit import distributions as dists
    from bayeskit import linalg, ratio, training
    from bayeskit.bo import (
        BayesianOptimizer,
        LogExpectedImprovement,
        UpperConfidenceBound,
        knowledge_gradient_discrete,
        knowledge_gradient_mc,
        maximize_box,
    )
    from bayeskit.bo.acquisition import BORE, best_observed_inputs
    from bayeskit.bo.optim import evolutionary_search
    from bayeskit.distributions.flow_layers import MaskedAutoregressiveSpline, SplineCoupling
    from bayeskit.distributions.gaussian import (
        condition_whitened,
        conditional,
        diagonal_gauss_kl,
        gauss_kl,
        sample_mvn,
        whitened_sparse_terms,
        whitened_variance_reduction,
    )
    from bayeskit.gp import (
        GPR,
        SGPR,
        SVGP,
        LogisticSoftmaxSVGP,
        Matern,
        PolyaGammaSVGP,
        SquaredExponential,
        inducing,
    )
    from bayeskit.mcmc import BinomialRegressionData, run_gibbs
    from bayeskit.nn import mlp
    from bayeskit.plotting import Grid, mgrid, ogrid
    from bayeskit.ratio import (
        ULSIF,
        estimate_js,
        estimate_kl,
        kl_forward,
        monte_carlo_f_divergence,
        monte_carlo_kl,
        nwj_lower_bound,
    )
    from bayeskit.vae import BernoulliDecoder, FlowEncoder, GaussianEncoder, fit

    X, y, L = _data()
    U = 0.1 * torch.ones(4, 2, dtype=F64)
    gp = GPR(X, y)
    data = BinomialRegressionData.create(torch.cat([torch.ones(12, 1, dtype=F64), X], 1),
                                         (y > 0).double())
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=F64)
    A = lambda v: ("array", v)  # noqa: E731
    N = lambda v: ("number", v)  # noqa: E731
    B = lambda v: ("batched", v)  # noqa: E731
    P = lambda v: ("param", v)  # noqa: E731

    def vae_fit(data):
        from bayeskit.vae import VAE

        model = VAE(GaussianEncoder(4, 2, (8,)), BernoulliDecoder(2, 4, (8,)))
        return fit(model, data, epochs=1, progress=False)

    return {
        "cholesky_update": (linalg.cholesky_update, {"chol": A(L), "u": B(U[:, 0]),
                                                     "multiplier": P(0.5)}),
        "cholesky_update_lowrank": (linalg.cholesky_update_lowrank,
                                    {"chol": A(L), "U": A(U), "multiplier": P(0.5)}),
        "cholesky_append": (linalg.cholesky_append,
                            {"chol": A(L), "cross": A(U[:, :1]),
                             "corner": B(torch.full((1, 1), 3.0, dtype=F64))}),
        "cholesky_delete": (linalg.cholesky_delete, {"chol": A(L), "indices": ("indices", [1])}),
        "cholesky_solve": (linalg.cholesky_solve, {"chol": A(L), "B": A(U)}),
        "cholesky_logdet": (linalg.cholesky_logdet, {"chol": A(L)}),
        "cholesky_inverse": (linalg.cholesky_inverse,
                             {"chol": A(L), "backend": ("optional-choice", "blocked")}),
        "lapack_backend": (linalg.lapack_backend,
                           {"A": ("square", L), "backend": ("optional-choice", None)}),
        "solve_lower": (linalg.solve_lower, {"chol": A(L), "B": A(U)}),
        "cholesky_plus_diagonal": (linalg.cholesky_plus_diagonal,
                                   {"K": A(L @ L.T), "diagonal": B(torch.ones(4, dtype=F64))}),
        "solve_plus_diagonal": (linalg.solve_plus_diagonal,
                                {"K": A(L @ L.T), "diagonal": B(torch.ones(4, dtype=F64)),
                                 "rhs": B(torch.ones(4, dtype=F64)),
                                 "tol": ("optional", 1e-10), "max_iter": N(10)}),
        "LowRankPreconditioner": (linalg.LowRankPreconditioner,
                                  {"lam": A(torch.tensor([2.0, 1.0], dtype=F64)),
                                   "V": A(torch.eye(4, 2, dtype=F64))}),
        "LowRankPreconditioner.inverse": (
            lambda d: linalg.LowRankPreconditioner(torch.tensor([2.0], dtype=F64),
                                                   torch.ones(4, 1, dtype=F64)).inverse(d),
            {"d": B(torch.ones(4, dtype=F64))}),
        "identity_multiple": (linalg.identity_multiple, {"A": ("square", L)}),
        "WeightedGram": (linalg.WeightedGram, {"A": A(torch.ones(4, 2, dtype=F64))}),
        "WeightedGram.__call__": (
            lambda w: linalg.WeightedGram(torch.ones(4, 2, dtype=F64))(w),
            {"w": B(torch.ones(4, dtype=F64))}),
        "low_rank_eigenpairs": (linalg.low_rank_eigenpairs,
                                {"K": A(L @ L.T), "rank": ("optional", 2),
                                 "above": ("optional", 0.5)}),
        "jittered_cholesky": (linalg.jittered_cholesky, {"A": A(L @ L.T)}),
        "stabilised_cholesky": (linalg.stabilised_cholesky,
                                {"K": A(L @ L.T), "relative_jitter": N(1e-6)}),
        "conditional": (conditional, {"Kmn": A(U), "Lm": A(L),
                                      "Knn": B(torch.ones(2, dtype=F64)),
                                      "f": B(torch.zeros(4, dtype=F64))}),
        "gauss_kl": (gauss_kl, {"q_mu": B(torch.zeros(4, dtype=F64)), "q_sqrt": B(L)}),
        "diagonal_gauss_kl": (diagonal_gauss_kl, {"mean": B(torch.zeros(2, 4, dtype=F64)),
                                                  "log_variance": B(torch.zeros(2, 4, dtype=F64))}),
        "whitened_variance_reduction": (whitened_variance_reduction,
                                        {"gram": A(L @ L.T), "Lm": A(L), "q_sqrt": A(L)}),
        "whitened_sparse_terms": (whitened_sparse_terms,
                                  {"Kmm": A(L @ L.T), "Lm": A(L),
                                   "Kmn": A(torch.ones(4, 6, dtype=F64)),
                                   "q_mu": A(torch.zeros(4, dtype=F64)), "q_sqrt": A(L)}),
        "sample_mvn": (sample_mvn, {"mean": B(torch.zeros(4, dtype=F64)), "scale_tril": B(L)}),
        "sample_polya_gamma": (dists.sample_polya_gamma, {"b": P(1.0), "c": P(0.5)}),
        "polya_gamma_mean": (dists.polya_gamma_mean, {"b": P(1.0), "c": P(0.5)}),
        "polya_gamma_variance": (dists.polya_gamma_variance, {"b": P(1.0), "c": P(0.5)}),
        "polya_gamma_log_prob": (dists.polya_gamma_log_prob, {"value": ("point", 0.3), "b": P(1.0),
                                                        "c": P(0.5)}),
        "polya_gamma_cdf": (dists.polya_gamma_cdf, {"value": ("point", 0.3), "b": P(1.0),
                                                     "c": P(0.5)}),
        "polya_gamma_log_cdf": (dists.polya_gamma_log_cdf, {"value": ("point", 0.3), "b": P(1.0),
                                                      "c": P(0.5)}),
        "PolyaGamma": (dists.PolyaGamma, {"b": P(1.0), "c": P(0.5)}),
        "Flow": (dists.Flow, {"dim": N(2), "num_layers": N(1)}),
        "fit_flow": (lambda samples, epochs: dists.fit_flow(dists.Flow(2, hidden=(4,)), samples,
                                                      epochs=epochs),
                     {"samples": A(torch.randn(40, 2)), "epochs": N(1)}),
        # None is valid for the noise and the mean (initialised from the data's scale)
        "GPR": (GPR, {"X": A(X), "y": A(y), "noise_variance": ("optional", 0.1),
                      "mean": ("optional", 0.0)}),
        "GPR.predict_f": (gp.predict_f, {"X": A(X[:3])}),
        "GPR.predict_y": (gp.predict_y, {"X": A(X[:3])}),
        "GPR.fit": (lambda max_iter, restarts: GPR(X, y).fit(max_iter=max_iter,
                                                             restarts=restarts),
                    {"max_iter": N(5), "restarts": N(0)}),
        "SGPR": (SGPR, {"X": A(X), "y": A(y), "inducing_points": A(X[:4]),
                        "noise_variance": ("optional", 0.1), "chunk_size": N(100)}),
        "SVGP": (SVGP, {"inducing_points": A(X[:4]), "num_data": N(12),
                        "noise_variance": N(0.1)}),
        "SVGP.fit": (lambda X_, y_, epochs, batch_size: SVGP(X[:4], num_data=12).fit(
            X_, y_, epochs=epochs, batch_size=batch_size),
            {"X_": A(X), "y_": A(y), "epochs": N(1), "batch_size": N(6)}),
        "SquaredExponential": (SquaredExponential, {"lengthscale": P(1.0), "variance": N(1.0)}),
        "Matern": (Matern, {"nu": N(2.5), "lengthscale": P(1.0)}),
        "inducing.greedy_variance": (lambda X_, M, quality, first: inducing.greedy_variance(
            X_, M, SquaredExponential(), quality=quality, first=first),
            {"X_": A(X), "M": N(3), "quality": ("optional-array", torch.ones(12, dtype=F64)),
             "first": ("optional-indices", torch.tensor([0, 1]))}),
        "inducing.kmeans": (inducing.kmeans, {"X": A(X), "M": N(3)}),
        "BinomialRegressionData.create": (BinomialRegressionData.create,
                                          {"Phi": A(X), "y": A((y > 0).double()),
                                           "prior_precision": P(1.0)}),
        "run_gibbs": (lambda num_samples, burn_in, num_chains, metropolis_steps: run_gibbs(
            data, num_samples=num_samples, burn_in=burn_in, num_chains=num_chains,
            metropolis_steps=metropolis_steps),
            {"num_samples": N(5), "burn_in": N(2), "num_chains": N(2),
             "metropolis_steps": N(1)}),
        "knowledge_gradient_discrete": (knowledge_gradient_discrete,
                                        {"mean": B(torch.zeros(3, dtype=F64)),
                                         "sigma_tilde": B(torch.ones(3, dtype=F64))}),
        "knowledge_gradient_mc": (lambda x, bounds_, num_fantasies: knowledge_gradient_mc(
            gp, x, bounds_, num_fantasies=num_fantasies, raw_samples=16),
            {"x": A(X[:2]), "bounds_": A(bounds), "num_fantasies": N(4)}),
        "LogExpectedImprovement": (lambda best_f: LogExpectedImprovement(gp, best_f=best_f),
                                   {"best_f": ("optional", 0.0)}),
        "LogExpectedImprovement()": (LogExpectedImprovement(gp),
                                     {"X": ("batched-empty-ok", X[:3, None])}),
        "UpperConfidenceBound": (lambda beta: UpperConfidenceBound(gp, beta=beta),
                                 {"beta": N(2.0)}),
        "maximize_box": (lambda bounds_, num_restarts: maximize_box(
            lambda x: -(x ** 2).sum(-1), bounds_, num_restarts=num_restarts, raw_samples=16),
            {"bounds_": A(bounds), "num_restarts": N(2)}),
        "BayesianOptimizer": (lambda bounds_, n_init, inducing_selection: BayesianOptimizer(
            lambda x: float(np.sum(x ** 2)), bounds_, n_init=n_init, progress=False,
            inducing_selection=inducing_selection),
            {"bounds_": A(bounds), "n_init": ("optional", 3),
             "inducing_selection": ("choice", "variance")}),
        "BayesianOptimizer.tell": (lambda X_, y_: BayesianOptimizer(
            lambda x: 0.0, bounds, progress=False).tell(X_, y_),
            {"X_": A(X[:2]), "y_": ("values", y[:2])}),
        "BayesianOptimizer.recommend": (lambda neighbours: BayesianOptimizer(
            lambda x: 0.0, bounds, progress=False).recommend(neighbours=neighbours),
            {"neighbours": ("optional", 4)}),
        "ULSIF(relative_alpha).fit": (lambda relative_alpha: ULSIF(
            n_centers=5, folds=2, relative_alpha=relative_alpha).fit(X, X + 0.1),
            {"relative_alpha": N(0.5)}),
        "estimate_kl(method)": (lambda method: estimate_kl(X, X + 0.1, method=method),
                                {"method": ("choice", "ulsif")}),
        "ULSIF.fit": (lambda x_p, x_q: ULSIF(n_centers=5, folds=2).fit(x_p, x_q),
                      {"x_p": A(X), "x_q": A(X + 0.1)}),
        "estimate_kl": (lambda x_p, x_q: estimate_kl(x_p, x_q, method="ulsif"),
                        {"x_p": A(X), "x_q": A(X + 0.1)}),
        "estimate_js": (lambda x_p, x_q: estimate_js(x_p, x_q, epochs=5),
                        {"x_p": A(X), "x_q": A(X + 0.1)}),
        # log-ratios of samples: any shape (flattened), so another ndim is valid
        "monte_carlo_kl": (monte_carlo_kl, {"log_ratio_at_p": B(y)}),
        "monte_carlo_f_divergence": (lambda log_ratio_at_q: monte_carlo_f_divergence(
            kl_forward, log_ratio_at_q), {"log_ratio_at_q": B(y)}),
        "nwj_lower_bound": (nwj_lower_bound, {"log_ratio_at_p": B(y), "log_ratio_at_q": B(y)}),
        "mlp": (lambda n_in, n_out: mlp((n_in, 4, n_out)), {"n_in": N(2), "n_out": N(1)}),
        "mgrid": (lambda num: mgrid((0, 1), num=num), {"num": N(5)}),
        "vae.fit": (vae_fit, {"data": A(torch.rand(10, 4))}),
        # issue 16, 17, 19 entry points
        "Flow(nsf, context)": (lambda dim, context_dim, bins, bound: dists.Flow(
            dim, kind="nsf", context_dim=context_dim, bins=bins, bound=bound, hidden=(4,)),
            {"dim": N(2), "context_dim": N(1), "bins": N(4), "bound": N(3.0)}),
        "dists.fit_flow(context)": (lambda samples, context: dists.fit_flow(
            dists.Flow(2, kind="nsf-coupling", context_dim=1, hidden=(4,)), samples,
            context=context, epochs=1), {"samples": A(torch.randn(40, 2)),
                                         "context": A(torch.randn(40, 1))}),
        "Flow.log_prob(context)": (lambda x, context: dists.Flow(
            2, kind="nsf", context_dim=1, hidden=(4,)).log_prob(x, context),
            {"x": B(torch.randn(5, 2)), "context": B(torch.randn(5, 1))}),
        "MaskedAutoregressiveSpline": (lambda dim, bins, bound: MaskedAutoregressiveSpline(
            dim, (4,), bins=bins, bound=bound), {"dim": N(2), "bins": N(4), "bound": N(3.0)}),
        "SplineCoupling": (lambda dim, bins: SplineCoupling(dim, (4,), bins=bins),
                           {"dim": N(2), "bins": N(4)}),
        "FlowEncoder": (lambda num_flows, bins: FlowEncoder(GaussianEncoder(4, 2, (8,)),
                                                           num_flows, (4,), "nsf", bins),
                        {"num_flows": N(1), "bins": N(4)}),
        "PolyaGammaSVGP": (PolyaGammaSVGP, {"inducing_points": A(X[:4]), "num_data": N(12),
                                            "jitter": N(1e-6)}),
        "PolyaGammaSVGP.fit": (lambda X_, y_, trials, epochs, tau, decay: PolyaGammaSVGP(
            X[:4], num_data=12).fit(X_, y_, trials, epochs=epochs, batch_size=6, tau=tau,
                                    decay=decay),
            {"X_": A(X), "y_": A((y > 0).double()),
             "trials": ("optional-array", torch.ones(12, dtype=F64)),
             "epochs": N(1), "tau": N(1.0), "decay": N(0.6)}),
        "PolyaGammaSVGP.natural_gradient_step": (
            lambda X_, y_, gamma: PolyaGammaSVGP(X[:4], num_data=12).natural_gradient_step(
                X_, y_, gamma=gamma), {"X_": A(X), "y_": A((y > 0).double()),
                                        "gamma": N(0.5)}),
        "PolyaGammaSVGP.hybrid_step": (_pg_hybrid_step, {"X_": A(X), "y_": A((y > 0).double()),
                                                          "gamma": N(0.5)}),
        "BORE": (lambda X_, y_, gamma, epochs: BORE(X_, y_, gamma=gamma, epochs=epochs),
                 {"X_": A(X), "y_": A(y), "gamma": N(0.25), "epochs": N(5)}),
        "evolutionary_search": (lambda bounds_, raw_samples, generations: evolutionary_search(
            lambda x: -(x ** 2).sum(-1), bounds_, raw_samples=raw_samples,
            generations=generations), {"bounds_": A(bounds), "raw_samples": N(16),
                                       "generations": N(1)}),
        "BayesianOptimizer(bore)": (lambda gamma: BayesianOptimizer(
            lambda x: 0.0, bounds, acquisition="bore", gamma=gamma, progress=False),
            {"gamma": N(0.25)}),
        # data loaders, training helpers, grids, f-divergence generators
        "load_co2": (data_mod.load_co2, {"train_fraction": N(0.8)}),
        "load_digits_split": (data_mod.load_digits_split,
                              {"test_fraction": N(0.2), "seed": N(0)}),
        # element-wise: any shape (empty too) is valid
        "static_binarize": (data_mod.static_binarize,
                            {"x": ("batched-empty-ok", torch.rand(3, 4)), "seed": N(0)}),
        "dynamic_binarize": (data_mod.dynamic_binarize,
                             {"x": ("batched-empty-ok", torch.rand(3, 4))}),
        "make_executor": (lambda n_tasks: training.make_executor("serial", n_tasks),
                          {"n_tasks": N(2)}),
        "progress_bar": (lambda total, initial: training.progress_bar(
            total, desc="sweep", progress=False, initial=initial),
            {"total": N(10), "initial": N(0)}),
        "epoch_generator": (training.epoch_generator, {"seed": N(0), "epoch": N(1)}),
        "make_optimizer": (lambda lr: training.make_optimizer(
            "adam", [torch.nn.Parameter(torch.zeros(2))], lr), {"lr": N(0.01)}),
        "Grid.from_ranges": (lambda num: Grid.from_ranges((0, 1), (0, 2), num=num),
                             {"num": P(4)}),  # one count per axis is valid too
        "ogrid": (lambda num: ogrid((0, 1), num=num), {"num": N(4)}),
        "amari_alpha": (lambda logu, alpha: ratio.amari_alpha(logu, alpha),
                        {"logu": ("values", torch.zeros(3, dtype=F64)), "alpha": N(0.5)}),
        "kl_forward": (ratio.kl_forward, {"logu": ("values", torch.zeros(3, dtype=F64))}),
        "variational_f_divergence": (lambda x_p, x_q, steps: ratio.variational_f_divergence(
            x_p, x_q, steps=steps, hidden=(4,)),
            {"x_p": A(torch.randn(20, 1, dtype=F64)), "x_q": A(torch.randn(20, 1, dtype=F64)),
             "steps": N(2)}),
        # sparse conditioning (issue 17): the floor function and the posterior's method
        "condition_whitened": (lambda f, q_sqrt, H, resid, noise: condition_whitened(
            f, q_sqrt, H, resid, noise),
            {"f": B(torch.zeros(4, dtype=F64)), "q_sqrt": A(L), "H": A(U.T),
             "resid": B(torch.ones(2, dtype=F64)), "noise": N(0.1)}),
        "GPPosterior.condition_on_observations (sparse)": (
            lambda Xc, yc, noise: SGPR(X, y, X[:4]).posterior().condition_on_observations(
                Xc, yc, noise=noise), {"Xc": A(X[:2] + 0.05), "yc": A(y[:2]),
                                       "noise": ("optional", 0.1)}),
        "best_observed_inputs": (lambda limit: best_observed_inputs(gp, limit),
                                 {"limit": N(3)}),
        "LogisticSoftmaxSVGP.posterior": (
            lambda latent: LogisticSoftmaxSVGP(X[:4], 3, num_data=12).posterior(latent),
            {"latent": N(1)}),
        "KLIEP.fit": (lambda x_p, x_q: ratio.KLIEP(n_centers=5, folds=2, iterations=5).fit(
            x_p, x_q), {"x_p": A(torch.randn(20, 1, dtype=F64)),
                        "x_q": A(torch.randn(20, 1, dtype=F64))}),
        **_rest_of_public_api(X, y, L, gp, data, bounds),
    }


def _rest_of_public_api(X, y, L, gp, data, bounds):
    """The remaining public names of every package's ``__all__`` (and of
    ``bayeskit.validation``), each swept through the arguments a user passes."""
    from bayeskit import bo, mcmc, plotting, ratio, training, vae, validation
    from bayeskit import data as data_mod
    from bayeskit import gp as gp_mod
    from bayeskit.bo.acquisition import fantasy_normals
    from bayeskit.bo.test_functions import levy
    from bayeskit.cli.reproduce import Context, reproduce
    from bayeskit.distributions.polyagamma import envelope_acceptance_rate

    A = lambda v: ("array", v)  # noqa: E731
    N = lambda v: ("number", v)  # noqa: E731
    O = lambda v: ("object", v)  # noqa: E731
    B = lambda v: ("batched", v)  # noqa: E731
    P = lambda v: ("param", v)  # noqa: E731
    C = lambda v: ("choice", v)  # noqa: E731
    PATH = lambda v: ("path", v)  # noqa: E731
    Xnp, labels = X.numpy(), (y > 0).long().numpy()
    se = gp_mod.SquaredExponential()
    tmp = tempfile.mkdtemp(prefix="bayeskit-sweep-")

    def tiny_vae():
        return vae.VAE(vae.GaussianEncoder(4, 2, (8,)), vae.BernoulliDecoder(2, 4, (8,)))

    def linear_module():
        return torch.nn.Linear(1, 1, dtype=F64)

    def quadratic(module):
        return lambda: ((module.weight - 1.0) ** 2).sum() + (module.bias ** 2).sum()

    return {
        # bo
        "DiscreteKnowledgeGradient": (lambda model, alternatives: bo.DiscreteKnowledgeGradient(
            model, alternatives), {"model": O(gp), "alternatives": A(X[:3])}),
        "DiscreteKnowledgeGradient()": (bo.DiscreteKnowledgeGradient(gp, X[:3]),
                                        {"X": ("batched-empty-ok", X[:2, None])}),
        "OneShotKnowledgeGradient(q=2)": (
            lambda num_fantasies, fantasies: bo.OneShotKnowledgeGradient(
                gp, bounds, num_fantasies=num_fantasies, q=2, fantasies=fantasies),
            {"num_fantasies": N(4), "fantasies": C("antithetic")}),
        "OneShotKnowledgeGradient": (lambda model, bounds_, num_fantasies, q:
                                     bo.OneShotKnowledgeGradient(model, bounds_,
                                                                 num_fantasies=num_fantasies,
                                                                 q=q),
                                     {"model": O(gp), "bounds_": A(bounds),
                                      "num_fantasies": N(4), "q": N(1)}),
        "optimize_discrete_kg": (lambda bounds_, num_alternatives, num_restarts:
                                 bo.optimize_discrete_kg(gp, bounds_,
                                                         num_alternatives=num_alternatives,
                                                         raw_samples=16,
                                                         num_restarts=num_restarts),
                                 {"bounds_": A(bounds), "num_alternatives": ("optional", 8),
                                  "num_restarts": N(1)}),
        "posterior_minimum": (lambda model, bounds_, num_restarts, raw_samples:
                              bo.posterior_minimum(model, bounds_, num_restarts=num_restarts,
                                                   raw_samples=raw_samples),
                              {"model": O(gp), "bounds_": A(bounds), "num_restarts": N(2),
                               "raw_samples": N(16)}),
        "minimize_box": (lambda fun, bounds_, num_restarts: bo.minimize_box(
            fun, bounds_, num_restarts=num_restarts, raw_samples=16),
            {"fun": O(lambda x: (x ** 2).sum(-1)), "bounds_": A(bounds), "num_restarts": N(2)}),
        "optimize_acquisition": (lambda acquisition, bounds_, q, num_restarts, raw_samples,
                                 max_iter: bo.optimize_acquisition(
                                     acquisition, bounds_, q=q, num_restarts=num_restarts,
                                     raw_samples=raw_samples, max_iter=max_iter),
                                 {"acquisition": O(bo.UpperConfidenceBound(gp)),
                                  "bounds_": A(bounds), "q": N(1), "num_restarts": N(2),
                                  "raw_samples": N(16), "max_iter": N(5)}),
        "fantasy_normals": (fantasy_normals, {"num_fantasies": N(4),
                                              "kind": C("antithetic")}),
        # gp: kernels, means, likelihoods, the posterior
        "as_posterior": (gp_mod.as_posterior, {"model": O(gp)}),
        "RationalQuadratic": (gp_mod.RationalQuadratic, {"alpha": N(1.0), "lengthscale": P(1.0),
                                                         "variance": N(1.0)}),
        "Periodic": (gp_mod.Periodic, {"period": N(1.0), "lengthscale": P(1.0),
                                       "variance": N(1.0)}),
        "Linear": (gp_mod.Linear, {"variance": N(1.0), "offset": ("optional", 0.5)}),
        "Scale": (gp_mod.Scale, {"kernel": O(se), "variance": N(1.0)}),
        "Sum": (lambda a, b: gp_mod.Sum(a, b), {"a": O(se), "b": O(gp_mod.Linear())}),
        "Product": (lambda a, b: gp_mod.Product(a, b), {"a": O(se), "b": O(gp_mod.Linear())}),
        # inputs of any leading shape; an empty set of points gives an empty matrix
        "Kernel()": (lambda X_, X2: se(X_, X2), {"X_": ("batched-empty-ok", X),
                                                 "X2": ("optional-batched", X[:3])}),
        "ZeroMean()": (lambda X_: gp_mod.ZeroMean()(X_), {"X_": ("batched-empty-ok", X)}),
        "ConstantMean": (gp_mod.ConstantMean, {"value": N(0.0)}),
        "LinearMean": (gp_mod.LinearMean, {"dim": N(2),
                                           "weight": ("optional-array", torch.ones(2)),
                                           "bias": N(0.0)}),
        "LinearMean()": (lambda X_: gp_mod.LinearMean(2)(X_), {"X_": ("batched-empty-ok", X)}),
        "Bernoulli": (gp_mod.Bernoulli, {"link": C("logit"), "num_points": N(20)}),
        "Gaussian": (gp_mod.Gaussian, {"variance": N(0.1)}),
        "Poisson": (gp_mod.Poisson, {"num_points": N(20)}),
        "StudentT": (gp_mod.StudentT, {"df": N(3.0), "scale": N(1.0), "num_points": N(20)}),
        "GPPosterior": (lambda Z, L_, f: gp_mod.GPPosterior(se, gp_mod.ZeroMean(), Z, L_, f),
                        {"Z": A(X[:4]), "L_": A(L), "f": B(torch.zeros(4, dtype=F64))}),
        # data
        "load_mnist": (lambda directory, split: data_mod.load_mnist(directory, split),
                       {"directory": PATH(tmp), "split": C("train")}),
        "read_idx": (data_mod.read_idx, {"path": PATH(tmp)}),
        # distributions
        "envelope_acceptance_rate": (envelope_acceptance_rate, {"b": N(1.0), "c": N(0.5)}),
        # mcmc
        "gibbs_steps": (lambda data_, beta: next(mcmc.gibbs_steps(data_, beta)),
                        {"data_": O(data), "beta": A(torch.zeros(3, dtype=F64))}),
        "binomial_log_posterior": (mcmc.binomial_log_posterior, {
            "data": O(data), "beta": ("batched-empty-ok", torch.zeros(2, 3, dtype=F64))}),
        "laplace_approximation": (lambda data_, tol, max_iter: mcmc.laplace_approximation(
            data_, tol=tol, max_iter=max_iter),
            {"data_": O(data), "tol": N(1e-20), "max_iter": N(50)}),
        "independence_metropolis": (
            lambda data_, beta, log_post, mode, L_, steps: mcmc.independence_metropolis(
                data_, beta, log_post, mode, L_, steps),
            {"data_": O(data), "beta": ("batched-empty-ok", torch.zeros(2, 3, dtype=F64)),
             "log_post": A(torch.zeros(2, dtype=F64)), "mode": A(torch.zeros(3, dtype=F64)),
             "L_": A(torch.eye(3, dtype=F64)), "steps": N(1)}),
        "polynomial_basis": (mcmc.polynomial_basis, {"degree": N(2)}),
        "PolyaGammaLogisticRegression.predict_interval": (
            lambda level: _fitted_logistic(Xnp, labels).predict_interval(Xnp[:3], level),
            {"level": N(0.9)}),
        "levy": (levy, {"dim": N(10)}),
        "PolyaGammaLogisticRegression.fit": (
            lambda X_, y_, prior_precision, num_samples: mcmc.PolyaGammaLogisticRegression(
                prior_precision=prior_precision, num_samples=num_samples, burn_in=2,
                num_chains=1).fit(X_, y_),
            {"X_": A(Xnp), "y_": ("labels", labels), "prior_precision": P(1.0),
             "num_samples": N(5)}),
        "PolyaGammaGPClassifier.fit": (
            lambda X_, y_, num_samples: mcmc.PolyaGammaGPClassifier(
                num_samples=num_samples, burn_in=2, num_chains=1).fit(X_, y_),
            {"X_": A(Xnp), "y_": ("labels", labels), "num_samples": N(5)}),
        "gp_classification_gibbs": (
            lambda K, y_, n_trials, num_samples, solver: mcmc.gp_classification_gibbs(
                K, y_, n_trials=n_trials, num_samples=num_samples, burn_in=2, num_chains=1,
                solver=solver),
            {"K": A(L @ L.T), "y_": A(torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=F64)),
             "n_trials": P(1.0), "num_samples": N(5), "solver": C("cg")}),
        # plotting
        "evaluate_on_grid": (lambda fn, num, batch_size: plotting.evaluate_on_grid(
            fn, (0, 1), (0, 1), num=num, batch_size=batch_size),
            {"fn": O(lambda x: x.sum(-1)), "num": P(4), "batch_size": ("optional", 8)}),
        # ratio
        "ClassifierDensityRatio.fit": (
            lambda x_p, x_q, epochs, lr: ratio.ClassifierDensityRatio(
                hidden=(4,), epochs=epochs, lr=lr).fit(x_p, x_q),
            {"x_p": A(torch.randn(20, 1, dtype=F64)), "x_q": A(torch.randn(20, 1, dtype=F64)),
             "epochs": N(2), "lr": N(0.01)}),
        "check_samples": (ratio.check_samples, {"x_p": A(X), "x_q": A(X + 0.1),
                                                "min_samples": N(5)}),
        "conjugate": (ratio.conjugate, {"name": C("kl_forward")}),
        "jensen_shannon": (ratio.jensen_shannon, {"logu": ("values", torch.zeros(3, dtype=F64))}),
        "kl_reverse": (ratio.kl_reverse, {"logu": ("values", torch.zeros(3, dtype=F64))}),
        "pearson": (ratio.pearson, {"logu": ("values", torch.zeros(3, dtype=F64))}),
        "squared_hellinger": (ratio.squared_hellinger,
                              {"logu": ("values", torch.zeros(3, dtype=F64))}),
        "total_variation": (ratio.total_variation,
                            {"logu": ("values", torch.zeros(3, dtype=F64))}),
        "adversarial_kl_minimisation": (
            lambda generator, target_samples, steps, batch_size: (
                ratio.adversarial_kl_minimisation(
                    generator, lambda n, g: torch.randn(n, 1, dtype=F64, generator=g),
                    target_samples, steps=steps, batch_size=batch_size, critic_hidden=(4,))),
            {"generator": O(linear_module()), "target_samples": A(torch.randn(30, 1, dtype=F64)),
             "steps": N(2), "batch_size": N(8)}),
        # training
        "Checkpoint": (lambda path, kind: training.Checkpoint(path, kind=kind, data=None,
                                                             settings=None),
                       {"path": ("optional-path", os.path.join(tmp, "run.pt")),
                        "kind": ("text", "demo")}),
        "load_state": (training.load_state, {"path": PATH(os.path.join(tmp, "missing.pt"))}),
        # any object can be saved: only the path is swept
        "atomic_save": (lambda path: training.atomic_save(1.0, path),
                        {"path": PATH(os.path.join(tmp, "a.pt"))}),
        "atomic_write_text": (training.atomic_write_text,
                              {"path": PATH(os.path.join(tmp, "a.txt")),
                               "text": ("text", "hello")}),
        "atomic_write": (lambda path, write: training.atomic_write(path, write),
                         {"path": PATH(os.path.join(tmp, "b.txt")),
                          "write": O(lambda p: open(p, "w").close())}),
        "allreduce_sum": (lambda value: training.allreduce_sum(value),
                          {"value": ("value-number", 1.0)}),
        "allreduce_grads": (training.allreduce_grads, {"params": O([torch.nn.Parameter(
            torch.zeros(2))])}),
        "local_rows": (training.local_rows, {"batch": N(8)}),
        "fit_with_restarts": (lambda module, max_iter, restarts, seed: training.fit_with_restarts(
            module, quadratic(module), max_iter=max_iter, restarts=restarts, seed=seed),
            {"module": O(linear_module()), "max_iter": N(5), "restarts": N(0), "seed": N(0)}),
        "minimise_lbfgs": (lambda max_iter: training.minimise_lbfgs(
            linear_module().parameters(), lambda: torch.zeros((), requires_grad=True),
            max_iter=max_iter), {"max_iter": N(5)}),
        "parameter_values": (training.parameter_values, {"module": O(linear_module())}),
        "train": (lambda data_, epochs, batch_size, lr: training.train(
            linear_module(), lambda batch, rows, g: ((batch[0] - batch[1]) ** 2).mean(), data_,
            epochs=epochs, batch_size=batch_size, lr=lr, progress=False),
            {"data_": O((torch.ones(8, 1, dtype=F64), torch.ones(8, 1, dtype=F64))),
             "epochs": N(1), "batch_size": N(4), "lr": N(0.01)}),
        "set_progress": (training.set_progress, {"enabled": ("optional-object", None)}),
        "check_executor": (training.check_executor, {"executor": O("serial")}),
        "broken_pool_message": (training.broken_pool_message, {"executor": O("process")}),
        "executor_for": (_enter_executor, {"executor": O("serial"), "n_tasks": N(2)}),
        "torch_threads": (_enter_torch_threads, {"n": N(1)}),
        # vae
        "VAE": (lambda encoder, decoder, kl: vae.VAE(encoder, decoder, kl=kl),
                {"encoder": O(vae.GaussianEncoder(4, 2, (8,))),
                 "decoder": O(vae.BernoulliDecoder(2, 4, (8,))), "kl": C("analytic")}),
        "DensityRatioKL": (lambda input_dim, latent_dim: vae.DensityRatioKL(
            input_dim, latent_dim, (8,)), {"input_dim": N(4), "latent_dim": N(2)}),
        "GaussianEncoder": (lambda input_dim, latent_dim, covariance: vae.GaussianEncoder(
            input_dim, latent_dim, (8,), covariance), {"input_dim": N(4), "latent_dim": N(2),
                                                      "covariance": C("diagonal")}),
        "RelaxedCategoricalEncoder": (
            lambda num_variables, num_categories, temperature: vae.RelaxedCategoricalEncoder(
                4, num_variables, num_categories, (8,), temperature),
            {"num_variables": N(2), "num_categories": N(3), "temperature": N(0.5)}),
        "BernoulliDecoder": (lambda latent_dim, output_dim: vae.BernoulliDecoder(
            latent_dim, output_dim, (8,)), {"latent_dim": N(2), "output_dim": N(4)}),
        "GaussianDecoder": (lambda latent_dim, sigma: vae.GaussianDecoder(
            latent_dim, 4, (8,), sigma), {"latent_dim": N(2), "sigma": ("optional", 0.5)}),
        "CategoricalDecoder": (lambda output_dim, num_classes: vae.CategoricalDecoder(
            2, output_dim, num_classes, (8,)), {"output_dim": N(4), "num_classes": N(3)}),
        "evaluate": (lambda data_, num_samples, iwae_samples, batch_size: vae.evaluate(
            tiny_vae(), data_, num_samples=num_samples, iwae_samples=iwae_samples,
            batch_size=batch_size), {"data_": A(torch.rand(6, 4)), "num_samples": N(1),
                                     "iwae_samples": N(2), "batch_size": N(3)}),
        "check_data": (lambda x: vae.check_data(tiny_vae(), x), {"x": A(torch.rand(6, 4))}),
        # the command line's entry point and its context
        # the cheapest topic, quick: bad values must be refused before anything is computed
        "reproduce": (lambda topic, out, seed: reproduce([topic], out, seed=seed, quick=True),
                      {"topic": C("grids"), "out": PATH(tmp), "seed": N(0)}),
        "Context": (lambda out, seed: Context(out, seed=seed), {"out": PATH(tmp), "seed": N(0)}),
        # the validation layer itself
        "as_tensor": (lambda x: validation.as_tensor(x, "x", ndim=2, min_rows=1), {"x": A(X)}),
        "as_inputs": (validation.as_inputs, {"X": A(X)}),
        "as_scalar": (lambda x: validation.as_scalar(x, "x"), {"x": N(1.0)}),
        "as_int": (lambda x: validation.as_int(x, "x"), {"x": N(3)}),
        "as_bounds": (validation.as_bounds, {"bounds": A(bounds)}),
        "as_binary_labels": (validation.as_binary_labels, {"y": ("labels", labels)}),
        "as_param": (lambda x: validation.as_param(x, "x"), {"x": ("param-type", 1.0)}),
        "check_tensor": (lambda x: validation.check_tensor("x", x, min_dim=2),
                         {"x": ("batched-empty-ok", X)}),
        "check_choice": (lambda value: validation.check_choice(value, "kind", ("a", "b")),
                         {"value": C("a")}),
        "check_generator": (validation.check_generator,
                            {"generator": ("optional-object", torch.Generator())}),
        "check_floating": (lambda x: validation.check_floating("x", x),
                           {"x": ("tensor-type", X)}),
        "check_square": (lambda x: validation.check_square("x", x), {"x": ("square", L)}),
        "check_cholesky_factor": (lambda L_: validation.check_cholesky_factor("L", L_),
                                  {"L_": A(L)}),
        "check_finite": (lambda x: validation.check_finite("x", x), {"x": ("finite", X)}),
        "all_finite": (validation.all_finite, {"x": ("tensor-type", X)}),
        "check_same_rows": (lambda a, b: validation.check_same_rows("a", a, "b", b),
                            {"a": ("rows", X), "b": ("rows", y)}),
        "as_indices": (lambda idx: validation.as_indices(idx, "idx", 5),
                       {"idx": ("indices", [0, 1])}),
        "check_same_dtype": (lambda a: validation.check_same_dtype(a=a, b=X),
                             {"a": ("tensor-type", X)}),
        "check_batch_shapes": (lambda a: validation.check_batch_shapes("batch", a=a, b=(6,)),
                               {"a": ("shape", (6,))}),
        "check_factor_dtype": (lambda x: validation.check_factor_dtype("x", x),
                               {"x": ("tensor-type", L)}),
        "resolve_dtype": (lambda dtype: validation.resolve_dtype(X, dtype),
                          {"dtype": ("optional-object", None)}),
        "check_callable": (lambda fn: validation.check_callable(fn, "fn"), {"fn": O(abs)}),
        "check_instance": (lambda obj: validation.check_instance(obj, "model", torch.nn.Module),
                           {"obj": O(linear_module())}),
        "as_path": (validation.as_path, {"path": PATH(tmp)}),
        "as_tensor_list": (validation.as_tensor_list,
                           {"params": O(list(linear_module().parameters()))}),
        "progress_enabled": (training.progress_enabled, {"progress": ("optional-object", None)}),
    }


#: public names that take no user input the sweep could get wrong, with the reason
NOT_SWEPT = {
    "AllStartsFailedError": "an exception class",
    "TrainingDivergedError": "an exception class",
    "GibbsResult": "a result container the library returns",
    "MonteCarloEstimate": "a result container the library returns",
    "TOPICS": "a constant",
    "EXECUTOR_NAMES": "a constant",
    "H_MAX": "a constant",
    "world": "takes no arguments",
    "one_thread_worker": "takes no arguments",
    "fingerprint": "hashes any values: no input is invalid",
    "first_true_index": "takes the boolean masks the library computes",
    "raise_if_not_pd": "takes the boolean masks the library computes",
    "raise_singular_factor": "raises by design, from the diagonal the library's own solves pass",
}


def public_names() -> set[str]:
    """Every name in a bayeskit package's ``__all__`` and in ``bayeskit.validation``'s."""
    import importlib
    import pkgutil

    import bayeskit

    names = set(importlib.import_module("bayeskit.validation").__all__)
    for info in pkgutil.walk_packages(bayeskit.__path__, "bayeskit."):
        if info.ispkg:
            names |= set(getattr(importlib.import_module(info.name), "__all__", ()))
    return names


def swept_names() -> set[str]:
    """The public names the registry's entry points call (``"GPR.fit"`` calls ``GPR``)."""
    import re

    return {token for key in registry() for token in re.split(r"[.() ,]+", key) if token}


def _fitted_logistic(X, y):
    from bayeskit.mcmc import PolyaGammaLogisticRegression

    return PolyaGammaLogisticRegression(num_samples=5, burn_in=2, num_chains=1,
                                        random_state=0).fit(X, y)


def _pg_hybrid_step(X_, y_, gamma):
    from bayeskit.gp import PolyaGammaSVGP

    Z = torch.linspace(0, 1, 8, dtype=torch.float64).reshape(4, 2)
    model = PolyaGammaSVGP(Z, num_data=12)
    return model.hybrid_step(X_, y_, optimizer=torch.optim.Adam(model.hyperparameters()),
                             gamma=gamma)


def _enter_executor(executor, n_tasks):
    from bayeskit.training import executor_for

    with executor_for(executor, n_tasks) as (pool, owned):
        return owned


def _enter_torch_threads(n):
    from bayeskit.training import torch_threads

    with torch_threads(n):
        return torch.get_num_threads()


def _call_with_timeout(fn, kwargs, seconds=60):
    def alarm(*_):
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn(**kwargs)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _finite(out) -> bool:
    if isinstance(out, torch.Tensor):
        return not out.is_floating_point() or bool(torch.isfinite(out).all())
    if isinstance(out, (tuple, list)):
        return all(_finite(o) for o in out)
    if isinstance(out, float):
        return math.isfinite(out)
    return True


def sweep() -> list[tuple[str, str, str, str]]:
    """Rows ``(entry point, argument, bad value, outcome)``."""
    rows = []
    for name, (fn, args) in registry().items():
        valid = {k: v for k, (_, v) in args.items()}
        for arg, (kind, value) in args.items():
            for label, bad in BAD[kind].items():
                if label in ("NaN array", "inf array", "complex array", "wrong ndim", "empty",
                             "one class"):
                    bad = _bad_array(value, bad)
                kwargs = {**valid, arg: bad}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        out = _call_with_timeout(fn, kwargs)
                        outcome = "accepted" if _finite(out) else "nan"
                    except BayeskitError:
                        outcome = "clear"
                    except TimeoutError:
                        outcome = "hang"
                    except Exception as err:  # noqa: BLE001 - classified, not handled
                        outcome = f"opaque: {type(err).__name__}: {str(err)[:60]}"
                rows.append((name, arg, label, outcome))
    return rows


def main() -> None:
    rows = sweep()
    counts = Counter(r[3].split(":")[0] for r in rows)
    total = len(rows)
    print(f"{total} invalid calls over {len({r[0] for r in rows})} entry points: "
          + ", ".join(f"{k} {v} ({100 * v / total:.1f} %)" for k, v in counts.most_common()))
    for r in rows:
        if r[3] != "clear":
            print("  ", " | ".join(r))


if __name__ == "__main__":
    main()

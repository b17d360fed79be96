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
import signal
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
#: ``indices`` may be empty or nested, ``point`` is where a density/CDF is evaluated (inf is a
#: valid point: log p(inf) = -inf, F(inf) = 1)
BAD = {
    "array": ARRAY_BAD,
    "batched": {k: v for k, v in ARRAY_BAD.items() if k != "wrong ndim"},
    "batched-empty-ok": {k: v for k, v in ARRAY_BAD.items() if k not in ("wrong ndim", "empty")},
    "values": {k: v for k, v in ARRAY_BAD.items() if k in ("None", "string", "complex array")},
    "indices": {"None": None, "string": "abc", "complex array": "complex"},
    "number": NUMBER_BAD,
    "param": {k: v for k, v in NUMBER_BAD.items() if k != "list"},
    "point": {k: v for k, v in NUMBER_BAD.items() if k not in ("list", "inf")},
    "optional": {k: v for k, v in NUMBER_BAD.items() if k != "None"},
    "optional-array": {k: v for k, v in ARRAY_BAD.items() if k != "None"},
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
        gauss_kl,
        sample_mvn,
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
        "jittered_cholesky": (linalg.jittered_cholesky, {"A": A(L @ L.T)}),
        "stabilised_cholesky": (linalg.stabilised_cholesky,
                                {"K": A(L @ L.T), "relative_jitter": N(1e-6)}),
        "conditional": (conditional, {"Kmn": A(U), "Lm": A(L),
                                      "Knn": B(torch.ones(2, dtype=F64)),
                                      "f": B(torch.zeros(4, dtype=F64))}),
        "gauss_kl": (gauss_kl, {"q_mu": B(torch.zeros(4, dtype=F64)), "q_sqrt": B(L)}),
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
        "inducing.greedy_variance": (lambda X_, M: inducing.greedy_variance(
            X_, M, SquaredExponential()), {"X_": A(X), "M": N(3)}),
        "inducing.kmeans": (inducing.kmeans, {"X": A(X), "M": N(3)}),
        "BinomialRegressionData.create": (BinomialRegressionData.create,
                                          {"Phi": A(X), "y": A((y > 0).double()),
                                           "prior_precision": P(1.0)}),
        "run_gibbs": (lambda num_samples, burn_in, num_chains: run_gibbs(
            data, num_samples=num_samples, burn_in=burn_in, num_chains=num_chains),
            {"num_samples": N(5), "burn_in": N(2), "num_chains": N(2)}),
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
        "BayesianOptimizer": (lambda bounds_, n_init: BayesianOptimizer(
            lambda x: float(np.sum(x ** 2)), bounds_, n_init=n_init, progress=False),
            {"bounds_": A(bounds), "n_init": ("optional", 3)}),
        "BayesianOptimizer.tell": (lambda X_, y_: BayesianOptimizer(
            lambda x: 0.0, bounds, progress=False).tell(X_, y_),
            {"X_": A(X[:2]), "y_": ("values", y[:2])}),
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
    }


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
                if label in ("NaN array", "inf array", "complex array", "wrong ndim", "empty"):
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

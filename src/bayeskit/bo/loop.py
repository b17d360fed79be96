"""The Bayesian-optimisation loop: ask/tell, executors, checkpoints (minimisation).

Each :meth:`BayesianOptimizer.ask` refits a GP by type-II maximum likelihood (inputs scaled
to the unit cube, outputs standardised) and maximises the acquisition; :meth:`tell`
records results, failures included, and writes the checkpoint. :meth:`run` drives both
and evaluates batches through any ``concurrent.futures.Executor``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bayeskit.bo.acquisition import (
    BORE,
    LogExpectedImprovement,
    OneShotKnowledgeGradient,
    UpperConfidenceBound,
    optimize_discrete_kg,
    posterior_minimum,
)
from bayeskit.bo.acquisition.analytic import log_h
from bayeskit.bo.optim import optimize_acquisition
from bayeskit.errors import ArgumentTypeError, ArgumentValueError, ShapeError
from bayeskit.gp import GPR, SGPR, SVGP, GPPosterior, Matern, inducing
from bayeskit.training import (
    Checkpoint,
    broken_pool_message,
    check_executor,
    fingerprint,
    make_executor,
    parameter_values,
    progress_bar,
    progress_enabled,
)
from bayeskit.validation import as_bounds, as_int, as_scalar, as_tensor, check_choice

__all__ = ["BayesianOptimizer"]

log = logging.getLogger(__name__)
F64 = torch.float64
ACQUISITIONS = ("kg", "kg-discrete", "kg-oneshot", "ei", "ucb", "bore")
SURROGATES = ("gpr", "sgpr", "svgp")
INDUCING_SELECTIONS = ("variance", "improvement", "local")
_NOISE_INIT = 1e-3  # every surrogate fit starts from this noise variance (standardised y)
_NEIGHBOURS = 512  # recommend(): evaluations in the exact GP that refines a sparse one


def _objective_value(value) -> float:
    """A real number from the objective; booleans, strings and the like are refused."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise ArgumentTypeError(f"the objective must return a real number, got {value!r}")
    return float(value)


def _evaluate(objective: Callable, x: np.ndarray) -> tuple[float, str | None]:
    """Call the objective; a raise or a non-finite value becomes a recorded failure."""
    try:
        value = _objective_value(objective(x))
    except Exception as err:  # noqa: BLE001 - any failure of user code is recorded
        return math.nan, f"{type(err).__name__}: {err}"
    if not math.isfinite(value):
        return math.nan, f"objective returned {value}"
    return value, None


def _outcome(fut: cf.Future, executor) -> tuple[float, str | None]:
    """A finished evaluation's ``(value, error)``. :func:`_evaluate` already turned the
    objective's own exceptions into errors; what the future raises is the executor's failure
    (a worker killed by the out-of-memory killer or by a crash in native code breaks a
    process pool; a Dask worker lost): recorded like any failed evaluation."""
    try:
        return fut.result()
    except cf.BrokenExecutor as err:
        reason = broken_pool_message(executor if isinstance(executor, str) else "process")
        return math.nan, f"WorkerError ({type(err).__name__}): {reason}"
    except Exception as err:  # noqa: BLE001 - the executor's failure, whatever its type
        return math.nan, f"{type(err).__name__}: {err}"


def _nearest_to_best(X: torch.Tensor, ys: torch.Tensor, kernel, k: int) -> torch.Tensor:
    """Indices ``[min(k, N)]`` of the rows of ``X`` most correlated under ``kernel`` with the
    one of the smallest ``ys``, that one first."""
    best = int(torch.argmin(ys))
    with torch.no_grad():
        corr = kernel(X[best:best + 1], X)[0]
    corr[best] = math.inf
    return torch.argsort(corr, descending=True, stable=True)[:k]


class BayesianOptimizer:
    """Minimise a black-box ``objective`` over a box with a GP and an acquisition function.

    Args:
        objective: called as ``objective(x)`` with a NumPy array ``[D]``; returns a float.
            Must be picklable to use a process pool (a module-level function is).
        bounds: ``[2, D]`` lower and upper bounds.
        acquisition: ``"kg"`` (exact discretised KG in 1-D, one-shot KG above),
            ``"kg-discrete"``, ``"kg-oneshot"``, ``"ei"`` (log-EI), ``"ucb"`` or ``"bore"``
            (Tiao et al. 2021: no GP; a classifier of the best ``gamma`` fraction, see
            :class:`~bayeskit.bo.acquisition.BORE`).
        gamma, classifier: BORE's quantile (default 0.25) and classifier (``None``: the
            MLP of :class:`~bayeskit.ratio.ClassifierDensityRatio`; or any scikit-learn
            classifier with ``predict_proba``, maximised by evolutionary search).
        n_init: size of the initial scrambled-Sobol design.
        num_fantasies: fantasies of the one-shot KG.
        executor: ``"serial"``, ``"thread"``, ``"process"`` (default: a local process pool
            for batches, serial for single points; its workers are forks of this process, so
            an objective defined in a notebook works), ``"forkserver"`` (a local pool whose
            workers start from a clean server process: for objectives that do BLAS work
            while other threads of this process do too, where a fork can hang in MKL's
            allocator; a script needs the ``if __name__ == "__main__":`` guard) or any
            ``concurrent.futures.Executor``, e.g.
            ``dask.distributed.Client(...).get_executor()`` or a Ray pool.
        checkpoint: JSON file rewritten atomically after every evaluation;
            :meth:`resume` continues from it.
        on_error: ``"record"`` keeps going after a failed evaluation (the objective raised,
            returned a non-finite value, or its worker process died: a killed worker fails
            every unfinished evaluation of its batch, and the next batch gets a new pool),
            ``"raise"`` stops.
        seed: seeds the design and every random choice of the loop.
        surrogate: ``"gpr"`` (exact), ``"sgpr"`` or ``"svgp"``; a sparse surrogate takes
            over once more than ``num_inducing`` points are observed, with inducing inputs
            chosen among them on every refit by ``inducing_selection``: ``"variance"``
            (greedy conditional variance, Burt et al. 2019), ``"improvement"`` (the same,
            weighted towards low values: Moss, Ober & Picheny 2023) or ``"local"`` (a quarter
            of them the observations most correlated with the best one, the rest by greedy
            variance given those; see :func:`bayeskit.gp.inducing.greedy_variance`).

    Attributes:
        X, y: the successful evaluations (lists of ``[D]`` points and values) in the order
            they were recorded; ``best_x``/``best_value`` the smallest.
        failures: ``{"x", "error"}`` of every failed evaluation (exception, NaN/inf, timeout).
        evaluations: one record per evaluation, successful or not, in the order they
            finished: ``{"index", "x", "y"`` (``None`` on failure), ``"error"``,
            ``"best_so_far", "iteration"}`` (``iteration``: how many asks of the model
            preceded it; 0 for the initial design).
        history: one record per ask of the model (an iteration, possibly a batch):
            ``{"n_observed", "best_observed", "best_predicted_x", "best_predicted_value",
            "acquisition_value", "seconds"}`` (BORE adds ``"tau"``).
        n_init: the initial scrambled-Sobol design's size; default ``2 D + 2``.

    Examples:
        >>> from bayeskit.bo.test_functions import reference_1d
        >>> f = reference_1d()
        >>> bo = BayesianOptimizer(f, f.bounds, acquisition="ei", n_init=4, seed=0,
        ...                        progress=False)
        >>> bo.run(3).best_value < 0
        True
    """

    def __init__(self, objective: Callable, bounds, *, acquisition: str = "kg",
                 n_init: int | None = None, num_fantasies: int = 16, executor="process",
                 checkpoint: str | Path | None = None, on_error: str = "record",
                 seed: int = 0, progress: bool | None = None, fit_restarts: int = 2,
                 surrogate: str = "gpr", num_inducing: int = 128,
                 inducing_selection: str = "variance",
                 timeout: float | None = None, resume: bool = True, overwrite: bool = False,
                 gamma: float = 0.25, classifier=None):
        if not callable(objective):
            raise ArgumentTypeError(f"objective must be callable, got {type(objective).__name__}")
        self.bounds = as_bounds(bounds)
        if acquisition not in ACQUISITIONS:
            raise ArgumentValueError(f"unknown acquisition {acquisition!r}; choose from "
                                     f"{ACQUISITIONS}")
        self.on_error = check_choice(on_error, "on_error", ("record", "raise"))
        self.surrogate = check_choice(surrogate, "surrogate", SURROGATES)
        self.num_inducing = as_int(num_inducing, "num_inducing", positive=True)
        self.inducing_selection = check_choice(inducing_selection, "inducing_selection",
                                               INDUCING_SELECTIONS)
        self.gamma = as_scalar(gamma, "gamma", low=0.0, high=1.0, low_open=True,
                               high_open=True)
        if classifier is not None and not (hasattr(classifier, "fit")
                                           and hasattr(classifier, "predict_proba")):
            raise ArgumentTypeError("classifier must be a scikit-learn classifier with fit and "
                                    f"predict_proba, got {type(classifier).__name__}")
        self.classifier = classifier
        self.objective = objective
        self.acquisition = acquisition
        self.dim = self.bounds.shape[1]
        self.n_init = as_int(n_init if n_init is not None else 2 * self.dim + 2, "n_init",
                             low=2)
        self.num_fantasies = as_int(num_fantasies, "num_fantasies", positive=True)
        check_executor(executor)
        self.executor = executor
        self.timeout = None if timeout is None else as_scalar(timeout, "timeout", positive=True)
        self.seed = as_int(seed, "seed", nonnegative=True)
        self.progress = progress_enabled(progress)
        self.fit_restarts = as_int(fit_restarts, "fit_restarts", nonnegative=True)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.X: list[list[float]] = []
        self.y: list[float] = []
        self.failures: list[dict] = []
        self.evaluations: list[dict] = []
        self.history: list[dict] = []
        self.model = None
        self._warm: dict[str, torch.Tensor] | None = None
        self.checkpoint = None if checkpoint is None else Checkpoint(
            checkpoint, kind="bo", data=None, resume=resume, overwrite=overwrite,
            format="json", settings=fingerprint(
                bounds=self.bounds.tolist(), acquisition=acquisition, n_init=self.n_init,
                seed=self.seed, num_fantasies=self.num_fantasies, surrogate=self.surrogate,
                num_inducing=self.num_inducing,
                **({"gamma": self.gamma} if acquisition == "bore" else {}),
                **({"inducing_selection": self.inducing_selection}
                   if self.inducing_selection != "variance" else {})))
        saved = self.checkpoint.load() if self.checkpoint is not None else None
        if saved is not None:
            self._restore(saved)

    # ----------------------------------------------------------------- data and model
    @property
    def best_value(self) -> float:
        """Best (smallest) observed value."""
        return min(self.y) if self.y else math.nan

    @property
    def best_x(self) -> np.ndarray:
        return np.asarray(self.X[int(np.argmin(self.y))]) if self.y else np.full(self.dim, np.nan)

    def _to_unit(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.bounds[0]) / (self.bounds[1] - self.bounds[0])

    def _from_unit(self, U: torch.Tensor) -> torch.Tensor:
        return self.bounds[0] + U * (self.bounds[1] - self.bounds[0])

    def _initial_kernel(self) -> Matern:
        """Every surrogate fit's starting kernel: Matern-5/2, ARD length scales 0.3."""
        return Matern(2.5, lengthscale=torch.full((self.dim,), 0.3, dtype=F64))

    def _unit_box(self) -> torch.Tensor:
        """``[2, D]``: the unit cube, where the surrogates live."""
        return torch.stack([torch.zeros(self.dim, dtype=F64), torch.ones(self.dim, dtype=F64)])

    def _standardised_targets(self) -> torch.Tensor:
        """``(y - mean) / sd`` without overflow (values up to the float64 limit): the
        statistics are taken of ``y / max|y|`` and scaled back."""
        y = torch.tensor(self.y, dtype=F64)
        top = float(y.abs().max()) or 1.0
        u = y / top
        mean, sd = float(u.mean()), float(u.std()) if len(y) > 1 else 1.0
        self._y_mean, self._y_std = mean * top, (sd if sd > 0 else 1.0) * top
        return (u - mean) / (sd if sd > 0 else 1.0)

    def fit_model(self):
        """Type-II ML fit of a Matern-5/2 ARD surrogate on the unit cube, standardised
        outputs, from the default initialisation and warm-started from the previous fit,
        keeping the better (``fit_restarts`` random restarts on every 5th refit). The
        surrogate is an exact GP (``"gpr"``), an SGPR or an SVGP (``num_inducing`` inducing
        inputs chosen by greedy variance selection on each refit)."""
        X = self._to_unit(torch.tensor(self.X, dtype=F64))
        ys = self._standardised_targets()
        kernel = self._initial_kernel()
        restarts = self.fit_restarts if len(self.history) % 5 == 0 else 0
        seed = self.seed + len(self.y)
        sparse = self.surrogate != "gpr" and len(X) > self.num_inducing
        if self.surrogate == "gpr" or not sparse:
            model = GPR(X, ys, kernel=kernel, noise_variance=_NOISE_INIT)
        else:
            if self._warm is not None:  # choose Z with the previous fit's kernel
                with torch.no_grad():
                    for name, p in kernel.named_parameters():
                        p.copy_(self._warm["kernel." + name])
            Z = inducing.greedy_variance(X, self.num_inducing, kernel,
                                         quality=self._inducing_quality(ys),
                                         first=self._inducing_first(X, ys, kernel))
            if self.surrogate == "sgpr":
                model = SGPR(X, ys, Z, kernel, noise_variance=_NOISE_INIT, train_inducing=False)
            else:
                model = SVGP(Z, kernel, noise_variance=_NOISE_INIT, num_data=len(X))
        starts = [parameter_values(model)]
        max_iter = 200
        if self._warm is not None:
            warm = {k: v for k, v in self._warm.items()
                    if k in starts[0] and k not in ("Z", "raw_Z")}
            if sparse and len(self.history) % 5:
                # a sparse refit on many points costs O(n M^2) per L-BFGS step: between the
                # full refits (every 5th, from both starts) only the previous optimum is
                # refined, briefly (one new point barely moves it)
                starts, max_iter = [warm], 50
            else:
                starts.append(warm)
        try:
            if isinstance(model, SVGP):
                self._fit_svgp(model, X, ys, starts)
            else:
                model.fit(max_iter=max_iter, restarts=restarts, seed=seed, starts=starts,
                          escape_all_noise=False)  # its own warm starts and restarts
        except ValueError as err:
            raise ValueError("the surrogate fit failed from every start; check the objective's "
                             "values for extreme outliers") from err
        self.model = model
        self._warm = {k: v for k, v in parameter_values(model).items()
                      if k.startswith("kernel.") or k in ("raw_noise", "raw_mean",
                                                          "likelihood.raw_variance")}
        return model

    def recommend(self, neighbours: int | None = None) -> np.ndarray:
        """The point to report, ``[D]``: the minimiser of a posterior mean given every
        successful evaluation (KG's own criterion; it can lie between the evaluations and
        beat :attr:`best_x`, and with noisy values it does not chase a lucky draw).

        The surrogate is refitted as the next :meth:`ask` would fit it. An exact GP on all
        evaluations is minimised over the box (multi-start). Otherwise, i.e. a sparse
        surrogate past ``num_inducing`` evaluations or ``neighbours`` below their number,
        an exact GP on the ``neighbours`` evaluations most correlated with the incumbent
        (the best one) under the surrogate's kernel is fitted, from its default start and
        from that kernel, the better kept, and its mean is descended from the evaluations
        where it is lowest, within the box they span: the Nystrom mean of a few hundred
        inducing points does not resolve the optimum's location to the digits an exact GP
        does, and the evaluations near the optimum carry almost all the information about
        it (the 200-evaluation studies in benchmarks/RESULTS.md). ``neighbours`` defaults
        to every evaluation for the exact surrogate and to ``max(num_inducing, 512)`` for a
        sparse one (the whole call took 8.7 s at n = 20,000 on 2 cores, ``bench_kg.py --part
        scale``; in the studies, smaller neighbourhoods were better with KG and worse with
        log-EI, all 200 good with both). With BORE (no surrogate) or fewer than two
        evaluations, :attr:`best_x`. The loop's state is left as it was: the next ask is
        the same with or without this call.

        Examples:
            >>> from bayeskit.bo.test_functions import reference_1d
            >>> f = reference_1d()
            >>> bo = BayesianOptimizer(f, f.bounds, acquisition="ei", n_init=4, seed=0,
            ...                        progress=False).run(3)
            >>> x = bo.recommend()
            >>> x.shape, bool(f(x[None])[0] <= bo.best_value + 1e-3)
            ((1,), True)
        """
        if neighbours is not None:
            neighbours = as_int(neighbours, "neighbours", low=2)
        if self.acquisition == "bore" or len(self.y) < 2:
            return self.best_x
        if neighbours is None:
            neighbours = len(self.y) if self.surrogate == "gpr" else max(self.num_inducing,
                                                                         _NEIGHBOURS)
        saved = (self.model, self._warm, getattr(self, "_y_mean", None),
                 getattr(self, "_y_std", None))
        try:
            model = self.fit_model()
            if isinstance(model, GPR) and neighbours >= len(self.y):
                g = torch.Generator().manual_seed(self.seed + len(self.y))
                x_star, _ = posterior_minimum(model.posterior(), self._unit_box(), generator=g)
            else:
                X = self._to_unit(torch.tensor(self.X, dtype=F64))
                local, box = self._local_exact_gp(X, self._standardised_targets(), model,
                                                  neighbours)
                # no random starts: they can find dips of the extrapolated mean away from
                # the evaluations (seen in the KG study with 128 of 200 evaluations)
                x_star, _ = posterior_minimum(local.posterior(), box, num_restarts=0,
                                              raw_samples=0)
        finally:
            self.model, self._warm, self._y_mean, self._y_std = saved
        return self._from_unit(x_star).numpy()

    def _local_exact_gp(self, X: torch.Tensor, ys: torch.Tensor, surrogate,
                        size: int) -> tuple[GPR, torch.Tensor]:
        """An exact GP on the ``size`` observations most correlated with the best one under
        the surrogate's kernel, fitted from the default start and from that kernel's
        hyperparameters, the better kept; and the box ``[2, D]`` those observations span,
        where it is trusted (beyond them its mean is an extrapolation that can dip below
        anything observed)."""
        near = _nearest_to_best(X, ys, surrogate.kernel, size)
        kernel = self._initial_kernel()
        local = GPR(X[near], ys[near], kernel=kernel, noise_variance=_NOISE_INIT)
        starts = [parameter_values(local)]
        starts.append({**starts[0], **{k: v for k, v in parameter_values(surrogate).items()
                                       if k.startswith("kernel.")}})
        local.fit(max_iter=200, starts=starts, escape_all_noise=False)
        box = torch.stack([X[near].amin(0), X[near].amax(0)])
        flat = box[0] >= box[1]  # all on one value there (e.g. a bound): the unit interval
        box[0, flat], box[1, flat] = 0.0, 1.0
        return local, box

    def _inducing_quality(self, ys: torch.Tensor) -> torch.Tensor | None:
        """Weights for choosing the inducing inputs (``None``: plain greedy variance).

        ``"improvement"``: the quality of Moss, Ober & Picheny (2023), each point's expected
        improvement over the worst value, ``E[max(0, max(y) - f_i)]``, here with
        ``f_i ~ N(y_i, sigma^2)`` at the fits' initial noise (standardised units), so it
        depends on the data alone and a resumed loop chooses the same points."""
        if self.inducing_selection != "improvement":
            return None
        sd = math.sqrt(_NOISE_INIT)
        return sd * log_h((ys.max() - ys) / sd).exp()

    def _inducing_first(self, X: torch.Tensor, ys: torch.Tensor, kernel) -> list[int] | None:
        """``"local"``: the ``num_inducing // 4`` observations most correlated with the best
        (the incumbent first). Late in a run evaluations crowd near the optimum; greedy
        variance keeps few of these near-duplicates, yet they resolve the optimum's last
        digits (the 200-evaluation study in benchmarks/RESULTS.md)."""
        if self.inducing_selection != "local":
            return None
        return _nearest_to_best(X, ys, kernel, self.num_inducing // 4).tolist()

    @staticmethod
    def _fit_svgp(model: SVGP, X: torch.Tensor, y: torch.Tensor, starts) -> None:
        """Each start: ``q(u)`` at its optimum (a full natural-gradient step), then Adam on
        the hyperparameters with a natural-gradient step before each; keep the best ELBO."""
        best, best_state = -math.inf, None
        for start in starts:
            with torch.no_grad():
                params = dict(model.named_parameters())
                for k, v in start.items():
                    if k in params and k not in ("q_mu", "raw_q_sqrt", "Z"):
                        params[k].copy_(v)
            model.natural_gradient_step(X, y, 1.0)
            model.fit(X, y, epochs=60, batch_size=len(X), lr=0.05, natural_gradient=1.0)
            with torch.no_grad():
                elbo = float(model.elbo(X, y))
            if elbo > best:
                best, best_state = elbo, parameter_values(model)
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(best_state[k])

    # ---------------------------------------------------------------------- ask / tell
    def _initial_design(self, n: int) -> torch.Tensor:
        sobol = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=self.seed)
        pts = sobol.draw(self.n_init, dtype=F64)
        start = len(self.y) + len(self.failures)
        return self._from_unit(pts[start:start + n])

    def ask(self, n: int = 1) -> np.ndarray:
        """The next ``n`` points to evaluate, ``[n, D]``."""
        n = as_int(n, "n", low=1)
        done = len(self.y) + len(self.failures)
        if done < self.n_init or len(self.y) < 2:
            need = min(n, max(self.n_init - done, 1))
            if done >= self.n_init:  # too many failures: keep sampling at random
                u = torch.rand(need, self.dim, dtype=F64, generator=self.generator)
                return self._from_unit(u).numpy()
            return self._initial_design(need).numpy()
        start = time.perf_counter()
        if self.acquisition == "bore":
            return self._ask_bore(n, start)
        model = self.fit_model()
        post = model.posterior()
        unit = self._unit_box()
        x_star, tau = posterior_minimum(post, unit, generator=self.generator)
        U, value = self._maximise(post, unit, n, (x_star, tau))
        self.history.append({
            "n_observed": len(self.y), "best_observed": self.best_value,
            "best_predicted_x": self._from_unit(x_star).tolist(),
            "best_predicted_value": tau * self._y_std + self._y_mean,
            "acquisition_value": float(value), "seconds": time.perf_counter() - start})
        return self._from_unit(U).numpy()

    def _ask_bore(self, n: int, start: float) -> np.ndarray:
        """BORE's next ``n`` points. A batch is chosen one point at a time, each chosen
        point then counting as a bad observation (value: the worst seen) for the next
        classifier, so the batch spreads out; every classifier gets a fresh seed from the
        loop's generator."""
        X = self._to_unit(torch.tensor(self.X, dtype=F64))
        y = torch.tensor(self.y, dtype=F64)
        unit = self._unit_box()
        points, first = [], None
        for _ in range(n):
            seed = int(torch.randint(2**31 - 1, (1,), generator=self.generator))
            acq = BORE(X, y, gamma=self.gamma, classifier=self.classifier, seed=seed)
            U, value = acq.optimize(unit, generator=self.generator, exclude=X)
            points.append(U)
            first = (acq, value) if first is None else first
            X = torch.cat([X, U[None]])
            y = torch.cat([y, y.max()[None]])
        self.history.append({
            "n_observed": len(self.y), "best_observed": self.best_value,
            "best_predicted_x": self.best_x.tolist(), "best_predicted_value": self.best_value,
            "acquisition_value": float(first[1]), "tau": first[0].tau,
            "seconds": time.perf_counter() - start})
        return self._from_unit(torch.stack(points)).numpy()

    def _maximise(self, post: GPPosterior, unit: torch.Tensor, n: int, tau):
        g = self.generator
        kind = self.acquisition
        if kind == "kg":
            kind = "kg-discrete" if (self.dim == 1 and n == 1) else "kg-oneshot"
        if kind == "kg-discrete" and n == 1:
            return optimize_discrete_kg(post, unit, generator=g, tau=tau)
        if kind in ("kg-oneshot", "kg-discrete"):
            acq = OneShotKnowledgeGradient(post, unit, num_fantasies=self.num_fantasies, q=n,
                                           generator=g, tau=tau)
            return acq.optimize(generator=g)
        acq_cls = {"ei": lambda p: LogExpectedImprovement(p, best_f=float(p.mean(
            p.train_inputs).min())), "ucb": UpperConfidenceBound}[kind]
        # batches by the kriging believer: condition on the predicted mean, maximise again
        p, points, values = post, [], []
        for _ in range(n):
            U, v = optimize_acquisition(acq_cls(p), unit, generator=g)
            points.append(U)
            values.append(v)
            with torch.no_grad():
                p = p.condition_on_observations(U, p.mean(U))
        return torch.cat(points), values[0]

    def tell(self, X, y) -> None:
        """Record evaluations ``X`` ``[n, D]`` (inside the bounds) with values ``y`` ``[n]``;
        NaN values count as failures. Writes the checkpoint."""
        X = as_tensor(X, "X", dtype=F64, ndim=(1, 2))
        X = X[None] if X.dim() == 1 else X
        if isinstance(y, (str, bytes, bool)) or y is None:
            raise ArgumentTypeError(f"y must be numbers, got {y!r}")
        y = as_tensor(y, "y", dtype=F64, ndim=(0, 1), finite=False).reshape(-1)
        if X.shape[-1] != self.dim or X.shape[0] != y.shape[0]:
            raise ShapeError(f"tell expects X [n, {self.dim}] and y [n], got {tuple(X.shape)} "
                             f"and {tuple(y.shape)}")
        outside = ((X < self.bounds[0]) | (X > self.bounds[1])).any(-1)
        if bool(outside.any()):
            raise ArgumentValueError(f"X row(s) {torch.nonzero(outside).flatten().tolist()} lie "
                                     f"outside the bounds {self.bounds.tolist()}")
        for x, v in zip(X.tolist(), y.tolist(), strict=True):
            if math.isfinite(v):
                self.X.append(x)
                self.y.append(float(v))
                self._log_evaluation(x, float(v), None)
            else:
                self.failures.append({"x": x, "error": f"value {v}"})
                self._log_evaluation(x, None, f"value {v}")
        self.save()

    # ---------------------------------------------------------------------------- run
    def _executor(self, n: int):
        return make_executor(self.executor, n, payload=self.objective, preload=(__name__,))

    def _log_evaluation(self, x: list, value: float | None, error: str | None) -> None:
        self.evaluations.append({"index": len(self.evaluations), "x": list(x), "y": value,
                                 "error": error, "best_so_far": self.best_value
                                 if self.y else None, "iteration": len(self.history)})

    def _record(self, x: np.ndarray, value: float, error: str | None) -> None:
        """One finished evaluation, on disk at once."""
        if error is not None:
            log.warning("evaluation at %s failed: %s", x.tolist(), error)
            self.failures.append({"x": x.tolist(), "error": error})
            self._log_evaluation(x.tolist(), None, error)
            self.save()
            if self.on_error == "raise":
                raise RuntimeError(f"objective failed at x={x.tolist()}: {error}")
        else:
            self.tell(x[None], [value])

    def _evaluate_batch(self, X: np.ndarray) -> None:
        """Evaluate the rows of ``X``; each result is recorded (and checkpointed) as soon as
        it finishes. With ``timeout`` an evaluation still running after that many seconds
        is recorded as a failure (its worker cannot be stopped, only abandoned)."""
        executor, own = self._executor(len(X))
        if executor is None and self.timeout is not None:
            executor, own = cf.ThreadPoolExecutor(max_workers=len(X)), True
        try:
            if executor is None:
                for x in X:
                    self._record(x, *_evaluate(self.objective, x))
                return
            futures = {executor.submit(_evaluate, self.objective, x): i
                       for i, x in enumerate(X)}
            pending = set(futures)
            try:
                for fut in cf.as_completed(futures, timeout=self.timeout):
                    pending.discard(fut)
                    self._record(X[futures[fut]], *_outcome(fut, self.executor))
            except cf.TimeoutError:
                for fut in sorted(pending, key=futures.get):
                    if fut.done():
                        self._record(X[futures[fut]], *_outcome(fut, self.executor))
                    else:
                        fut.cancel()
                        self._record(X[futures[fut]], math.nan,
                                     f"TimeoutError: no result within {self.timeout} s")
        finally:
            if own:
                executor.shutdown(wait=self.timeout is None, cancel_futures=True)

    def run(self, n_iter: int, batch_size: int = 1) -> BayesianOptimizer:
        """Run the initial design (if not done) and then ``n_iter`` iterations of
        ``batch_size`` evaluations each."""
        while len(self.y) + len(self.failures) < self.n_init:
            self._evaluate_batch(self.ask(batch_size))
        bar = progress_bar(n_iter, desc=f"BO ({self.acquisition})", progress=self.progress)
        for _ in range(n_iter):
            self._evaluate_batch(self.ask(batch_size))
            bar.update(1)
            bar.set_postfix(best=f"{self.best_value:.5g}")
        bar.close()
        return self

    # --------------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        """Everything the next :meth:`ask` depends on, as JSON-serialisable data: the
        settings, evaluations, failures, history, the generator's state and the last
        surrogate fit (its hyperparameters warm-start the next one), so a resumed loop
        asks exactly the points an uninterrupted one would."""
        return {"version": 2, "dim": self.dim, "bounds": self.bounds.tolist(),
                "acquisition": self.acquisition, "n_init": self.n_init, "seed": self.seed,
                "num_fantasies": self.num_fantasies, "surrogate": self.surrogate,
                "num_inducing": self.num_inducing,
                "inducing_selection": self.inducing_selection, "gamma": self.gamma, "X": self.X,
                "y": self.y,
                "failures": self.failures, "evaluations": self.evaluations,
                "history": self.history,
                "generator": self.generator.get_state().tolist(),
                "warm_start": None if self._warm is None else {
                    k: v.tolist() for k, v in self._warm.items()}}

    def _restore(self, state: dict) -> None:
        self.X, self.y = state["X"], state["y"]
        self.failures, self.history = state["failures"], state["history"]
        self.evaluations = state.get("evaluations", [])
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        warm = state.get("warm_start")
        self._warm = None if warm is None else {k: torch.tensor(v, dtype=F64)
                                                for k, v in warm.items()}

    def save(self, path: str | Path | None = None) -> None:
        """Write the state atomically (JSON, the shared checkpoint schema); ``path`` writes
        a copy elsewhere instead."""
        if path is not None:
            Checkpoint(path, kind="bo", data=None, settings=self.checkpoint.settings
                       if self.checkpoint is not None else None, format="json").save(
                self.state())
        elif self.checkpoint is not None:
            self.checkpoint.save(self.state())

    @classmethod
    def resume(cls, path: str | Path, objective: Callable, **kwargs) -> BayesianOptimizer:
        """Continue from a checkpoint (JSON: no code is loaded): the settings are read from
        the file, ``kwargs`` may set the others (executor, progress, ...)."""
        from bayeskit.training import load_state

        saved = load_state(path, format="json")
        try:
            state = saved["state"]
            opts = {"acquisition": state["acquisition"], "n_init": state["n_init"],
                    "seed": state["seed"], "num_fantasies": state["num_fantasies"],
                    "surrogate": state["surrogate"], "num_inducing": state["num_inducing"],
                    "inducing_selection": state.get("inducing_selection", "variance"),
                    "gamma": state.get("gamma", 0.25), "checkpoint": path, "resume": True,
                    **kwargs}
            bounds = state["bounds"]
        except (KeyError, TypeError) as err:
            from bayeskit.errors import CheckpointError

            raise CheckpointError(f"checkpoint {path} is not a BayesianOptimizer checkpoint "
                                  f"(missing {err}); start a new run with another path"
                                  ) from None
        return cls(objective, bounds, **opts)

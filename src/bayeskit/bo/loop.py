"""The Bayesian-optimisation loop: ask/tell, executors, checkpoints (minimisation).

Each :meth:`BayesianOptimizer.ask` refits a GP by type-II maximum likelihood (inputs scaled
to the unit cube, outputs standardised) and maximises the acquisition; :meth:`tell`
records results, failures included, and writes the checkpoint. :meth:`run` drives both
and evaluates batches through any ``concurrent.futures.Executor``.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bayeskit.bo.acquisition import (
    LogExpectedImprovement,
    OneShotKnowledgeGradient,
    UpperConfidenceBound,
    optimize_discrete_kg,
    posterior_minimum,
)
from bayeskit.bo.optim import check_bounds, optimize_acquisition
from bayeskit.errors import NonFiniteError, ShapeError
from bayeskit.gp import GPR, GPPosterior, Matern
from bayeskit.training import atomic_write_text

__all__ = ["BayesianOptimizer"]

log = logging.getLogger(__name__)
F64 = torch.float64
ACQUISITIONS = ("kg", "kg-discrete", "kg-oneshot", "ei", "ucb")


def _evaluate(objective: Callable, x: np.ndarray) -> tuple[float, str | None]:
    """Call the objective; a raise or a non-finite value becomes a recorded failure."""
    try:
        value = float(objective(x))
    except Exception as err:  # noqa: BLE001 - any failure of user code is recorded
        return math.nan, f"{type(err).__name__}: {err}"
    if not math.isfinite(value):
        return math.nan, f"objective returned {value}"
    return value, None


class BayesianOptimizer:
    """Minimise a black-box ``objective`` over a box with a GP and an acquisition function.

    Args:
        objective: called as ``objective(x)`` with a NumPy array ``[D]``; returns a float.
            Must be picklable to use a process pool (a module-level function is).
        bounds: ``[2, D]`` lower and upper bounds.
        acquisition: ``"kg"`` (exact discretised KG in 1-D, one-shot KG above),
            ``"kg-discrete"``, ``"kg-oneshot"``, ``"ei"`` (log-EI) or ``"ucb"``.
        n_init: size of the initial scrambled-Sobol design.
        num_fantasies: fantasies of the one-shot KG.
        executor: ``"serial"``, ``"thread"``, ``"process"`` (default: a local process pool
            for batches, serial for single points) or any ``concurrent.futures.Executor``,
            e.g. ``dask.distributed.Client(...).get_executor()`` or a Ray pool.
        checkpoint: JSON file rewritten atomically after every evaluation;
            :meth:`resume` continues from it.
        on_error: ``"record"`` keeps going after a failed evaluation, ``"raise"`` stops.
        seed: seeds the design and every random choice of the loop.

    Example:
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
                 seed: int = 0, progress: bool = True, fit_restarts: int = 2):
        self.bounds = check_bounds(bounds)
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"unknown acquisition {acquisition!r}; choose from {ACQUISITIONS}")
        if on_error not in ("record", "raise"):
            raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
        self.objective = objective
        self.acquisition = acquisition
        self.dim = self.bounds.shape[1]
        self.n_init = n_init if n_init is not None else 2 * self.dim + 2
        if self.n_init < 2:
            raise ValueError(f"n_init must be >= 2, got {self.n_init}")
        self.num_fantasies = num_fantasies
        self.executor = executor
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.on_error = on_error
        self.seed = seed
        self.progress = progress
        self.fit_restarts = fit_restarts
        self.generator = torch.Generator().manual_seed(seed)
        self.X: list[list[float]] = []
        self.y: list[float] = []
        self.failures: list[dict] = []
        self.history: list[dict] = []
        self.model: GPR | None = None

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

    def fit_model(self) -> GPR:
        """Type-II ML fit of a Matern-5/2 ARD GP on the unit cube, standardised outputs: from
        the default initialisation and warm-started from the previous fit, keeping the higher
        marginal likelihood (``fit_restarts`` random restarts on every 5th refit)."""
        X = self._to_unit(torch.tensor(self.X, dtype=F64))
        y = torch.tensor(self.y, dtype=F64)
        self._y_mean, self._y_std = float(y.mean()), float(y.std()) if len(y) > 1 else 1.0
        self._y_std = self._y_std if self._y_std > 0 else 1.0
        ys = (y - self._y_mean) / self._y_std
        starts = [(Matern(2.5, lengthscale=torch.full((self.dim,), 0.3, dtype=F64)), 1e-3)]
        if self.model is not None:  # also warm-start from the last fit; keep the better
            starts.append((copy.deepcopy(self.model.kernel),
                           max(float(self.model.noise_variance.detach()), 2e-6)))
        best, best_lml = None, -math.inf
        for kernel, noise in starts:
            model = GPR(X, ys, kernel=kernel, noise_variance=noise)
            try:
                model.fit(restarts=self.fit_restarts if len(self.history) % 5 == 0 else 0,
                          seed=self.seed + len(self.y))
            except ValueError:
                continue
            with torch.no_grad():
                lml = float(model.log_marginal_likelihood())
            if lml > best_lml:
                best, best_lml = model, lml
        if best is None:
            raise ValueError("the GP fit failed from every start; check the objective's "
                             "values for extreme outliers")
        self.model = best
        return self.model

    # ---------------------------------------------------------------------- ask / tell
    def _initial_design(self, n: int) -> torch.Tensor:
        sobol = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=self.seed)
        pts = sobol.draw(self.n_init, dtype=F64)
        start = len(self.y) + len(self.failures)
        return self._from_unit(pts[start:start + n])

    def ask(self, n: int = 1) -> np.ndarray:
        """The next ``n`` points to evaluate, ``[n, D]``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        done = len(self.y) + len(self.failures)
        if done < self.n_init or len(self.y) < 2:
            need = min(n, max(self.n_init - done, 1))
            if done >= self.n_init:  # too many failures: keep sampling at random
                u = torch.rand(need, self.dim, dtype=F64, generator=self.generator)
                return self._from_unit(u).numpy()
            return self._initial_design(need).numpy()
        start = time.perf_counter()
        model = self.fit_model()
        post = model.posterior()
        unit = torch.stack([torch.zeros(self.dim, dtype=F64), torch.ones(self.dim, dtype=F64)])
        x_star, tau = posterior_minimum(post, unit, generator=self.generator)
        U, value = self._maximise(post, unit, n, (x_star, tau))
        self.history.append({
            "n_observed": len(self.y), "best_observed": self.best_value,
            "best_predicted_x": self._from_unit(x_star).tolist(),
            "best_predicted_value": tau * self._y_std + self._y_mean,
            "acquisition_value": float(value), "seconds": time.perf_counter() - start})
        return self._from_unit(U).numpy()

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
        model, points, values = self.model, [], []
        for _ in range(n):
            p = model.posterior()
            U, v = optimize_acquisition(acq_cls(p), unit, generator=g)
            points.append(U)
            values.append(v)
            model = model.condition_on_observations(U, p.mean(U[None])[0].detach())
        return torch.cat(points), values[0]

    def tell(self, X, y) -> None:
        """Record evaluations ``X`` ``[n, D]`` with values ``y`` ``[n]``; NaN values count
        as failures. Writes the checkpoint."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        y = np.atleast_1d(np.asarray(y, dtype=np.float64))
        if X.shape[-1] != self.dim or X.shape[0] != y.shape[0]:
            raise ShapeError(f"tell expects X [n, {self.dim}] and y [n], got {X.shape} and "
                             f"{y.shape}")
        if not np.isfinite(X).all():
            raise NonFiniteError("X contains NaN or infinite values")
        for x, v in zip(X, y, strict=True):
            if math.isfinite(v):
                self.X.append(x.tolist())
                self.y.append(float(v))
            else:
                self.failures.append({"x": x.tolist(), "error": f"value {v}"})
        self.save()

    # ---------------------------------------------------------------------------- run
    def _executor(self, n: int):
        if isinstance(self.executor, cf.Executor):
            return self.executor, False
        if self.executor == "thread":
            return cf.ThreadPoolExecutor(max_workers=n), True
        if self.executor == "process" and n > 1:
            try:
                pickle.dumps(self.objective)
            except Exception:  # noqa: BLE001
                log.warning("objective is not picklable; evaluating serially")
                return None, False
            return cf.ProcessPoolExecutor(max_workers=min(n, os.cpu_count() or 1)), True
        return None, False

    def _evaluate_batch(self, X: np.ndarray) -> None:
        executor, own = self._executor(len(X))
        try:
            if executor is None:
                futures = None
                results = [_evaluate(self.objective, x) for x in X]
            else:
                futures = [executor.submit(_evaluate, self.objective, x) for x in X]
                results = [f.result() for f in futures]
        finally:
            if own:
                executor.shutdown(wait=True)
        for x, (value, error) in zip(X, results, strict=True):
            if error is not None:
                if self.on_error == "raise":
                    self.save()
                    raise RuntimeError(f"objective failed at x={x.tolist()}: {error}")
                log.warning("evaluation at %s failed: %s", x.tolist(), error)
                self.failures.append({"x": x.tolist(), "error": error})
                self.save()
            else:
                self.tell(x[None], [value])

    def run(self, n_iter: int, batch_size: int = 1) -> BayesianOptimizer:
        """Run the initial design (if not done) and then ``n_iter`` iterations of
        ``batch_size`` evaluations each."""
        from tqdm.auto import tqdm

        while len(self.y) + len(self.failures) < self.n_init:
            self._evaluate_batch(self.ask(batch_size))
        bar = tqdm(range(n_iter), disable=not self.progress, desc=f"BO ({self.acquisition})")
        for _ in bar:
            self._evaluate_batch(self.ask(batch_size))
            bar.set_postfix(best=f"{self.best_value:.5g}")
        return self

    # --------------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        return {"version": 1, "dim": self.dim, "bounds": self.bounds.tolist(),
                "acquisition": self.acquisition, "n_init": self.n_init, "seed": self.seed,
                "num_fantasies": self.num_fantasies, "X": self.X, "y": self.y,
                "failures": self.failures, "history": self.history,
                "generator": self.generator.get_state().tolist()}

    def save(self, path: str | Path | None = None) -> None:
        """Write the state as JSON atomically (temporary file, then rename)."""
        path = Path(path) if path is not None else self.checkpoint
        if path is None:
            return
        atomic_write_text(path, json.dumps(self.state()))

    @classmethod
    def resume(cls, path: str | Path, objective: Callable, **kwargs) -> BayesianOptimizer:
        """Continue from a checkpoint written by :meth:`save` (JSON: no code is loaded)."""
        state = json.loads(Path(path).read_text())
        opts = {"acquisition": state["acquisition"], "n_init": state["n_init"],
                "seed": state["seed"], "num_fantasies": state["num_fantasies"],
                "checkpoint": path, **kwargs}
        bo = cls(objective, state["bounds"], **opts)
        bo.X, bo.y = state["X"], state["y"]
        bo.failures, bo.history = state["failures"], state["history"]
        bo.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        return bo

"""Pólya-gamma Gibbs sampling for Bayesian logistic and binomial regression (weight space).

Model: ``y_i ~ Binomial(n_i, sigmoid(o_i + phi_i^T beta))``, ``beta ~ N(m, S^-1)``, with an
optional fixed offset ``o`` (a GLM offset; the GP classifier's prior mean). With
``omega_i ~ PG(n_i, 0)`` the augmented likelihood is Gaussian in ``beta`` (Polson, Scott &
Windle 2013), so the sampler alternates two exact conditionals:

    omega_i | beta ~ PG(n_i, o_i + phi_i^T beta)
    beta | omega  ~ N(mu, P^-1),  P = Phi^T Omega Phi + S,  P mu = Phi^T (kappa - Omega o) + S m,

with ``kappa = y - n / 2``. Chains are a batch dimension: one call advances all of them.
With ``metropolis_steps = k`` each sweep ends with ``k`` independence Metropolis-Hastings
steps proposing from the posterior's Laplace approximation (:mod:`bayeskit.mcmc.laplace`):
still exact, and on nearly separable data, where the augmented chain is autocorrelated,
several times the effective samples per second (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import torch

from bayeskit import compiled
from bayeskit.distributions.gaussian import (
    matheron_parts,
    sample_linear_gaussian_posterior,
    sample_mvn,
)
from bayeskit.distributions.polyagamma import sample_polya_gamma
from bayeskit.errors import ArgumentValueError, NonFiniteError, ShapeError, WorkerError
from bayeskit.linalg import (
    LowRankPreconditioner,
    WeightedGram,
    identity_multiple,
    low_rank_eigenpairs,
)
from bayeskit.mcmc.laplace import _independence_metropolis, _log_posterior, laplace_approximation
from bayeskit.training import (
    Checkpoint,
    broken_pool_message,
    check_executor,
    executor_for,
    fingerprint,
    progress_bar,
    torch_threads,
)
from bayeskit.validation import (
    as_int,
    as_param,
    as_tensor,
    check_choice,
    check_generator,
    check_instance,
)

__all__ = ["BinomialRegressionData", "gibbs_steps", "run_gibbs", "GibbsResult"]

log = logging.getLogger(__name__)

_WEIGHTED_GRAM = True  # the batched-precision shortcut in _sweeps (a benchmark switch)
METHODS = ("auto", "precision", "matheron", "cg")


@dataclass(frozen=True)
class BinomialRegressionData:
    """Validated inputs of the sampler: design, counts and the Gaussian prior.

    Attributes:
        Phi: ``[N, D]`` features (basis functions already applied).
        y: ``[N]`` successes; n_trials: ``[N]`` trials (1 for binary labels).
        prior_mean: ``[D]``; prior_precision: ``[D, D]`` (positive definite).
        offset: ``[N]`` fixed offset added to the linear predictor (zeros by default).

    Examples:
        >>> Phi = torch.tensor([[1.0, -2.0], [1.0, -1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 2.0]],
        ...                    dtype=torch.float64)  # [N, D]: intercept and one feature
        >>> data = BinomialRegressionData.create(Phi, [0, 0, 1, 1, 1], prior_precision=1.0)
        >>> data.kappa  # y - n / 2
        tensor([-0.5000, -0.5000,  0.5000,  0.5000,  0.5000], dtype=torch.float64)
    """

    Phi: torch.Tensor
    y: torch.Tensor
    n_trials: torch.Tensor
    prior_mean: torch.Tensor
    prior_precision: torch.Tensor
    offset: torch.Tensor

    @classmethod
    def create(cls, Phi, y, n_trials=1, prior_mean=None, prior_precision=1.0, offset=None,
               dtype=torch.float64) -> BinomialRegressionData:
        """Check and convert the inputs; ``prior_precision`` may be a scalar (times I)."""
        Phi = as_tensor(Phi, "Phi", dtype=dtype, ndim=2, min_rows=1)
        n, d = Phi.shape
        if d == 0:
            raise ShapeError(f"Phi must be a non-empty [N, D] matrix, got {tuple(Phi.shape)}")
        y = as_tensor(y, "y", dtype=dtype, ndim=1)
        if y.shape[0] != n:
            raise ShapeError(f"y has {y.shape[0]} entries for {n} rows of features")
        n_trials = as_param(n_trials, "n_trials").to(dtype).expand(n).clone()
        if not bool(torch.isfinite(y).all()) or not bool(torch.isfinite(n_trials).all()):
            raise NonFiniteError("y or n_trials contain NaN or infinite values")
        if not bool((n_trials > 0).all()):
            raise ArgumentValueError("n_trials must be positive")
        if not bool(((y >= 0) & (y <= n_trials) & (y == torch.round(y))).all()):
            raise ArgumentValueError("y must hold whole numbers of successes in [0, n_trials] "
                                     "(labels in {0, 1} for binary data)")
        m = torch.zeros(d, dtype=dtype) if prior_mean is None else as_param(
            prior_mean, "prior_mean").to(dtype).expand(d).clone()
        S = as_param(prior_precision, "prior_precision").to(dtype)
        if S.dim() == 0:
            S = S * torch.eye(d, dtype=dtype)
        elif S.dim() == 1:
            S = torch.diag(S.expand(d))
        if S.shape != (d, d):
            raise ShapeError(f"prior_precision must be a scalar, [D] or [D, D] with D = {d}, "
                             f"got {tuple(S.shape)}")
        if not bool(torch.isfinite(S).all()) or int(torch.linalg.cholesky_ex(S).info) != 0:
            raise ArgumentValueError("prior_precision must be finite and positive definite")
        if not torch.allclose(S, S.mT, rtol=1e-10, atol=1e-12 * float(S.abs().max())):
            raise ArgumentValueError("prior_precision must be symmetric (only one triangle "
                                     "would be read); pass (S + S.T) / 2")
        o = torch.zeros(n, dtype=dtype) if offset is None else as_param(
            offset, "offset").to(dtype).expand(n).clone()
        if not bool(torch.isfinite(o).all()):
            raise NonFiniteError("offset contains NaN or infinite values")
        return cls(Phi, y, n_trials, m, S, o)

    @property
    def kappa(self) -> torch.Tensor:
        return self.y - self.n_trials / 2

    @functools.cached_property
    def prior_scale(self) -> float | None:
        """``s`` where ``prior_precision = s I`` (a scalar prior precision, the whitened GP
        prior), else ``None``: the log posterior's prior term is then ``s |beta - m|^2 / 2``
        with no matrix product (found once, on first use). ``None`` for a prior precision
        autograd records, whose gradient the matrix product carries."""
        if self.prior_precision.requires_grad:
            return None
        return identity_multiple(self.prior_precision)


def gibbs_steps(data: BinomialRegressionData, beta: torch.Tensor, *,
                generator: torch.Generator | None = None,
                method: str = "auto", metropolis_steps: int = 0,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(beta, omega)`` after each Gibbs sweep, forever (use ``itertools.islice``).

    Args:
        data: the validated problem.
        beta: ``[C, D]`` initial coefficients of ``C`` chains.
        method: ``beta``-step solver, ``"precision"`` (D x D), ``"matheron"`` (N x N, for
            D > N), ``"cg"`` (the Matheron form's N x N system solved by conjugate
            gradients preconditioned with the prior Gram matrix's top eigenpairs: no
            factorisation per chain and sweep; for GP classification in function space) or
            ``"auto"``.
        metropolis_steps: independence Metropolis steps from the Laplace approximation
            after each sweep (0: plain Gibbs); ``omega`` is then the sweep's, drawn before
            them.

    A plain loop, not recursion, so it can run for any number of steps.

    Examples:
        >>> import itertools
        >>> Phi = torch.tensor([[1.0, -2.0], [1.0, -1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 2.0]],
        ...                    dtype=torch.float64)  # [N, D]: intercept and one feature
        >>> data = BinomialRegressionData.create(Phi, [0, 0, 1, 1, 1], prior_precision=1.0)
        >>> sweeps = gibbs_steps(data, torch.zeros(2, 2, dtype=torch.float64),  # 2 chains
        ...                      generator=torch.Generator().manual_seed(0))
        >>> beta, omega = next(itertools.islice(sweeps, 99, None))  # after 100 sweeps
        >>> beta.shape, omega.shape
        (torch.Size([2, 2]), torch.Size([2, 5]))
    """
    check_instance(data, "data", BinomialRegressionData,
                   "a BinomialRegressionData (build it with BinomialRegressionData.create)")
    beta = as_tensor(beta, "beta", dtype=data.Phi.dtype, ndim=2, min_rows=1)
    if beta.shape[-1] != data.Phi.shape[-1]:
        raise ShapeError(f"beta must be [C, {data.Phi.shape[-1]}] (one row of coefficients "
                         f"per chain), got {tuple(beta.shape)}")
    check_choice(method, "method", METHODS)
    metropolis_steps = as_int(metropolis_steps, "metropolis_steps", nonnegative=True)
    check_generator(generator, device=data.Phi.device)
    return _sweeps(data, beta, generator, method, metropolis_steps)


def _sweeps(data, beta, generator, method, metropolis_steps):
    kappa = data.kappa
    offset = data.offset
    n, d = data.Phi.shape
    if metropolis_steps:
        mode, precision_tril = laplace_approximation(data)
    # small D, several chains: each sweep's C precisions as one product with the packed
    # table of the rows' outer products (linalg.WeightedGram: one GEMM instead of C small
    # ones; bench_gibbs's "per-chain precisions" row times the difference)
    gram = WeightedGram(data.Phi) if (
        method not in ("matheron", "cg") and d <= n and d <= 64 and beta.shape[0] > 1
        and _WEIGHTED_GRAM) else None
    # the Matheron form: the prior Gram matrix once, then one N x N solve per draw (a
    # factorisation, or with "cg" a few products with the Gram matrix)
    parts = matheron_parts(data.Phi, data.prior_precision) if (
        method in ("matheron", "cg") or (method == "auto" and d > n)) else None
    eigenpairs = None
    if method == "cg":
        # preconditioner: the Gram matrix's eigenvalues above 2 / max(n_trials), twice a
        # typical floor of the pseudo-noise 1 / omega (omega ~ PG(n, c) rarely exceeds n):
        # the preconditioned condition number stays below ~3 (linalg.iterative) while the
        # per-chain setup, N r^2, stays below a few iterations' 2 N^2
        # (a zero Gram matrix, Phi = 0, has no eigenpair to keep: the diagonal alone)
        eigenpairs = LowRankPreconditioner(*low_rank_eigenpairs(
            parts.gram, max(1, min(256, n // 4)), above=2.0 / float(data.n_trials.max()))
        ) if bool(parts.gram.diagonal().max() > 0) else None
        method = "matheron"
    while True:
        omega = sample_polya_gamma(data.n_trials, offset + beta @ data.Phi.mT,
                                   generator=generator)
        beta = sample_linear_gaussian_posterior(
            data.Phi, omega, kappa - omega * offset, data.prior_mean, data.prior_precision,
            method=method, generator=generator, weighted_gram=gram, matheron_parts=parts,
            eigenpairs=eigenpairs)
        if metropolis_steps:
            beta = _independence_metropolis(data, beta, _log_posterior(data, beta), mode,
                                            precision_tril, metropolis_steps, generator)[0]
        yield beta, omega


@dataclass
class GibbsResult:
    """Draws ``beta: [C, S, D]`` (chains, kept samples, coefficients; in host memory, where a
    long run's draws fit) and the last state ``last_beta: [C, D]`` (on the data's device).

    Examples:
        >>> r = GibbsResult(torch.zeros(4, 100, 3), torch.zeros(4, 3), 150)
        >>> r.beta.shape, r.last_beta.shape, r.steps
        (torch.Size([4, 100, 3]), torch.Size([4, 3]), 150)
    """

    beta: torch.Tensor
    last_beta: torch.Tensor
    steps: int


def run_gibbs(
    data: BinomialRegressionData,
    *,
    num_samples: int = 1000,
    burn_in: int = 500,
    thin: int = 1,
    num_chains: int = 4,
    init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 100,
    progress: bool | None = None,
    method: str = "auto",
    metropolis_steps: int = 0,
    resume: bool = True,
    overwrite: bool = False,
    executor=None,
    num_tasks: int | None = None,
) -> GibbsResult:
    """Run ``num_chains`` chains for ``burn_in + num_samples * thin`` sweeps.

    The chains advance together as one batch (one PG draw and one batched solve per
    sweep). ``metropolis_steps=k`` adds ``k`` independence Metropolis steps from the
    posterior's Laplace approximation after each sweep (see :func:`gibbs_steps`): exact,
    and on the breast-cancer benchmark k = 8 gives ~5x the effective samples per draw.

    With ``executor`` (``"thread"``, ``"process"`` (here the same as ``"forkserver"``) or any
    ``concurrent.futures.Executor``, e.g. ``dask.distributed.Client(...).get_executor()``)
    they are split into ``num_tasks`` groups (default: one per chain, at most 64; with
    ``num_tasks`` alone the same split runs serially),
    run as independent tasks, each with its own generator seeded from ``generator`` and, with
    ``checkpoint``, its own checkpoint ``<checkpoint>.<k>`` (a killed task resumes from it). The
    draws then depend on the split but not on the executor: serial, processes and a Dask cluster
    give the same numbers (each task runs torch on one thread wherever it runs, since MKL's
    products can round differently on other thread counts; the parallelism is the tasks').
    ``"process"`` workers start from multiprocessing's forkserver (spawn where there is
    none), not as forks of this process, so a script using it needs the usual ``if
    __name__ == "__main__":`` guard.

    With ``checkpoint``, the state (coefficients, kept draws, step and the generator's
    state) is written atomically every ``checkpoint_every`` sweeps with a fingerprint of the
    data and settings (:class:`bayeskit.training.Checkpoint`). A run started with an
    existing checkpoint resumes from it (an interrupted run, resumed, returns the same draws
    as an uninterrupted one with the same seed); a checkpoint of other data or settings is
    refused, and with ``resume=False`` an existing file is refused unless
    ``overwrite=True``.

    Examples:
        >>> Phi = torch.tensor([[1.0, -2.0], [1.0, -1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 2.0]],
        ...                    dtype=torch.float64)  # [N, D]: intercept and one feature
        >>> data = BinomialRegressionData.create(Phi, [0, 0, 1, 1, 1], prior_precision=1.0)
        >>> result = run_gibbs(data, num_samples=200, burn_in=50, num_chains=2,
        ...                    generator=torch.Generator().manual_seed(0))
        >>> result.beta.shape, result.steps  # [chains, kept draws, D]
        (torch.Size([2, 200, 2]), 250)
    """
    num_samples = as_int(num_samples, "num_samples", positive=True)
    burn_in = as_int(burn_in, "burn_in", nonnegative=True)
    thin = as_int(thin, "thin", positive=True)
    num_chains = as_int(num_chains, "num_chains", positive=True)
    checkpoint_every = as_int(checkpoint_every, "checkpoint_every", positive=True)
    check_choice(method, "method", METHODS)
    metropolis_steps = as_int(metropolis_steps, "metropolis_steps", nonnegative=True)
    d = data.Phi.shape[1]
    device = data.Phi.device
    g = (check_generator(generator, device=device) if generator is not None
         else torch.Generator(device=device).manual_seed(0))
    if executor is None and num_tasks is not None:
        executor = "serial"  # a split was asked for: run its tasks one after another
    if executor is not None:
        return _run_split(data, executor, num_tasks, num_chains, g, checkpoint, progress,
                          dict(num_samples=num_samples, burn_in=burn_in, thin=thin, init=init,
                               checkpoint_every=checkpoint_every, method=method,
                               metropolis_steps=metropolis_steps, resume=resume,
                               overwrite=overwrite))
    total = burn_in + num_samples * thin
    kept = torch.empty(num_chains, num_samples, d, dtype=data.Phi.dtype)
    step = 0
    if init is None:
        Ls = torch.linalg.cholesky(data.prior_precision)
        beta = sample_mvn(data.prior_mean.expand(num_chains, d), precision_tril=Ls,
                          generator=g)
    else:
        beta = as_tensor(init, "init", dtype=data.Phi.dtype).expand(num_chains, d).clone()
    ckpt = None if checkpoint is None else Checkpoint(
        checkpoint, kind="gibbs", resume=resume, overwrite=overwrite,
        data=fingerprint(data.Phi, data.y, data.n_trials, data.prior_mean,
                         data.prior_precision, data.offset),
        settings=fingerprint(num_samples=num_samples, burn_in=burn_in, thin=thin,
                             num_chains=num_chains, method=method,
                             metropolis_steps=metropolis_steps,
                             init=None if init is None else beta))
    state = ckpt.load() if ckpt is not None else None
    if state is not None:
        beta, kept, step = state["beta"], state["kept"], int(state["step"])
        g.set_state(state["generator"])
        log.info("resumed from %s at step %d", ckpt.path, step)
    bar = progress_bar(total, initial=step, desc="Gibbs", progress=progress)
    sweeps = gibbs_steps(data, beta, generator=g, method=method,
                         metropolis_steps=metropolis_steps)
    while step < total:
        beta, _ = next(sweeps)
        step += 1
        if step > burn_in and (step - burn_in) % thin == 0:
            kept[:, (step - burn_in) // thin - 1] = beta
        if ckpt is not None and (step % checkpoint_every == 0 or step == total):
            ckpt.save({"beta": beta, "kept": kept, "step": step, "generator": g.get_state()})
        bar.update(1)
    bar.close()
    return GibbsResult(kept, beta, step)


def _run_group(data: BinomialRegressionData, seed: int, num_chains: int, checkpoint,
               settings: dict, compiled_on: bool = True) -> GibbsResult:
    """One task of a split run (module level, so process pools and Dask can pickle it).
    ``compiled_on``: the caller's :func:`bayeskit.compiled.set_compiled` setting, which a
    worker that is not a fork of the caller (a forkserver's, Dask's) would not see; the
    compiled and eager samplers draw different numbers. Torch runs on one thread, as in a
    local pool's worker, so the draws do not depend on where the task runs (MKL's products
    can round differently on two threads than on one)."""
    g = torch.Generator(device=data.Phi.device).manual_seed(seed)
    with compiled.use_compiled(compiled_on), torch_threads(1):
        result = run_gibbs(data, num_chains=num_chains, generator=g, checkpoint=checkpoint,
                           progress=False, **settings)
    # host memory back to the caller: a CUDA tensor from a pool worker would be a handle into
    # the worker's memory, which the pool's shutdown frees
    return GibbsResult(result.beta.cpu(), result.last_beta.cpu(), result.steps)


def _run_split(data, executor, num_tasks, num_chains, g, checkpoint, progress,
               settings: dict) -> GibbsResult:
    """``run_gibbs`` over groups of chains on an executor; results in group order."""
    check_executor(executor)
    tasks = min(num_chains, 64) if num_tasks is None else as_int(num_tasks, "num_tasks",
                                                                positive=True)
    if tasks > num_chains:
        raise ArgumentValueError(f"num_tasks ({tasks}) cannot exceed num_chains "
                                 f"({num_chains}): each task runs at least one chain")
    sizes = [num_chains // tasks + (k < num_chains % tasks) for k in range(tasks)]
    seeds = torch.randint(0, 2**62, (tasks,), generator=g, device=g.device).tolist()
    paths = [None if checkpoint is None else f"{checkpoint}.{k}" for k in range(tasks)]
    results: list[GibbsResult | None] = [None] * tasks
    on = compiled.enabled()  # the caller's kernel setting, for every task
    bar = progress_bar(tasks, desc="Gibbs tasks", progress=progress)
    # "process" means a forkserver here: a forked worker can inherit MKL's allocator
    # mid-operation and spin in its first product (training.executors); this module's tasks
    # are importable, so workers start from a clean server that has imported it once.
    if executor == "process":
        executor = "forkserver"
    with executor_for(executor, tasks, payload=data, preload=(__name__,)) as (pool, _):
        if pool is None:
            for k in range(tasks):
                results[k] = _run_group(data, seeds[k], sizes[k], paths[k], settings, on)
                bar.update(1)
        else:
            futures = {pool.submit(_run_group, data, seeds[k], sizes[k], paths[k], settings,
                                   on): k for k in range(tasks)}
            for fut in cf.as_completed(futures):
                try:
                    results[futures[fut]] = fut.result()
                except BrokenProcessPool as err:
                    raise WorkerError(
                        f"Gibbs chains lost: {broken_pool_message(executor)}. With "
                        "checkpoint=..., a rerun resumes the tasks from their checkpoints"
                        ) from err
                bar.update(1)
    bar.close()
    return GibbsResult(torch.cat([r.beta for r in results]),
                       torch.cat([r.last_beta for r in results]).to(data.Phi.device),
                       results[0].steps)

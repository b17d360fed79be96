"""Pólya-gamma Gibbs sampler against the exact posterior computed on a grid."""

import itertools
import threading

import numpy as np
import pytest
import torch

from bayeskit.distributions.gaussian import matheron_parts, sample_linear_gaussian_posterior
from bayeskit.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    CheckpointError,
    NonFiniteError,
    ShapeError,
)
from bayeskit.linalg import low_rank_eigenpairs
from bayeskit.mcmc import BinomialRegressionData, gibbs_steps, run_gibbs
from bayeskit.training import Checkpoint

F64 = torch.float64


def _grid_posterior(Phi, y, n_trials, prior_precision, offset=0.0):
    """Exact posterior mean and sd of a 2-D coefficient by quadrature on a fine grid."""
    b0, b1 = np.meshgrid(np.linspace(-6, 6, 601), np.linspace(-6, 6, 601), indexing="ij")
    B = np.stack([b0.ravel(), b1.ravel()], 1)
    f = offset + B @ Phi.T  # [G, N]
    loglik = (y * f - n_trials * np.logaddexp(0, f)).sum(1)
    logpost = loglik - 0.5 * prior_precision * (B**2).sum(1)
    w = np.exp(logpost - logpost.max())
    w /= w.sum()
    mean = w @ B
    sd = np.sqrt(w @ (B - mean) ** 2)
    return mean, sd


@pytest.mark.parametrize("binomial,offset", [(False, 0.0), (True, 0.0), (False, 0.7)])
def test_gibbs_posterior_matches_grid(binomial, offset):
    rng = np.random.default_rng(0)
    x = rng.normal(size=25)
    Phi = np.stack([np.ones_like(x), x], 1)
    n_trials = rng.integers(1, 6, size=25) if binomial else np.ones(25)
    p = 1 / (1 + np.exp(-(0.4 + 1.2 * x)))
    y = rng.binomial(n_trials.astype(int), p).astype(float)
    data = BinomialRegressionData.create(Phi, y, n_trials, prior_precision=0.5,
                                         offset=offset)
    res = run_gibbs(data, num_samples=600, burn_in=100, num_chains=8,
                    generator=torch.Generator().manual_seed(1))
    draws = res.beta.reshape(-1, 2).numpy()
    mean, sd = _grid_posterior(Phi, y, n_trials, 0.5, offset)
    assert np.all(np.abs(draws.mean(0) - mean) < 0.1 * sd), (draws.mean(0), mean, sd)
    assert np.all(np.abs(draws.std(0) / sd - 1) < 0.1)


def test_matheron_and_precision_forms_agree_in_distribution():
    """D > N uses the N x N system; both must give the same Gaussian."""
    g = torch.Generator().manual_seed(0)
    Phi = torch.randn(3, 6, dtype=F64, generator=g)
    w = torch.rand(3, dtype=F64, generator=g) + 0.2
    kappa = torch.randn(3, dtype=F64, generator=g)
    m = torch.randn(6, dtype=F64, generator=g)
    S = torch.eye(6, dtype=F64) * 2 + 0.3
    P = Phi.T @ (w[:, None] * Phi) + S
    mu = torch.linalg.solve(P, Phi.T @ kappa + S @ m)
    cov = torch.linalg.inv(P)
    n = 40000
    for method in ("precision", "matheron"):
        x = sample_linear_gaussian_posterior(Phi, w.expand(n, 3), kappa.expand(n, 3), m, S,
                                             method=method, generator=g)
        se = (cov.diagonal() / n).sqrt()
        assert bool(((x.mean(0) - mu).abs() < 4 * se).all()), method
        torch.testing.assert_close(torch.cov(x.T), cov, atol=0.03, rtol=0.05)


def test_weighted_gram_builds_the_same_precision():
    """The Gibbs loop's one-GEMM precision equals the per-chain products: same draws."""
    from bayeskit.linalg import WeightedGram

    g = torch.Generator().manual_seed(3)
    Phi = torch.randn(40, 5, dtype=F64, generator=g)
    w = torch.rand(6, 40, dtype=F64, generator=g) + 0.1
    kappa = torch.randn(6, 40, dtype=F64, generator=g)
    m, S = torch.zeros(5, dtype=F64), torch.eye(5, dtype=F64) * 0.5
    plain = sample_linear_gaussian_posterior(Phi, w, kappa, m, S,
                                             generator=torch.Generator().manual_seed(0))
    fast = sample_linear_gaussian_posterior(Phi, w, kappa, m, S,
                                            generator=torch.Generator().manual_seed(0),
                                            weighted_gram=WeightedGram(Phi))
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)
    # a table of another design (other shape, or same shape and other values) is refused:
    # it would give a wrong posterior without any error
    for other in (Phi[:, :4], Phi + 1e-3):
        with pytest.raises(ArgumentValueError, match="another design"):
            sample_linear_gaussian_posterior(Phi, w, kappa, m, S,
                                             weighted_gram=WeightedGram(other))
    with pytest.raises(ArgumentTypeError, match="weighted_gram must be"):
        sample_linear_gaussian_posterior(Phi, w, kappa, m, S, weighted_gram=Phi)


def test_matheron_draw_stays_differentiable():
    """With gradients on, the Matheron form does not take the in-place (detaching)
    factorisation: the draw, a fixed function of the design given the seed, matches finite
    differences (it silently lost d/dPhi through the factor before this test)."""
    g = torch.Generator().manual_seed(1)
    Phi = torch.randn(3, 5, dtype=F64, generator=g, requires_grad=True)
    w = torch.rand(2, 3, dtype=F64, generator=g) + 0.5
    z = torch.randn(2, 3, dtype=F64, generator=g)

    def draw(P):
        return sample_linear_gaussian_posterior(
            P, w, w * z, torch.zeros(5, dtype=F64), torch.eye(5, dtype=F64),
            method="matheron", generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(draw, (Phi,))


def test_generator_interface_with_islice():
    data = BinomialRegressionData.create(np.ones((5, 1)), [1, 0, 1, 1, 0])
    steps = list(itertools.islice(
        gibbs_steps(data, torch.zeros(2, 1, dtype=F64), generator=torch.Generator()), 7))
    assert len(steps) == 7
    assert steps[0][0].shape == (2, 1) and steps[0][1].shape == (2, 5)


def test_checkpoint_resume_gives_identical_draws(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20, 2))
    y = (X[:, 0] > 0).astype(float)
    data = BinomialRegressionData.create(np.hstack([np.ones((20, 1)), X]), y)
    kw = dict(num_samples=30, burn_in=10, num_chains=2)
    full = run_gibbs(data, generator=torch.Generator().manual_seed(5), **kw)
    ck = tmp_path / "state.pt"
    # simulate an interrupt: a run that stops after 20 sweeps leaves its checkpoint behind
    partial = BinomialRegressionData.create(data.Phi, data.y)
    run_gibbs(partial, generator=torch.Generator().manual_seed(5), checkpoint=ck,
              checkpoint_every=5, num_samples=10, burn_in=10, num_chains=2)
    state = torch.load(ck, weights_only=True)
    assert int(state["state"]["step"]) == 20 and state["kind"] == "gibbs"
    # resuming a longer run from it is refused (other settings) ...
    with pytest.raises(CheckpointError, match="other settings"):
        run_gibbs(data, generator=torch.Generator().manual_seed(5), checkpoint=ck, **kw)
    # ... so is a run on other data with the same settings (it would return their draws)
    other = BinomialRegressionData.create(data.Phi, 1 - data.y)
    with pytest.raises(CheckpointError, match="other data"):
        run_gibbs(other, generator=torch.Generator().manual_seed(5), checkpoint=ck,
                  checkpoint_every=5, num_samples=10, burn_in=10, num_chains=2)
    # ... and a fresh run never overwrites it silently
    with pytest.raises(CheckpointError, match="overwrite"):
        run_gibbs(partial, checkpoint=ck, resume=False, num_samples=10, burn_in=10,
                  num_chains=2)
    # ... while the same run, interrupted and resumed, reproduces the uninterrupted draws
    ck2 = tmp_path / "same.pt"
    gen = torch.Generator().manual_seed(5)

    class Interrupt(Exception):
        pass

    original = Checkpoint.save
    calls = {"n": 0}

    def save_then_interrupt(self, state):
        original(self, state)
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupt

    monkeypatch.setattr(Checkpoint, "save", save_then_interrupt)
    with pytest.raises(Interrupt):
        run_gibbs(data, generator=gen, checkpoint=ck2, checkpoint_every=5, **kw)
    monkeypatch.setattr(Checkpoint, "save", original)
    resumed = run_gibbs(data, generator=torch.Generator().manual_seed(999), checkpoint=ck2,
                        checkpoint_every=5, **kw)
    torch.testing.assert_close(resumed.beta, full.beta, rtol=0, atol=0)


def test_separable_data_still_samples():
    X = np.linspace(-1, 1, 20)[:, None]
    y = (X[:, 0] > 0).astype(float)
    data = BinomialRegressionData.create(np.hstack([np.ones((20, 1)), X]), y, prior_precision=1.0)
    res = run_gibbs(data, num_samples=200, burn_in=50, generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(res.beta).all()) and float(res.beta[..., 1].mean()) > 1


def test_bad_inputs():
    with pytest.raises(ValueError, match="whole numbers"):
        BinomialRegressionData.create(np.ones((3, 1)), [0, 2, 1])
    with pytest.raises(ShapeError, match="3 rows"):
        BinomialRegressionData.create(np.ones((3, 1)), [0, 1])
    with pytest.raises(NonFiniteError):
        BinomialRegressionData.create(np.array([[1.0], [np.nan]]), [0, 1])
    with pytest.raises(ShapeError, match="non-empty"):
        BinomialRegressionData.create(np.ones((0, 1)), [])
    with pytest.raises(ValueError, match="positive definite"):
        BinomialRegressionData.create(np.ones((2, 1)), [0, 1], prior_precision=-1.0)
    with pytest.raises(ValueError, match="n_trials"):
        BinomialRegressionData.create(np.ones((2, 1)), [0, 1], n_trials=0)


def _small_problem():
    g = torch.Generator().manual_seed(3)
    Phi = torch.randn(40, 2, dtype=F64, generator=g)
    y = (torch.rand(40, generator=g, dtype=F64) < torch.sigmoid(Phi @ torch.tensor(
        [1.0, -0.5], dtype=F64))).to(F64)
    return BinomialRegressionData.create(Phi, y, prior_precision=1.0), Phi, y


def test_chains_split_over_executors_give_the_same_draws(tmp_path):
    """Chains split into tasks: serial, threads and a process pool give identical draws
    (each task seeds its own generator from the caller's); the draws follow the exact
    posterior (grid quadrature), and per-task checkpoints resume to the same numbers."""
    data, Phi, y = _small_problem()
    settings = dict(num_samples=300, burn_in=50, num_chains=6, num_tasks=3)
    runs = {ex: run_gibbs(data, executor=ex, generator=torch.Generator().manual_seed(1),
                          **settings) for ex in ("serial", "thread", "process")}
    assert runs["serial"].beta.shape == (6, 300, 2)
    for ex in ("thread", "process"):
        assert torch.equal(runs[ex].beta, runs["serial"].beta), ex
    # chains differ from each other (independent seeds)
    assert not torch.equal(runs["serial"].beta[0], runs["serial"].beta[1])
    mean, sd = _grid_posterior(Phi.numpy(), y.numpy(), np.ones(40), 1.0)
    draws = runs["serial"].beta.reshape(-1, 2)
    np.testing.assert_allclose(draws.mean(0).numpy(), mean, atol=5 * sd.max() / 30)
    # per-task checkpoints: a rerun finds them finished and returns the same draws
    ckpt = tmp_path / "chains.pt"
    first = run_gibbs(data, executor="serial", checkpoint=ckpt,
                      generator=torch.Generator().manual_seed(1), **settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chains.pt.0", "chains.pt.1",
                                                          "chains.pt.2"]
    again = run_gibbs(data, executor="serial", checkpoint=ckpt,
                      generator=torch.Generator().manual_seed(1), **settings)
    assert torch.equal(first.beta, runs["serial"].beta) and torch.equal(again.beta, first.beta)


def test_split_draws_do_not_depend_on_the_callers_thread_count():
    """A split run serially in a caller on two torch threads equals the same split in
    one-thread process workers, bit for bit: each task runs on one thread wherever it runs.
    (On this design, N = 300 and D = 5, MKL's product for the chains' precisions rounded
    differently on two threads: the serial run differed from the process run by ~1e-12 from
    the first draw, and the chains then drifted apart.)"""
    g = torch.Generator().manual_seed(4)
    Phi = torch.randn(300, 5, dtype=F64, generator=g)
    y = (Phi @ torch.ones(5, dtype=F64) + torch.randn(300, dtype=F64, generator=g) > 0)
    data = BinomialRegressionData.create(Phi, y.to(F64))
    settings = dict(num_samples=20, burn_in=5, num_chains=4, num_tasks=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = {ex: run_gibbs(data, executor=ex, generator=torch.Generator().manual_seed(5),
                              **settings) for ex in ("serial", "thread", "process")}
        assert torch.get_num_threads() == 2  # the caller's count restored
        fresh = []  # and the default a thread started later takes up
        later = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
        later.start()
        later.join()
        assert fresh == [2]
    finally:
        torch.set_num_threads(threads)
    for ex in ("thread", "process"):
        assert torch.equal(runs[ex].beta, runs["serial"].beta), ex


def test_chains_on_a_local_dask_cluster():
    """The scale-out path: a dask.distributed cluster's executor (worker processes)."""
    distributed = pytest.importorskip("distributed")
    data, _, _ = _small_problem()
    settings = dict(num_samples=100, burn_in=20, num_chains=4, num_tasks=2)
    serial = run_gibbs(data, executor="serial", generator=torch.Generator().manual_seed(2),
                       **settings)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        on_dask = run_gibbs(data, executor=client.get_executor(),
                            generator=torch.Generator().manual_seed(2), **settings)
    assert torch.equal(on_dask.beta, serial.beta)


def test_executor_arguments_are_checked():
    data, _, _ = _small_problem()
    with pytest.raises(ValueError, match="executor"):
        run_gibbs(data, executor="cluster", num_samples=5, burn_in=0)
    with pytest.raises(TypeError, match="executor"):
        run_gibbs(data, executor=3, num_samples=5, burn_in=0)
    with pytest.raises(ValueError, match="num_tasks"):
        run_gibbs(data, executor="serial", num_chains=2, num_tasks=3, num_samples=5,
                  burn_in=0)


def test_num_tasks_alone_runs_the_split_serially():
    """num_tasks without an executor used to be ignored silently."""
    data, _, _ = _small_problem()
    settings = dict(num_samples=20, burn_in=5, num_chains=4, num_tasks=2)
    alone = run_gibbs(data, generator=torch.Generator().manual_seed(3), **settings)
    serial = run_gibbs(data, executor="serial", generator=torch.Generator().manual_seed(3),
                       **settings)
    assert torch.equal(alone.beta, serial.beta)


def test_matheron_draw_by_conjugate_gradients_equals_the_factorised_one():
    """eigenpairs= swaps the N x N factorisation for preconditioned CG: the same draw."""
    g = torch.Generator().manual_seed(0)
    Phi = torch.randn(30, 30, dtype=F64, generator=g) / 5
    S = torch.eye(30, dtype=F64)
    w = torch.rand(4, 30, dtype=F64, generator=g) + 0.1
    z = torch.randn(4, 30, dtype=F64, generator=g)
    m = torch.zeros(30, dtype=F64)
    parts = matheron_parts(Phi, S)
    eig = low_rank_eigenpairs(parts[2], 5)
    draws = [sample_linear_gaussian_posterior(Phi, w, w * z, m, S, method="matheron",
                                              matheron_parts=parts, eigenpairs=e,
                                              generator=torch.Generator().manual_seed(1))
             for e in (None, eig)]
    torch.testing.assert_close(draws[1], draws[0], rtol=0, atol=1e-9)


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_isotropic_prior_draw_needs_no_solve_and_is_the_same_draw(scale):
    """matheron_parts finds S = s I (prior_scale): the prior draw m + eps / sqrt(s) is the
    triangular solve's draw to rounding, with the same generator; a LowRankPreconditioner
    gives the pair's CG draw."""
    from bayeskit.linalg import LowRankPreconditioner

    g = torch.Generator().manual_seed(0)
    Phi = torch.randn(20, 20, dtype=F64, generator=g) / 5
    S = scale * torch.eye(20, dtype=F64)
    w = torch.rand(3, 20, dtype=F64, generator=g) + 0.1
    z = torch.randn(3, 20, dtype=F64, generator=g)
    m = torch.linspace(-1, 1, 20, dtype=F64)
    parts = matheron_parts(Phi, S)
    assert parts.prior_scale == scale and matheron_parts(Phi, S + 1e-3 * Phi.T @ Phi
                                                          ).prior_scale is None
    eig = low_rank_eigenpairs(parts.gram, 4)

    def draw(p, e):
        return sample_linear_gaussian_posterior(Phi, w, w * z, m, S, method="matheron",
                                                matheron_parts=p, eigenpairs=e,
                                                generator=torch.Generator().manual_seed(1))
    assert matheron_parts(Phi, S.clone().requires_grad_()).prior_scale is None  # keeps d/dS
    fast, solved = draw(parts, None), draw(parts._replace(prior_scale=None), None)
    torch.testing.assert_close(fast, solved, rtol=0, atol=1e-13)
    torch.testing.assert_close(draw(parts, LowRankPreconditioner(*eig)), draw(parts, eig),
                               rtol=0, atol=1e-11)


def test_cg_sweep_with_a_zero_design_and_eigenpairs_only_for_matheron():
    """A zero Gram matrix has no eigenpair to precondition with: the CG sweep then runs on
    the diagonal alone (the posterior is the prior); eigenpairs with the precision form
    are refused by name."""
    data = BinomialRegressionData.create(torch.zeros(6, 6, dtype=F64), [0, 1, 0, 1, 1, 0])
    res = run_gibbs(data, num_samples=400, burn_in=10, num_chains=4, method="cg",
                    generator=torch.Generator().manual_seed(0))
    assert abs(float(res.beta.mean())) < 0.05 and abs(float(res.beta.std()) - 1) < 0.05
    with pytest.raises(ArgumentValueError, match="eigenpairs"):
        sample_linear_gaussian_posterior(
            torch.ones(4, 2, dtype=F64), torch.ones(4, dtype=F64), torch.zeros(4, dtype=F64),
            torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64), method="precision",
            eigenpairs=(torch.ones(1, dtype=F64), torch.ones(4, 1, dtype=F64)))


_GIBBS_SCRIPT = '''
import threading
import torch
from bayeskit.mcmc import BinomialRegressionData, run_gibbs

STOP = []


def matmul():
    a = torch.randn(100, 100, dtype=torch.float64)
    a @ a


def new_threads_doing_blas():  # each new thread registers with MKL's allocator
    while not STOP:
        threads = [threading.Thread(target=matmul) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


{guard}
    g = torch.Generator().manual_seed(0)
    Phi = torch.randn(200, 30, dtype=torch.float64, generator=g)
    data = BinomialRegressionData.create(Phi, (torch.rand(200, generator=g) < 0.5).double())
    busy = threading.Thread(target=new_threads_doing_blas, daemon=True)
    busy.start()
    try:
        for i in range(8):  # short runs: many pools, each forking two workers
            run_gibbs(data, num_samples=5, burn_in=1, num_chains=4, num_tasks=2,
                      executor="process", generator=torch.Generator().manual_seed(i))
    finally:
        STOP.append(True)
        busy.join()  # torch in a thread at interpreter exit aborts
    print("finished")
'''


@pytest.mark.parametrize("guarded", [True, False])
def test_process_split_under_blas_threads(tmp_path, guarded):
    """Forked workers of a process whose threads were calling MKL spun forever in MKL's
    allocator on their first product (with forked workers this script hung in 5 of 6
    tries); the split now starts workers from a forkserver. A script without the main
    guard gets an error saying so (the forkserver imports the script again), not a hang or
    a bare traceback."""
    import sys

    from tests.subprocesses import run_own_session

    script = tmp_path / "gibbs_script.py"
    guard = 'if __name__ == "__main__":' if guarded else "if True:"
    script.write_text(_GIBBS_SCRIPT.format(guard=guard))
    # after a hang, its spinning workers are killed with it rather than left to slow the
    # rest of the test run (code None: it ran past the limit)
    code, out, err = run_own_session([sys.executable, str(script)], 90, cwd=tmp_path)
    if guarded:
        assert code == 0 and "finished" in out, (code, err[-2000:])
    else:
        assert code is not None and code != 0, code
        assert "WorkerError" in err and "__main__" in err, err[-2000:]


def test_process_split_checkpoints_honour_the_callers_umask_now(tmp_path):
    """Workers from a forkserver started earlier take the caller's current umask: a
    checkpoint a task writes gets the permissions an ordinary ``open`` would give now."""
    import os

    data, _, _ = _small_problem()
    settings = dict(num_samples=5, burn_in=1, num_chains=2, num_tasks=2, executor="process")
    run_gibbs(data, **settings)  # the forkserver is running from here on
    old = os.umask(0o077)
    try:
        run_gibbs(data, checkpoint=tmp_path / "chains.pt", **settings)
    finally:
        os.umask(old)
    modes = {oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
    assert modes == {oct(0o600)}


def test_process_split_follows_the_callers_compiled_setting():
    """``set_compiled(False)`` in the caller reaches the workers (a forkserver's are not
    forks of the caller): the process split equals the serial one, and the eager sampler's
    draws differ from the compiled one's (so the setting mattered)."""
    from bayeskit import compiled

    data, _, _ = _small_problem()
    settings = dict(num_samples=20, burn_in=5, num_chains=4, num_tasks=2)

    def run(executor):
        return run_gibbs(data, executor=executor, generator=torch.Generator().manual_seed(3),
                         **settings).beta

    with compiled.use_compiled(False):
        eager = {ex: run(ex) for ex in ("serial", "process")}
    assert torch.equal(eager["process"], eager["serial"])
    if compiled.available():
        assert not torch.equal(run("serial"), eager["serial"])

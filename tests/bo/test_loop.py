"""The ask/tell loop: executors, failures, checkpoints and resume, bad input."""

import concurrent.futures as cf
import json
import math

import numpy as np
import pytest
import torch

from bayeskit.bo.loop import BayesianOptimizer
from bayeskit.bo.test_functions import branin, hartmann6, reference_1d
from bayeskit.errors import CheckpointError
from bayeskit.gp import SGPR, SVGP

F64 = torch.float64


def flaky(x):
    """Raises in one region, returns NaN in another, else the reference function."""
    if x[0] > 1.8:
        raise RuntimeError("simulator crashed")
    if x[0] < -0.9:
        return math.nan
    return float(reference_1d()(x[None]))


def test_test_functions_known_minima():
    assert float(reference_1d()(torch.tensor([[-0.3593945]], dtype=F64))) == pytest.approx(
        reference_1d().minimum, abs=1e-6)
    assert float(branin()(torch.tensor([[math.pi, 2.275]], dtype=F64))) == pytest.approx(
        0.397887, abs=1e-6)
    h = torch.tensor([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573], dtype=F64)
    assert float(hartmann6()(h)) == pytest.approx(-3.32237, abs=1e-5)


@pytest.mark.parametrize("acquisition", ["kg", "ei", "ucb"])
def test_loop_improves_on_the_design(acquisition):
    f = reference_1d()
    bo = BayesianOptimizer(f, f.bounds, acquisition=acquisition, n_init=4, seed=1,
                           progress=False, executor="serial").run(6)
    assert len(bo.y) == 10 and len(bo.history) == 6
    assert bo.best_value < min(bo.y[:4])
    assert bo.best_value - f.minimum < 0.05
    assert all(h["acquisition_value"] == h["acquisition_value"] for h in bo.history)


def test_batches_through_executors_and_failures_are_recorded(tmp_path):
    f = reference_1d()
    with cf.ThreadPoolExecutor(2) as pool:
        bo = BayesianOptimizer(flaky, f.bounds, acquisition="ei", n_init=6, seed=0,
                               progress=False, executor=pool, checkpoint=tmp_path / "c.json")
        bo.run(2, batch_size=2)
    assert len(bo.y) + len(bo.failures) == 10
    assert all(-0.9 <= x[0] <= 1.8 for x in bo.X)
    errors = {fail["error"].split(":")[0] for fail in bo.failures}
    assert errors <= {"RuntimeError", "objective returned nan"} and bo.failures
    with pytest.raises(RuntimeError, match="simulator crashed"):
        BayesianOptimizer(flaky, [[1.9], [2.0]], on_error="raise", n_init=2,
                          progress=False).run(0)


def test_process_pool_batch():
    """A batch on a forked pool and on a forkserver's (importable objective: picklable)
    gives the serial loop's evaluations (recorded in the order they finish)."""
    f = reference_1d()
    runs = {ex: BayesianOptimizer(f, f.bounds, acquisition="kg", n_init=4, seed=0,
                                  progress=False, executor=ex).run(1, batch_size=2)
            for ex in ("serial", "process", "forkserver")}
    assert len(runs["serial"].y) == 6
    for ex in ("process", "forkserver"):
        pairs = sorted(zip(map(tuple, runs[ex].X), runs[ex].y, strict=True))
        ref = sorted(zip(map(tuple, runs["serial"].X), runs["serial"].y, strict=True))
        np.testing.assert_allclose(np.array([[*x, v] for x, v in pairs]),
                                   np.array([[*x, v] for x, v in ref]), rtol=1e-12, atol=0)


def test_batches_on_a_local_dask_cluster():
    """The documented scale-out path: evaluations on a dask.distributed cluster's executor
    (worker processes); every evaluation comes back and is recorded at its own point."""
    distributed = pytest.importorskip("distributed")
    f = reference_1d()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        bo = BayesianOptimizer(f, f.bounds, acquisition="ei", n_init=4, seed=0,
                               progress=False, executor=client.get_executor()
                               ).run(2, batch_size=2)
    assert len(bo.y) == 8 and not bo.failures
    for x, v in zip(bo.X, bo.y, strict=True):
        assert v == pytest.approx(float(f(np.array(x)[None])))


def test_checkpoint_resume_and_interrupt(tmp_path):
    path = tmp_path / "bo.json"
    f = reference_1d()
    calls = []

    def interrupted(x):
        calls.append(np.array(x))
        if len(calls) == 7:
            raise KeyboardInterrupt
        return float(f(x[None]))

    bo = BayesianOptimizer(interrupted, f.bounds, acquisition="ei", n_init=4, seed=3,
                           progress=False, checkpoint=path, executor="serial")
    with pytest.raises(KeyboardInterrupt):
        bo.run(10)
    saved = json.loads(path.read_text())["state"]
    assert len(saved["y"]) == 6  # every finished evaluation survived the interrupt
    resumed = BayesianOptimizer.resume(path, f, progress=False, executor="serial")
    assert resumed.X == bo.X and resumed.y == bo.y
    # the resumed loop asks exactly the point whose evaluation was interrupted
    assert np.allclose(resumed.ask(1)[0], calls[-1])
    resumed = BayesianOptimizer.resume(path, f, progress=False, executor="serial")
    resumed.run(2)
    assert len(json.loads(path.read_text())["state"]["y"]) == 8


def test_bad_input():
    f = reference_1d()
    with pytest.raises(ValueError, match="lower bound must be < upper"):
        BayesianOptimizer(f, [[1.0], [0.0]])
    with pytest.raises(ValueError, match="unknown acquisition"):
        BayesianOptimizer(f, f.bounds, acquisition="pi")
    bo = BayesianOptimizer(f, f.bounds, progress=False)
    with pytest.raises(ValueError, match=r"X \[n, 1\]"):
        bo.tell(np.zeros((2, 2)), [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        bo.tell([[math.nan]], [1.0])
    with pytest.raises(ValueError, match="n must be >= 1"):
        bo.ask(0)


def test_a_previous_run_is_never_overwritten_silently(tmp_path):
    f = reference_1d()
    path = tmp_path / "bo.json"
    BayesianOptimizer(f, f.bounds, acquisition="ei", n_init=3, seed=0, progress=False,
                      checkpoint=path, executor="serial").run(1)
    # the default resumes it
    again = BayesianOptimizer(f, f.bounds, acquisition="ei", n_init=3, seed=0, progress=False,
                              checkpoint=path, executor="serial")
    assert len(again.y) == 4
    with pytest.raises(CheckpointError, match="overwrite"):
        BayesianOptimizer(f, f.bounds, acquisition="ei", n_init=3, checkpoint=path,
                          resume=False)
    with pytest.raises(CheckpointError, match="other settings"):
        BayesianOptimizer(f, f.bounds, acquisition="kg", n_init=3, checkpoint=path)
    fresh = BayesianOptimizer(f, f.bounds, acquisition="ei", n_init=3, checkpoint=path,
                              resume=False, overwrite=True, progress=False, executor="serial")
    assert fresh.y == [] and len(json.loads(path.read_text())["state"]["y"]) == 4


def test_each_finished_evaluation_of_a_batch_is_on_disk_at_once(tmp_path):
    import time

    path = tmp_path / "bo.json"
    f = reference_1d()
    import threading

    started, lock = [], threading.Lock()

    def slow(x):
        # the design's points finish 0.2 s apart in the order they start; the third interrupts
        with lock:
            started.append(1)
            rank = len(started)
        time.sleep(0.2 * rank)
        if rank == 3:
            raise KeyboardInterrupt
        return float(f(x[None]))

    with cf.ThreadPoolExecutor(4) as pool:
        bo = BayesianOptimizer(slow, f.bounds, acquisition="ei", n_init=4, seed=0,
                               progress=False, checkpoint=path, executor=pool)
        with pytest.raises(KeyboardInterrupt):
            bo.run(1, batch_size=4)
    assert len(json.loads(path.read_text())["state"]["y"]) == 2


@pytest.mark.parametrize("acquisition", ["kg", "ei", "bore"])
def test_a_resumed_loop_asks_exactly_what_the_uninterrupted_one_asks(tmp_path, acquisition):
    f = branin()
    kw = dict(acquisition=acquisition, n_init=5, seed=2, progress=False, executor="serial",
              num_fantasies=4)
    straight = BayesianOptimizer(f, f.bounds, **kw).run(4)
    path = tmp_path / "bo.json"
    BayesianOptimizer(f, f.bounds, checkpoint=path, **kw).run(2)
    resumed = BayesianOptimizer.resume(path, f, progress=False, executor="serial").run(2)
    assert resumed.X == straight.X and resumed.y == straight.y


def test_timeouts_huge_values_and_bad_objective_values_are_recorded():
    import time

    f = reference_1d()

    def hangs(x):
        if x[0] > 1.5:
            time.sleep(3)
        return 1e300 if x[0] < -0.5 else float(f(x[None]))

    bo = BayesianOptimizer(hangs, f.bounds, acquisition="ei", n_init=5, seed=0,
                           progress=False, executor="serial", timeout=0.5).run(3)
    assert any("TimeoutError" in fail["error"] for fail in bo.failures) or max(
        x[0] for x in bo.X) <= 1.5
    assert all(math.isfinite(h["best_predicted_value"]) for h in bo.history)
    bad = BayesianOptimizer(lambda x: True, f.bounds, n_init=2, progress=False,
                            executor="serial").run(0)
    assert bad.failures and "real number" in bad.failures[0]["error"]
    with pytest.raises(ValueError, match="outside the bounds"):
        bo.tell([[5.0]], [1.0])
    with pytest.raises(TypeError):
        bo.tell([[0.0]], "0.5")
    with pytest.raises(TypeError, match="callable"):
        BayesianOptimizer(None, f.bounds)


@pytest.mark.parametrize("surrogate", ["sgpr", "svgp"])
def test_the_loop_runs_on_sparse_surrogates(surrogate):
    f = reference_1d()
    bo = BayesianOptimizer(f, f.bounds, acquisition="ei", n_init=8, seed=1, progress=False,
                           executor="serial", surrogate=surrogate, num_inducing=6).run(4)
    assert isinstance(bo.model, {"sgpr": SGPR, "svgp": SVGP}[surrogate])
    assert bo.model.posterior().L.shape[-1] == 6
    assert bo.best_value - f.minimum < 0.1
    kg = BayesianOptimizer(f, f.bounds, acquisition="kg", n_init=8, seed=1, progress=False,
                           executor="serial", surrogate=surrogate, num_inducing=6).run(2)
    assert len(kg.y) == 10


def test_improvement_weighted_inducing_points_favour_low_values_and_resume_exactly(tmp_path):
    """inducing_selection="improvement": the sparse surrogate's inducing inputs sit at lower
    observed values than greedy variance's, and a resumed loop asks the same points."""
    f = reference_1d()
    kw = dict(acquisition="ei", n_init=10, seed=3, progress=False, executor="serial",
              surrogate="sgpr", num_inducing=5)
    runs = {sel: BayesianOptimizer(f, f.bounds, inducing_selection=sel, **kw).run(1)
            for sel in ("variance", "improvement")}
    for bo in runs.values():
        assert bo.model.Z.shape == (5, 1)

    def value_at_z(bo):
        return float(f(bo._from_unit(bo.model.Z.detach())).mean())
    assert value_at_z(runs["improvement"]) < value_at_z(runs["variance"])
    for selection in ("improvement", "local"):
        straight = BayesianOptimizer(f, f.bounds, inducing_selection=selection, **kw).run(3)
        path = tmp_path / f"bo-{selection}.json"
        BayesianOptimizer(f, f.bounds, checkpoint=path, inducing_selection=selection,
                          **kw).run(1)
        resumed = BayesianOptimizer.resume(path, f, progress=False, executor="serial").run(2)
        assert resumed.inducing_selection == selection
        assert resumed.X == straight.X and resumed.y == straight.y
    with pytest.raises(ValueError, match="inducing_selection"):
        BayesianOptimizer(f, f.bounds, inducing_selection="kmeans")


def test_local_inducing_points_keep_the_incumbent_and_its_neighbours():
    """inducing_selection="local": a quarter of Z are the observations nearest the best one
    (the incumbent first), which greedy variance alone would drop as near-duplicates."""
    f = reference_1d()
    kw = dict(acquisition="ei", n_init=24, seed=5, progress=False, executor="serial",
              surrogate="sgpr", num_inducing=8)
    bo = BayesianOptimizer(f, f.bounds, inducing_selection="local", **kw).run(1)
    X = bo._to_unit(torch.tensor(bo.X[:-1], dtype=torch.float64))  # what the last fit saw
    y = torch.tensor(bo.y[:-1])
    order = torch.argsort((X[:, 0] - X[int(torch.argmin(y)), 0]).abs(), stable=True)
    Z = bo.model.Z.detach()
    torch.testing.assert_close(Z[:2], X[order[:2]])


def test_one_evaluation_record_per_evaluation_in_order():
    f = reference_1d()

    def sometimes_fails(x):
        if float(x[0]) > 1.9:
            raise RuntimeError("out of reach")
        return float(f(x[None]))

    bo = BayesianOptimizer(sometimes_fails, f.bounds, acquisition="ei", n_init=4, seed=0,
                           progress=False, executor="serial")
    bo.tell([[1.95]], [float("nan")])
    bo.run(3, batch_size=2)
    ev = bo.evaluations
    assert len(ev) == len(bo.y) + len(bo.failures) == 4 + 6  # the failure counts in n_init
    assert [e["index"] for e in ev] == list(range(len(ev)))
    assert ev[0]["y"] is None and ev[0]["error"] == "value nan"
    ok = [e for e in ev if e["y"] is not None]
    assert [e["y"] for e in ok] == bo.y
    assert all(e["best_so_far"] == min(bo.y[:i + 1]) for i, e in enumerate(ok))
    assert [e["iteration"] for e in ev[-6:]] == [1, 1, 2, 2, 3, 3]
    assert len(bo.history) == 3  # one per ask of the model



def _bowl(x):
    """Minimum 0 at (0.3, 0.6), inside the unit square; not a quadratic (a cubic term)."""
    d = np.asarray(x, dtype=float) - np.array([0.3, 0.6])
    return float(d[0] ** 2 + 2 * d[1] ** 2 + d[0] ** 3)


@pytest.mark.parametrize("surrogate, neighbours", [("gpr", None), ("gpr", 24), ("sgpr", 24),
                                                   ("svgp", 24), ("sgpr", None)])
def test_recommend_finds_the_minimum_between_the_evaluations(surrogate, neighbours):
    """60 scattered evaluations of a smooth bowl: the posterior mean's minimiser lies 10x
    closer to the true minimiser than the best evaluation, from the exact GP on all of them
    or from an exact GP on the 24 evaluations nearest the incumbent (what a sparse
    surrogate, here 12 inducing points, hands over to)."""
    c = np.array([0.3, 0.6])
    for seed in range(3):
        X = np.random.default_rng(seed).uniform(0, 1, (60, 2))
        bo = BayesianOptimizer(_bowl, [[0, 0], [1, 1]], acquisition="ei", seed=0,
                               progress=False, surrogate=surrogate, num_inducing=12)
        bo.tell(X, [_bowl(x) for x in X])
        x = bo.recommend(neighbours=neighbours)
        assert x.shape == (2,) and ((x >= 0) & (x <= 1)).all()
        assert np.linalg.norm(x - c) < np.linalg.norm(bo.best_x - c) / 10


def test_recommend_leaves_the_loop_as_it_was():
    f = reference_1d()
    kw = dict(acquisition="ei", n_init=8, seed=2, progress=False, executor="serial",
              surrogate="sgpr", num_inducing=6)
    called = BayesianOptimizer(f, f.bounds, **kw).run(2)
    plain = BayesianOptimizer(f, f.bounds, **kw).run(2)
    before = json.dumps(called.state())
    called.recommend(neighbours=4)
    assert json.dumps(called.state()) == before
    assert called.run(2).X == plain.run(2).X


def test_recommend_without_a_surrogate_is_the_best_evaluation():
    f = reference_1d()
    bo = BayesianOptimizer(f, f.bounds, acquisition="ei", progress=False)
    assert np.isnan(bo.recommend()).all()
    bo.tell([[0.5]], [1.0])
    assert bo.recommend().tolist() == [0.5]
    bore = BayesianOptimizer(f, f.bounds, acquisition="bore", progress=False)
    bore.tell([[0.5], [1.0], [-0.5]], [1.0, 0.2, 0.4])
    assert bore.recommend().tolist() == [1.0]
    with pytest.raises(ValueError, match="neighbours"):
        bo.recommend(neighbours=1)


def test_recommend_from_neighbours_on_a_bound():
    """The two evaluations nearest the incumbent share a coordinate (on the upper bound):
    the neighbourhood's box is flat there, and the unit interval is searched instead."""
    bo = BayesianOptimizer(_bowl, [[0, 0], [1, 1]], acquisition="ei", progress=False)
    X = [[0.2, 1.0], [0.4, 1.0], [0.9, 0.1]]
    bo.tell(X, [_bowl(x) for x in X])
    x = bo.recommend(neighbours=2)
    assert x.shape == (2,) and np.isfinite(x).all() and ((x >= 0) & (x <= 1)).all()


_TORCH_OBJECTIVE = '''
import torch
from bayeskit.bo import BayesianOptimizer

def objective(x):
    v = torch.exp(torch.linspace(0, 1, 2_000_000)).sum()  # a parallel torch op
    return float(((torch.as_tensor(x) - 0.3) ** 2).sum()) + 0 * float(v)

if __name__ == "__main__":
    torch.set_num_threads(2)
    torch.exp(torch.randn(3_000_000)).sum()  # the parent's OpenMP pool is running
    bo = BayesianOptimizer(objective, [[0, 0], [1, 1]], n_init=2, progress=False, seed=0)
    bo.run(1, batch_size=2)
    print("evaluations", len(bo.y), torch.get_num_threads())
'''


def test_process_pool_runs_a_torch_objective_without_hanging(tmp_path):
    """Forked workers of a parent that ran parallel torch ops used to hang in GNU OpenMP on
    their first parallel op (the default executor); workers now run torch on one thread
    and the parent keeps its thread count."""
    import subprocess
    import sys

    script = tmp_path / "torch_objective.py"
    script.write_text(_TORCH_OBJECTIVE)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "evaluations 4 2" in out.stdout



def _dies_once(marker, x):
    """An objective whose first call kills its process (as the out-of-memory killer would)."""
    import os

    if not marker.exists():
        marker.touch()
        os._exit(3)
    return float((x[0] - 0.2) ** 2)


def test_a_worker_that_dies_is_a_recorded_failure(tmp_path):
    """A worker killed mid-evaluation breaks the process pool: the batch's unfinished
    evaluations are recorded as failures (and checkpointed), the next batch runs on a fresh
    pool, and on_error="raise" stops with the cause."""
    import functools

    ckpt = tmp_path / "bo.json"
    bo = BayesianOptimizer(functools.partial(_dies_once, tmp_path / "died"), [[0.0], [1.0]],
                           n_init=4, seed=0, progress=False, executor="process",
                           checkpoint=ckpt)
    bo.run(0, batch_size=2)  # the design in two batches: the first breaks its pool
    errors = [fail["error"] for fail in bo.failures]
    assert errors and all(e.startswith("WorkerError") for e in errors)
    assert len(bo.y) >= 2 and len(bo.y) + len(errors) == 4  # the second batch went through
    resumed = BayesianOptimizer.resume(ckpt, _bowl, executor="serial", progress=False)
    assert resumed.failures == bo.failures and resumed.y == bo.y
    strict = BayesianOptimizer(functools.partial(_dies_once, tmp_path / "died-too"),
                               [[0.0], [1.0]], n_init=2, seed=0, progress=False,
                               executor="process", on_error="raise")
    with pytest.raises(RuntimeError, match="WorkerError"):
        strict.run(0, batch_size=2)

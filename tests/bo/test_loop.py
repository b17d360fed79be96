"""The ask/tell loop: executors, failures, checkpoints and resume, bad input."""

import concurrent.futures as cf
import json
import math

import numpy as np
import pytest
import torch

from bayeskit.bo.loop import BayesianOptimizer
from bayeskit.bo.test_functions import branin, hartmann6, reference_1d

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
    f = reference_1d()  # module-level function: picklable
    bo = BayesianOptimizer(f, f.bounds, acquisition="kg", n_init=4, seed=0, progress=False,
                           executor="process").run(1, batch_size=2)
    assert len(bo.y) == 6


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
    saved = json.loads(path.read_text())
    assert len(saved["y"]) == 6  # every finished evaluation survived the interrupt
    resumed = BayesianOptimizer.resume(path, f, progress=False, executor="serial")
    assert resumed.X == bo.X and resumed.y == bo.y
    # the resumed loop asks exactly the point whose evaluation was interrupted
    assert np.allclose(resumed.ask(1)[0], calls[-1])
    resumed = BayesianOptimizer.resume(path, f, progress=False, executor="serial")
    resumed.run(2)
    assert len(json.loads(path.read_text())["y"]) == 8


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

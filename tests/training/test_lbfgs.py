"""minimise_lbfgs / fit_with_restarts when the objective is undefined somewhere."""

import pytest
import torch

from bayeskit.errors import ArgumentValueError, NotPositiveDefiniteError, ShapeError
from bayeskit.training import AllStartsFailedError, fit_with_restarts, minimise_lbfgs


def _bounded_quadratic(x: torch.nn.Parameter, wall: float):
    """(x - 5)^2, undefined (a ValueError, as a failed Cholesky raises) beyond ``wall``."""
    def loss():
        if float(x) > wall:
            raise NotPositiveDefiniteError("K + noise I is not positive definite")
        return ((x - 5) ** 2).sum()
    return loss


def test_a_later_failure_stops_at_the_best_point_evaluated():
    x = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    info: dict = {}
    value = minimise_lbfgs([x], _bounded_quadratic(x, 2.0), info=info)
    assert "not positive definite" in info["stopped"]
    assert float(x) <= 2.0 and value == pytest.approx((float(x) - 5) ** 2)
    assert value < 25.0  # it moved downhill from the start before the wall


def test_a_failure_at_the_first_point_propagates():
    x = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    with pytest.raises(NotPositiveDefiniteError):
        minimise_lbfgs([x], _bounded_quadratic(x, 2.0))
    module = torch.nn.Module()
    module.x = x
    with pytest.raises(AllStartsFailedError, match="every optimisation start failed") as err:
        fit_with_restarts(module, _bounded_quadratic(x, 2.0), restarts=0)
    # the last start's own error is quoted and chained
    assert isinstance(err.value.__cause__, NotPositiveDefiniteError)
    assert str(err.value.__cause__) in str(err.value)


def test_a_shape_error_is_not_retried_from_other_starts():
    module = torch.nn.Module()
    module.x = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    calls = []

    def objective():
        calls.append(1)
        raise ShapeError("inputs have 2 and 3 features")

    with pytest.raises(ShapeError, match="2 and 3 features"):
        fit_with_restarts(module, objective, restarts=3)
    assert len(calls) == 1


def test_no_failure_no_stop_recorded():
    x = torch.nn.Parameter(torch.tensor([0.0], dtype=torch.float64))
    info: dict = {}
    minimise_lbfgs([x], _bounded_quadratic(x, 10.0), info=info)
    assert "stopped" not in info and float(x) == pytest.approx(5.0)


def test_an_empty_list_of_starts_is_refused():
    module = torch.nn.Module()
    module.x = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    with pytest.raises(ArgumentValueError, match="at least one start"):
        fit_with_restarts(module, lambda: (module.x ** 2).sum(), starts=[])

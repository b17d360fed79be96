"""The one L-BFGS helper for every hyperparameter fit (GPR, SGPR, the BO loop's refits),
with restarts: from several given starting points and from random perturbations of them,
keeping the best. A start whose objective raises a ``ValueError`` (e.g. a Cholesky failure
reported by :mod:`bayeskit.linalg`) at its first point is skipped; one that raises later
stops at the best point it reached."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from bayeskit.errors import ArgumentValueError, BayeskitError, ShapeError
from bayeskit.validation import as_int, as_tensor_list, check_callable, check_instance

__all__ = ["minimise_lbfgs", "fit_with_restarts", "parameter_values", "AllStartsFailedError"]


class AllStartsFailedError(BayeskitError, ValueError):
    """Every optimisation start failed (each raised a ``ValueError``).

    Examples:
        >>> issubclass(AllStartsFailedError, ValueError)
        True
    """


def minimise_lbfgs(params: Iterable[torch.nn.Parameter], loss: Callable[[], torch.Tensor],
                   max_iter: int = 200, info: dict | None = None) -> float:
    """Minimise ``loss()`` over the trainable ``params`` with strong-Wolfe L-BFGS.

    Returns the final loss (and, in ``info["n_iter"]``, the L-BFGS iterations taken). A
    ``ValueError`` from the first evaluation propagates to the caller. One raised later, at
    a point the line search tried (hyperparameters driven to where a Cholesky factorisation
    fails even with jitter, say), ends the run at the best point evaluated so far, with the
    error's message in ``info["stopped"]``: the objective is undefined beyond it.

    Examples:
        >>> x = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
        >>> value = minimise_lbfgs([x], lambda: ((x - 1) ** 2).sum())
        >>> round(float(x), 6), round(value, 10)
        (1.0, 0.0)
    """
    max_iter = as_int(max_iter, "max_iter", positive=True)
    check_callable(loss, "loss")
    trainable = [p for p in as_tensor_list(params) if p.requires_grad]
    opt = torch.optim.LBFGS(trainable, max_iter=max_iter, line_search_fn="strong_wolfe")
    best: dict = {"value": math.inf, "at": None}

    def closure():
        opt.zero_grad()
        value = loss()
        value.backward()
        v = float(value.detach())
        if v < best["value"]:
            best["value"], best["at"] = v, [p.detach().clone() for p in trainable]
        return value

    stopped = None
    try:
        opt.step(closure)
    except ValueError as err:
        if best["at"] is None:
            raise
        stopped = str(err)
        with torch.no_grad():
            for p, v in zip(trainable, best["at"], strict=True):
                p.copy_(v)
    if info is not None:
        state = opt.state_dict()["state"]
        info["n_iter"] = int(state[0]["n_iter"]) if state else 0
        if stopped is not None:
            info["stopped"] = stopped
    with torch.no_grad():
        return float(loss())


def parameter_values(module: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of a module's parameters by name (a start for
    :func:`fit_with_restarts`; buffers such as training data are not included).

    Examples:
        >>> values = parameter_values(torch.nn.Linear(2, 1))
        >>> sorted(values), values["weight"].requires_grad
        (['bias', 'weight'], False)
    """
    check_instance(module, "module", nn.Module, "a torch.nn.Module")
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def _load(module: nn.Module, values: dict[str, torch.Tensor]) -> None:
    params = dict(module.named_parameters())
    with torch.no_grad():
        for k, v in values.items():
            if k in params and params[k].shape == v.shape:
                params[k].copy_(v)


def _default_perturbed(name: str) -> bool:
    return name.startswith(("raw_", "kernel.raw_"))


def fit_with_restarts(module: nn.Module, objective: Callable[[], torch.Tensor], *,
                      max_iter: int = 200, restarts: int = 0, seed: int = 0,
                      starts: list[dict[str, torch.Tensor]] | None = None,
                      perturbed: Callable[[str], bool] = _default_perturbed,
                      info: dict | None = None) -> float:
    """Minimise ``objective()`` over ``module``'s parameters with L-BFGS from every start
    and ``restarts`` random perturbations of each; leave the module at the best optimum.

    Args:
        starts: parameter values to start from (:func:`parameter_values`); default the
            module's current values.
        restarts: extra starts per start: the named parameters for which ``perturbed(name)``
            holds get standard-normal noise on their unconstrained scale (generator seeded
            with ``seed`` for each start, so runs are reproducible).

    Returns:
        The best objective value (``info["n_iter"]``: the L-BFGS iterations of the best
        start).

    Raises:
        AllStartsFailedError: every start raised a ``ValueError`` (the last one chained and
            quoted); a :class:`~bayeskit.errors.ShapeError` is raised at once.

    Examples:
        >>> module = torch.nn.Module()
        >>> module.raw_x = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
        >>> best = fit_with_restarts(module, lambda: (module.raw_x ** 2 - 1) ** 2, restarts=2)
        >>> round(abs(float(module.raw_x)), 6), round(best, 10)  # either minimum, +-1
        (1.0, 0.0)
    """
    check_instance(module, "module", nn.Module, "a torch.nn.Module")
    check_callable(objective, "objective")
    max_iter = as_int(max_iter, "max_iter", positive=True)
    restarts = as_int(restarts, "restarts", nonnegative=True)
    seed = as_int(seed, "seed", nonnegative=True)
    starts = [parameter_values(module)] if starts is None else list(starts)
    if not starts:
        raise ArgumentValueError("starts must hold at least one start (None: the current "
                                 "parameter values)")
    best_value, best_state, last_error = math.inf, None, None
    for start in starts:
        g = torch.Generator().manual_seed(seed)
        for attempt in range(restarts + 1):
            _load(module, start)
            if attempt:
                with torch.no_grad():
                    for name, p in module.named_parameters():
                        if perturbed(name) and p.requires_grad:
                            p.add_(torch.randn(p.shape, dtype=p.dtype, generator=g))
            run: dict = {}
            try:
                value = minimise_lbfgs(module.parameters(), objective, max_iter, run)
            except ShapeError:  # structural: every start would fail alike
                raise
            except ValueError as err:
                last_error = err
                continue
            if value < best_value:
                best_value, best_state = value, parameter_values(module)
                if info is not None:
                    info.update(run)
    if best_state is None:
        raise AllStartsFailedError(f"every optimisation start failed (the last: {last_error}); "
                                   "rescale the data or the initial hyperparameters"
                                   ) from last_error
    _load(module, best_state)
    return best_value

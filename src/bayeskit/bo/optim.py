"""Multi-start L-BFGS-B in a box: the one optimiser behind predictive minima, inner KG
problems, one-shot KG and acquisition maximisation.

Many independent starts are optimised *together*: the objective handed to SciPy's
L-BFGS-B is the sum of the per-start values, whose gradient with respect to one start's
coordinates is that start's own gradient, so one vectorised torch evaluation serves every
start (the approach BoTorch's ``gen_candidates_scipy`` also takes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import minimize

from bayeskit.errors import ArgumentValueError
from bayeskit.validation import as_bounds, as_int, as_tensor, check_callable

__all__ = ["maximize_box", "maximize_box_all", "minimize_box", "evolutionary_search",
           "optimize_acquisition", "refine_lbfgsb", "uniform_in_box"]

F64 = torch.float64


def uniform_in_box(n: int, bounds: torch.Tensor, shape: tuple[int, ...] = (),
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` uniform draws of ``[*shape, D]`` blocks in the box: ``[n, *shape, D]``."""
    lo, hi = bounds[0], bounds[1]
    u = torch.rand((n, *shape, lo.shape[0]), dtype=F64, generator=generator)
    return lo + (hi - lo) * u


def maximize_box(fun: Callable[[torch.Tensor], torch.Tensor], bounds, *,
                 shape: tuple[int, ...] = (), num_restarts: int = 8, raw_samples: int = 256,
                 initial: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 max_iter: int = 200, raw: torch.Tensor | None = None,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise ``fun`` over blocks ``x: [*shape, D]`` with every coordinate in the box.

    Args:
        fun: batched objective, ``[R, *shape, D] -> [R]``; differentiable in its input.
        bounds: ``[2, D]``.
        shape: leading shape of one block (``()`` for a point, ``(q,)`` for a batch of q).
        num_restarts: how many of the best raw points are refined by L-BFGS-B.
        raw_samples: uniform random blocks scored once to pick the starts.
        initial: extra starting blocks ``[K, *shape, D]`` (always refined).
        raw: use these raw blocks instead of drawing ``raw_samples`` new ones.

    Returns:
        ``(x_best [*shape, D], value_best [])`` and, through :func:`maximize_box_all`, every
        refined start.

    Examples:
        >>> b = torch.tensor([[-2.0], [2.0]], dtype=torch.float64)
        >>> x, v = maximize_box(lambda x: -(x[..., 0] - 0.5) ** 2, b)
        >>> round(float(x), 6), round(float(v), 9)
        (0.5, -0.0)
    """
    x_all, v_all = maximize_box_all(fun, bounds, shape=shape, num_restarts=num_restarts,
                                    raw_samples=raw_samples, initial=initial,
                                    generator=generator, max_iter=max_iter, raw=raw)
    best = int(torch.argmax(v_all))
    return x_all[best], v_all[best]


def maximize_box_all(fun, bounds, *, shape=(), num_restarts=8, raw_samples=256, initial=None,
                     generator=None, max_iter=200, raw=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`maximize_box` but returns every refined start ``[R, *shape, D]`` and its
    value ``[R]``."""
    bounds = as_bounds(bounds)
    num_restarts = as_int(num_restarts, "num_restarts", nonnegative=True)
    raw_samples = as_int(raw_samples, "raw_samples", nonnegative=True)
    max_iter = as_int(max_iter, "max_iter", positive=True)
    starts = []
    if raw is None and raw_samples > 0:
        raw = uniform_in_box(raw_samples, bounds, shape, generator)
    if raw is not None and num_restarts > 0:
        with torch.no_grad():
            scores = torch.cat([fun(chunk) for chunk in raw.split(2048)])
        scores = torch.nan_to_num(scores, nan=-torch.inf)
        top = torch.topk(scores, min(num_restarts, raw.shape[0])).indices
        starts.append(raw[top])
    if initial is not None:
        starts.append(as_tensor(initial, "initial", dtype=F64).reshape(-1, *shape,
                                                                        bounds.shape[1]))
    if not starts:
        raise ArgumentValueError("no starting points: give raw_samples > 0 or initial")
    x0 = torch.cat(starts)
    return refine_lbfgsb(fun, x0, bounds, max_iter=max_iter)


def refine_lbfgsb(fun, x0: torch.Tensor, bounds: torch.Tensor, *, max_iter: int = 200
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run L-BFGS-B on every block of ``x0`` ``[R, ..., D]`` jointly; returns the refined
    blocks and their values (never worse than the starts)."""
    shape = x0.shape
    lo = bounds[0].expand(shape).reshape(-1).numpy()
    hi = bounds[1].expand(shape).reshape(-1).numpy()
    x0 = torch.maximum(torch.minimum(x0, bounds[1]), bounds[0])
    with torch.no_grad():
        v0 = fun(x0)

    def objective(flat: np.ndarray):
        x = torch.from_numpy(flat).reshape(shape).requires_grad_(True)
        values = fun(x)
        total = -values.sum()
        (grad,) = torch.autograd.grad(total, x)
        g = grad.reshape(-1).numpy()
        if not np.isfinite(float(total.detach())) or not np.isfinite(g).all():
            return np.inf, np.zeros_like(flat)
        return float(total.detach()), g

    result = minimize(objective, x0.reshape(-1).numpy().copy(), jac=True, method="L-BFGS-B",
                      bounds=list(zip(lo, hi, strict=True)), options={"maxiter": max_iter})
    x = torch.from_numpy(result.x).reshape(shape)
    with torch.no_grad():
        v = fun(x)
    # a start the joint run made worse (possible: the line search is shared) keeps its value
    worse = ~(v >= v0)
    x = torch.where(worse.reshape(-1, *[1] * (len(shape) - 1)), x0, x)
    return x, torch.where(worse, v0, v)


def evolutionary_search(fun: Callable[[torch.Tensor], torch.Tensor], bounds, *,
                        raw_samples: int = 512, generations: int = 5, elite: int = 16,
                        children: int = 16, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise a function without gradients (e.g. a tree classifier's score) in the box:
    ``raw_samples`` uniform points, then ``generations`` rounds in which each of the
    ``elite`` best spawns ``children`` Gaussian perturbations (sd 10 % of the box, halved
    every round, clipped to the box). ``fun``: ``[R, D] -> [R]``. Returns
    ``(x_best [D], value_best [])``.

    Examples:
        >>> b = torch.tensor([[-2.0], [2.0]], dtype=torch.float64)
        >>> x, v = evolutionary_search(lambda x: -(x[..., 0] - 0.5).abs(), b,
        ...                            generator=torch.Generator().manual_seed(0))
        >>> abs(float(x) - 0.5) < 0.01
        True
    """
    bounds = as_bounds(bounds)
    raw_samples = as_int(raw_samples, "raw_samples", positive=True)
    generations = as_int(generations, "generations", nonnegative=True)
    elite = as_int(elite, "elite", positive=True)
    children = as_int(children, "children", positive=True)
    lo, hi = bounds[0], bounds[1]
    with torch.no_grad():
        pop = uniform_in_box(raw_samples, bounds, generator=generator)
        vals = torch.nan_to_num(fun(pop), nan=-torch.inf)
        sd = 0.1 * (hi - lo)
        for _ in range(generations):
            top = torch.topk(vals, min(elite, len(vals))).indices
            parents = pop[top].repeat_interleave(children, 0)
            noise = torch.randn(parents.shape, dtype=F64, generator=generator)
            kids = torch.maximum(torch.minimum(parents + sd * noise, hi), lo)
            pop = torch.cat([pop[top], kids])
            vals = torch.cat([vals[top], torch.nan_to_num(fun(kids), nan=-torch.inf)])
            sd = sd / 2
    best = int(torch.argmax(vals))
    return pop[best], vals[best]


def minimize_box(fun: Callable[[torch.Tensor], torch.Tensor], bounds, **kwargs
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``fun`` (see :func:`maximize_box`); returns ``(x_min, value_min)``.

    Examples:
        >>> bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
        >>> x, value = minimize_box(lambda x: ((x - 0.3) ** 2).sum(-1), bounds)
        >>> x.tolist(), float(value)
        ([0.3, 0.3], 0.0)
    """
    check_callable(fun, "fun")
    x, v = maximize_box(lambda x: -fun(x), bounds, **kwargs)
    return x, -v


def optimize_acquisition(acquisition, bounds, *, q: int = 1, num_restarts: int = 8,
                         raw_samples: int = 256, raw: torch.Tensor | None = None,
                         generator: torch.Generator | None = None, max_iter: int = 200,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise an acquisition ``[B, q, D] -> [B]`` over ``q`` points in the box:
    ``(X [q, D], value [])``. Acquisitions with their own ``optimize`` (one-shot KG, whose
    variables include fantasy minimisers) are delegated to it.

    Examples:
        >>> from bayeskit.bo import UpperConfidenceBound
        >>> from bayeskit.gp import GPR
        >>> X = torch.tensor([[-1.0], [0.0], [0.5], [1.5]], dtype=torch.float64)
        >>> ucb = UpperConfidenceBound(GPR(X, torch.sin(3 * X[:, 0]), noise_variance=1e-3))
        >>> bounds = torch.tensor([[-1.0], [2.0]], dtype=torch.float64)
        >>> x, value = optimize_acquisition(ucb, bounds, generator=torch.Generator().manual_seed(0))
        >>> x.shape  # [q, D]
        torch.Size([1, 1])
    """
    check_callable(acquisition, "acquisition")
    q = as_int(q, "q", positive=True)
    if hasattr(acquisition, "optimize"):
        return acquisition.optimize(num_restarts=num_restarts, raw_samples=raw_samples,
                                    generator=generator, max_iter=max_iter)
    if raw is not None:
        raw = as_tensor(raw, "raw", dtype=F64).reshape(-1, q, as_bounds(bounds).shape[1])
    return maximize_box(acquisition, bounds, shape=(q,), num_restarts=num_restarts,
                        raw_samples=raw_samples, raw=raw, generator=generator,
                        max_iter=max_iter)

"""Reference 08: mgrid vs meshgrid, open grids, and the complex step = number of points."""

from __future__ import annotations

import numpy as np
import torch

from bayeskit.cli.reproduce import Context
from bayeskit.cli.reproduce.report import Figure, TopicResult
from bayeskit.plotting.figures import pyplot, save
from bayeskit.plotting.grids import Grid, evaluate_on_grid, mgrid, ogrid

TITLE = "mgrid vs meshgrid: dense and open grids"


def _mismatches(a, b) -> int:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return max(a.size, b.size)
    return int((a != b).sum())


def run(ctx: Context) -> TopicResult:
    res = TopicResult("grids", TITLE, summary="The reference's grid identities checked "
                      "element by element against NumPy, and a density evaluated on a grid")
    src = "the reference article / NumPy"
    x1, y1 = np.meshgrid(np.arange(1, 11, 2), np.arange(-12, -3, 3))
    x2, y2 = (t.numpy() for t in mgrid((1, 11, 2), (-12, -3, 3)))
    res.add("grid shape of mgrid[1:11:2, -12:-3:3], rows", x2.shape[0], 5, source=src,
            tolerance=0)
    res.add("grid shape of mgrid[1:11:2, -12:-3:3], columns", x2.shape[1], 3, source=src,
            tolerance=0)
    res.add("entries where mgrid x differs from meshgrid x transposed",
            _mismatches(x2, x1.T), 0, source=src, tolerance=0)
    res.add("entries where mgrid y differs from meshgrid y transposed",
            _mismatches(y2, y1.T), 0, source=src, tolerance=0)
    a, b = (t.numpy() for t in ogrid((1, 11, 2), (-12, -3, 3)))
    res.add("entries where ogrid a + b differs from mgrid x + y",
            _mismatches(a + b, x2 + y2), 0, source=src, tolerance=0)
    res.add("entries where x2 + y2 differs from the reference's printed sum",
            _mismatches(x2 + y2, [[-11, -8, -5], [-9, -6, -3], [-7, -4, -1], [-5, -2, 1],
                                  [-3, 0, 3]]), 0, source="the reference article", tolerance=0)
    y3, x3 = (t.numpy() for t in mgrid((-12, -3, 3j), (-5, 5, 5j)))
    xl, yl = np.meshgrid(np.linspace(-5, 5, 5), np.linspace(-12, -3, 3))
    res.add("entries where mgrid[-12:-3:3j, -5:5:5j] differs from linspace meshgrid",
            _mismatches(x3, xl) + _mismatches(y3, yl), 0, source=src, tolerance=0)
    xy = Grid.from_ranges((1, 11, 2), (-12, -3, 3)).dense(indexing="xy").numpy()
    res.add("entries where Grid.dense('xy') differs from np.meshgrid",
            _mismatches(xy[0], x1) + _mismatches(xy[1], y1), 0, source=src, tolerance=0)

    # A density on a grid: a correlated Gaussian, integrated by the trapezoid rule.
    num = 81 if ctx.quick else 301
    cov = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
    dist = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), cov)
    grid, logp = evaluate_on_grid(dist.log_prob, (-5, 5), (-5, 5), num=num)
    dens = logp.exp()
    x_axis, y_axis = grid.axes
    mass = torch.trapezoid(torch.trapezoid(dens, y_axis, dim=1), x_axis)
    res.add(f"trapezoid integral of N(0, [[1, .8], [.8, 1]]) on a {num}x{num} grid",
            float(mass), 1.0, source="closed form (mass outside [-5, 5]^2 < 1e-6)",
            tolerance=1e-4 if ctx.quick else 1e-5)

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    ax.scatter(x2.ravel(), y2.ravel(), c="C0")
    for i in range(x2.shape[0]):
        for j in range(x2.shape[1]):
            ax.annotate(f"[{i},{j}]", (x2[i, j], y2[i, j]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    ax.set_title("mgrid[1:11:2, -12:-3:3]: index [i, j] (ij order)")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    X, Y = grid.dense()
    cs = axes[1].contourf(X.numpy(), Y.numpy(), dens.numpy(), levels=12, cmap="viridis")
    fig.colorbar(cs, ax=axes[1], label="density")
    axes[1].set_title("evaluate_on_grid: N(0, [[1, .8], [.8, 1]]) density")
    axes[1].set_xlabel("x_1")
    axes[1].set_ylabel("x_2")
    axes[1].set_aspect("equal")
    save(fig, ctx.path("grids.png"))
    res.figures.append(Figure("grids.png", "Left: the dense ij grid of the reference, each "
                              "point labelled with its array index. Right: a density evaluated "
                              "with evaluate_on_grid and drawn with contourf(*grid.dense(), z)."))
    return res

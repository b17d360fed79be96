"""Reference 06: bijectors and transformed distributions (the banana)."""

from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal, TransformedDistribution

from bayeskit.cli.reproduce import Context
from bayeskit.cli.reproduce.report import Figure, TopicResult
from bayeskit.distributions.flows import Flow, fit_flow
from bayeskit.distributions.transforms import (
    Banana,
    InlineTransform,
    banana_distribution,
    check_transform,
)
from bayeskit.plotting.figures import pyplot, save
from bayeskit.plotting.grids import evaluate_on_grid

TITLE = "Bijectors: the banana-shaped distribution as a transformed Gaussian"
F64 = torch.float64


def run(ctx: Context) -> TopicResult:
    res = TopicResult("bijectors", TITLE, summary="Banana bijector on N(0, [[1, .95], [.95, "
                      "1]]): samples, densities on a grid, exact moments, an inline bijector")
    rho = 0.95
    p_y = banana_distribution(rho=rho)
    p_x = p_y.base_dist
    torch.manual_seed(ctx.seed)
    n = 20_000 if ctx.quick else 200_000
    x = p_x.sample((n,))
    y = Banana()(x)
    se = 1 / math.sqrt(n)
    res.add(f"mean of y_1 (n={n})", float(y[:, 0].mean()), 0.0, source="closed form",
            tolerance=4 * se)
    res.add(f"mean of y_2 (n={n})", float(y[:, 1].mean()), -2.0,
            source="closed form -b - shift", tolerance=4 * math.sqrt(3) * se)
    # standard errors of a variance / covariance from the samples' own products
    d = y - y.mean(0)
    res.add(f"variance of y_2 (n={n})", float(y[:, 1].var()), 3.0,
            source="closed form 1 + 2b^2", tolerance=4 * float((d[:, 1] ** 2).std()) * se)
    res.add(f"covariance of y_1, y_2 (n={n})", float(torch.cov(y.T)[0, 1]), rho,
            source="closed form rho", tolerance=4 * float((d[:, 0] * d[:, 1]).std()) * se)

    num = (241, 521) if ctx.quick else (601, 1301)
    grid_y, logp_y = evaluate_on_grid(p_y.log_prob, (-6, 6), (-40, 6), num=num)
    mass = torch.trapezoid(torch.trapezoid(logp_y.exp(), grid_y.axes[1], dim=1), grid_y.axes[0])
    res.add(f"integral of p_Y on a {num[0]}x{num[1]} grid", float(mass), 1.0,
            source="a density integrates to 1", tolerance=1e-3)

    inline = InlineTransform(
        lambda v: torch.stack([v[..., 0], v[..., 1] - v[..., 0] ** 2 - 1], -1),
        lambda w: torch.stack([w[..., 0], w[..., 1] + w[..., 0] ** 2 + 1], -1),
        constant_jacobian=True)
    p_inline = TransformedDistribution(p_x, [inline])
    res.add("max |log p_Y (Inline) - log p_Y (Banana)| over 1000 samples",
            float((p_inline.log_prob(y[:1000]) - p_y.log_prob(y[:1000])).abs().max()), 0.0,
            source="same bijection", tolerance=1e-12)
    report = check_transform(Banana(), torch.randn(200, 5, dtype=F64))
    res.add("Banana K=5: round-trip error", report["round_trip"], 0.0,
            source="inverse(forward(x)) = x", tolerance=1e-12)
    res.add("Banana K=5: |log-det - autodiff log|det J||", report["log_det"], 0.0,
            source="volume preserving", tolerance=1e-12)

    # a masked autoregressive flow and a neural spline flow (rational-quadratic splines,
    # linear tails) learned from the same raw samples of p_Y: Flow standardises itself
    # (zuko's NSF on the raw data ends ~1.4 nats off), against the exact density
    n_train = 4000 if ctx.quick else 20_000
    train, test = y[:n_train].float(), y[n_train:n_train + 5000].float()
    exact_nll = float(-p_y.log_prob(test.double()).mean())
    flows = {}
    for offset, (kind, name) in enumerate((("maf", "MAF (3 layers)"),
                                           ("nsf", "NSF (3 spline layers)"))):
        ctx.step(f"fitting {name}")
        torch.manual_seed(ctx.seed + 1 + offset)
        flow = Flow(2, kind=kind, num_layers=3, hidden=(64, 64))
        fit_flow(flow, train, epochs=15 if ctx.quick else 60, batch_size=256, lr=1e-3,
                 patience=5, generator=torch.Generator().manual_seed(ctx.seed))
        with torch.no_grad():
            nll = float(-flow.log_prob(test).mean())
        res.add(f"{kind.upper()} test NLL ({n_train} training samples) vs exact test NLL", nll,
                exact_nll, source="exact banana density", tolerance=0.15 if ctx.quick else 0.05)
        flows[name] = flow

    _figures(res, ctx, x, y, p_x, grid_y, logp_y)
    _flow_figure(res, ctx, flows, grid_y, logp_y, test)
    return res


def _flow_figure(res, ctx, flows, grid_y, logp_y, test):
    plt = pyplot()
    X, Y = grid_y.dense()
    panels = [("exact p_Y", logp_y.exp())]
    with torch.no_grad():
        pts = grid_y.points().float()
        for name, flow in flows.items():
            logq = torch.cat([flow.log_prob(c) for c in torch.split(pts, 50_000)])
            panels.append((f"learned {name}", grid_y.reshape(logq.double()).exp()))
    fractions = torch.tensor([0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8], dtype=F64)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (title, dens) in zip(axes, panels, strict=True):
        ax.contour(X, Y, dens, levels=(fractions * dens.max()).tolist(), cmap="viridis")
        ax.scatter(test[:500, 0], test[:500, 1], s=2, color="k", alpha=0.3)
        ax.set_xlim(-4, 4)
        ax.set_ylim(-14, 3)
        ax.set_xlabel("y_1")
        ax.set_ylabel("y_2")
        ax.set_title(title)
    save(fig, ctx.path("bijectors_flow.png"))
    res.figures.append(Figure("bijectors_flow.png", "Densities of a masked autoregressive flow "
                              "and a neural spline flow, each fitted by maximum likelihood to "
                              "the raw samples, next to the truth (contours at fixed fractions "
                              "of each density's maximum; dots: test samples)."))


def _figures(res, ctx, x, y, p_x: MultivariateNormal, grid_y, logp_y):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    k = min(2000, x.shape[0])
    axes[0].scatter(x[:k, 0], x[:k, 1], s=3, alpha=0.4)
    axes[0].set_title("base samples x ~ N(0, [[1, .95], [.95, 1]])")
    axes[1].scatter(y[:k, 0], y[:k, 1], s=3, alpha=0.4, color="C1")
    axes[1].set_title("transformed samples y = Banana(x)")
    for ax in axes:
        ax.set_xlabel("1st coordinate")
        ax.set_ylabel("2nd coordinate")
    save(fig, ctx.path("bijectors_samples.png"))
    res.figures.append(Figure("bijectors_samples.png", "Base samples and the same samples "
                              "pushed through the banana bijector."))

    grid_x, logp_x = evaluate_on_grid(p_x.log_prob, (-4, 4), (-4, 4), num=201)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    fractions = torch.tensor([0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8], dtype=F64)
    dens_x = logp_x.exp()
    axes[0].contour(*grid_x.dense(), dens_x, levels=(fractions * dens_x.max()).tolist(),
                    cmap="viridis")
    axes[0].scatter(x[:500, 0], x[:500, 1], s=2, color="k", alpha=0.3)
    axes[0].set_title("p_X: equiprobability contours")
    axes[0].set_xlabel("x_1")
    axes[0].set_ylabel("x_2")
    X, Y = grid_y.dense()
    dens_y = logp_y.exp()
    axes[1].contour(X, Y, dens_y, levels=(fractions * dens_y.max()).tolist(), cmap="viridis")
    axes[1].scatter(y[:500, 0], y[:500, 1], s=2, color="k", alpha=0.3)
    axes[1].set_xlim(-4, 4)
    axes[1].set_ylim(-14, 3)
    axes[1].set_title("p_Y = p_X(G^-1(y)) (log|det J| = 0)")
    axes[1].set_xlabel("y_1")
    axes[1].set_ylabel("y_2")
    save(fig, ctx.path("bijectors_contours.png"))
    res.figures.append(Figure("bijectors_contours.png", "Densities evaluated on ij grids "
                              "(plotting.grids) with samples over them."))

"""Reference 05: density-ratio estimation and KL divergence between implicit distributions."""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal, kl_divergence

from bayeskit.cli.reproduce import Context
from bayeskit.cli.reproduce.report import Figure, TopicResult
from bayeskit.plotting.figures import pyplot, save
from bayeskit.plotting.grids import Grid
from bayeskit.ratio import (
    ULSIF,
    ClassifierDensityRatio,
    estimate_kl,
    jensen_shannon,
    monte_carlo_f_divergence,
    monte_carlo_kl,
)

TITLE = "Density-ratio estimation: KL divergence from samples (reference 05)"
F64 = torch.float64


def run(ctx: Context) -> TopicResult:
    res = TopicResult("ratio", TITLE, summary="p = N(1, 1), q = N(0, 2²): the exact KL, its "
                      "Monte Carlo estimate, and estimates from samples only (classifier, uLSIF)")
    p, q = Normal(torch.tensor(1.0, dtype=F64), 1.0), Normal(torch.tensor(0.0, dtype=F64), 2.0)
    analytic = float(kl_divergence(p, q))
    res.add("analytic KL[p || q]", analytic, 0.44314718, source="reference 05",
            tolerance=1e-8)
    torch.manual_seed(ctx.seed)
    n = 5000
    xp, xq = p.sample((n, 1)), q.sample((n, 1))
    mc = monte_carlo_kl((p.log_prob(xp) - q.log_prob(xp)).squeeze(-1))
    res.add(f"Monte Carlo KL with the exact ratio (n={n})", mc.value, analytic,
            source="analytic", tolerance=3 * mc.standard_error)
    clf_kl = estimate_kl(xp, xq, "classifier", seed=ctx.seed)
    res.add(f"classifier estimate of KL ({n} + {n} samples, cross-fitted)", clf_kl.value,
            analytic, source="analytic (seed sd ~0.03)", tolerance=0.08)
    ul_kl = estimate_kl(xp, xq, "ulsif", seed=ctx.seed)
    res.add(f"uLSIF estimate of KL ({n} + {n} samples, cross-fitted)", ul_kl.value, analytic,
            source="analytic (seed sd ~0.01)", tolerance=0.04)

    clf = ClassifierDensityRatio(seed=ctx.seed).fit(xp, xq)
    ul = ULSIF(seed=ctx.seed).fit(xp, xq)
    grid = Grid.from_ranges((-5.0, 7.0), num=400)
    xs = grid.axes[0]
    true_lr = p.log_prob(xs) - q.log_prob(xs)
    mae = float((clf.log_ratio(xs) - true_lr)[(xs > -2) & (xs < 3)].abs().mean())
    res.add("classifier: mean |log r_hat - log r| on [-2, 3] (informational)", mae)
    js = monte_carlo_f_divergence(jensen_shannon, (p.log_prob(xq) - q.log_prob(xq)).squeeze(-1))
    bce_min = min(clf.history_["val_bce"])
    res.add("JS divergence from the best validation BCE (log 2 - BCE)", math.log(2) - bce_min,
            js.value, source="Monte Carlo with the exact ratio", tolerance=0.02)

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0, 0]
    ax.plot(xs, p.log_prob(xs).exp(), label="p = N(1, 1)")
    ax.plot(xs, q.log_prob(xs).exp(), label="q = N(0, 2²)")
    ax.plot(xs, true_lr.exp() / 10, "k--", label="r(x) = p/q (scaled 1/10)")
    ax.legend(fontsize=8)
    ax.set_title("densities and the true ratio")
    ax = axes[0, 1]
    ax.plot(xs, torch.sigmoid(true_lr), label="optimal p/(p+q)")
    ax.plot(xs, clf.predict_proba(xs), ":", label="trained classifier")
    ax.scatter(xp[:200, 0], torch.ones(200), s=3, color="C3")
    ax.scatter(xq[:200, 0], torch.zeros(200), s=3, color="C0")
    ax.legend(fontsize=8)
    ax.set_title("classifier vs the optimal classifier")
    ax = axes[1, 0]
    ax.plot(xs, true_lr, "k", label="log r(x)")
    ax.plot(xs, clf.log_ratio(xs), ":", label="classifier")
    ax.plot(xs, ul.log_ratio(xs), "--", label="uLSIF")
    ax.set_ylim(-6, 4)
    ax.legend(fontsize=8)
    ax.set_title("estimated vs true log-ratio")
    ax = axes[1, 1]
    ax.plot(clf.history_["train_bce"], label="train BCE")
    ax.plot(clf.history_["val_bce"], label="validation BCE")
    ax.axhline(math.log(2) - js.value, color="k", ls="--", label="log 2 - JS (optimum)")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    ax.set_title("binary cross-entropy and its JS bound")
    save(fig, ctx.path("ratio.png"))
    res.figures.append(Figure("ratio.png", "Densities and ratio; classifier vs optimal; "
                              "log-ratio estimates; the BCE converging to log 2 - JS."))
    return res

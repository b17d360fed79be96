"""Reference 05: density-ratio estimation and KL divergence between implicit distributions."""

from __future__ import annotations

import math

import torch
from torch import nn
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
    nwj_lower_bound,
)
from bayeskit.ratio.adversarial import adversarial_kl_minimisation

TITLE = "Density-ratio estimation: KL divergence from samples"
F64 = torch.float64


def run(ctx: Context) -> TopicResult:
    res = TopicResult("ratio", TITLE, summary="p = N(1, 1), q = N(0, 2²): the exact KL, its "
                      "Monte Carlo estimate, and estimates from samples only (classifier, uLSIF)")
    p, q = Normal(torch.tensor(1.0, dtype=F64), 1.0), Normal(torch.tensor(0.0, dtype=F64), 2.0)
    analytic = float(kl_divergence(p, q))
    res.add("analytic KL[p || q]", analytic, 0.44314718,
            source="the reference article (closed form)", tolerance=1e-8)
    torch.manual_seed(ctx.seed)
    n = 2000 if ctx.quick else 5000
    wide = 1.5 if ctx.quick else 1.0  # tolerances scale like 1/sqrt(n): wider in quick mode
    xp, xq = p.sample((n, 1)), q.sample((n, 1))
    mc = monte_carlo_kl((p.log_prob(xp) - q.log_prob(xp)).squeeze(-1))
    res.add(f"Monte Carlo KL with the exact ratio (n={n})", mc.value, analytic,
            source="analytic", tolerance=3 * mc.standard_error)
    clf_kl = estimate_kl(xp, xq, "classifier", seed=ctx.seed)
    res.add(f"classifier estimate of KL ({n} + {n} samples, cross-fitted)", clf_kl.value,
            analytic, source="analytic (seed sd ~0.03)", tolerance=0.08 * wide)
    ul_kl = estimate_kl(xp, xq, "ulsif", seed=ctx.seed)
    res.add(f"uLSIF estimate of KL ({n} + {n} samples, cross-fitted)", ul_kl.value, analytic,
            source="analytic (seed sd ~0.01)", tolerance=0.04 * wide)

    kliep_kl = estimate_kl(xp, xq, "kliep", seed=ctx.seed)
    res.add(f"KLIEP estimate of KL ({n} + {n} samples, cross-fitted)", kliep_kl.value,
            analytic, source="analytic", tolerance=0.06 * wide)

    clf = ClassifierDensityRatio(seed=ctx.seed).fit(xp, xq)
    nwj = nwj_lower_bound(clf.log_ratio(xp), clf.log_ratio(xq))
    res.add("NWJ lower bound with the classifier's log-ratio (in-sample)", nwj.value, analytic,
            source="analytic (a lower bound up to MC error)", tolerance=0.08 * wide)
    ul = ULSIF(seed=ctx.seed).fit(xp, xq)
    grid = Grid.from_ranges((-5.0, 7.0), num=400)
    xs = grid.axes[0]
    true_lr = p.log_prob(xs) - q.log_prob(xs)
    mae = float((clf.log_ratio(xs) - true_lr)[(xs > -2) & (xs < 3)].abs().mean())
    res.add("classifier: mean |log r_hat - log r| on [-2, 3] (informational)", mae)
    js = monte_carlo_f_divergence(jensen_shannon, (p.log_prob(xq) - q.log_prob(xq)).squeeze(-1))
    bce_min = min(clf.history_["val_bce"])
    res.add("JS divergence from the best validation BCE (log 2 - BCE)", math.log(2) - bce_min,
            js.value, source="Monte Carlo with the exact ratio", tolerance=0.02 * wide)

    plt = pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(15, 7))
    ax = axes[0, 0]
    ax.plot(xs, p.log_prob(xs).exp(), label="p = N(1, 1)")
    ax.plot(xs, q.log_prob(xs).exp(), label="q = N(0, 2²)")
    ax.plot(xs, true_lr.exp() / 10, "k--", label="r(x) = p/q (scaled 1/10)")
    ax.legend(fontsize=8)
    ax.set_title("densities and the true ratio")
    ax.set_xlabel("x")
    ax.set_ylabel("density (ratio / 10)")
    ax = axes[0, 1]
    ax.plot(xs, torch.sigmoid(true_lr), label="optimal p/(p+q)")
    ax.plot(xs, clf.predict_proba(xs), ":", label="trained classifier")
    ax.scatter(xp[:200, 0], torch.ones(200), s=3, color="C3")
    ax.scatter(xq[:200, 0], torch.zeros(200), s=3, color="C0")
    ax.legend(fontsize=8)
    ax.set_title("classifier vs the optimal classifier")
    ax.set_xlabel("x")
    ax.set_ylabel("P(sample from p | x)")
    ax = axes[1, 0]
    ax.plot(xs, true_lr, "k", label="log r(x)")
    ax.plot(xs, clf.log_ratio(xs), ":", label="classifier")
    ax.plot(xs, ul.log_ratio(xs), "--", label="uLSIF")
    ax.set_ylim(-6, 4)
    ax.legend(fontsize=8)
    ax.set_title("estimated vs true log-ratio")
    ax.set_xlabel("x")
    ax.set_ylabel("log r(x)")
    ax = axes[1, 1]
    ax.plot(clf.history_["train_bce"], label="train BCE")
    ax.plot(clf.history_["val_bce"], label="validation BCE")
    ax.axhline(math.log(2) - js.value, color="k", ls="--", label="log 2 - JS (optimum)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("binary cross-entropy (nats)")
    ax.legend(fontsize=8)
    ax.set_title("binary cross-entropy and its JS bound")
    ax = axes[0, 2]
    with torch.no_grad():
        loss_p = torch.nn.functional.softplus(-clf.log_ratio(xp))  # -log sigmoid(logit)
        loss_q = torch.nn.functional.softplus(clf.log_ratio(xq))  # -log(1 - sigmoid)
    ax.hist(loss_p.numpy(), bins=50, alpha=0.6, density=True, label="samples of p")
    ax.hist(loss_q.numpy(), bins=50, alpha=0.6, density=True, label="samples of q")
    ax.set_xlabel("per-sample binary cross-entropy")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title("loss histogram (trained classifier)")
    ax = axes[1, 2]
    pred, obs, count = clf.calibration(p.sample((n, 1)), q.sample((n, 1)))
    used = count > 0
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.plot(pred[used], obs[used], "o-")
    ax.set_xlabel("predicted P(p | x)")
    ax.set_ylabel("observed fraction from p")
    ax.set_title("calibration on fresh samples")
    save(fig, ctx.path("ratio.png"))
    res.figures.append(Figure("ratio.png", "Densities and ratio; classifier vs optimal; "
                              "log-ratio estimates; the BCE converging to log 2 - JS."))
    _adversarial(res, ctx)
    return res


class _AffineGenerator(nn.Module):
    """``G(z) = mu + sigma z``: an implicit model whose exact KL to a Gaussian is known."""

    def __init__(self):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor([3.0], dtype=F64))
        self.log_sigma = nn.Parameter(torch.tensor([-0.7], dtype=F64))

    def forward(self, z):
        return self.mu + self.log_sigma.exp() * z


def _adversarial(res: TopicResult, ctx: Context) -> None:
    q = Normal(torch.tensor(0.0, dtype=F64), 2.0)
    gen = _AffineGenerator()
    torch.manual_seed(ctx.seed)
    target = q.sample((5000, 1))
    exact = []

    def record(step, g):
        with torch.no_grad():
            exact.append(float(kl_divergence(Normal(g.mu[0], g.log_sigma.exp()[0]), q)))

    steps = 300 if ctx.quick else 1500
    hist = adversarial_kl_minimisation(
        gen, lambda n, g: torch.randn(n, 1, dtype=F64, generator=g), target, steps=steps,
        seed=ctx.seed, callback=record)
    res.add(f"exact KL[p_phi || q] after {steps} adversarial steps (start {exact[0]:.2f})",
            min(exact[-20:]), 0.0, source="KL is 0 at the optimum", tolerance=0.1)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.semilogy(exact, label="exact KL of the generator")
    ax.semilogy(torch.tensor(hist["kl_estimate"]).clamp_min(1e-4), alpha=0.5,
                label="critic's estimate E[T(G(z))]")
    ax.set_xlabel("generator step")
    ax.set_ylabel("KL (nats)")
    ax.legend()
    ax.set_title("Adversarial KL minimisation:\nG(z) = mu + sigma z towards N(0, 2²)")
    save(fig, ctx.path("ratio_adversarial.png"))
    res.figures.append(Figure("ratio_adversarial.png", "An implicit generator trained against a "
                              "classifier critic: its exact KL to the target falls towards 0."))

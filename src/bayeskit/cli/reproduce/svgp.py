"""Reference 04: sparse variational GPs (SGPR and SVGP) against the exact GP."""

from __future__ import annotations

import math

import torch

from bayeskit.cli.reproduce import Context
from bayeskit.cli.reproduce.report import Figure, TopicResult
from bayeskit.gp import GPR, SGPR, SVGP, SquaredExponential
from bayeskit.plotting.figures import pyplot, save

TITLE = "Sparse variational GPs: SGPR's collapsed bound and SVGP (reference 04)"
F64 = torch.float64


def run(ctx: Context) -> TopicResult:
    res = TopicResult("svgp", TITLE, summary="Synthetic 1-D regression: the exact GP, SGPR for "
                      "growing M, SVGP by minibatch Adam; and ANCHORS' SGPR reference value")
    g = torch.Generator().manual_seed(ctx.seed)
    n = 300 if ctx.quick else 1000
    X = torch.rand(n, 1, dtype=F64, generator=g) * 10
    y = torch.sin(X[:, 0]) + 0.3 * torch.cos(3 * X[:, 0]) + 0.2 * torch.randn(n, dtype=F64,
                                                                              generator=g)
    exact = GPR(X, y, SquaredExponential(1.0, 1.0), noise_variance=0.1).fit()
    with torch.no_grad():
        lml = float(exact.log_marginal_likelihood())
    ms = [2, 4, 8, 16, 32] if ctx.quick else [2, 4, 8, 16, 32, 64]
    bounds = []
    for m in ms:
        model = SGPR(X, y, X[torch.randperm(n, generator=g)[:m]], SquaredExponential(1.0, 1.0),
                     noise_variance=0.1).fit(max_iter=100)
        with torch.no_grad():
            bounds.append(float(model.elbo()))
    res.add(f"SGPR bound / exact log marginal likelihood at M = {ms[-1]}", bounds[-1] / lml, 1.0,
            source="the bound is tight as M grows", tolerance=0.01)
    res.add("every SGPR bound below the exact log marginal likelihood",
            float(all(b <= lml + 1e-6 for b in bounds)), 1.0, source="a lower bound",
            tolerance=0)

    svgp = SVGP(X[torch.randperm(n, generator=g)[:20]], SquaredExponential(1.0, 1.0),
                noise_variance=0.1, num_data=n)
    hist = svgp.fit(X, y, epochs=150 if ctx.quick else 200, batch_size=100, lr=0.05,
                    seed=ctx.seed)
    sgpr20 = SGPR(X, y, svgp.Z.detach(), SquaredExponential(1.0, 1.0), learn_mean=False)
    sgpr20.kernel.load_state_dict(svgp.kernel.state_dict())
    sgpr20.raw_noise.data.copy_(svgp.likelihood.raw_variance.data)
    with torch.no_grad():
        full = float(svgp.elbo(X, y))
        collapsed = float(sgpr20.elbo())
    # informational: how close plain Adam gets q(u) to its optimum in this budget (the
    # equality at the optimal q(u) itself is a unit test: tests/gp/test_svgp.py)
    res.add("SVGP ELBO / SGPR bound at SVGP's hyperparameters and Z, M = 20 (informational)",
            full / collapsed if collapsed > 0 else collapsed / full)

    # ANCHORS.md: GPyTorch's SGPR bound on X ~ U[0,1]^8, N = 10k, M = 256
    if not ctx.quick:
        torch.manual_seed(0)
        Xa = torch.rand(10_000, 8, dtype=F64)
        ya = torch.sin(2 * math.pi * Xa).sum(-1) + 0.1 * torch.randn(10_000, dtype=F64)
        anchor = SGPR(Xa, ya, Xa[:256], SquaredExponential(torch.full((8,), 0.69315), 0.69315),
                      noise_variance=0.69325, learn_mean=False, jitter=0.0)
        with torch.no_grad():
            res.add("-bound/N on ANCHORS' setup (N = 10k, M = 256)",
                    float(-anchor.elbo()) / 10_000, 1.418632, source="GPyTorch (ANCHORS.md)",
                    tolerance=5e-7)

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    xs = torch.linspace(0, 10, 400, dtype=F64)[:, None]
    best = SGPR(X, y, X[torch.randperm(n, generator=g)[:12]], SquaredExponential(1.0, 1.0),
                noise_variance=0.1).fit(max_iter=100)
    for model, name, color in ((exact, "exact GP", "k"), (best, "SGPR, M = 12", "C1")):
        mean, var = model.predict_f(xs)
        sd = (var + model.noise_variance.detach()).sqrt()
        axes[0].plot(xs[:, 0], mean, color=color, label=name)
        axes[0].fill_between(xs[:, 0], mean - 2 * sd, mean + 2 * sd, color=color, alpha=0.12)
    axes[0].scatter(X[:, 0], y, s=3, color="C0", alpha=0.3)
    z = best.Z.detach()[:, 0]
    axes[0].plot(z, torch.full_like(z, float(y.min()) - 0.3), "^", color="C1",
                 label="inducing inputs")
    axes[0].legend(fontsize=8)
    axes[0].set_title("predictions ± 2 sd")
    axes[1].plot(ms, bounds, "o-", label="SGPR bound (optimised)")
    axes[1].axhline(lml, color="k", ls="--", label="exact log marginal likelihood")
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("number of inducing points M")
    axes[1].legend(fontsize=8)
    axes[1].set_title("the bound approaches the evidence")
    axes[2].plot(hist)
    axes[2].axhline(collapsed, color="C1", ls="--", label="SGPR bound at the same Z, θ")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("mean minibatch ELBO")
    axes[2].legend(fontsize=8)
    axes[2].set_title("SVGP training (Adam, batch 100)")
    save(fig, ctx.path("svgp.png"))
    res.figures.append(Figure("svgp.png", "Exact GP vs SGPR predictions with inducing inputs; "
                              "the SGPR bound vs M; the SVGP training curve."))
    return res

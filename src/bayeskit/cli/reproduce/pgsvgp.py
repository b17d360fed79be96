"""New capability: Pólya-gamma augmented sparse variational GP classification (Wenzel et al.
2019), checked against the exact Pólya-gamma Gibbs sampler and quadrature SVGP."""

from __future__ import annotations

import math

import torch

from bayeskit.cli.reproduce import Context
from bayeskit.cli.reproduce.report import Figure, TopicResult
from bayeskit.gp import SVGP, Bernoulli, LogisticSoftmaxSVGP, PolyaGammaSVGP, SquaredExponential
from bayeskit.mcmc import gp_classification_gibbs
from bayeskit.plotting.figures import pyplot, save

TITLE = "Pólya-gamma meets sparse GPs: augmented SVGP classification (Wenzel et al. 2019)"
F64 = torch.float64


def _kernel():
    k = SquaredExponential(torch.tensor([0.8], dtype=F64), variance=2.0)
    for p in k.parameters():
        p.requires_grad_(False)
    return k


def run(ctx: Context) -> TopicResult:
    res = TopicResult("pgsvgp", TITLE, summary="1-D classification, P(y=1|x) = sigmoid(2 "
                      "sin 2x), fixed SE kernel: closed-form natural-gradient (coordinate "
                      "ascent) steps on q(u) against Gibbs sampling and Adam on the quadrature "
                      "ELBO")
    g = torch.Generator().manual_seed(ctx.seed)
    n = 60 if ctx.quick else 100
    X = torch.rand(n, 1, generator=g, dtype=F64) * 6 - 3
    y = (torch.rand(n, generator=g, dtype=F64) < torch.sigmoid(2 * torch.sin(2 * X[:, 0])))
    y = y.to(F64)

    pg = PolyaGammaSVGP(X, _kernel(), num_data=n)  # Z = X: q(u) is the whole latent
    pg_trace = []
    for _ in range(30):
        pg.natural_gradient_step(X, y, gamma=1.0)
        with torch.no_grad():
            pg_trace.append(float(pg.elbo(X, y)))
    with torch.no_grad():
        aug, true = float(pg.augmented_elbo(X, y)), float(pg.elbo(X, y))
    quad = SVGP(X, _kernel(), num_data=n, likelihood=Bernoulli("logit"))
    opt = torch.optim.Adam([quad.q_mu, quad.raw_q_sqrt], lr=0.05)
    quad_trace = []
    for _ in range(1000 if ctx.quick else 2000):
        opt.zero_grad()
        loss = -quad.elbo(X, y)
        loss.backward()
        opt.step()
        quad_trace.append(-float(loss.detach()))
    res.add_bound("augmented ELBO - true ELBO (nats)", aug - true, at_most=0.0,
                  source="Jensen: log cosh(sqrt(E f^2)/2) >= E log cosh(f/2)")
    res.add_bound("true ELBO of PG-SVGP - quadrature SVGP's ELBO (Adam, same kernel, Z = X)",
                  true - max(quad_trace), at_least=0.0, slack=1e-3 * n,
                  source="PG-SVGP maximises the augmented bound, not this one: slack "
                  "0.001 nats per point")
    res.add("PG-SVGP sweeps to within 1e-6 of its final ELBO", float(next(
        i + 1 for i, v in enumerate(pg_trace) if abs(v - pg_trace[-1]) < 1e-6)))
    res.add("Adam steps to within 1e-3 of quadrature SVGP's final ELBO", float(next(
        i + 1 for i, v in enumerate(quad_trace) if abs(v - quad_trace[-1]) < 1e-3)))

    # the reference: exact Pólya-gamma Gibbs sampling of the latent function
    K = _kernel()(X) + 1e-8 * torch.eye(n, dtype=F64)
    L, v, _ = gp_classification_gibbs(K, y, num_samples=1000 if ctx.quick else 3000,
                                      burn_in=300, num_chains=4,
                                      generator=torch.Generator().manual_seed(ctx.seed))
    f = v.reshape(-1, n) @ L.mT
    p_gibbs = torch.sigmoid(f).mean(0)
    with torch.no_grad():
        p_vi = pg.predict_y(X)[0]
    se = float((torch.sigmoid(f).std(0) / math.sqrt(f.shape[0] / 10)).max())  # ~ESS/10
    res.add("max |P(y=1|x) PG-SVGP - Gibbs| at the training inputs",
            float((p_gibbs - p_vi).abs().max()), 0.0,
            source="Gibbs sampler (exact up to MC error); the gap is the Gaussian family's",
            tolerance=0.03 + 4 * se)
    _figure(res, ctx, X, y, pg, quad, f, pg_trace, quad_trace)
    _multiclass(res, ctx)
    return res


def _three_class_probabilities(X: torch.Tensor) -> torch.Tensor:
    """The generating P(y = k | x) ``[N, 3]``: a logistic-softmax of three smooth fields."""
    f = torch.stack([2 * X[:, 0], -X[:, 0] - 1.5 * X[:, 1], -X[:, 0] + 1.5 * X[:, 1]], -1)
    s = torch.sigmoid(2 * f)
    return s / s.sum(-1, keepdim=True)


def _multiclass(res: TopicResult, ctx: Context) -> None:
    """Three classes in 2-D by the logistic-softmax augmentation (Galy-Fajou et al. 2019):
    minibatch natural-gradient steps and Adam; accuracy against the Bayes classifier."""
    ctx.step("three classes: logistic-softmax augmented SVGP")
    g = torch.Generator().manual_seed(ctx.seed + 1)
    n = 1000 if ctx.quick else 3000
    X = torch.rand(n, 2, generator=g, dtype=F64) * 4 - 2
    y = torch.multinomial(_three_class_probabilities(X), 1, generator=g)[:, 0]
    model = LogisticSoftmaxSVGP(X[torch.randperm(n, generator=g)[:25]], num_classes=3,
                                num_data=n)
    history = model.fit(X, y, epochs=10 if ctx.quick else 20, batch_size=200, lr=0.02,
                        seed=ctx.seed)
    Xt = torch.rand(2000, 2, generator=g, dtype=F64) * 4 - 2
    truth = _three_class_probabilities(Xt)
    yt = torch.multinomial(truth, 1, generator=g)[:, 0]
    p = model.predict_proba(Xt)
    bayes = float((truth.argmax(1) == yt).double().mean())
    ours = float((p.argmax(1) == yt).double().mean())
    res.add("3 classes: test accuracy of the logistic-softmax SVGP / the Bayes classifier's",
            ours / bayes, 1.0, source="the Bayes classifier (true probabilities)",
            tolerance=0.05)
    res.add("3 classes: mean |P(y=k|x) - truth| on 2000 test points (reported)",
            float((p - truth).abs().mean()))
    with torch.no_grad():
        res.add_bound("3 classes: augmented ELBO - true ELBO (Monte Carlo, nats)",
                      float(model.augmented_elbo(X, y) - model.elbo(X, y)), at_most=0.0,
                      source="the augmentation gives a lower bound")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    Z = model.Z.detach()
    reach = max(2.0, float(Z.abs().max()) + 0.1)  # the data's box, or wider to show all of Z
    grid = torch.linspace(-reach, reach, 81, dtype=F64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    regions = model.predict_proba(points).argmax(1).reshape(81, 81)
    ax = axes[0]
    ax.contourf(gx, gy, regions, levels=[-0.5, 0.5, 1.5, 2.5], colors=["C0", "C1", "C2"],
                alpha=0.25)
    ax.contour(gx, gy, _three_class_probabilities(points).argmax(1).reshape(81, 81),
               levels=[0.5, 1.5], colors="k", linewidths=0.8)
    for k in range(3):
        ax.scatter(X[y == k, 0][:150], X[y == k, 1][:150], s=5, color=f"C{k}")
    ax.scatter(Z[:, 0], Z[:, 1], marker="x", color="k", s=30, label="inducing inputs")
    ax.set_xlabel("x_1")
    ax.set_ylabel("x_2")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("decision regions (shaded) and the Bayes boundaries (black)")
    ax = axes[1]
    ax.plot(range(1, len(history) + 1), history, "C0o-", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean minibatch augmented ELBO")
    ax.set_title("training: natural steps on q(u_k) + Adam")
    save(fig, ctx.path("pgsvgp_multiclass.png"))
    res.figures.append(Figure("pgsvgp_multiclass.png", "Three classes in 2-D with the "
                              "logistic-softmax likelihood made conjugate (Galy-Fajou et al. "
                              "2019): decision regions, inducing inputs, training curve."))


def _figure(res, ctx, X, y, pg, quad, f_draws, pg_trace, quad_trace):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    order = torch.argsort(X[:, 0])
    xs = X[order, 0]
    p_draws = torch.sigmoid(f_draws[:, order])
    lo, hi = torch.quantile(p_draws, torch.tensor([0.05, 0.95], dtype=F64), dim=0)
    with torch.no_grad():
        p_pg, p_q = pg.predict_y(X[order])[0], quad.predict_y(X[order])[0]
    ax = axes[0]
    ax.fill_between(xs, lo, hi, color="0.8", label="Gibbs 90 % band of sigmoid(f)")
    ax.plot(xs, p_draws.mean(0), "k", label="Gibbs P(y=1|x)")
    ax.plot(xs, p_pg, "C0--", label="PG-SVGP")
    ax.plot(xs, p_q, "C1:", label="quadrature SVGP")
    ax.plot(xs, torch.sigmoid(2 * torch.sin(2 * xs)), "C2", lw=0.8, label="truth")
    ax.scatter(X[:, 0], y, s=8, color="C3", alpha=0.5, label="labels")
    ax.set_xlabel("x")
    ax.set_ylabel("P(y = 1 | x)")
    ax.legend(fontsize=7)
    ax.set_title("predictive probabilities")
    ax = axes[1]
    ax.plot(range(1, len(pg_trace) + 1), pg_trace, "C0o-", ms=3,
            label="PG-SVGP: closed-form sweeps")
    ax.plot(range(1, len(quad_trace) + 1), quad_trace, "C1", label="quadrature SVGP: Adam 0.05")
    ax.set_xscale("log")
    ax.set_ylim(min(pg_trace[-1], quad_trace[-1]) - 15, max(pg_trace[-1], quad_trace[-1]) + 2)
    ax.set_xlabel("iterations (sweeps or Adam steps)")
    ax.set_ylabel("true ELBO")
    ax.legend(fontsize=8)
    ax.set_title("convergence of q(u)")
    save(fig, ctx.path("pgsvgp.png"))
    res.figures.append(Figure("pgsvgp.png", "Left: P(y = 1 | x) from the Gibbs sampler (mean "
                              "and 90 % band), the PG-augmented SVGP and quadrature SVGP. "
                              "Right: the ELBO per closed-form sweep vs per Adam step."))

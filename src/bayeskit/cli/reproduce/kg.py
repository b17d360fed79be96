"""Reference 03: the knowledge gradient, step by step on the 1-D example, then its curve
over the whole domain (Monte Carlo vs exact) and a few BO iterations with KG vs EI; and the
new capabilities of issue #17 on the same example: KG on a sparse GP (SGPR) next to the
exact one, and BORE's class probability next to the exact relative density ratio."""

from __future__ import annotations

import copy

import torch

from bayeskit.bo import (
    DiscreteKnowledgeGradient,
    knowledge_gradient_mc,
    optimize_discrete_kg,
    posterior_minimum,
)
from bayeskit.bo.acquisition import BORE
from bayeskit.bo.loop import BayesianOptimizer
from bayeskit.bo.test_functions import reference_1d
from bayeskit.cli.reproduce import Context
from bayeskit.cli.reproduce.report import Figure, TopicResult
from bayeskit.gp import GPR, SGPR, SquaredExponential, inducing
from bayeskit.plotting.figures import pyplot, save

TITLE = "Knowledge gradient: the reference's illustrated 1-D example"
F64 = torch.float64
XC = 0.1  # the reference's candidate
#: the reference's own random draw is unknown; ours is seed 0 (shifted by --seed). (Draw 7
#: resembles the reference's KG(0.1) = 0.0015, but there the MC estimator's error is so heavy-
#: tailed that 4 of 21 curve points fall outside 4 sample SEs at 128 fantasies.)
DATA_SEED = 0


def run(ctx: Context) -> TopicResult:
    res = TopicResult("kg", TITLE, summary="f(x) = sin(3x) + x^2 - 0.7x on [-1, 2], n = 10 "
                      "noisy observations (sd 0.1), GP with a squared-exponential kernel; "
                      "KG in the minimisation convention")
    f = reference_1d()
    g = torch.Generator().manual_seed(DATA_SEED + ctx.seed)
    X = -1 + 3 * torch.rand(10, 1, dtype=F64, generator=g)
    y = f(X) + 0.1 * torch.randn(10, dtype=F64, generator=g)
    before = GPR(X, y, SquaredExponential(), noise_variance=0.1, learn_mean=False)
    model = GPR(X, y, SquaredExponential(), noise_variance=0.1).fit(restarts=3)
    post = model.posterior()
    x_star, tau_n = posterior_minimum(post, f.bounds, generator=g)
    grid = torch.linspace(-1, 2, 601, dtype=F64)[:, None]
    mean_grid, _ = model.predict_f(grid)
    fine_mean, _ = model.predict_f(torch.linspace(-1, 2, 30001, dtype=F64)[:, None])
    res.add("tau_n: predictive minimum by multi-start L-BFGS-B", tau_n, float(fine_mean.min()),
            source="minimum over a 30001-point grid", tolerance=1e-7)

    # one fantasy at x_c: closed form vs conditioning the GP (Cholesky append)
    xc = torch.tensor([[XC]], dtype=F64)
    mc_, vc_ = model.predict_y(xc)
    z1 = torch.randn(5, dtype=F64, generator=g)
    y_fant = mc_ + vc_.sqrt() * z1
    closed = post.mean(grid) + post.sigma_tilde(grid, xc)[:, 0] * z1[:, None]  # [5, G]
    conditioned = torch.stack([model.condition_on_observations(xc, y_fant[m:m + 1])
                               .predict_f(grid)[0] for m in range(5)])
    res.add("fantasised mean: closed form vs conditioned GP, max |diff|",
            float((closed - conditioned).abs().max()), 0.0,
            source="cholesky_append of the fantasy", tolerance=1e-10)
    fantasy_min = [posterior_minimum(model.condition_on_observations(xc, y_fant[m:m + 1]),
                                     f.bounds, generator=g) for m in range(5)]

    # KG(0.1): Monte Carlo (antithetic) vs the exact discrete KG on a fine grid
    fine = DiscreteKnowledgeGradient(post, torch.linspace(-1, 2, 3001, dtype=F64)[:, None])
    exact_xc = float(fine(xc[None]))
    M = 256 if ctx.quick else 512
    kg_xc, info = knowledge_gradient_mc(post, xc, f.bounds, num_fantasies=M, generator=g,
                                        tau=(x_star, tau_n), return_details=True)
    se_xc = float(info["se"][0])
    res.add(f"KG(0.1), Monte Carlo with {M} antithetic fantasies", float(kg_xc[0]), exact_xc,
            source="exact discrete KG, 3001-point grid", tolerance=4 * se_xc + 1e-6)
    res.add("KG(0.1): Monte Carlo standard error", se_xc)
    res.add("KG(0.1), exact discrete", exact_xc,
            source="not comparable: BoTorch 0.18.1 on another random draw of the 10 points "
                   "gave 0.001639 (SingleTaskGP, 3001-point grid)")

    # the KG curve: exact on a candidate grid, Monte Carlo with error bars at fewer points
    cand = torch.linspace(-1, 2, 301 if ctx.quick else 601, dtype=F64)
    exact_curve = fine(cand[:, None, None])
    i_best = int(exact_curve.argmax())
    mc_x = torch.linspace(-1, 2, 11 if ctx.quick else 21, dtype=F64)
    mc_curve, mc_info = knowledge_gradient_mc(post, mc_x[:, None], f.bounds, num_fantasies=128,
                                              generator=g, tau=(x_star, tau_n),
                                              num_restarts=2, return_details=True)
    exact_at_mc = fine(mc_x[:, None, None])
    inside = ((mc_curve - exact_at_mc).abs() <= 4 * mc_info["se"] + 1e-6).float().mean()
    res.add("fraction of MC KG points within 4 SE (+1e-6) of the exact curve", float(inside),
            1.0, source="MC is unbiased", tolerance=0.0)
    x_opt, _ = optimize_discrete_kg(post, f.bounds)
    ratio = float(fine(x_opt[None])) / float(exact_curve.max())
    res.add("max KG found by optimize_discrete_kg / grid maximum", ratio, 1.0,
            source="exact discrete KG, 3001 alternatives", tolerance=0.01)
    res.add("argmax of KG", float(x_opt))
    res.add("max of KG", float(fine(x_opt[None])),
            source="not comparable: BoTorch 0.18.1 on another random draw of the 10 points "
                   "gave 0.0947 at x = -0.633")

    history = _bo_runs(ctx, f)
    for name, regret in history.items():
        res.add(f"BO with {name}: simple regret of the best observed point after "
                f"{len(regret)} evaluations", regret[-1])

    _figures(res, ctx, f, X, y, before, model, grid, x_star, tau_n, xc, y_fant, closed,
             fantasy_min, cand, exact_curve, mc_x, mc_curve, mc_info["se"], i_best, history)
    _sparse_kg_and_bore(res, ctx, f, model, cand, exact_curve, g)
    return res


def _sgpr_like(model: GPR, Z: torch.Tensor) -> SGPR:
    """An SGPR on the exact GP's data with its hyperparameters and inducing inputs ``Z``."""
    return SGPR(model.X, model.y, Z, copy.deepcopy(model.kernel),
                noise_variance=float(model.noise_variance.detach()),
                mean=float(model.mean_constant.detach()), jitter=0.0)


def _sparse_kg_and_bore(res, ctx, f, model, cand, exact_curve, g) -> None:
    """Issue #17 on the 1-D example: the discrete KG curve of an SGPR (Z = X: the exact
    curve; M = 4 and 8 greedy-variance inducing inputs: approximations whose variance, and
    so KG, is inflated away from the inducing inputs), and BORE on 600 noisy
    uniform evaluations, whose class probability is exactly ``Phi((tau - f(x)) / sigma)``
    (gamma times the gamma-relative density ratio) for uniform x."""
    ctx.step("KG on a sparse GP; BORE's class probability")
    alternatives = torch.linspace(-1, 2, 3001, dtype=F64)[:, None]
    curves = {}
    for label, Z in (("Z = X", model.X.clone()),
                     *((f"M = {m}", inducing.greedy_variance(model.X, m, model.kernel))
                       for m in (4, 8))):
        sparse = _sgpr_like(model, Z)
        curves[label] = DiscreteKnowledgeGradient(sparse.posterior(), alternatives)(
            cand[:, None, None]).detach()
    res.add("SGPR with Z = X: discrete KG curve, max |diff| to the exact GP's",
            float((curves["Z = X"] - exact_curve).abs().max()), 0.0,
            source="the exact GP's discrete KG (same hyperparameters)", tolerance=1e-9)
    for m in (4, 8):  # of the 10 observations: the sparse variance, and KG, inflated
        res.add(f"SGPR with M = {m}: discrete KG curve, max |diff| to the exact GP's",
                float((curves[f"M = {m}"] - exact_curve).abs().max()))

    n, sigma = (300, 0.3) if ctx.quick else (600, 0.3)
    Xb = -1 + 3 * torch.rand(n, 1, dtype=F64, generator=g)
    yb = f(Xb) + sigma * torch.randn(n, dtype=F64, generator=g)
    acq = BORE(Xb, yb, gamma=0.25, epochs=800, seed=int(torch.randint(2**31 - 1, (1,),
                                                                      generator=g)))
    grid = torch.linspace(-0.95, 1.95, 59, dtype=F64)[:, None]
    exact = torch.distributions.Normal(0.0, 1.0).cdf((acq.tau - f(grid)) / sigma)
    with torch.no_grad():
        learned = acq(grid)
    res.add_bound("BORE: mean |class probability - Phi((tau - f(x)) / sigma)| on a grid",
                  float((learned - exact).abs().mean()), at_most=0.08,
                  source="the exact class probability for uniform x (Tiao et al. 2021)")
    clear = (exact[:, None] - exact[None, :]) > 0.1
    concordant = float(((learned[:, None] - learned[None, :])[clear] > 0).to(F64).mean())
    res.add_bound("BORE: fraction of clearly ordered grid pairs the classifier orders alike",
                  concordant, at_least=0.95, source="monotone in the exact density ratio")

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].plot(cand, exact_curve, color="C2", lw=3, label="exact GP")
    axes[0].plot(cand, curves["Z = X"], color="k", ls="--", label="SGPR, Z = X")
    for m, colour in ((4, "C3"), (8, "C1")):
        axes[0].plot(cand, curves[f"M = {m}"], color=colour,
                     label=f"SGPR, M = {m} greedy-variance inducing inputs")
    axes[0].set_xlabel("candidate x")
    axes[0].set_ylabel("discrete KG(x)")
    axes[0].set_title("KG on a sparse GP (same hyperparameters)")
    axes[0].legend()
    axes[1].plot(grid[:, 0], exact, color="C2", lw=3,
                 label=r"exact $\Phi((\tau - f(x)) / \sigma) = \gamma\, r_\gamma(x)$")
    axes[1].plot(grid[:, 0], learned, color="C0", label="BORE classifier (MLP)")
    axes[1].set_xlabel("x")
    axes[1].set_ylabel(r"class probability $P(y \leq \tau \mid x)$")
    axes[1].set_title(f"BORE, gamma = 0.25, {n} noisy evaluations")
    axes[1].legend()
    save(fig, ctx.path("kg_sparse_bore.png"))
    res.figures.append(Figure("kg_sparse_bore.png", "Beyond the reference, on its 1-D example: the "
                              "discrete KG of an SGPR (equal to the exact GP's with Z = X, "
                              "approaching it as M grows) and "
                              "BORE's class probability against its exact value."))


def _bo_runs(ctx: Context, f) -> dict[str, list[float]]:
    n_iter = 3 if ctx.quick else 8
    out = {}
    for acq in ("kg", "ei"):
        ctx.step(f"BO loop with {acq.upper()}, {n_iter} iterations")
        bo = BayesianOptimizer(f, f.bounds, acquisition=acq, n_init=4, seed=ctx.seed,
                               progress=False, executor="serial").run(n_iter)
        best = torch.tensor(bo.y).cummin(0).values - f.minimum
        out[acq.upper()] = best.tolist()
    return out


def _figures(res, ctx, f, X, y, before, model, grid, x_star, tau_n, xc, y_fant, closed,
             fantasy_min, cand, exact_curve, mc_x, mc_curve, mc_se, i_best, history):
    plt = pyplot()
    xs = grid[:, 0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(xs, f(grid), "k--", label="latent f")
    axes[0].scatter(X[:, 0], y, color="k", zorder=3, label="observations")
    axes[0].set_title("latent function and n = 10 observations")
    for ax in axes:
        ax.set_xlabel("x")
        ax.set_ylabel("f(x), y")
    for ax, m, title in ((axes[1], before, "posterior before hyperparameter estimation"),
                         (axes[2], model, "after type-II maximum likelihood")):
        mean, var = m.predict_y(grid)
        sd = var.sqrt()
        ax.plot(xs, f(grid), "k--", lw=1)
        ax.plot(xs, mean, color="C1")
        ax.fill_between(xs, mean - 2 * sd, mean + 2 * sd, color="C1", alpha=0.25)
        ax.scatter(X[:, 0], y, color="k", zorder=3)
        ax.set_title(title)
    axes[0].legend()
    save(fig, ctx.path("kg_posterior.png"))
    res.figures.append(Figure("kg_posterior.png", "Steps 0-1: data, the posterior predictive "
                              "before and after hyperparameter estimation."))

    mean, var = model.predict_y(grid)
    colours = plt.cm.viridis(torch.linspace(0, 0.9, 5).numpy())
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax in axes:
        ax.plot(xs, mean, color="C1", lw=2)
        ax.axhline(tau_n, color="C1", ls="--")
        ax.scatter([float(x_star)], [tau_n], marker="*", s=150, color="C1", zorder=4)
        ax.scatter(X[:, 0], y, color="k", s=12, zorder=3)
    axes[0].fill_between(xs, mean - 2 * var.sqrt(), mean + 2 * var.sqrt(), color="C1", alpha=0.2)
    axes[0].set_title(r"step 2: predictive minimum $\tau_n$")
    for ax in axes:
        ax.set_xlabel("x")
        ax.set_ylabel("predictive mean")
    for ax, count in ((axes[1], 1), (axes[2], 5)):
        ax.axvline(XC, color="gray")
        for m in range(count):
            c = "C0" if count == 1 else colours[m]
            ax.plot(xs, closed[m], color=c)
            ax.scatter([XC], [float(y_fant[m])], color=c, zorder=4)
            xm, tm = fantasy_min[m]
            ax.axhline(tm, color=c, ls="--", lw=1)
            ax.scatter([float(xm)], [tm], marker="*", s=120, color=c, zorder=4)
    axes[1].set_title(r"steps 3-4: one fantasy at $x_c$ = 0.1 and $\tau_{n+1}^{(1)}$")
    axes[2].set_title(r"five fantasies and their minima $\tau_{n+1}^{(m)}$")
    save(fig, ctx.path("kg_fantasies.png"))
    res.figures.append(Figure("kg_fantasies.png", "Steps 2-4: the predictive minimum, "
                              "fantasised means at x_c = 0.1 (closed form, no refit) and their "
                              "minima; KG(x_c) is the average drop of the dashed lines."))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].plot(cand, exact_curve, color="C2", label="exact discrete KG (3001 alternatives)")
    axes[0].errorbar(mc_x, mc_curve.detach(), yerr=2 * mc_se, fmt="o", ms=3, color="C0",
                     label="Monte Carlo KG ± 2 SE")
    axes[0].axvline(float(cand[i_best]), color="C2", ls=":")
    axes[0].set_xlabel("candidate x")
    axes[0].set_ylabel("KG(x)")
    axes[0].set_title("KG over the domain")
    axes[0].legend()
    for name, regret in history.items():
        axes[1].semilogy(range(1, len(regret) + 1), [max(r, 1e-6) for r in regret],
                         marker="o", label=name)
    axes[1].set_xlabel("evaluations")
    axes[1].set_ylabel("simple regret of the best observation")
    axes[1].set_title("a few BO iterations (4-point Sobol design)")
    axes[1].legend()
    save(fig, ctx.path("kg_curve.png"))
    res.figures.append(Figure("kg_curve.png", "What the reference lacks: the KG curve (MC with "
                              "error bars against the exact discrete KG) and BO with KG vs EI."))

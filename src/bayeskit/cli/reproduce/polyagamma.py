"""Reference 02: Pólya-gamma augmentation for Bayesian logistic regression (weight space)."""

from __future__ import annotations

import math

import numpy as np
import torch

from bayeskit.cli.reproduce import Context
from bayeskit.cli.reproduce.report import Figure, TopicResult
from bayeskit.distributions import polya_gamma_mean, polya_gamma_variance, sample_polya_gamma
from bayeskit.mcmc import BinomialRegressionData, run_gibbs
from bayeskit.plotting.figures import pyplot, save
from bayeskit.plotting.grids import Grid

TITLE = "Pólya-gamma augmentation: Bayesian logistic regression by Gibbs sampling"
F64 = torch.float64


def _normal_pdf(x, loc, scale):
    return np.exp(-0.5 * ((x - loc) / scale) ** 2) / (scale * math.sqrt(2 * math.pi))


def make_dataset(num_train: int = 128, seed: int = 8888):
    """The reference's data: half from p = N(1, 1) (label 1), half from q = N(0, 2^2)."""
    rs = np.random.RandomState(seed)
    n_p = num_train // 2
    x_p = rs.standard_normal(n_p) * 1.0 + 1.0
    x_q = rs.standard_normal(num_train - n_p) * 2.0
    x = np.concatenate([x_p, x_q])
    y = np.concatenate([np.ones(n_p), np.zeros(num_train - n_p)])
    return x, y


def true_probability(x):
    p, q = _normal_pdf(x, 1.0, 1.0), _normal_pdf(x, 0.0, 2.0)
    return p / (p + q)


def _basis(x, degree):
    return np.power(np.asarray(x, float)[:, None], np.arange(degree))


def _importance_posterior_mean(Phi, y, alpha, grid_phi, n_draws, seed):
    """Reference posterior predictive by self-normalised importance sampling.

    Proposal: a multivariate t (5 dof) around the posterior mode with the Laplace
    covariance; independent of the Gibbs sampler.
    """
    d = Phi.shape[1]
    beta = np.zeros(d)
    for _ in range(50):  # Newton for the mode
        p = 1 / (1 + np.exp(-(Phi @ beta)))
        grad = Phi.T @ (y - p) - alpha * beta
        H = Phi.T @ (Phi * (p * (1 - p))[:, None]) + alpha * np.eye(d)
        beta = beta + np.linalg.solve(H, grad)
    cov = np.linalg.inv(H)
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(cov)
    nu = 5.0
    z = rng.standard_normal((n_draws, d))
    w = rng.chisquare(nu, n_draws) / nu
    draws = beta + (z @ L.T) / np.sqrt(w)[:, None]
    f = draws @ Phi.T
    log_post = (y * f - np.logaddexp(0, f)).sum(1) - 0.5 * alpha * (draws**2).sum(1)
    dev = np.linalg.solve(L, (draws - beta).T).T
    log_prop = -0.5 * (nu + d) * np.log1p((dev**2).sum(1) / nu)
    lw = log_post - log_prop
    wts = np.exp(lw - lw.max())
    wts /= wts.sum()
    pi = 1 / (1 + np.exp(-(draws @ grid_phi.T)))
    return wts @ pi, wts @ draws, 1.0 / (wts**2).sum()


def run(ctx: Context) -> TopicResult:
    res = TopicResult("polyagamma", TITLE, summary="The reference's 1-D problem (p = N(1,1), "
                      "q = N(0,2^2), 128 points, degree-3 polynomial basis, alpha = 2) and a "
                      "table of Pólya-gamma moments")
    num_iterations = 300 if ctx.quick else 1000
    degree, alpha = 3, 2.0
    x, y = make_dataset(128, 8888)
    Phi = _basis(x, degree)
    data = BinomialRegressionData.create(Phi, y, prior_precision=alpha)
    g = torch.Generator().manual_seed(ctx.seed + 8888)
    chains = 4
    burn_in = 100
    ctx.step("Gibbs sampling")
    result = run_gibbs(data, num_samples=num_iterations, burn_in=burn_in, num_chains=chains,
                       generator=g)
    draws = result.beta.reshape(-1, degree).numpy()

    grid = Grid.from_ranges((-6.0, 6.0), num=241)
    xs = grid.axes[0].numpy()
    gphi = _basis(xs, degree)
    pi_draws = 1 / (1 + np.exp(-(draws @ gphi.T)))
    pi_mean = pi_draws.mean(0)
    truth = true_probability(xs)
    mae = float(np.abs(pi_mean - truth).mean())
    ref_pi, ref_beta, ess = _importance_posterior_mean(
        Phi, y, alpha, gphi, 40_000 if ctx.quick else 400_000, ctx.seed)
    res.add("mean |posterior mean pi(x) - p/(p+q)| on [-6, 6] (model error, informational)",
            mae)
    res.add("max |Gibbs posterior mean pi(x) - importance-sampling reference| on [-6, 6]",
            float(np.abs(pi_mean - ref_pi).max()), 0.0,
            source="importance sampling (t proposal at the Laplace mode)",
            tolerance=0.03 if ctx.quick else 0.015)
    sd = draws.std(0)
    for k in range(degree):
        res.add(f"posterior mean of beta_{k}", float(draws[:, k].mean()), float(ref_beta[k]),
                source=f"importance sampling (ESS {ess:.0f})", tolerance=0.1 * float(sd[k]))

    # Pólya-gamma moment table: sample moments vs closed forms, tolerance 4 standard errors
    n = 50_000 if ctx.quick else 1_000_000
    for b in (0.1, 1.0, 2.7, 10.0):
        for c in (0.0, 1.5, 10.0):
            w = sample_polya_gamma(torch.full((n,), b, dtype=F64), c, generator=g)
            m = float(polya_gamma_mean(torch.tensor(b, dtype=F64), torch.tensor(c, dtype=F64)))
            v = float(polya_gamma_variance(torch.tensor(b, dtype=F64),
                                           torch.tensor(c, dtype=F64)))
            res.add(f"PG({b:g}, {c:g}) sample mean (n={n})", float(w.mean()), m,
                    source="closed form b tanh(c/2)/(2c)", tolerance=4 * math.sqrt(v / n))
            d4 = float(((w - w.mean()) ** 4).mean())
            res.add(f"PG({b:g}, {c:g}) sample variance (n={n})", float(w.var()), v,
                    source="closed form", tolerance=4 * math.sqrt(max(d4 - v * v, 0) / n))

    _figures(res, ctx, x, y, xs, truth, result, pi_draws, pi_mean, ref_pi, data, g)
    return res


def _figures(res, ctx, x, y, xs, truth, result, pi_draws, pi_mean, ref_pi, data, g):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].plot(xs, _normal_pdf(xs, 1, 1), label="p = N(1, 1)")
    axes[0].plot(xs, _normal_pdf(xs, 0, 2), label="q = N(0, 2²)")
    axes[0].plot(x[y == 1], np.zeros(int(y.sum())) - 0.01, "|", color="C0")
    axes[0].plot(x[y == 0], np.zeros(int((1 - y).sum())) - 0.03, "|", color="C1")
    axes[0].set_title("Densities and samples")
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("density")
    axes[0].legend()
    axes[1].plot(xs, truth, "k", label="p / (p + q)")
    axes[1].scatter(x, y, c=np.where(y == 1, "tab:red", "tab:blue"), s=12, alpha=0.6)
    axes[1].set_title("Dataset and the true class probability")
    axes[1].set_xlabel("x")
    axes[1].set_ylabel("label y / P(y = 1 | x)")
    axes[1].legend()
    save(fig, ctx.path("polyagamma_data.png"))
    res.figures.append(Figure("polyagamma_data.png", "Left: p, q and the 128 samples. "
                              "Right: labels (red 1, blue 0) and p(y=1|x) = p/(p+q)."))

    chain0 = result.beta[0].numpy()
    t = np.arange(chain0.shape[0])
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (i, j) in zip(axes, [(0, 1), (0, 2), (1, 2)], strict=True):
        sc = ax.scatter(chain0[:, i], chain0[:, j], c=t, s=5, cmap="viridis")
        ax.set_xlabel(f"beta_{i}")
        ax.set_ylabel(f"beta_{j}")
    fig.colorbar(sc, ax=axes[-1], label="iteration")
    fig.suptitle("Gibbs samples of beta (chain 1), coloured by iteration")
    save(fig, ctx.path("polyagamma_beta.png"))
    res.figures.append(Figure("polyagamma_beta.png", "Pairwise scatter of the coefficient "
                              "draws of one chain, coloured by iteration."))

    # omega draws at the observed inputs for a few iterations (one fresh sweep each)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    betas = result.beta[0, -40:]
    omega = sample_polya_gamma(data.n_trials, betas @ data.Phi.mT, generator=g).numpy()
    for k in range(omega.shape[0]):
        ax.scatter(x, omega[k], s=3, alpha=0.3, color="C2")
    ax.set_xlabel("x")
    ax.set_ylabel("omega")
    ax.set_title("Pólya-gamma auxiliary draws omega_n at each x_n\n(40 sweeps)")
    save(fig, ctx.path("polyagamma_omega.png"))
    res.figures.append(Figure("polyagamma_omega.png", "omega_n ~ PG(1, beta^T phi(x_n)) "
                              "against x_n: small where |f(x_n)| is large."))

    fig, ax = plt.subplots(figsize=(7, 4))
    for k in range(0, pi_draws.shape[0], max(1, pi_draws.shape[0] // 60)):
        ax.plot(xs, pi_draws[k], color="C0", alpha=0.08)
    ax.plot(xs, truth, "k", lw=2, label="true p/(p+q)")
    ax.plot(xs, pi_mean, "C3", lw=2, label="Gibbs posterior mean")
    ax.plot(xs, ref_pi, "C1--", lw=1.5, label="importance-sampling reference")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    ax.set_title("Sampled class probabilities pi(x) = sigmoid(beta^T phi(x))")
    ax.set_xlabel("x")
    ax.set_ylabel("pi(x) = P(y = 1 | x)")
    save(fig, ctx.path("polyagamma_predictions.png"))
    res.figures.append(Figure("polyagamma_predictions.png", "Posterior draws of pi(x), their "
                              "mean, an independent reference and the truth."))

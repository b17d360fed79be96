"""Reference 07: a VAE on bundled data (scikit-learn's 8x8 digits) with a 2-D latent space:
training curves, the latent space, the decoded manifold, reconstructions, and the same
model trained with a density-ratio KL and with the IWAE bound."""

from __future__ import annotations

import math
import time

import torch
from scipy.stats import norm

from bayeskit.cli.reproduce import Context
from bayeskit.cli.reproduce.report import Figure, TopicResult
from bayeskit.data import load_digits_split
from bayeskit.plotting.figures import pyplot, save
from bayeskit.plotting.grids import Grid
from bayeskit.vae import VAE, BernoulliDecoder, DensityRatioKL, GaussianEncoder, evaluate, fit

TITLE = "Variational autoencoders: amortised inference on the digits"
F64 = torch.float64


def _model(seed: int, kl="analytic") -> VAE:
    torch.manual_seed(seed)
    kl = DensityRatioKL(64, 2, hidden=(256, 256)) if kl == "ratio" else kl
    # the reference's architecture: one hidden ReLU layer of 256 units each way, latent 2
    return VAE(GaussianEncoder(64, 2, hidden=(256,)), BernoulliDecoder(2, 64, hidden=(256,)),
               kl=kl)


def run(ctx: Context) -> TopicResult:
    res = TopicResult("vae", TITLE, summary="sklearn digits (1437 train / 360 test, pixels/16), "
                      "encoder/decoder with one 256-unit hidden layer, latent_dim = 2, "
                      "batch 100, Adam")
    x_tr, y_tr, x_te, y_te = load_digits_split()
    epochs = 15 if ctx.quick else 60
    iwae_k = 200 if ctx.quick else 1000
    runs = {}
    for name, kl, objective, k in (("ELBO, analytic KL", "analytic", "elbo", 1),
                                   ("ELBO, density-ratio KL (AVB)", "ratio", "elbo", 1),
                                   ("IWAE, k = 5", "analytic", "iwae", 5)):
        ctx.step(f"training the VAE: {name}")
        model = _model(ctx.seed, kl)
        start = time.perf_counter()
        hist = fit(model, x_tr, epochs=epochs, batch_size=100, lr=1e-3, objective=objective,
                   num_samples=k, validation=x_te, seed=ctx.seed, progress=False,
                   critic_steps=2, critic_lr=1e-3)
        seconds = time.perf_counter() - start
        # every model is judged by the same yardsticks: ELBO with the analytic KL, and the
        # importance-sampled log-likelihood
        judge = VAE(model.encoder, model.decoder)
        scores = evaluate(judge, x_te, num_samples=10, iwae_samples=iwae_k)
        runs[name] = (model, hist, scores, seconds)
        res.add(f"{name}: test ELBO (analytic KL)", scores["elbo"])
        res.add(f"{name}: test log p(x) by importance sampling (k = {iwae_k})", scores["iwae"])
        gap = scores["iwae"] - scores["elbo"]
        res.add_bound(f"{name}: log p(x) estimate - ELBO", gap, at_least=0.0,
                      source="the importance-sampled estimate bounds the ELBO from above")
        res.add(f"{name}: training time for {epochs} epochs (s)", seconds)
    model = runs["ELBO, analytic KL"][0]

    # the KL strategies agree on the trained encoder (analytic vs Monte Carlo)
    g = torch.Generator().manual_seed(ctx.seed)
    with torch.no_grad():
        K = 4000
        z, log_q = model.encoder.sample(x_te, model.noise(K, len(x_te), g))
        terms = (log_q - model.prior().log_prob(z)).double()
        analytic = torch.distributions.kl_divergence(model.encoder.distribution(x_te),
                                                     model.prior()).double()
        # per-image MC errors are independent: SE of the grand mean
        se = float(terms.var(0).sum().sqrt() / (len(x_te) * math.sqrt(K)))
    res.add(f"mean KL over the test set: Monte Carlo (K = {K})", float(terms.mean()),
            float(analytic.mean()), source="analytic Gaussian KL", tolerance=5 * se)
    ratio_model = runs["ELBO, density-ratio KL (AVB)"][0]
    with torch.no_grad():
        z, _ = ratio_model.encoder.sample(x_te, ratio_model.noise(20, len(x_te), g))
        est = float(ratio_model.kl(x_te, z).mean())
        an = float(torch.distributions.kl_divergence(ratio_model.encoder.distribution(x_te),
                                                     ratio_model.prior()).mean())
    res.add("AVB model: critic's KL estimate vs the analytic KL of its encoder", est, an,
            source="analytic Gaussian KL (reported: the adversarial estimate is biased)")

    _figures(res, ctx, runs, model, x_te, y_te)
    return res


def _figures(res, ctx, runs, model, x_te, y_te):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, (_, hist, _, _)) in enumerate(runs.items()):
        ax.plot(hist["train_loss"], color=f"C{i}", label=f"{name}: train")
        ax.plot([-v for v in hist["val_elbo"]], color=f"C{i}", ls="--",
                label=f"{name}: validation -ELBO")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per image)")
    ax.legend(fontsize=7)
    save(fig, ctx.path("vae_training.png"))
    res.figures.append(Figure("vae_training.png", "Training curves: training loss (negative "
                              "objective) and validation negative ELBO per epoch."))

    with torch.no_grad():
        mu, _ = model.encoder.params(x_te)
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(mu[:, 0], mu[:, 1], c=y_te, cmap="tab10", s=8)
    fig.colorbar(sc, ax=ax, label="digit")
    ax.set_xlabel("z_1")
    ax.set_ylabel("z_2")
    ax.set_title("latent means of the test set")
    save(fig, ctx.path("vae_latent.png"))
    res.figures.append(Figure("vae_latent.png", "Means of q(z|x) for the test digits."))

    n = 15
    quantiles = torch.linspace(0.01, 0.99, n, dtype=F64)
    z_axis = torch.as_tensor(norm.ppf(quantiles.numpy()), dtype=torch.float32)
    grid = Grid((z_axis, z_axis.flip(0)))  # ij: rows run down, so z_2 decreases
    with torch.no_grad():
        pts = grid.points()[:, [1, 0]]  # (row, column) -> (z_1 = column, z_2 = row)
        images = torch.sigmoid(model.decoder.net(pts)).reshape(n, n, 8, 8)
    images = torch.nn.functional.pad(images, (1, 1, 1, 1))  # a blank frame around each tile
    canvas = images.permute(0, 2, 1, 3).reshape(n * 10, n * 10)
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(canvas, cmap="gray_r")
    ax.set_axis_off()
    ax.set_title("decoded manifold: z on a grid of Gaussian quantiles (norm.ppf)")
    save(fig, ctx.path("vae_manifold.png"))
    res.figures.append(Figure("vae_manifold.png", "The 2-D manifold: decoder means on a 15x15 "
                              "grid mapped through the Gaussian inverse CDF."))

    with torch.no_grad():
        x = x_te[:10]
        recon = torch.sigmoid(model.decoder.net(model.encoder.params(x)[0]))
    fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
    for j in range(10):
        axes[0, j].imshow(x[j].reshape(8, 8), cmap="gray_r")
        axes[1, j].imshow(recon[j].reshape(8, 8), cmap="gray_r")
        axes[0, j].set_axis_off()
        axes[1, j].set_axis_off()
    fig.suptitle("test images (top) and reconstructions (decoder mean at the latent mean)",
                 fontsize=9)
    save(fig, ctx.path("vae_reconstructions.png"))
    res.figures.append(Figure("vae_reconstructions.png", "Ten test digits and their "
                              "reconstructions."))

"""Every public routine once on a GPU against its CPU result, then the headline timings.

One prepared command for the few minutes of GPU time a session gets (issue #18):

    python benchmarks/gpu_check.py --device cuda [--quick] [--skip-timings]

Each check computes the same thing on the CPU (float64) and on ``--device`` and prints
``PASS``/``FAIL`` with the largest difference (deterministic routines) or a z-score
against the exact moments (random ones: a GPU's random stream differs from the CPU's), and
the error when a routine fails outright. Then the headline timings, each against the same
work on the CPU and against GPyTorch when installed. ``--device cpu`` runs the script
against itself (a smoke test of the script, not of a GPU). Exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import math
import time
import traceback
from unittest import mock

import torch

from bayeskit import linalg
from bayeskit.bo.acquisition import knowledge_gradient_discrete
from bayeskit.distributions import (
    Flow,
    polya_gamma_log_prob,
    polya_gamma_mean,
    polya_gamma_variance,
    sample_polya_gamma,
)
from bayeskit.gp import GPR, SGPR, SVGP, Bernoulli, LogisticSoftmaxSVGP, Matern
from bayeskit.linalg import blocked
from bayeskit.mcmc import BinomialRegressionData, gp_classification_gibbs, run_gibbs
from bayeskit.vae import VAE, BernoulliDecoder, GaussianEncoder
from bench_cholesky import spd

F64 = torch.float64
CHECKS: list = []


def check(fn):
    CHECKS.append(fn)
    return fn


def diff(a, b) -> float:
    return float((a.detach().cpu() - b.detach().cpu()).abs().max())


def both(fn, dev):
    """``fn(device)`` on the CPU and on ``dev``."""
    return fn(torch.device("cpu")), fn(dev)


# ---------------------------------------------------------------------------- checks
@check
def linalg_routines(dev):
    A, U = spd(300, (2,)), torch.randn(2, 300, 16, dtype=F64) / 20
    L = torch.linalg.cholesky(A)
    worst = 0.0
    for m in (1, 16):
        out = both(lambda d, m=m: linalg.cholesky_update_lowrank(L.to(d), U[..., :m].to(d)), dev)
        worst = max(worst, diff(*out))
    out = both(lambda d: linalg.cholesky_update(L.to(d), U[..., 0].to(d), -0.5), dev)
    worst = max(worst, diff(*out))
    Ab = spd(301)
    L0 = torch.linalg.cholesky(Ab[:300, :300])
    out = both(lambda d: linalg.cholesky_append(L0.to(d), Ab[:300, 300:].to(d),
                                                Ab[300:, 300:].to(d)), dev)
    worst = max(worst, diff(*out))
    Lb = torch.linalg.cholesky(Ab)
    out = both(lambda d: linalg.cholesky_delete(Lb.to(d), 17), dev)
    worst = max(worst, diff(*out))
    rhs = torch.randn(301, 2, dtype=F64)
    out = both(lambda d: linalg.cholesky_solve(Lb.to(d), rhs.to(d)), dev)
    worst = max(worst, diff(*out))
    out = both(lambda d: linalg.cholesky_logdet(Lb.to(d)), dev)
    worst = max(worst, diff(*out))
    # both routes on both devices, the blocked one in panels of 64 rows (relative: entries
    # ~1e2); every result against the CPU's potri
    reference = linalg.cholesky_inverse(Lb, backend="torch")
    asymmetric = 0
    with mock.patch.object(blocked, "PANEL", 64):
        for backend in ("torch", "blocked"):
            for out in both(lambda d, b=backend: linalg.cholesky_inverse(Lb.to(d), backend=b),
                            dev):
                worst = max(worst, diff(reference, out) / float(reference.abs().max()))
                asymmetric += not torch.equal(out, out.mT)  # exactly symmetric everywhere
    w = torch.rand(3, 301, dtype=F64) + 0.1
    out = both(lambda d: linalg.cholesky_plus_diagonal(Ab.to(d), w.to(d))[0], dev)
    worst = max(worst, diff(*out))
    b = torch.randn(3, 301, dtype=F64)
    out = both(lambda d: linalg.solve_plus_diagonal(
        Ab.to(d), w.to(d), b.to(d), eigenpairs=linalg.low_rank_eigenpairs(Ab.to(d), 20)), dev)
    worst = max(worst, diff(*out))
    pre = both(lambda d: linalg.LowRankPreconditioner(
        *linalg.low_rank_eigenpairs(Ab.to(d), 20)).inverse(w.to(d))(b.to(d)), dev)
    worst = max(worst, diff(*pre))
    Phi = torch.randn(301, 12, dtype=F64)
    grams = both(lambda d: linalg.WeightedGram(Phi.to(d))(w.to(d)), dev)  # packed table
    worst = max(worst, diff(*grams) / float(grams[0].abs().max()))
    return (worst < 1e-8 and not asymmetric,
            f"max |GPU - CPU| {worst:.1e}, inverses not exactly symmetric: {asymmetric}")


@check
def polya_gamma(dev):
    n = 400_000
    g = torch.Generator(device=dev).manual_seed(0)
    worst = 0.0
    for b, c in ((1.0, 0.0), (1.0, 3.0), (2.7, 1.5), (10.0, 0.5)):
        w = sample_polya_gamma(torch.full((n,), b, dtype=F64, device=dev), c, generator=g)
        assert w.device.type == dev.type
        bt, ct = torch.tensor(b, dtype=F64), torch.tensor(c, dtype=F64)
        m, v = float(polya_gamma_mean(bt, ct)), float(polya_gamma_variance(bt, ct))
        worst = max(worst, abs(float(w.mean()) - m) / math.sqrt(v / n))
    x = torch.linspace(0.01, 2.0, 200, dtype=F64)
    out = both(lambda d: polya_gamma_log_prob(x.to(d), torch.tensor(2.7, dtype=F64, device=d),
                                              torch.tensor(1.5, dtype=F64, device=d)), dev)
    err = diff(*out)
    return worst < 5 and err < 1e-10, f"mean z max {worst:.2f}, log_prob |diff| {err:.1e}"


def regression_data(n, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, dtype=F64, generator=g)
    return X, torch.sin(6 * X).sum(-1) + 0.1 * torch.randn(n, dtype=F64, generator=g)


def loss_and_grads(model, loss):
    value = loss()
    grads = torch.autograd.grad(value, [p for p in model.parameters() if p.requires_grad])
    return torch.cat([value.reshape(1)] + [gr.reshape(-1) for gr in grads])


@check
def gpr_sgpr_svgp(dev):
    X, y = regression_data(500)

    def gpr(d):
        m = GPR(X.to(d), y.to(d))
        return loss_and_grads(m, lambda: -m.log_marginal_likelihood())

    def sgpr(d):
        m = SGPR(X.to(d), y.to(d), X[:40].to(d))
        return loss_and_grads(m, lambda: -m.elbo())

    def svgp(d):
        m = SVGP(X[:40].to(d), num_data=500)
        return loss_and_grads(m, lambda: -m.elbo(X.to(d), y.to(d)))

    def svgp_class(d):
        m = SVGP(X[:40].to(d), num_data=500, likelihood=Bernoulli())
        return loss_and_grads(m, lambda: -m.elbo(X.to(d), (y > 0).to(F64).to(d)))

    def gpr_matern(d, n=500):  # n = 500: the product route; n = 12: exact differences
        m = GPR(X[:n].to(d), y[:n].to(d), kernel=Matern(2.5, lengthscale=torch.full((3,), 0.3)))
        return loss_and_grads(m, lambda: -m.log_marginal_likelihood())

    def sgpr_matern(d):
        m = SGPR(X.to(d), y.to(d), X[:40].to(d), kernel=Matern(1.5))
        return loss_and_grads(m, lambda: -m.elbo())

    def multiclass(d):  # natural-gradient steps, then the Monte Carlo ELBO and predictions
        labels = (3 * (X[:, 0] + X[:, 1]) / 2).long().clamp(0, 2).to(d)
        m = LogisticSoftmaxSVGP(X[:30].to(d), num_classes=3, num_data=500).to(d)
        for _ in range(3):
            m.natural_gradient_step(X.to(d), labels, 1.0)
        with torch.no_grad():
            return torch.cat([m.elbo(X.to(d), labels).reshape(1),
                              m.predict_proba(X[:20].to(d)).reshape(-1)])

    errs = {k: diff(*both(f, dev)) for k, f in
            (("GPR", gpr), ("SGPR", sgpr), ("SVGP", svgp), ("SVGP-Bernoulli", svgp_class),
             ("GPR-Matern", gpr_matern), ("GPR-Matern-small", lambda d: gpr_matern(d, 12)),
             ("SGPR-Matern", sgpr_matern), ("multiclass", multiclass))}
    return max(errs.values()) < 1e-6, ", ".join(f"{k} {v:.1e}" for k, v in errs.items())


@check
def knowledge_gradient(dev):
    g = torch.Generator().manual_seed(1)
    mean, sig = torch.randn(50, dtype=F64, generator=g), torch.rand(50, dtype=F64, generator=g)
    err = diff(*both(lambda d: knowledge_gradient_discrete(mean.to(d), sig.to(d)), dev))
    X, y = regression_data(60)
    # the posterior contract every acquisition reads: mean and variance at new points
    pred = both(lambda d: torch.cat(GPR(X.to(d), y.to(d)).predict_f(X[:5].to(d) + 0.01)), dev)
    err_post = diff(*pred)
    ok = err < 1e-10 and err_post < 1e-8
    return ok, f"discrete KG |diff| {err:.1e}; GPR predict_f |diff| {err_post:.1e}"


@check
def flows(dev):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(256, 2, dtype=F64, generator=g)
    ctx = torch.randn(256, 1, dtype=F64, generator=g)
    worst = 0.0
    for kind in ("maf", "realnvp", "nsf", "nsf-coupling"):
        torch.manual_seed(0)  # the flows' initial weights (the script, not the library)
        flow = Flow(2, kind=kind, hidden=(16,), context_dim=1).to(F64)

        def lp(d, flow=flow):
            f = flow.to(d)
            value = f.log_prob(x.to(d), ctx.to(d)).mean()
            grads = torch.autograd.grad(value, list(f.parameters()))
            return torch.cat([value.reshape(1)] + [gr.reshape(-1) for gr in grads])

        cpu = lp(torch.device("cpu"))
        worst = max(worst, diff(cpu, lp(dev)))
        flow.to("cpu")
    return worst < 1e-8, f"log_prob and gradients, max |diff| {worst:.1e}"


@check
def vae_step(dev):
    torch.manual_seed(0)
    model = VAE(GaussianEncoder(64, 4, hidden=(32,)), BernoulliDecoder(4, 64, hidden=(32,)))
    model = model.to(F64)
    x = (torch.rand(128, 64, dtype=F64, generator=torch.Generator().manual_seed(3)) > 0.5)
    x = x.to(F64)

    def encode(d):
        model.to(d)
        q = model.encoder.distribution(x.to(d))
        return torch.cat([q.mean.reshape(-1), q.stddev.reshape(-1)])

    err = diff(*both(encode, dev))
    model.to(dev)
    loss = -model.elbo(x.to(dev), generator=torch.Generator(device=dev).manual_seed(0)).mean()
    loss.backward()
    ok = err < 1e-10 and bool(torch.isfinite(loss))
    return ok, f"encoder |diff| {err:.1e}, ELBO step finite on {loss.device}"


@check
def gibbs(dev):
    g = torch.Generator().manual_seed(4)
    Phi = torch.randn(300, 5, dtype=F64, generator=g)
    y = (Phi @ torch.ones(5, dtype=F64) + torch.randn(300, dtype=F64, generator=g) > 0)
    data = BinomialRegressionData.create(Phi.to(dev), y.to(F64).to(dev))
    res = run_gibbs(data, num_samples=200, burn_in=100, num_chains=64,
                    generator=torch.Generator(device=dev).manual_seed(0))
    data_cpu = BinomialRegressionData.create(Phi, y.to(F64))
    ref = run_gibbs(data_cpu, num_samples=200, burn_in=100, num_chains=64,
                    generator=torch.Generator().manual_seed(0))
    mh = run_gibbs(data, num_samples=200, burn_in=100, num_chains=64, metropolis_steps=2,
                   generator=torch.Generator(device=dev).manual_seed(1))
    gap = diff(res.beta.mean((0, 1)), ref.beta.mean((0, 1)))
    gap_mh = diff(mh.beta.mean((0, 1)), ref.beta.mean((0, 1)))
    sd = float(ref.beta.std((0, 1)).min())
    # function space with the conjugate-gradient sweep (D = N = 300: the Matheron system)
    K = (Phi @ Phi.mT / 5 + 0.1 * torch.eye(300, dtype=F64))
    fs = {}
    for d in (torch.device("cpu"), dev):
        L, v, _ = gp_classification_gibbs(K.to(d), y.to(F64).to(d), num_samples=200,
                                          burn_in=100, num_chains=32, solver="cg",
                                          generator=torch.Generator(device=d).manual_seed(2))
        fs[d.type] = (v @ L.mT).reshape(-1, 300)
    gap_cg = diff(fs[dev.type].mean(0), fs["cpu"].mean(0))
    sd_cg = float(fs["cpu"].std(0).min())
    # chains split over a local process pool: workers start from a forkserver (a forked
    # child cannot use CUDA), the draws equal the same split run serially
    split = {ex: run_gibbs(data, num_samples=50, burn_in=10, num_chains=4, num_tasks=2,
                           executor=ex, generator=torch.Generator(device=dev).manual_seed(5))
             for ex in ("serial", "process")}
    same = torch.equal(split["serial"].beta.cpu(), split["process"].beta.cpu())
    ok = max(gap, gap_mh) < 0.2 * sd and gap_cg < 0.2 * sd_cg and same
    return ok, (f"posterior means differ by {gap:.3f}, with Metropolis steps {gap_mh:.3f} "
                f"(sd >= {sd:.3f}); function space, CG sweep: {gap_cg:.3f} (sd >= {sd_cg:.3f}); "
                f"process split equals serial: {same}")


# ---------------------------------------------------------------------------- timings
def timed(fn, dev, repeats=3) -> float:
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def timings(dev, quick: bool):
    cpu = torch.device("cpu")
    scale = 10 if quick else 1
    rows = []

    def row(name, fn_of_device, cpu_too=True):
        t_dev = timed(lambda: fn_of_device(dev), dev)
        t_cpu = timed(lambda: fn_of_device(cpu), cpu, repeats=1) if cpu_too else float("nan")
        rows.append((name, t_dev, t_cpu))
        print(f"  {name:44s} {dev.type} {t_dev * 1e3:10.1f} ms   cpu {t_cpu * 1e3:10.1f} ms"
              f"   cpu/{dev.type} {t_cpu / t_dev:7.2f}", flush=True)

    for b in (1.0, 10.0):
        n = 10_000_000 // scale
        row(f"PG({b:g}, c~N(0,4)) {n:.0e} draws", lambda d, b=b, n=n: sample_polya_gamma(
            b, 2 * torch.randn(n, dtype=F64, device=d)))
    g = torch.Generator().manual_seed(5)
    Phi = torch.randn(569, 31, dtype=F64, generator=g)
    yb = (Phi[:, 0] + torch.randn(569, dtype=F64, generator=g) > 0).to(F64)
    row("Gibbs, 1024 chains x 100 sweeps (N=569, D=31)", lambda d: run_gibbs(
        BinomialRegressionData.create(Phi.to(d), yb.to(d)), num_samples=50, burn_in=50,
        num_chains=1024, progress=False))
    n_gp = 10_000 // scale
    X, y = regression_data(n_gp)
    row(f"exact GP -MLL + grad, N={n_gp}", lambda d: loss_and_grads(
        m := GPR(X.to(d), y.to(d)), lambda: -m.log_marginal_likelihood()))
    n_sgpr = 1_000_000 // scale
    Xs, ys = regression_data(n_sgpr)
    row(f"SGPR ELBO + grad, N={n_sgpr}, M=256", lambda d: loss_and_grads(
        m := SGPR(Xs.to(d), ys.to(d), Xs[:256].to(d)), lambda: -m.elbo()), cpu_too=not quick)
    row(f"SVGP epoch, N={n_sgpr // 10}, B=1024, M=256", lambda d: SVGP(
        Xs[:256].to(d), num_data=n_sgpr // 10).fit(Xs[:n_sgpr // 10].to(d),
                                                   ys[:n_sgpr // 10].to(d), epochs=1,
                                                   batch_size=1024, progress=False))
    n_chol = 10_000 // scale
    L = torch.linalg.cholesky(spd(n_chol))
    u = torch.randn(n_chol, dtype=F64) / n_chol**0.5
    row(f"rank-1 update N={n_chol}", lambda d: linalg.cholesky_update(L.to(d), u.to(d)))
    for route in ("torch", "blocked"):  # which route an exact GP's gradient should take there
        row(f"(L L^T)^-1 N={n_chol}, {route}", lambda d, r=route: linalg.cholesky_inverse(
            L.to(d), backend=r))
    try:
        import gpytorch
    except ImportError:
        print("  (GPyTorch not installed: no competitor timings)")
        return rows

    def gpytorch_mll(d):
        class Exact(gpytorch.models.ExactGP):
            def __init__(self, lik):
                super().__init__(X.to(d), y.to(d), lik)
                self.mean = gpytorch.means.ConstantMean()
                self.cov = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())

            def forward(self, x):
                return gpytorch.distributions.MultivariateNormal(self.mean(x), self.cov(x))

        lik = gpytorch.likelihoods.GaussianLikelihood().to(d, F64)
        model = Exact(lik).to(d, F64)
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
        model.train()
        with gpytorch.settings.max_cholesky_size(100_000):
            (-mll(model(X.to(d)), y.to(d))).backward()

    row(f"GPyTorch exact GP -MLL + grad, N={n_gp} (Cholesky)", gpytorch_mll)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="timings at a tenth of the size")
    parser.add_argument("--skip-timings", action="store_true")
    args = parser.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device visible to torch")
        print(f"# {torch.cuda.get_device_name(dev)}, torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} checks on {dev} against the CPU (float64)")
    failed = 0
    for fn in CHECKS:
        start = time.perf_counter()
        try:
            ok, detail = fn(dev)
        except Exception as err:  # noqa: BLE001 - report every failure and go on
            ok, detail = False, f"{type(err).__name__}: {err}"
            traceback.print_exc(limit=3)
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {fn.__name__:22s} {time.perf_counter() - start:6.1f} s"
              f"  {detail}", flush=True)
    if not args.skip_timings:
        print("\n## headline timings (median of 3 on the device, 1 run on the CPU)")
        timings(dev, args.quick)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()

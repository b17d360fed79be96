"""Before/after timings of bayeskit's own hot paths across two source trees.

A refactor must not slow the library down. This script times the operations behind every
benchmark's headline ratio (exact GP -MLL + gradient, SGPR bound, SVGP step, Pólya-gamma
draws, Gibbs sweeps, Cholesky updates, discrete and Monte Carlo KG, a BO loop, flow and VAE
epochs, flow training steps, predictions) through the public API that both trees share, so
the competitors' side of each ratio (the same code in both runs) cancels out.

Usage (from the repository root; the script re-runs itself per tree, interleaved)::

    git worktree add /tmp/before <rev>
    .venv-bench/bin/python benchmarks/bench_revisions.py --before /tmp/before/src \
        --after src --rounds 5

``--only SVGP "exact GP"`` times just the operations whose names contain one of the words
(for a focused before/after with many rounds). Each round runs one child process per tree
(order alternating) that prints the median of ``--repeats`` calls of every operation; the
table gives, per operation, the median over rounds of each tree, the ratio after/before and
the spread of that ratio over rounds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child(repeats: int, only: list[str] | None = None) -> dict[str, float]:
    """Time every operation in this process (``bayeskit`` from ``PYTHONPATH``), or those
    whose names contain one of ``only`` (case-insensitive)."""
    import numpy as np
    import torch
    from sklearn.datasets import load_breast_cancer

    from bayeskit.bo import DiscreteKnowledgeGradient, knowledge_gradient_mc
    from bayeskit.bo.loop import BayesianOptimizer
    from bayeskit.bo.test_functions import branin
    from bayeskit.distributions import sample_polya_gamma
    from bayeskit.distributions.flows import Flow, fit_flow
    from bayeskit.distributions.transforms import banana_distribution
    from bayeskit.gp import GPR, SGPR, SVGP, Matern, SquaredExponential
    from bayeskit.linalg import cholesky_append, cholesky_update_lowrank
    from bayeskit.mcmc import BinomialRegressionData, run_gibbs

    f64 = torch.float64
    g = torch.Generator().manual_seed(0)
    out: dict[str, float] = {}

    def timed(name: str, fn, n: int) -> None:
        if not only or any(o.lower() in name.lower() for o in only):
            out[name] = _median_time(fn, n)

    X = torch.rand(2000, 3, dtype=f64, generator=g)
    y = torch.sin(6 * X[:, 0]) + 0.1 * torch.randn(2000, dtype=f64, generator=g)
    gpr = GPR(X, y, SquaredExponential(torch.ones(3)), noise_variance=0.1)

    def exact():
        gpr.zero_grad()
        (-gpr.log_marginal_likelihood()).backward()

    timed("exact GP -MLL+grad N=2000", exact, repeats)
    X4 = torch.rand(4000, 3, dtype=f64, generator=torch.Generator().manual_seed(4))
    gpr4 = GPR(X4, torch.sin(6 * X4[:, 0]), SquaredExponential(torch.ones(3)), noise_variance=0.1)

    def exact4():  # past glibc's 32 MiB mmap threshold: every new N x N buffer is fresh pages
        gpr4.zero_grad()
        (-gpr4.log_marginal_likelihood()).backward()

    timed("exact GP -MLL+grad N=4000", exact4, max(3, repeats // 2))
    gprm = GPR(X, y, Matern(2.5, torch.ones(3)), noise_variance=0.1)

    def exact_matern():  # BoTorch's and our BO loop's kernel
        gprm.zero_grad()
        (-gprm.log_marginal_likelihood()).backward()

    timed("exact GP Matern-5/2 -MLL+grad N=2000", exact_matern, repeats)
    from bayeskit.data import load_co2
    from bayeskit.gp import LinearMean, Periodic, Scale

    t_co2, y_co2 = load_co2()[:2]
    co2 = GPR(t_co2 - 1958.0, (y_co2 - y_co2.mean()) / y_co2.std(),
              Scale(SquaredExponential(50.0), 1.0)
              + Scale(SquaredExponential(100.0) * Periodic(1.0, 1.0), 1.0),
              noise_variance=0.01, mean_function=LinearMean(1))

    def exact_co2():  # the demo's Mauna Loa kernel: a sum of products, through autograd
        co2.zero_grad()
        (-co2.log_marginal_likelihood()).backward()

    timed("exact GP Mauna Loa kernel -MLL+grad N=1780", exact_co2, max(3, repeats // 2))
    Xs = torch.rand(1000, 3, dtype=f64, generator=g)
    timed("exact GP predict_f 1000 at N=2000", lambda: gpr.predict_f(Xs), repeats)

    Xb = torch.rand(100_000, 3, dtype=f64, generator=g)
    yb = torch.sin(6 * Xb[:, 0])
    sgpr = SGPR(Xb, yb, Xb[:256].clone(), SquaredExponential(torch.ones(3)), noise_variance=0.1)

    def sparse():
        sgpr.zero_grad()
        (-sgpr.elbo()).backward()

    timed("SGPR bound+grad N=1e5 M=256", sparse, max(3, repeats // 2))
    sgprm = SGPR(Xb, yb, Xb[:256].clone(), Matern(2.5, torch.ones(3)), noise_variance=0.1)

    def sparse_matern():
        sgprm.zero_grad()
        (-sgprm.elbo()).backward()

    timed("SGPR Matern-5/2 bound+grad N=1e5 M=256", sparse_matern, max(3, repeats // 2))

    svgp = SVGP(Xb[:256].clone(), SquaredExponential(torch.ones(3)), noise_variance=0.1,
                num_data=100_000)
    opt = torch.optim.Adam(svgp.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        (-svgp.elbo(Xb[:1024], yb[:1024])).backward()
        opt.step()

    timed("SVGP Adam step M=256 B=1024", step, repeats * 3)  # K_mm too ill-conditioned for
    # the whitened Gaussian M x M route: the per-point route. bench_gp.py's model takes it:
    g8 = torch.Generator().manual_seed(8)  # its own: the other rows' data stay as they were
    X8 = torch.rand(100_000, 8, dtype=f64, generator=g8)
    y8 = torch.sin(2 * math.pi * X8).sum(-1) + 0.1 * torch.randn(100_000, dtype=f64,
                                                                 generator=g8)
    svgp8 = SVGP(X8[:256].clone(), SquaredExponential(torch.full((8,), 0.5), 1.0),
                 noise_variance=0.1, num_data=100_000)
    opt8 = torch.optim.Adam(svgp8.parameters(), lr=0.01)
    batches8 = [torch.randint(0, 100_000, (1024,), generator=g8) for _ in range(8)]
    turn = itertools.count()

    def step8():
        b = batches8[next(turn) % len(batches8)]
        opt8.zero_grad()
        (-svgp8.elbo(X8[b], y8[b])).backward()
        opt8.step()

    timed("SVGP Adam step M=256 B=1024 D=8 whitened M x M route", step8, repeats * 3)

    c = 2 * torch.randn(1_000_000, dtype=f64, generator=g)
    timed("PG 1e6 draws b=1", lambda: sample_polya_gamma(1.0, c, generator=g), repeats)
    c0 = torch.zeros(1_000_000, dtype=f64)
    timed("PG 1e6 draws b=1 c=0", lambda: sample_polya_gamma(1.0, c0, generator=g), repeats)
    timed("PG 1e6 draws b=10", lambda: sample_polya_gamma(10.0, c, generator=g),
          max(3, repeats // 2))

    bc = load_breast_cancer()
    Phi = np.hstack([np.ones((len(bc.data), 1)),
                     (bc.data - bc.data.mean(0)) / bc.data.std(0)])
    data = BinomialRegressionData.create(Phi, bc.target, prior_precision=1.0)
    timed("Gibbs 200 sweeps x 4 chains",
          lambda: run_gibbs(data, num_samples=100, burn_in=100,
                            generator=torch.Generator().manual_seed(1)), max(3, repeats // 2))
    timed("Gibbs 200 sweeps x 64 chains MH x4",  # the batched precisions (WeightedGram)
          lambda: run_gibbs(data, num_samples=100, burn_in=100, num_chains=64,
                            metropolis_steps=4, generator=torch.Generator().manual_seed(1)),
          max(3, repeats // 2))

    from bayeskit.mcmc import gp_classification_gibbs
    from bench_gpc_gibbs import dataset as gpc_dataset

    K_gpc, y_gpc = gpc_dataset()
    timed("GP classification Gibbs 30 sweeps x 64 chains cg MH x4 N=569",
          lambda: gp_classification_gibbs(K_gpc, y_gpc, num_samples=30, burn_in=0,
                                          num_chains=64, solver="cg", metropolis_steps=4,
                                          generator=torch.Generator().manual_seed(0)),
          max(3, repeats // 2))

    A = torch.randn(2000, 2000, dtype=f64, generator=g)
    L = torch.linalg.cholesky(A @ A.T / 2000 + torch.eye(2000, dtype=f64))
    U = torch.randn(2000, 16, dtype=f64, generator=g) * 0.1
    timed("Cholesky rank-16 update N=2000",
          lambda: cholesky_update_lowrank(L, U), repeats)
    timed("Cholesky rank-1 update N=2000",
          lambda: cholesky_update_lowrank(L, U[:, :1]), repeats * 3)
    Ab = torch.randn(256, 100, 100, dtype=f64, generator=g)
    Lb = torch.linalg.cholesky(Ab @ Ab.mT / 100 + torch.eye(100, dtype=f64))
    ub = torch.randn(256, 100, 1, dtype=f64, generator=g) * 0.1
    timed("Cholesky 256 rank-1 updates N=100",
          lambda: cholesky_update_lowrank(Lb, ub), repeats * 3)
    cross = torch.randn(2000, 1, dtype=f64, generator=g) * 0.01
    corner = torch.ones(1, 1, dtype=f64) * 2
    timed("Cholesky append 1 row N=2000",
          lambda: cholesky_append(L, cross, corner), repeats * 3)

    Xk = torch.rand(20, 2, dtype=f64, generator=g)
    kgm = GPR(Xk, torch.sin(5 * Xk[:, 0]) + Xk[:, 1], SquaredExponential(0.3), noise_variance=1e-3)
    alt = torch.rand(1000, 2, dtype=f64, generator=g)
    cand = torch.rand(256, 1, 2, dtype=f64, generator=g)
    timed("discrete KG 256 candidates x 1000 alternatives",
          lambda: DiscreteKnowledgeGradient(kgm, alt)(cand), repeats)
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=f64)
    timed("MC KG 8 candidates x 32 fantasies",
          lambda: knowledge_gradient_mc(kgm, cand[:8, 0], bounds, num_fantasies=32,
                                        generator=torch.Generator().manual_seed(0)), repeats)
    f = branin()
    timed("BO loop Branin EI 8 iterations",
          lambda: BayesianOptimizer(f, f.bounds, acquisition="ei", n_init=6, seed=0,
                                    progress=False, executor="serial").run(8),
          max(3, repeats // 2))

    p = banana_distribution(0.95, dtype=torch.float32)
    torch.manual_seed(0)
    train = p.sample((20_000,))
    timed("flow MAF 3 epochs banana 20k",
          lambda: fit_flow(Flow(2, hidden=(32, 32)), train, epochs=3, batch_size=256),
          max(3, repeats // 2))

    def flow_steps(kind):
        torch.manual_seed(1)
        flow = Flow(2, kind=kind, num_layers=3, hidden=(64, 64))
        flow.standardise(train)
        opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(0)

        def run():  # 25 steps of bench_flows.py's loop (batch 256)
            for _ in range(25):
                idx = torch.randint(0, train.shape[0], (256,), generator=gen)
                loss = -flow.log_prob(train[idx]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return run

    timed("flow NSF 25 steps batch 256", flow_steps("nsf"), repeats * 2)
    timed("flow MAF 25 steps batch 256", flow_steps("maf"), repeats * 2)

    from bayeskit.data import load_digits_split
    from bayeskit.vae import BernoulliDecoder, GaussianEncoder
    from bayeskit.vae import fit as vae_fit
    from bayeskit.vae.objectives import VAE

    x_tr = load_digits_split()[0]

    def vae_epochs():
        torch.manual_seed(0)
        model = VAE(GaussianEncoder(x_tr.shape[1], 2, (64,)),
                    BernoulliDecoder(2, x_tr.shape[1], (64,)))
        vae_fit(model, x_tr, epochs=3, batch_size=100, progress=False)

    timed("VAE 3 epochs digits", vae_epochs, max(3, repeats // 2))

    from bench_vae import synthetic_images

    x_syn = synthetic_images(50_000)
    torch.manual_seed(0)
    vae = VAE(GaussianEncoder(64, 2, (256,)), BernoulliDecoder(2, 64, (256,)))

    def vae_synthetic_epoch():  # target 6's larger set: batch 500, bench_vae's networks
        vae_fit(vae, x_syn, epochs=1, batch_size=500, progress=False)

    timed("VAE epoch synthetic 50 000 batch 500", vae_synthetic_epoch, max(3, repeats // 2))
    return out


def parent(args) -> None:
    trees = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    for r in range(args.rounds):
        order = list(trees) if r % 2 == 0 else list(reversed(trees))
        for name in order:
            env = {**os.environ, "PYTHONPATH": trees[name], "OMP_NUM_THREADS":
                   os.environ.get("OMP_NUM_THREADS", "2")}
            res = subprocess.run([sys.executable, __file__, "--child", "--repeats",
                                  str(args.repeats), "--only", *args.only], env=env,
                                 capture_output=True, text=True, check=True)
            rounds[name].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{args.rounds} {name} done", file=sys.stderr, flush=True)
    ops = list(rounds["after"][0])
    print(f"| operation | before (ms) | after (ms) | after/before | spread over "
          f"{args.rounds} rounds |")
    print("|---|---|---|---|---|")
    summary = {}
    for op in ops:
        b = [x[op] for x in rounds["before"]]
        a = [x[op] for x in rounds["after"]]
        ratios = [ai / bi for ai, bi in zip(a, b, strict=True)]
        mb, ma = statistics.median(b), statistics.median(a)
        summary[op] = {"before": b, "after": a}
        print(f"| {op} | {1e3 * mb:.2f} | {1e3 * ma:.2f} | {ma / mb:.3f} | "
              f"{min(ratios):.3f}-{max(ratios):.3f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before")
    ap.add_argument("--after", default="src")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--only", nargs="*", default=[],
                    help="time only the operations whose names contain one of these words")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.repeats, args.only)))
    else:
        if not args.before:
            ap.error("--before is required")
        parent(args)


if __name__ == "__main__":
    main()

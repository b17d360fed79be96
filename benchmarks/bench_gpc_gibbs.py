"""GP classification in function space: Pólya-gamma Gibbs (bayeskit) vs NumPyro NUTS on the
whitened latent (issue #18, target 2's second half).

scikit-learn's bundled breast-cancer data (no download), features standardised, a
squared-exponential kernel with fixed hyperparameters (lengthscale sqrt(30), variance 4),
K = L L^T (jittered Cholesky), latent f = L v with v ~ N(0, I_N), y ~ Bernoulli(sigmoid(f)),
N = 569, float64. Both samplers target v; reported per sampler: wall time (burn-in and
warm-up included, NUTS compile excluded; NUTS's warm-up is timed since 2026-12-06, before it
was not), the minimum bulk ESS over the N latent values (ArviZ) and per second, the maximum
R-hat, and the largest difference of the posterior means of f from
NUTS's in units of the posterior sd. Our sampler runs with each ``--solvers`` entry:
"cholesky" factorises K + Omega^-1 per chain and sweep, "cg" solves it by conjugate
gradients preconditioned with K's top eigenpairs (gp_classification_gibbs(solver=...)).
``--precision-form`` adds the sweep gp_classification_gibbs used before the Matheron form (a
D x D precision per chain), for that comparison.

    .venv-bench/bin/python benchmarks/bench_gpc_gibbs.py [--warmup 500] [--draws 500]
        [--chains 4 16] [--our-chains 4 16] [--metropolis-steps 0 4] [--solvers cholesky cg]
        [--our-warmup N] [--precision-form]
    .venv-bench/bin/python benchmarks/bench_gpc_gibbs.py --crossover [50 100 200 400 800]
    .venv-bench/bin/python benchmarks/bench_gpc_gibbs.py --capacitance [--chains 64]
    .venv-bench/bin/python benchmarks/bench_gpc_gibbs.py --normals [--chains 64]

``--capacitance`` times the CG sweep's preconditioner setup on this data: the capacitance
matrices ``diag(1 / lam) + V^T diag(w) V`` of a batch of diagonals from
``linalg.LowRankPreconditioner``'s packed table (one product) against the batched product it
replaced (``packed=False``), each with its Cholesky factorisation.

``--normals`` times the sweep's standard normal draws at its sizes (per chain: the prior
draw and the noise, ``N`` each, and ``N`` per Metropolis step) and at 30 and 1024 draws
(either side of its ``MIN_SIZE``): torch's CPU generator (``torch.randn``) against the
compiled streams of ``distributions.gaussian.standard_normal``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from sklearn.datasets import load_breast_cancer

from _timing import header
from bayeskit.gp import SquaredExponential
from bayeskit.mcmc import BinomialRegressionData, gp_classification_gibbs, run_gibbs
from bench_gibbs import print_table, run_nuts  # the same model: logistic regression on L


def dataset():
    X, y = load_breast_cancer(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / X.std(0))
    K = SquaredExponential(lengthscale=30**0.5, variance=4.0)(X).detach()
    return K, torch.tensor(y, dtype=torch.float64)


def run_ours(K, y, chains, warmup, draws, metropolis_steps, solver="cholesky", seed=0):
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    start = time.perf_counter()
    L, v, _ = gp_classification_gibbs(K, y, num_samples=draws, burn_in=warmup,
                                      num_chains=chains, metropolis_steps=metropolis_steps,
                                      solver=solver, generator=torch.Generator().manual_seed(seed))
    return time.perf_counter() - start, v.numpy(), L.numpy()


def crossover(sizes, chains=16, sweeps=100, metropolis_steps=4):
    """Seconds for ``sweeps`` sweeps with each solver on synthetic data of each size (3-D
    inputs on [0, 4]^3, SE kernel with lengthscale 1 and variance 4): where "cg" starts to
    pay, which sets gp_classification_gibbs's solver="auto" threshold."""
    from bayeskit.gp import SquaredExponential as SE

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    g = torch.Generator().manual_seed(0)
    print("| N | cholesky s | cg s | cholesky / cg |\n|---|---|---|---|")
    for n in sizes:
        X = 4 * torch.rand(n, 3, generator=g, dtype=torch.float64)
        noise = 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
        y = (torch.sin(X.sum(-1)) + noise > 0).double()
        K = SE(lengthscale=1.0, variance=4.0)(X).detach()
        seconds = {}
        for solver in ("cholesky", "cg") * 2:  # the second round is timed (warm)
            start = time.perf_counter()
            gp_classification_gibbs(K, y, num_samples=sweeps, burn_in=0, num_chains=chains,
                                    solver=solver, metropolis_steps=metropolis_steps,
                                    generator=torch.Generator().manual_seed(0))
            seconds[solver] = time.perf_counter() - start
        print(f"| {n} | {seconds['cholesky']:.3f} | {seconds['cg']:.3f} | "
              f"{seconds['cholesky'] / seconds['cg']:.2f} |", flush=True)


def capacitance(chains: int, repeats: int = 30) -> None:
    """Milliseconds for one preconditioner setup (the capacitance matrices of ``chains``
    diagonals and their factors), packed table against the batched product."""
    from bayeskit.linalg import LowRankPreconditioner, low_rank_eigenpairs

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    header()
    K, _ = dataset()
    lam, V = low_rank_eigenpairs(K, K.shape[0] // 4, above=2.0)  # the sweep's choice
    g = torch.Generator().manual_seed(0)
    d = 1 / (0.05 + 0.3 * torch.rand(chains, K.shape[0], generator=g, dtype=torch.float64))
    times = {}
    for name, packed in (("packed table", True), ("batched product", False)) * 2:
        pre = LowRankPreconditioner(lam, V, packed=packed)
        pre.inverse(d)
        start = time.perf_counter()
        for _ in range(repeats):
            pre.inverse(d)
        times[name] = 1e3 * (time.perf_counter() - start) / repeats  # the second round kept
    print(f"N = {K.shape[0]}, rank {lam.shape[0]}, {chains} diagonals: packed table "
          f"{times['packed table']:.2f} ms, batched product {times['batched product']:.2f} ms, "
          f"ratio {times['batched product'] / times['packed table']:.2f}")


def normals(chains: int, metropolis_steps: int = 4, repeats: int = 101, rounds: int = 9) -> None:
    """Microseconds per call of ``torch.randn`` and ``standard_normal`` at the sweep's draw
    sizes (medians of ``repeats`` interleaved calls) and draws per second; then 30 sweeps
    (``chains`` chains, CG, ``metropolis_steps`` steps) with the samplers' normals from each,
    ``rounds`` interleaved rounds in this process (the sweeps' time varies more between
    processes than the generators' difference)."""
    import bayeskit.distributions.gaussian as gaussian
    from _timing import interleaved_medians
    from bayeskit.distributions.gaussian import standard_normal

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    header()
    n = dataset()[0].shape[0]
    g = torch.Generator().manual_seed(0)

    def fill(size):  # the compiled route at any size (MIN_SIZE lowered for the call)
        before, gaussian.MIN_SIZE = gaussian.MIN_SIZE, 0
        try:
            return standard_normal(size, generator=g)
        finally:
            gaussian.MIN_SIZE = before
    print("| draws | torch.randn us | standard_normal us | ratio | M draws/s (torch, ours) |")
    print("|---|---|---|---|---|")
    # 30 and 1024: either side of standard_normal's MIN_SIZE (below it, torch.randn)
    for size in (30, 1024, chains * n, chains * n * metropolis_steps):
        med = interleaved_medians(
            {"torch": lambda s=size: torch.randn(s, dtype=torch.float64, generator=g),
             "ours": lambda s=size: fill(s)}, repeats)
        print(f"| {size} | {1e6 * med['torch']:.0f} | {1e6 * med['ours']:.0f} | "
              f"{med['torch'] / med['ours']:.2f} | {size / med['torch'] / 1e6:.0f}, "
              f"{size / med['ours'] / 1e6:.0f} |")
    K, y = dataset()
    compiled_from = gaussian.MIN_SIZE

    def sweeps(min_size):
        gaussian.MIN_SIZE = min_size  # above every draw's size: all from torch.randn
        try:
            gp_classification_gibbs(K, y, num_samples=30, burn_in=0, num_chains=chains,
                                    metropolis_steps=metropolis_steps, solver="cg",
                                    generator=torch.Generator().manual_seed(0))
        finally:
            gaussian.MIN_SIZE = compiled_from
    med = interleaved_medians({"torch": lambda: sweeps(2**62),
                               "ours": lambda: sweeps(compiled_from)}, rounds)
    print(f"\n30 sweeps, {chains} chains, CG, {metropolis_steps} Metropolis steps: normals from "
          f"torch.randn {1e3 * med['torch'] / 30:.1f} ms a sweep, from standard_normal "
          f"{1e3 * med['ours'] / 30:.1f} ms a sweep ({med['ours'] / med['torch']:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chains", type=int, nargs="+", default=[4],
                        help="NUTS chains (several: one run each; the first is the reference "
                             "for the posterior means)")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--our-chains", type=int, nargs="*", default=[4, 16])
    parser.add_argument("--metropolis-steps", type=int, nargs="*", default=[0, 4])
    parser.add_argument("--solvers", nargs="*", default=["cholesky", "cg"],
                        choices=["cholesky", "cg"])
    parser.add_argument("--our-warmup", type=int, default=None,
                        help="our burn-in sweeps (default: --warmup, as NUTS's warm-up)")
    parser.add_argument("--precision-form", action="store_true",
                        help="also time the D x D precision sweep (4 chains, no MH steps)")
    parser.add_argument("--crossover", type=int, nargs="*", default=None,
                        help="only time both solvers at these sizes (synthetic data; 16 "
                             "chains, 100 sweeps, 4 Metropolis steps each)")
    parser.add_argument("--capacitance", action="store_true",
                        help="only time the CG preconditioner's setup (--chains: diagonals; "
                             "64 by default)")
    parser.add_argument("--normals", action="store_true",
                        help="only time the sweep's normal draws (--chains: chains; 64 by "
                             "default)")
    args = parser.parse_args()
    if args.normals:
        normals(args.chains[0] if args.chains != [4] else 64)
        return
    if args.capacitance:
        capacitance(args.chains[0] if args.chains != [4] else 64)
        return
    if args.crossover is not None:
        crossover(args.crossover or [50, 100, 200, 400, 800])
        return
    our_warmup = args.warmup if args.our_warmup is None else args.our_warmup
    header()
    K, y = dataset()
    lam = torch.linalg.eigvalsh(K)
    print(f"# K: {int((lam > 2).sum())} of {len(lam)} eigenvalues above 2 (the CG sweep's "
          f"preconditioner rank for labels), {int((lam > 1).sum())} above 1, largest "
          f"{float(lam[-1]):.0f}", flush=True)
    rows, L = {}, None
    for solver in args.solvers:
        for chains in args.our_chains:
            for k in args.metropolis_steps:
                t, v, L = run_ours(K, y, chains, our_warmup, args.draws, k, solver)
                rows[f"bayeskit PG Gibbs ({solver}), {chains} chains, MH x{k}"] = (t, v)
                print(f"  {list(rows)[-1]}: {t:.1f} s", flush=True)
    if args.precision_form:
        # the sweep before the Matheron form (the D x D precision L^T diag(w) L + I per chain)
        data = BinomialRegressionData.create(torch.as_tensor(L), y, prior_precision=1.0)
        start = time.perf_counter()
        res = run_gibbs(data, num_samples=args.draws, burn_in=our_warmup, num_chains=4,
                        method="precision", generator=torch.Generator().manual_seed(0))
        rows["bayeskit, 4 chains, precision form"] = (time.perf_counter() - start,
                                                      res.beta.numpy())
        print(f"  {list(rows)[-1]}: {rows[list(rows)[-1]][0]:.1f} s", flush=True)
    try:
        for k, chains in enumerate(args.chains):  # the first is the means' reference
            name = "NumPyro NUTS (vectorized)" if k == 0 else f"NumPyro NUTS, {chains} chains"
            rows[name] = run_nuts(L, y.numpy(), chains, args.warmup, args.draws, "vectorized")
            print(f"  {name}: {rows[name][0]:.1f} s", flush=True)
    except ImportError as err:
        print(f"# numpyro not available: {err}")
    print(f"\nN = {L.shape[0]} latent values, {args.warmup} warm-up (NUTS) / {our_warmup} "
          f"burn-in (ours) + {args.draws} draws per chain; mean differences of f = L v")
    print_table(rows, lambda v: v @ L.T, key="gpc")

if __name__ == "__main__":
    main()

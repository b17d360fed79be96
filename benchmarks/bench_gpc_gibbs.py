"""GP classification in function space: Pólya-gamma Gibbs (bayeskit) vs NumPyro NUTS on the
whitened latent (issue #18, target 2's second half).

scikit-learn's bundled breast-cancer data (no download), features standardised, a
squared-exponential kernel with fixed hyperparameters (lengthscale sqrt(30), variance 4),
K = L L^T (jittered Cholesky), latent f = L v with v ~ N(0, I_N), y ~ Bernoulli(sigmoid(f)),
N = 569, float64. Both samplers target v; reported per sampler: wall time (burn-in/warm-up
included, NUTS compile excluded), the minimum bulk ESS over the N latent values (ArviZ) and
per second, the maximum R-hat, and the largest difference of the posterior means of f from
NUTS's in units of the posterior sd. "precision form" is the sweep gp_classification_gibbs
used before the Matheron form (a D x D precision per chain), for the comparison.

    .venv-bench/bin/python benchmarks/bench_gpc_gibbs.py [--warmup 500] [--draws 500]
        [--chains 4] [--our-chains 4 16] [--metropolis-steps 0 4]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from sklearn.datasets import load_breast_cancer

from bayeskit.gp import SquaredExponential
from bayeskit.mcmc import BinomialRegressionData, gp_classification_gibbs, run_gibbs
from bench_gibbs import print_table, run_nuts  # the same model: logistic regression on L


def dataset():
    X, y = load_breast_cancer(return_X_y=True)
    X = torch.tensor((X - X.mean(0)) / X.std(0))
    K = SquaredExponential(lengthscale=30**0.5, variance=4.0)(X).detach()
    return K, torch.tensor(y, dtype=torch.float64)


def run_ours(K, y, chains, warmup, draws, metropolis_steps, seed=0):
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    start = time.perf_counter()
    L, v, _ = gp_classification_gibbs(K, y, num_samples=draws, burn_in=warmup,
                                      num_chains=chains, metropolis_steps=metropolis_steps,
                                      generator=torch.Generator().manual_seed(seed))
    return time.perf_counter() - start, v.numpy(), L.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chains", type=int, default=4, help="NUTS chains")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--our-chains", type=int, nargs="*", default=[4, 16])
    parser.add_argument("--metropolis-steps", type=int, nargs="*", default=[0, 4])
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(f"# {time.strftime('%Y-%m-%d %H:%M')} loadavg {f.read().strip()}", flush=True)
    K, y = dataset()
    rows, L = {}, None
    for chains in args.our_chains:
        for k in args.metropolis_steps:
            t, v, L = run_ours(K, y, chains, args.warmup, args.draws, k)
            rows[f"bayeskit PG Gibbs, {chains} chains, MH x{k}"] = (t, v)
            print(f"  {list(rows)[-1]}: {t:.1f} s", flush=True)
    # the sweep before the Matheron form (the D x D precision L^T diag(w) L + I per chain)
    data = BinomialRegressionData.create(torch.as_tensor(L), y, prior_precision=1.0)
    start = time.perf_counter()
    res = run_gibbs(data, num_samples=args.draws, burn_in=args.warmup, num_chains=4,
                    method="precision", generator=torch.Generator().manual_seed(0))
    rows["bayeskit, 4 chains, precision form"] = (time.perf_counter() - start,
                                                  res.beta.numpy())
    print(f"  {list(rows)[-1]}: {rows[list(rows)[-1]][0]:.1f} s", flush=True)
    try:
        rows["NumPyro NUTS (vectorized)"] = run_nuts(L, y.numpy(), args.chains, args.warmup,
                                                     args.draws, "vectorized")
    except ImportError as err:
        print(f"# numpyro not available: {err}")
    print(f"\nN = {L.shape[0]} latent values, {args.warmup} warm-up + {args.draws} draws per "
          f"chain; mean differences of f = L v")
    print_table(rows, lambda v: v @ L.T)

if __name__ == "__main__":
    main()

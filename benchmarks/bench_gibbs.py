"""Bayesian logistic regression: Pólya-gamma Gibbs (bayeskit) vs NumPyro NUTS.

scikit-learn's bundled breast-cancer data (no download), features standardised with the
population sd, intercept column first (D = 31), beta ~ N(0, I); 4 chains of 1000 warm-up
+ 1000 draws each, float64; bayeskit also with 16 and 64 chains and with independence
Metropolis steps from the Laplace approximation between sweeps. Reports wall time, the
minimum bulk ESS over coefficients (ArviZ), min-ESS per second, the maximum R-hat, and the
largest difference of posterior means from NUTS's in units of the posterior sd. Wall times
count burn-in and warm-up for both samplers and exclude NUTS's compilation (until 2026-12-06
NUTS's warm-up was not timed: see run_nuts).

    .venv-bench/bin/python benchmarks/bench_gibbs.py [--draws 1000] [--warmup 1000]
"""

from __future__ import annotations

import argparse
import os
import time

import arviz as az
import numpy as np
import torch
from sklearn.datasets import load_breast_cancer

from _timing import header, headline
from bayeskit import compiled
from bayeskit.mcmc import BinomialRegressionData, run_gibbs
from bayeskit.mcmc import gibbs as gibbs_module


def dataset():
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    return np.hstack([np.ones((X.shape[0], 1)), X]), y.astype(float)


def ess_summary(draws: np.ndarray) -> tuple[float, float]:
    idata = az.from_dict(posterior={"beta": draws})
    ess = float(az.ess(idata, method="bulk")["beta"].min())
    rhat = float(az.rhat(idata)["beta"].max())
    return ess, rhat


def print_table(rows: dict, of_interest=lambda draws: draws, key: str = "") -> None:
    """One line per sampler: wall time, min bulk ESS, ESS/s, max R-hat and the largest
    difference of posterior means from NUTS's (or the first row's) in sd units, of the
    quantity ``of_interest(draws [C, S, D]) -> [C * S, K]`` (the draws themselves).

    With NUTS among the rows, the headline figures ``{key}.ess_ratio`` (bayeskit's best
    ESS/s over NUTS's best, each at its best configuration) and ``{key}.mean_diff`` (that
    bayeskit row's largest mean difference)."""
    ref = rows.get("NumPyro NUTS (vectorized)", next(iter(rows.values())))[1]
    ref = of_interest(ref.reshape(-1, ref.shape[-1]))
    mu, sd = ref.mean(0), ref.std(0)
    print(f"{'sampler':42s} {'wall s':>8s} {'min ESS':>9s} {'ESS/s':>8s} {'max R-hat':>10s} "
          f"{'max |mean diff| / sd':>22s}")
    rates = {}
    for name, (t, draws) in rows.items():
        ess, rhat = ess_summary(draws)
        diff = np.abs(of_interest(draws.reshape(-1, draws.shape[-1])).mean(0) - mu) / sd
        rates[name] = (ess / t, float(diff.max()))
        print(f"{name:42s} {t:8.2f} {ess:9.0f} {ess / t:8.1f} {rhat:10.4f} {diff.max():22.3f}")
    nuts = [r for name, (r, _) in rates.items() if name.startswith("NumPyro")]
    ours = max((v for name, v in rates.items() if name.startswith("bayeskit")), default=None)
    if nuts and ours:
        headline(f"{key}.ess_ratio", ours[0] / max(nuts))
        headline(f"{key}.mean_diff", ours[1])


def run_ours(Phi, y, chains, warmup, draws, seed=0, metropolis_steps=0):
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    data = BinomialRegressionData.create(Phi, y, prior_precision=1.0)
    start = time.perf_counter()  # the Laplace approximation, if any, is timed too
    res = run_gibbs(data, num_samples=draws, burn_in=warmup, num_chains=chains,
                    metropolis_steps=metropolis_steps,
                    generator=torch.Generator().manual_seed(seed))
    return time.perf_counter() - start, res.beta.numpy()


def run_nuts(Phi, y, chains, warmup, draws, method, seed=0):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    jax.config.update("jax_enable_x64", True)
    numpyro.set_host_device_count(chains)

    def model(Phi, y):
        beta = numpyro.sample("beta", dist.Normal(jnp.zeros(Phi.shape[1]), 1.0).to_event(1))
        numpyro.sample("y", dist.Bernoulli(logits=Phi @ beta), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method=method, progress_bar=False)
    Phi_j, y_j = jnp.asarray(Phi), jnp.asarray(y)
    # compile both phases (excluded, as ANCHORS), then time warm-up + draws from a fresh
    # start: after warmup(), run() skips the warm-up, so timing run() alone (as this script
    # did until 2026-12-06) left NUTS's warm-up, more than half its time here, uncounted
    mcmc.warmup(jax.random.PRNGKey(seed + 1), Phi_j, y_j)
    mcmc.run(jax.random.PRNGKey(seed + 1), Phi_j, y_j)
    start = time.perf_counter()
    mcmc.warmup(jax.random.PRNGKey(seed), Phi_j, y_j)  # restarts from the model's init
    warm = time.perf_counter() - start
    mcmc.run(jax.random.PRNGKey(seed), Phi_j, y_j)
    elapsed = time.perf_counter() - start
    print(f"  NUTS ({chains} chains, {method}): warm-up {warm:.2f} s + draws "
          f"{elapsed - warm:.2f} s ({warm / elapsed:.0%} warm-up)", flush=True)
    return elapsed, np.asarray(mcmc.get_samples(group_by_chain=True)["beta"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--our-chains", type=int, nargs="*", default=[16, 64],
                        help="also run bayeskit with these numbers of chains")
    parser.add_argument("--metropolis-steps", type=int, nargs="*", default=[4, 8],
                        help="also run bayeskit (16 chains) with this many independence "
                             "Metropolis steps from the Laplace approximation per sweep")
    parser.add_argument("--nuts-methods", nargs="*", default=["vectorized", "sequential"],
                        help="NumPyro's chain methods to run")
    parser.add_argument("--headline", action="store_true",
                        help="skip the rows kept for the record (the eager fallback, "
                             "per-chain precisions): what check_targets.py runs")
    args = parser.parse_args()
    header()
    Phi, y = dataset()
    rows = {}
    t, d = run_ours(Phi, y, args.chains, args.warmup, args.draws)
    rows["bayeskit PG Gibbs"] = (t, d)
    if not args.headline:
        with compiled.use_compiled(False):  # the eager fallback, for the record
            rows["bayeskit (eager PG)"] = run_ours(Phi, y, args.chains, args.warmup,
                                                   args.draws)
    for chains in args.our_chains:  # chains as a batch: ESS/s at other chain counts
        rows[f"bayeskit, {chains} chains"] = run_ours(Phi, y, chains, args.warmup, args.draws)
    if not args.headline:
        gibbs_module._WEIGHTED_GRAM = False  # the sweep before the batched-precision product
        rows["bayeskit, 16 chains, per-chain precisions"] = run_ours(Phi, y, 16, args.warmup,
                                                                    args.draws)
        gibbs_module._WEIGHTED_GRAM = True
    for k in args.metropolis_steps:
        rows[f"bayeskit, 16 chains, MH x{k}"] = run_ours(Phi, y, 16, args.warmup, args.draws,
                                                        metropolis_steps=k)
    try:
        for method in args.nuts_methods:
            rows[f"NumPyro NUTS ({method})"] = run_nuts(Phi, y, args.chains, args.warmup,
                                                        args.draws, method)
    except ImportError as err:
        print(f"# numpyro not available: {err}")
    print(f"\nN = {Phi.shape[0]}, D = {Phi.shape[1]}, {args.chains} chains x "
          f"({args.warmup} warm-up + {args.draws} draws)")
    print_table(rows, key="gibbs")
    ours = rows["bayeskit PG Gibbs"][1].reshape(-1, Phi.shape[1])
    print(f"posterior means (ours): intercept {ours[:, 0].mean():.4f}, "
          f"beta1..4 {np.round(ours[:, 1:5].mean(0), 4)}")


if __name__ == "__main__":
    main()

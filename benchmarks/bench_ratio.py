"""Density ratios and KL from samples: bayeskit vs densratio and scikit-learn classifiers.

p = N(1, 1), q = N(0, 2^2) (KL 0.44315), 5000 + 5000 samples; 2-D p = N(0, I),
q = N([0.5, 0], diag(2, 1)) (KL 0.15907); 10-D p = N(0, I), q = N(0.3 * 1, 1.5 I).
Each KL estimate is mean log r_hat(x_i) over the p samples (in-sample, as densratio does);
fit times are wall-clock medians over seeds; all in one process.

    .venv-bench/bin/python benchmarks/bench_ratio.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from _timing import header
from bayeskit.ratio import KLIEP, ULSIF, ClassifierDensityRatio


def _mvn(mean, cov):
    return MultivariateNormal(torch.as_tensor(mean, dtype=torch.float64),
                              torch.as_tensor(cov, dtype=torch.float64))


def problems():
    eye = torch.eye(10, dtype=torch.float64)
    yield "1-D", _mvn([1.0], [[1.0]]), _mvn([0.0], [[4.0]])
    yield "2-D", _mvn([0.0, 0.0], torch.eye(2)), _mvn([0.5, 0.0], [[2.0, 0.0], [0.0, 1.0]])
    yield "10-D", _mvn(torch.zeros(10), eye), _mvn(0.3 * torch.ones(10), 1.5 * eye)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    header()
    try:
        from densratio import densratio
    except ImportError:
        densratio = None
        print("# densratio not installed (make bench-env)")
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    for name, p, q in problems():
        truth = float(kl_divergence(p, q))
        rows: dict[str, tuple[list[float], list[float], list[float]]] = {}
        # ratio-curve error on a grid where both samples have mass (1-D only)
        grid = torch.linspace(-2, 3, 101, dtype=torch.float64)[:, None]
        true_r = (p.log_prob(grid) - q.log_prob(grid)).exp() if name == "1-D" else None

        def record(key, seconds, value, ratio_at_grid=None, rows=rows, true_r=true_r):
            rows.setdefault(key, ([], [], []))
            rows[key][0].append(seconds)
            rows[key][1].append(value)
            if ratio_at_grid is not None and true_r is not None:
                err = (torch.as_tensor(ratio_at_grid) - true_r).abs().mean()
                rows[key][2].append(float(err))

        for seed in range(args.seeds):
            torch.manual_seed(seed)
            xp, xq = p.sample((args.n,)), q.sample((args.n,))
            for key, make in (("bayeskit uLSIF (CV)", ULSIF),
                              ("bayeskit KLIEP (CV)", KLIEP),
                              ("bayeskit classifier MLP(16, 32)", ClassifierDensityRatio)):
                t0 = time.perf_counter()
                est = make(seed=seed).fit(xp, xq)
                dt = time.perf_counter() - t0
                record(key, dt, float(est.log_ratio(xp).mean()),
                       est.log_ratio(grid).exp() if name == "1-D" else None)
            xpn, xqn = xp.numpy(), xq.numpy()
            if densratio is not None and (name != "10-D" or seed == 0):
                np.random.seed(seed)  # densratio draws its kernel centres from numpy's global RNG
                for method in ("uLSIF", "KLIEP"):
                    t0 = time.perf_counter()
                    res = densratio(xpn, xqn, method=method, verbose=False)
                    dt = time.perf_counter() - t0
                    r = np.clip(res.compute_density_ratio(xpn), 1e-12, None)
                    rg = res.compute_density_ratio(grid.numpy()) if name == "1-D" else None
                    record(f"densratio {method}", dt, float(np.log(r).mean()), rg)
            X = np.vstack([xpn, xqn])
            y = np.r_[np.ones(len(xpn)), np.zeros(len(xqn))]
            for key, clf, feats in (
                ("sklearn LogisticRegression [x, x^2]", LogisticRegression(max_iter=1000),
                 lambda a: np.hstack([a, a**2])),
                ("sklearn MLPClassifier(16, 32)", MLPClassifier((16, 32), max_iter=500,
                                                                random_state=seed), lambda a: a),
            ):
                t0 = time.perf_counter()
                clf.fit(feats(X), y)
                dt = time.perf_counter() - t0
                lp = clf.predict_log_proba(feats(xpn))
                rg = None
                if name == "1-D":
                    lg = clf.predict_log_proba(feats(grid.numpy()))
                    rg = np.exp(lg[:, 1] - lg[:, 0])
                record(key, dt, float((lp[:, 1] - lp[:, 0]).mean()), rg)
        print(f"\n## {name}: true KL {truth:.5f}, {args.n} + {args.n} samples, {args.seeds} seeds")
        print(f"  {'estimator':38s} {'fit s':>8s} {'mean KL':>9s} {'error':>8s} {'seed sd':>8s}"
              f" {'ratio MAE on [-2,3]':>20s}")
        for key, (times, values, maes) in rows.items():
            sd = statistics.stdev(values) if len(values) > 1 else math.nan
            mean = statistics.mean(values)
            mae = f"{statistics.mean(maes):20.4f}" if maes else ""
            print(f"  {key:38s} {statistics.median(times):8.2f} {mean:9.4f} "
                  f"{mean - truth:+8.4f} {sd:8.4f} {mae}")


if __name__ == "__main__":
    main()

"""The exact GP's -MLL + gradient with the inverse on torch's LAPACK (MKL) or SciPy's
(OpenBLAS), each in its own fresh process, as a training loop calls it.

SciPy's OpenBLAS threads spin for ~0.1 s after a call and slow the torch work that follows
on a small machine, so the two routes cannot be timed fairly in one process: every
contender would pay for the other's threads. Here each (N, route) runs in a fresh process,
``--reps`` consecutive evaluations after one warm-up, their median printed; the processes
alternate route by route for ``--rounds`` rounds. ``--thread-timeout`` also runs every
process with ``OPENBLAS_THREAD_TIMEOUT=4`` (OpenBLAS's idle threads sleep at once).
Same data and kernel as ``bench_gp.py``.

    .venv-bench/bin/python benchmarks/bench_lapack.py --sizes 2000 2500 3000 4000
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def worker(n: int, reps: int) -> None:
    import torch

    from bayeskit.gp import GPR, SquaredExponential
    from bayeskit.linalg import lapack_backend
    from bench_gp import data

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    X, y = data(n)
    gp = GPR(X, y, SquaredExponential(torch.full((8,), 0.5), 1.0), noise_variance=0.1)

    def evaluate():
        gp.zero_grad()
        (-gp.log_marginal_likelihood()).backward()

    evaluate()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        evaluate()
        times.append(time.perf_counter() - start)
    route = lapack_backend(torch.eye(n, dtype=torch.float64))
    print(f"{statistics.median(times)} {route}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 2500, 3000, 4000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--thread-timeout", action="store_true",
                        help="also with OPENBLAS_THREAD_TIMEOUT=4")
    parser.add_argument("--worker", type=int, nargs=2, metavar=("N", "REPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    from _timing import header

    header()
    settings = [("spinning", {})]
    if args.thread_timeout:
        settings.append(("OPENBLAS_THREAD_TIMEOUT=4", {"OPENBLAS_THREAD_TIMEOUT": "4"}))
    for label, extra in settings:
        print(f"\n## idle OpenBLAS threads: {label}; ms, median of each process's {args.reps} "
              f"evaluations")
        for n in args.sizes:
            medians = {"torch": [], "scipy": []}
            for _ in range(args.rounds):
                for route in medians:
                    env = {**os.environ, **extra, "BAYESKIT_LAPACK": route}
                    out = subprocess.run([sys.executable, __file__, "--worker", str(n),
                                          str(args.reps)], env=env, check=True,
                                         capture_output=True, text=True).stdout.split()
                    medians[route].append(1e3 * float(out[0]))
            t, s = (statistics.median(medians[r]) for r in ("torch", "scipy"))
            runs = "  ".join(f"{r}: " + " ".join(f"{v:.0f}" for v in medians[r])
                             for r in medians)
            print(f"  N = {n}: torch's inverse {t:8.1f}, SciPy's {s:8.1f}, scipy / torch "
                  f"{s / t:.2f}   ({runs})")


if __name__ == "__main__":
    main()

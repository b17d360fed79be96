"""The exact GP's -MLL + gradient with the inverse from LAPACK's ``potri`` on torch's LAPACK
(MKL in its CPU wheels) or on SciPy's OpenBLAS with its workers stopped after each call
(``bayeskit.linalg.openblas``), or by blocked products on torch's BLAS
(``bayeskit.linalg.blocked``), each in its own fresh process, as a training loop calls it
(so any cost OpenBLAS's threads leave behind falls on the next evaluation, as in training).

Each (N, route) runs in a fresh process, ``--reps`` consecutive evaluations after one
warm-up, their median printed; the processes alternate route by route for ``--rounds``
rounds. Same data and kernel as ``bench_gp.py``.

    .venv-bench/bin/python benchmarks/bench_lapack.py --sizes 1500 2000 2500 3000 4000

(Until the fourteenth session this script also compared SciPy's OpenBLAS ``potri`` called
through SciPy, whose workers kept spinning, and measured their cost, ``--spin``: see
``RESULTS.md``.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys


def worker(n: int, reps: int) -> None:
    import torch

    from _timing import blocked_medians
    from bayeskit.gp import GPR, SquaredExponential
    from bayeskit.linalg import lapack_backend
    from bench_gp import data

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    X, y = data(n)
    gp = GPR(X, y, SquaredExponential(torch.full((8,), 0.5), 1.0), noise_variance=0.1)

    def evaluate():
        gp.zero_grad()
        (-gp.log_marginal_likelihood()).backward()

    # one warm-up, then reps consecutive evaluations, as a training loop calls them
    median = blocked_medians({"exact GP": evaluate}, 1, block=reps, pause=0.0)["exact GP"]
    print(f"{median} {lapack_backend(torch.eye(n, dtype=torch.float64))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1500, 2000, 2500, 3000, 4000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--worker", type=int, nargs=2, metavar=("N", "REPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    import torch

    from _timing import header
    from bayeskit.linalg import lapack_backend

    header()
    print(f"\n## ms, median of each process's {args.reps} evaluations")
    for n in args.sizes:
        medians = {"torch": [], "openblas": [], "blocked": []}
        for _ in range(args.rounds):
            for route in medians:
                env = {**os.environ, "BAYESKIT_LAPACK": route}
                out = subprocess.run([sys.executable, __file__, "--worker", str(n),
                                      str(args.reps)], env=env, check=True,
                                     capture_output=True, text=True).stdout.split()
                medians[route].append(1e3 * float(out[0]))
        t, o, b = (statistics.median(medians[r]) for r in ("torch", "openblas", "blocked"))
        runs = "  ".join(f"{r}: " + " ".join(f"{v:.0f}" for v in medians[r]) for r in medians)
        print(f"  N = {n}: potri {t:8.1f}, OpenBLAS {o:8.1f}, blocked {b:8.1f}; OpenBLAS / "
              f"potri {o / t:.2f}, blocked / potri {b / t:.2f}   ({runs})  "
              f"[auto: {lapack_backend(torch.eye(n, dtype=torch.float64))}]")


if __name__ == "__main__":
    main()

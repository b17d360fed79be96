"""The exact GP's -MLL + gradient with the inverse on torch's LAPACK (MKL) or SciPy's
(OpenBLAS), each in its own fresh process, as a training loop calls it.

SciPy's OpenBLAS threads keep spinning after a call and slow the torch work that follows
on a small machine (``--spin`` measures it), so the two routes cannot be timed fairly in
one process: every
contender would pay for the other's threads. Here each (N, route) runs in a fresh process,
``--reps`` consecutive evaluations after one warm-up, their median printed; the processes
alternate route by route for ``--rounds`` rounds. ``--thread-timeout`` also runs every
process with ``OPENBLAS_THREAD_TIMEOUT=4`` (OpenBLAS's idle threads sleep at once).
Same data and kernel as ``bench_gp.py``.

    .venv-bench/bin/python benchmarks/bench_lapack.py --sizes 2000 2500 3000 4000
    .venv-bench/bin/python benchmarks/bench_lapack.py --sizes --spin 15  # the stall alone
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time


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


def spin(repeats: int) -> None:
    """What switching between OpenBLAS's threads and torch's costs: ``repeats`` rounds back
    to back of an inverse at N = 64 (microseconds of work alone) on MKL (torch) or OpenBLAS
    (SciPy, in torch's thread count) followed by three ``tril`` of a 64 x 64 matrix. Prints
    the medians in microseconds of the inverse and of the three trils after it. (Pauses
    between rounds are not measured: on this project's virtual machines an idle pause
    itself costs the next op ~11 ms on either LAPACK, ad hoc.)"""
    import torch
    from scipy.linalg import lapack
    from threadpoolctl import ThreadpoolController

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    threads = ThreadpoolController()
    g = torch.Generator().manual_seed(0)
    A = torch.randn(64, 64, dtype=torch.float64, generator=g)
    L = torch.linalg.cholesky(A @ A.T / 64 + torch.eye(64, dtype=torch.float64))
    X = torch.randn(64, 64, dtype=torch.float64, generator=g)

    def openblas():
        with threads.limit(limits=torch.get_num_threads(), user_api="blas"):
            lapack.dpotri(L.numpy(), lower=1)  # L is column-major: its own lower triangle

    out = []
    for route, inverse in (("MKL", functools.partial(torch.cholesky_inverse, L)),
                           ("OpenBLAS", openblas)):
        t_inv, t_after = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            inverse()
            middle = time.perf_counter()
            X.tril()
            X.tril()
            X.tril()
            t_inv.append(middle - start)
            t_after.append(time.perf_counter() - middle)
        out.append(f"{route} {1e6 * statistics.median(t_inv):6.0f} / "
                   f"{1e6 * statistics.median(t_after):6.0f}")
    print("   ".join(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 2500, 3000, 4000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--thread-timeout", action="store_true",
                        help="also with OPENBLAS_THREAD_TIMEOUT=4")
    parser.add_argument("--spin", type=int, default=0, metavar="TRIALS",
                        help="also time small inverses alternating with torch ops, on each "
                             "LAPACK, with and without OPENBLAS_THREAD_TIMEOUT=4")
    parser.add_argument("--spin-worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, nargs=2, metavar=("N", "REPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.spin_worker:
        spin(args.spin_worker)
        return
    from _timing import header

    header()
    if args.spin:
        print(f"\n## an inverse at N = 64 then three 64 x 64 tril, {args.spin} rounds back to "
              "back (us, medians: the inverse / the trils after it)")
        for label, extra in (("spinning", {}),
                             ("OPENBLAS_THREAD_TIMEOUT=4", {"OPENBLAS_THREAD_TIMEOUT": "4"})):
            out = subprocess.run([sys.executable, __file__, "--spin-worker", str(args.spin)],
                                 env={**os.environ, **extra}, check=True, capture_output=True,
                                 text=True).stdout.strip()
            print(f"  {label:26s} {out}")
    settings = [("spinning", {})] if args.sizes else []
    if args.thread_timeout and args.sizes:
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

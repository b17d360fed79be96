"""Cholesky updates: bayeskit vs recomputing vs TFP-on-JAX vs a numba Givens loop.

Runs every contender on the same inputs in one process, interleaved (round-robin over
contenders in each repetition) so that machine noise hits all of them alike; checks that
they agree; prints medians and ratios, and the issue's targets.

    .venv-bench/bin/python benchmarks/bench_cholesky.py [--quick] [--repeats 15]
    .venv-bench/bin/python benchmarks/bench_cholesky.py --routes 1 16 64 --sizes 500 2000

Competitors are optional: TFP needs ``jax==0.4.35`` (``make bench-env``), numba any version.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch

from _timing import header, headline, interleaved_medians
from bayeskit import compiled
from bayeskit.linalg import (
    cholesky_append,
    cholesky_plus_diagonal,
    cholesky_update,
    cholesky_update_lowrank,
    kernels,
)
from bayeskit.linalg.direct import solve_lower_strided

DT = torch.float64


def spd(n: int, batch=(), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(*batch, n, n + 10, dtype=DT, generator=g)
    return X @ X.mT / n + torch.eye(n, dtype=DT)


def interleaved(contenders: dict, repeats: int) -> dict[str, float]:
    """Median milliseconds of each zero-argument callable (see ``_timing``)."""
    return {k: 1e3 * t for k, t in interleaved_medians(contenders, repeats).items()}


def tfp_update():
    """``tfp.math.cholesky_update`` on JAX, jitted; None when not installed."""
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        from tensorflow_probability.substrates import jax as tfp
    except Exception as err:  # noqa: BLE001 - any import failure means "not available"
        print(f"# TFP-on-JAX not available: {type(err).__name__}: {err}")
        return None
    one = jax.jit(tfp.math.cholesky_update)

    @jax.jit
    def iterated(chol, U):
        def body(c, u):
            return tfp.math.cholesky_update(c, u), None
        return jax.lax.scan(body, chol, U.T)[0]

    def run(chol, U):
        out = one(chol, U[:, 0]) if U.shape[1] == 1 else iterated(chol, U)
        return out.block_until_ready()

    return run


def numba_update():
    """Column-by-column Givens rank-1 update (LINPACK dchud style), numba-compiled."""
    try:
        import numba
    except ImportError:
        print("# numba not available")
        return None

    @numba.njit(cache=False)
    def rank1(L, x):
        n = x.shape[0]
        for k in range(n):
            r = np.sqrt(L[k, k] ** 2 + x[k] ** 2)
            c = r / L[k, k]
            s = x[k] / L[k, k]
            L[k, k] = r
            for i in range(k + 1, n):
                L[i, k] = (L[i, k] + s * x[i]) / c
                x[i] = c * x[i] - s * L[i, k]

    def run(chol_np, U_np):
        L = np.asfortranarray(chol_np).copy(order="F")
        for m in range(U_np.shape[1]):
            rank1(L, U_np[:, m].copy())
        return L

    return run


# ---------------------------------------------------------------- memory
def peak_extra_memory(n: int, m: int) -> float:
    """Peak extra resident memory of one update, output included, in N x N matrices.

    Measured in a fresh subprocess that builds the factor in place (so the resident-set
    high-water mark VmHWM equals the current resident set), as the growth of that mark.
    """
    code = f"""
import torch
from bayeskit.linalg import cholesky_update_lowrank
n, m = {n}, {m}
g = torch.Generator().manual_seed(0)
L = torch.empty(n, n, dtype=torch.float64).mT      # column-major, like torch.linalg.cholesky
L.normal_(generator=g).tril_().mul_(0.01)
L.diagonal().abs_().add_(1.0)
U = torch.randn(n, m, dtype=torch.float64, generator=g)
cholesky_update_lowrank(L[:300, :300], U[:300])   # load kernels, grow small pools
def status(key):  # VmRSS / VmHWM of this process only (getrusage inherits the parent's)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
before, high = status("VmRSS"), status("VmHWM")
out = cholesky_update_lowrank(L, U)
peak = status("VmHWM")
# if the high-water mark was already above the current set, this is a lower bound
print((peak - max(before, high)) / (n * n * 8), (high - before) / (n * n * 8))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode:
        print(f"# memory probe failed: {res.stderr.strip().splitlines()[-1:]}")
        return float("nan")
    extra, slack = (float(x) for x in res.stdout.split())
    if slack > 0.05:
        print(f"# memory probe: high-water mark was {slack:.2f} N^2 above the resident set")
    return extra


# ---------------------------------------------------------------- cases
def case_update(n: int, m: int, repeats: int, tfp, nb) -> dict:
    A = spd(n)
    L = torch.linalg.cholesky(A)
    U = torch.randn(n, m, dtype=DT, generator=torch.Generator().manual_seed(1)) / n**0.5
    ref = torch.linalg.cholesky(A + U @ U.mT)
    ours = functools.partial(cholesky_update_lowrank, L, U)
    contenders = {
        "bayeskit": ours,
        "recompute": lambda: torch.linalg.cholesky(A + U @ U.mT),
        "copy N x N": L.clone,
    }
    errors = {"bayeskit": float((ours() - ref).abs().max())}
    if m == 1:
        contenders["bayeskit (rank-1 api)"] = functools.partial(cholesky_update, L, U[:, 0])
    if compiled.available():
        # the eager blocked route, which the compiled sweep replaces up to rank
        # linalg.update._KERNEL_M (see --routes for where the two cross)
        contenders["bayeskit blocked route (compiled off)"] = functools.partial(blocked, L, U)
    if tfp is not None and n <= 2000:
        Lj, Uj = L.numpy(), U.numpy()
        contenders["TFP-on-JAX (jit)"] = functools.partial(tfp, Lj, Uj)
        errors["TFP-on-JAX (jit)"] = float(np.abs(np.asarray(tfp(Lj, Uj)) - ref.numpy()).max())
    if nb is not None and n <= 2000:
        Ln, Un = L.numpy(), U.numpy()
        contenders["numba Givens loop"] = functools.partial(nb, Ln, Un)
        errors["numba Givens loop"] = float(np.abs(nb(Ln, Un) - ref.numpy()).max())
    times = interleaved(contenders, repeats)
    return {"case": f"rank-{m} update, N={n}", "times_ms": times, "max_abs_err": errors}


def blocked(L: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """Our update on the eager blocked route (batched products, compiled sweep off)."""
    with compiled.use_compiled(False):
        return cholesky_update_lowrank(L, U)


def routes(sizes, ranks, repeats: int) -> None:
    """The compiled column sweep against the eager blocked route, one factor, every
    (N, rank): where the sweep stops paying (``linalg.update._KERNEL_M``)."""
    print("\n## compiled sweep vs blocked route (ms, median of interleaved rounds)")
    print("| N | rank | sweep | blocked | blocked / sweep |")
    print("|---|---|---|---|---|")
    for n in sizes:
        L = torch.linalg.cholesky(spd(n))
        for m in ranks:
            U = torch.randn(n, m, dtype=DT, generator=torch.Generator().manual_seed(1))
            U /= (n * m) ** 0.5

            def sweep(L=L, U=U):
                return kernels.lowrank_update_batch(L[None], U[None],
                                                    torch.ones(1, dtype=DT))[0]
            t = interleaved({"sweep": sweep, "blocked": functools.partial(blocked, L, U)},
                            repeats)
            print(f"| {n} | {m} | {t['sweep']:.2f} | {t['blocked']:.2f} | "
                  f"{t['blocked'] / t['sweep']:.2f} |", flush=True)


def accuracy(n: int = 40, seeds: int = 3) -> None:
    """Relative error ``|L' L'^T - A| / |A|`` of both routes for a factor with one tiny
    diagonal entry (an ill-conditioned kernel matrix's factor looks like this). The eager
    route (gradients, CUDA, rank > 64) is the blocked formula, redone by a blocked QR when
    its digit check fails."""
    print(f"\n## accuracy: {n} x {n} O(1) factor, one diagonal entry d; worst of {seeds} seeds")
    print("| d | rank | compiled sweep | eager route |")
    print("|---|---|---|---|")
    for d in (1e-2, 1e-4, 1e-8, 1e-100):
        for m in (1, 4):
            worst = {"sweep": 0.0, "blocked": 0.0}
            for seed in range(seeds):
                g = torch.Generator().manual_seed(seed)
                L = torch.tril(torch.randn(n, n, dtype=DT, generator=g))
                L.diagonal().abs_().add_(0.5)
                L[n // 5, n // 5] = d
                U = torch.randn(n, m, dtype=DT, generator=g)
                A = L @ L.mT + U @ U.mT
                for route, on in (("sweep", True), ("blocked", False)):
                    with compiled.use_compiled(on):
                        try:
                            out = cholesky_update_lowrank(L, U)
                            err = float((out @ out.mT - A).abs().max() / A.abs().max())
                        except ValueError:  # a refusal (none expected for updates)
                            err = math.inf
                    worst[route] = max(worst[route], err)
            blocked_err = worst["blocked"]
            blocked_cell = "refused" if blocked_err == math.inf else f"{blocked_err:.1e}"
            print(f"| {d:.0e} | {m} | {worst['sweep']:.1e} | {blocked_cell} |")


def redo(sizes, ranks, repeats: int) -> None:
    """What the eager route's accuracy check costs when it fires: an update of a
    well-conditioned factor (the blocked formula alone) against the same factor with one
    diagonal entry of 1e-8 (the blocked formula, its check, then the blocked QR redo), with
    the compiled sweep off (as with gradients or on CUDA). Both results are checked."""
    print("\n## eager route: update of a well-conditioned factor vs one that is redone by QR")
    print("| N | rank | well-conditioned (ms) | redone (ms) | redone / well | errors |")
    print("|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for n in sizes:
        X = torch.randn(n, n, dtype=DT, generator=g)
        L = torch.linalg.cholesky(X @ X.mT / n + torch.eye(n, dtype=DT))
        bad = L.clone()
        bad[n // 5, n // 5] = 1e-8
        for m in ranks:
            U = torch.randn(n, m, dtype=DT, generator=g) / n**0.5
            with compiled.use_compiled(False):
                times = interleaved_medians(
                    {"well": functools.partial(cholesky_update_lowrank, L, U),
                     "redone": functools.partial(cholesky_update_lowrank, bad, U)},
                    repeats, seed=3)
                errors = []
                for F in (L, bad):
                    out = cholesky_update_lowrank(F, U)
                    A = F @ F.mT + U @ U.mT
                    errors.append(float((out @ out.mT - A).abs().max() / A.abs().max()))
            print(f"| {n} | {m} | {1e3 * times['well']:.1f} | {1e3 * times['redone']:.1f} | "
                  f"{times['redone'] / times['well']:.2f} | {errors[0]:.0e} / {errors[1]:.0e} |")


def case_batch(b: int, n: int, repeats: int) -> dict:
    A = spd(n, (b,))
    L = torch.linalg.cholesky(A)
    u = torch.randn(b, n, dtype=DT, generator=torch.Generator().manual_seed(2)) / n**0.5
    outer = u.unsqueeze(-1) * u.unsqueeze(-2)
    ref = torch.linalg.cholesky(A + outer)
    contenders = {
        "bayeskit": functools.partial(cholesky_update, L, u),
        "recompute": lambda: torch.linalg.cholesky(A + u.unsqueeze(-1) * u.unsqueeze(-2)),
        "copy batch": L.clone,
    }
    if compiled.available():
        # the compiled sweep without the public function's input checks: the gap to the
        # first row is the cost of validation
        contenders["kernel alone (no validation)"] = functools.partial(
            kernels.lowrank_update_batch, L, u[..., None], torch.ones(b, dtype=DT))
    times = interleaved(contenders, repeats)
    err = float((cholesky_update(L, u) - ref).abs().max())
    return {"case": f"batch of {b} rank-1 updates, N={n}", "times_ms": times,
            "max_abs_err": {"bayeskit": err}}


def case_plus_diagonal(n: int, batch: int, repeats: int) -> dict:
    """One K with a batch of diagonals (the Gibbs sampler's Matheron step): the in-place
    factorisation against torch's (which copies to column-major order and back)."""
    K = spd(n)
    d = torch.rand(batch, n, dtype=DT) + 0.1
    times = interleaved({
        "bayeskit": lambda: cholesky_plus_diagonal(K, d),
        "bayeskit, no direct potrf": functools.partial(
            without_direct_lapack, cholesky_plus_diagonal, K, d),
        "torch cholesky_ex(K + diag)": lambda: torch.linalg.cholesky_ex(
            K + torch.diag_embed(d)),
    }, repeats)
    err = float((cholesky_plus_diagonal(K, d)[0]
                 - torch.linalg.cholesky(K + torch.diag_embed(d))).abs().max())
    return {"case": f"K + diag(d), {batch} diagonals, N={n}", "times_ms": times,
            "max_abs_err": {"bayeskit": err}}


def without_direct_lapack(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with ``BAYESKIT_DIRECT_LAPACK=0``: torch's routines only
    (``bayeskit.linalg.direct`` switched off), the route before the direct calls."""
    before = os.environ.get("BAYESKIT_DIRECT_LAPACK")
    os.environ["BAYESKIT_DIRECT_LAPACK"] = "0"
    try:
        return fn(*args, **kwargs)
    finally:
        if before is None:
            del os.environ["BAYESKIT_DIRECT_LAPACK"]
        else:
            os.environ["BAYESKIT_DIRECT_LAPACK"] = before


def case_append(n: int, repeats: int) -> dict:
    A = spd(n + 1)
    L = torch.linalg.cholesky(A[:n, :n])
    C, D = A[:n, n:].clone(), A[n:, n:].clone()
    buf = torch.zeros(n + 1, n + 1, dtype=DT).mT
    buf[:n, :n] = L
    Lbuf = buf[:n, :n]
    ref = torch.linalg.cholesky(A)
    times = interleaved({
        "bayeskit": functools.partial(cholesky_append, L, C, D),
        "bayeskit (preallocated out=)": functools.partial(cholesky_append, Lbuf, C, D,
                                                          out=buf),
        "preallocated, no direct trsm (panel route)": functools.partial(
            without_direct_lapack, cholesky_append, Lbuf, C, D, out=buf),
        "recompute": functools.partial(torch.linalg.cholesky, A),
        "copy N x N": L.clone,
        # the append's floor: one triangular solve against the strided view, through BLAS
        # (None where unavailable: then the append takes its panel route)
        "trsm on the view (floor)": functools.partial(solve_lower_strided, Lbuf, C),
        "solve_triangular (copies the view)": functools.partial(
            torch.linalg.solve_triangular, Lbuf, C, upper=False),
    }, repeats)
    err = float((cholesky_append(L, C, D) - ref).abs().max())
    return {"case": f"append 1 row, N={n}", "times_ms": times,
            "max_abs_err": {"bayeskit": err}}


TARGETS = [
    # (headline key, case, numerator contender, denominator contender, bound, meaning)
    ("chol.rank1", "rank-1 update, N=2000", "recompute", "bayeskit", 8.0,
     ">= 8x faster than recompute"),
    ("chol.rank1_copy", "rank-1 update, N=2000", "copy N x N", "bayeskit", 0.25,
     "within 4x of one copy"),
    ("chol.rank16", "rank-16 update, N=2000", "recompute", "bayeskit", 3.0,
     ">= 3x faster than recompute"),
    ("chol.batch", "batch of 256 rank-1 updates, N=100", "recompute", "bayeskit", 5.0,
     ">= 5x faster than batched recompute"),
    # the target is the append into a preallocated buffer (the growing-buffer use)
    ("chol.append", "append 1 row, N=2000", "recompute", "bayeskit (preallocated out=)", 20.0,
     ">= 20x faster than recompute, into a preallocated buffer"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", help="N values (default 500..4000)")
    parser.add_argument("--no-competitors", action="store_true",
                        help="skip TFP-on-JAX and numba (their runtimes load the machine)")
    parser.add_argument("--accuracy", action="store_true",
                        help="only print both routes' error on ill-conditioned factors")
    parser.add_argument("--redo", type=int, nargs="*", metavar="RANK",
                        help="only time the eager route on a well-conditioned factor against "
                             "one whose update it redoes by the blocked QR (at --sizes)")
    parser.add_argument("--routes", type=int, nargs="*", metavar="RANK",
                        help="only time the compiled sweep against the blocked route at "
                             "these ranks (and --sizes)")
    args = parser.parse_args()
    header()
    with open("/proc/loadavg") as f:
        load = f.read().strip()  # recorded with --json
    reps = 3 if args.quick else args.repeats
    sizes = args.sizes or ([200, 400] if args.quick else [500, 1000, 2000, 4000])
    if args.accuracy:
        accuracy()
        return
    if args.routes:
        routes(sizes, args.routes, reps)
        return
    if args.redo:
        redo(sizes, args.redo, reps)
        return
    tfp, nb = (None, None) if args.no_competitors else (tfp_update(), numba_update())
    results = []
    for n in sizes:
        for m in (1, 16):
            results.append(case_update(n, m, reps, tfp, nb))
    results.append(case_batch(256, 100, reps))
    results.append(case_append(2000 if 2000 in sizes else sizes[-1], reps))
    results.append(case_plus_diagonal(569, 4, reps))
    results.append(case_plus_diagonal(2000, 1, reps))  # an exact GP's K + noise I
    for r in results:
        ours = r["times_ms"]["bayeskit"]
        print(f"\n## {r['case']}")
        for name, t in r["times_ms"].items():
            err = r["max_abs_err"].get(name)
            err_s = f"  max|err| {err:.1e}" if err is not None else ""
            print(f"  {name:32s} {t:9.3f} ms   {t / ours:7.2f}x ours{err_s}")
    print("\n## targets (float64)")
    by_case = {r["case"]: r["times_ms"] for r in results}
    for key, case, num, den, bound, meaning in TARGETS:
        if case not in by_case:
            continue
        ratio = by_case[case][num] / by_case[case][den]
        ok = ratio >= bound
        print(f"  {case:38s} {meaning:58s} ratio {ratio:6.2f}  {'MET' if ok else 'MISSED'}")
        headline(key, ratio)
    if not args.no_memory:
        print("\n## peak extra memory of one update, output included (N x N matrices)")
        for n, m in ((2000, 1), (2000, 16), (4000, 1), (4000, 16)):
            print(f"  N={n}, M={m}: {peak_extra_memory(n, m):.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"load": load, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()

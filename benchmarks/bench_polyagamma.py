"""Pólya-gamma sampling: bayeskit vs the ``polyagamma`` package, speed and moment errors.

Same n draws per case, rounds interleaved in one process (order shuffled per round),
median samples/second and the ratio; then the moment errors of each sampler against the
closed forms E = b tanh(c/2) / (2c), Var = b (2 tanh(c/2) - c sech^2(c/2)) / (4c^3), in
units of their Monte Carlo standard errors.

    .venv-bench/bin/python benchmarks/bench_polyagamma.py [--n 1000000] [--repeats 5]
        [--integer-shapes 2 3 4 6 10 20] [--headline]

``--headline`` times only the issue's pair (bayeskit's exact sampler and ``polyagamma``'s
default) and skips the moment errors: what ``check_targets.py`` runs.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from _timing import header, headline, interleaved_medians
from bayeskit import compiled
from bayeskit.distributions import polya_gamma_mean, polya_gamma_variance, sample_polya_gamma


def moments_z(w: np.ndarray, b: np.ndarray | float, c: np.ndarray | float) -> tuple:
    """(relative mean error, relative variance error, z of mean, z of variance)."""
    if np.ndim(c) == 0:
        m = float(polya_gamma_mean(torch.tensor(float(b)), torch.tensor(float(c))))
        v = float(polya_gamma_variance(torch.tensor(float(b)), torch.tensor(float(c))))
        n = w.size
        d = w - w.mean()
        se_m = math.sqrt(v / n)
        se_v = math.sqrt(max(float((d**4).mean()) - v * v, 1e-300) / n)
        return (w.mean() / m - 1, w.var() / v - 1, (w.mean() - m) / se_m,
                (w.var() - v) / se_v)
    # varying c: standardise each draw by its own mean and sd
    m = polya_gamma_mean(torch.as_tensor(b), torch.as_tensor(c)).numpy()
    v = polya_gamma_variance(torch.as_tensor(b), torch.as_tensor(c)).numpy()
    s = (w - m) / np.sqrt(v)
    n = w.size
    return (s.mean() * float(np.sqrt(v).mean() / m.mean()), (s**2).mean() - 1,
            s.mean() * math.sqrt(n), ((s**2).mean() - 1) / math.sqrt(((s**2 - 1) ** 2).mean() / n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--moments-n", type=int, default=1_000_000)
    parser.add_argument("--integer-shapes", type=float, nargs="*", default=[],
                        help="also time bayeskit's two exact routes for these integer b: "
                             "sums of shape-1 draws (the default) vs chunks of shape <= 4")
    parser.add_argument("--headline", action="store_true",
                        help="only bayeskit (exact) against polyagamma's default; no moments")
    args = parser.parse_args()
    header()
    try:
        import polyagamma as pgm
    except ImportError:
        pgm = None
        print("# polyagamma not installed (make bench-env)")
    rng_np = np.random.default_rng(0)
    n = args.n
    c_random = rng_np.normal(0.0, 2.0, n)
    cases = [("b=1, c~N(0,2^2)", "b1_cN", 1.0, c_random), ("b=1, c=0", "b1_c0", 1.0, 0.0),
             ("b=2.7, c=1.5", "b2.7_c1.5", 2.7, 1.5),
             ("b=10, c~N(0,2^2)", "b10_cN", 10.0, c_random),
             ("b=100, c~N(0,2^2)", "b100_cN", 100.0, c_random)]
    g = torch.Generator().manual_seed(0)
    print(f"\n## samples per second, n = {n} (millions/s; ratio = ours / theirs)")
    for name, key, b, c in cases:
        if args.headline and b > 10:  # not a target: polyagamma's default approximates there
            continue
        c_t = torch.as_tensor(c, dtype=torch.float64)
        b_t = torch.full(c_t.shape if c_t.dim() else (n,), b, dtype=torch.float64)
        cont = {"bayeskit (exact)": lambda b_t=b_t, c_t=c_t: sample_polya_gamma(
            b_t, c_t, generator=g)}
        if compiled.available() and not args.headline:  # the numba kernel; time the fallback
            def eager(b_t=b_t, c_t=c_t):
                with compiled.use_compiled(False):
                    return sample_polya_gamma(b_t, c_t, generator=g)
            cont["bayeskit eager"] = eager
        if pgm is not None:
            bn = np.full(n, b)
            cn = np.broadcast_to(np.asarray(c, dtype=float), (n,))
            for method in ("default", "devroye", "alternate", "saddle"):
                if method != "default" and args.headline:
                    continue
                if method == "devroye" and b != int(b):
                    continue
                kw = {} if method == "default" else {"method": method}
                cont[f"polyagamma {method}"] = (
                    lambda bn=bn, cn=cn, kw=kw: pgm.random_polyagamma(
                        bn, cn, random_state=rng_np, **kw))
        reps = args.repeats if b <= 10 else max(1, args.repeats // 2)
        times = interleaved_medians(cont, reps)
        ours = n / times["bayeskit (exact)"] / 1e6
        print(f"### {name}")
        for k, t in times.items():
            rate = n / t / 1e6
            print(f"  {k:22s} {rate:8.2f} M/s   ours/theirs {ours / rate:6.2f}")
        if pgm is not None:
            headline(f"pg.{key}", times["polyagamma default"] / times["bayeskit (exact)"])
    if args.headline:
        return

    print(f"\n## moment errors at c = 1.5, n = {args.moments_n} (relative error; z = error / SE)")
    for b in (1.0, 2.7, 10.0, 100.0):
        nn = args.moments_n
        rows = {"bayeskit (exact)": sample_polya_gamma(
            torch.full((nn,), b, dtype=torch.float64), 1.5, generator=g).numpy()}
        if pgm is not None:
            for method in ("default", "alternate", "saddle", "devroye"):
                if method == "devroye" and b != int(b):
                    continue
                kw = {} if method == "default" else {"method": method}
                rows[f"polyagamma {method}"] = pgm.random_polyagamma(
                    np.full(nn, b), 1.5, random_state=rng_np, **kw)
        print(f"### b = {b}")
        for k, w in rows.items():
            dm, dv, zm, zv = moments_z(w, b, 1.5)
            print(f"  {k:22s} mean {dm:+.5f} (z {zm:+6.1f})   var {dv:+.5f} (z {zv:+6.1f})")

    if args.integer_shapes:
        integer_routes(args.integer_shapes, n, args.repeats)


def integer_routes(shapes: list[float], n: int, repeats: int) -> None:
    """bayeskit only: integer b as b shape-1 draws vs as chunks of the general sampler."""
    from bayeskit.distributions.polyagamma import dispatch, proposals, samplers, series

    g = torch.Generator().manual_seed(1)
    rng = proposals.RandomStream(g, torch.device("cpu"))
    z = (2 * torch.randn(n, dtype=torch.float64, generator=g)).abs() / 2

    def chunks(b):
        draws = torch.zeros_like(z)
        for size, copies in dispatch.chunk_sizes(b).items() if b > series.H_MAX else [(b, 1)]:
            h = torch.full((copies * n,), size, dtype=torch.float64)
            draws += samplers.sample_jstar(h, z.repeat(copies), rng).view(copies, -1).sum(0)
        return draws

    print(f"\n## integer b, c ~ N(0, 2^2), n = {n}: shape-1 sums vs chunks (M/s)")
    for b in shapes:
        routes = {"shape-1 sums": lambda b=b: samplers.sample_jstar_h1(z, rng, int(b)),
                  "chunks <= 4": lambda b=b: chunks(b)}
        rates = {k: n / t / 1e6
                 for k, t in interleaved_medians(routes, repeats, warmup=False).items()}
        print(f"  b = {b:g}: " + ", ".join(f"{k} {r:.2f}" for k, r in rates.items()))


if __name__ == "__main__":
    main()

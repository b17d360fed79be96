"""Exact GP: negative log marginal likelihood + backward, bayeskit vs GPyTorch (Cholesky path).

X ~ U[0, 1]^8, y = sum sin(2 pi x_d) + 0.1 eps, SE kernel with ARD lengthscales (``--kernel
matern52`` etc.: the Matern kernel in both libraries), float64,
2 threads; same inputs, medians (the exact GP: blocks of two calls after an idle pause,
shuffled; the rest interleaved call by call). GPyTorch's Cholesky path is forced with
``max_cholesky_size`` above N (its default switches to CG above 800 points).

    .venv-bench/bin/python benchmarks/bench_gp.py [--sizes 1000 2000 4000]
    .venv-bench/bin/python benchmarks/bench_gp.py --sizes --no-svgp --repeats 1 \
        --sgpr-sizes 1000000 --sgpr-ours-only      # SGPR time and peak memory at N = 10^6
    .venv-bench/bin/python benchmarks/bench_gp.py --sizes 2000 --sgpr-sizes --no-svgp \
        --kernel matern52                        # the exact GP with Matern-5/2 (BoTorch's)
    .venv-bench/bin/python benchmarks/bench_gp.py --sizes --sgpr-sizes --no-svgp \
        --matern-routes                          # the Matern kernel's two routes, small N
    .venv-bench/bin/python benchmarks/bench_gp.py --sizes --sgpr-sizes --svgp-split 50
                                                 # SVGP step: forward / backward / Adam
    .venv-bench/bin/python benchmarks/bench_gp.py --sizes --sgpr-sizes --svgp-ops 100
                                                 # SVGP step: time per aten call, Gflop/s
    .venv-bench/bin/python benchmarks/bench_gp.py --sizes --sgpr-sizes --no-svgp \
        --inverse 1000 2000 4000                 # the inverse: potri vs blocked products
    .venv-bench/bin/python benchmarks/bench_gp.py --sizes --sgpr-sizes --no-svgp \
        --kernel-matrices 2000                   # RQ, periodic, linear K(X, X) vs GPyTorch

"bayeskit GPR, MKL potri" is the same model with ``BAYESKIT_LAPACK=torch``: the inverse on
torch's LAPACK (MKL) where the default takes SciPy's OpenBLAS (N >= 1500 on an AMD CPU, no
other Python thread: ``bayeskit.linalg.lapack``; the line "ours takes the inverse" says
which); "floor, OpenBLAS inverse" the factor and that inverse alone.
"bayeskit GPR, blocked inverse" is the same model with ``BAYESKIT_LAPACK=blocked``;
"floor, blocked inverse" the factor and the blocked inverse alone.
"bayeskit GPR, torch's LAPACK wrappers" runs with ``BAYESKIT_DIRECT_LAPACK=0`` and
``BAYESKIT_LAPACK=torch`` (the factor through ``torch.linalg.cholesky_ex``, the inverse
through ``torch.cholesky_inverse``, not ``potrf``/``potri`` called in place:
``bayeskit.linalg.direct``; the general route below);
"floor, potrf in place + inverse" is that factorisation and ``potri`` alone.
"bayeskit GPR, general route" is the same model with a subclass of the kernel, which takes
the kernel's matrix then the likelihood (``_GaussianNLL``) instead of the squared
exponential's fused likelihood (``_StationaryNLL``, bayeskit.gp.exact).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import os
import resource
import statistics
import time

import torch

from _timing import aten_op_times, blocked_medians, header, headline, interleaved_medians
from bayeskit.gp import GPR, SGPR, Linear, Matern, Periodic, RationalQuadratic, SquaredExponential
from bayeskit.linalg import blocked, cholesky_inverse, cholesky_plus_diagonal, lapack_backend

#: ``--kernel``: our class and its nu
KERNELS = {"se": (SquaredExponential, None), "matern52": (Matern, 2.5),
           "matern32": (Matern, 1.5), "matern12": (Matern, 0.5)}


def our_kernel(name: str, general: bool = False, lengthscale: float = 0.5,
               variance: float = 1.0):
    """The benchmark's kernel (ARD lengthscales); ``general``: as a subclass, so that GPR
    takes the general route (the kernel's matrix, then the likelihood) instead of the fused
    one."""
    cls, nu = KERNELS[name]
    if general:
        cls = type(f"{cls.__name__}GeneralRoute", (cls,), {})
    ls = torch.full((8,), lengthscale)
    return cls(ls, variance) if nu is None else cls(nu, ls, variance)


def gpytorch_kernel(gpytorch, name: str):
    nu = KERNELS[name][1]
    return (gpytorch.kernels.RBFKernel(ard_num_dims=8) if nu is None
            else gpytorch.kernels.MaternKernel(nu, ard_num_dims=8))


def data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 8, dtype=torch.float64, generator=g)
    y = torch.sin(2 * math.pi * X).sum(-1) + 0.1 * torch.randn(n, dtype=torch.float64, generator=g)
    return X, y


def with_env(name, value, fn):
    """``fn()`` with the environment variable ``name=value`` (restored afterwards)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        return fn()
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def with_lapack(backend, fn):
    """``fn()`` with ``BAYESKIT_LAPACK=backend`` (restored afterwards)."""
    return with_env("BAYESKIT_LAPACK", backend, fn)


def on_one_thread(fn):
    """``fn()`` with torch (and so bayeskit's SciPy route) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def with_panel(panel: int, fn):
    """``fn()`` with the blocked inverse in blocks of ``panel`` rows."""
    before, blocked.PANEL = blocked.PANEL, panel
    try:
        return fn()
    finally:
        blocked.PANEL = before


def bench_inverse(sizes, repeats: int, one_thread: bool = False,
                  dtype: torch.dtype = torch.float64, panels=()) -> None:
    """The inverse from a factor on torch's LAPACK (MKL in torch's wheels: ``potri``), by
    blocked products on torch's BLAS (``bayeskit.linalg.blocked``) and, for reference, on
    SciPy's LAPACK (OpenBLAS in SciPy's wheels, in torch's thread count), and the
    factorisation on both LAPACKs, in ``dtype``, in blocks after idle pauses (OpenBLAS's idle
    threads slow the torch work right after a call: ``_timing.blocked_medians``)."""
    from scipy.linalg import lapack
    from threadpoolctl import ThreadpoolController

    pools = ThreadpoolController()

    def scipy_inverse(L, potri):  # in place on a column-major copy of the factor
        F = L.mT.clone(memory_format=torch.contiguous_format).numpy().T  # a copy always
        with pools.limit(limits=torch.get_num_threads(), user_api="blas"):
            potri(F, lower=1, overwrite_c=1)

    print(f"\n## {dtype}: inverse torch's LAPACK / SciPy's / blocked, factorisation torch's / "
          "SciPy's (ms, medians of blocks; in brackets bayeskit's choice; OpenBLAS's inverse "
          "through bayeskit, its workers stopped after each call)")
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        A = torch.randn(n, n, dtype=torch.float64, generator=g)
        C = (A @ A.T / n + torch.eye(n, dtype=torch.float64)).to(dtype)
        L = torch.linalg.cholesky(C)
        potrf, potri = ((lapack.dpotrf, lapack.dpotri) if dtype == torch.float64
                        else (lapack.spotrf, lapack.spotri))

        def scipy_factor(C=C, potrf=potrf):  # in place on a column-major copy, as torch's
            B = C.clone().mT
            potrf(B.numpy(), lower=1, overwrite_a=1, clean=1)

        inverses = {"torch": functools.partial(cholesky_inverse, L, backend="torch"),
                    "scipy": functools.partial(scipy_inverse, L, potri),
                    "openblas": functools.partial(cholesky_inverse, L, backend="openblas"),
                    "blocked": functools.partial(cholesky_inverse, L, backend="blocked")}
        contenders = {f"inverse {k}": fn for k, fn in inverses.items()}
        contenders["factor torch"] = functools.partial(torch.linalg.cholesky, C)
        contenders["factor scipy"] = scipy_factor
        contenders["product"] = functools.partial(torch.mm, C, C)  # the speed to aim at
        for panel in panels:  # the blocked inverse's block-column width (PANEL)
            contenders[f"blocked {panel}"] = functools.partial(with_panel, panel,
                                                               inverses["blocked"])
        if one_thread:  # the inverses on one thread: how much each gains from the second
            for k, fn in inverses.items():
                contenders[f"inverse {k} 1"] = functools.partial(on_one_thread, fn)
        t = {k: 1e3 * v for k, v in blocked_medians(contenders, repeats, seed=n).items()}
        print(f"  N = {n:5d}: inverse {t['inverse torch']:8.1f} / {t['inverse scipy']:8.1f} / "
              f"{t['inverse blocked']:8.1f} ({t['inverse scipy'] / t['inverse torch']:.2f}x / "
              f"{t['inverse blocked'] / t['inverse torch']:.2f}x) [{lapack_backend(L)}]   "
              f"bayeskit's OpenBLAS route {t['inverse openblas']:8.1f}   "
              f"factor {t['factor torch']:8.1f} / {t['factor scipy']:8.1f} "
              f"({t['factor scipy'] / t['factor torch']:.2f}x)")
        gflops = {k: flops / (1e6 * t[k]) for k, flops in (
            ("inverse torch", 2 * n**3 / 3), ("inverse openblas", 2 * n**3 / 3),
            ("inverse blocked", 2 * n**3 / 3),
            ("factor torch", n**3 / 3), ("product", 2 * n**3))}
        print("             Gflop/s: " + ", ".join(f"{k} {v:.0f}" for k, v in gflops.items())
              + f" (inverses at potri's 2N^3/3; the blocked one does "
                f"{150 * blocked.PANEL / n:.0f} % more)")
        if panels:
            print("             blocked inverse by panel width: " + ", ".join(
                f"{p} rows {t[f'blocked {p}']:.1f}" for p in panels))
        if one_thread:
            print(f"             inverse on one thread {t['inverse torch 1']:8.1f} / "
                  f"{t['inverse scipy 1']:8.1f} / {t['inverse blocked 1']:8.1f}: the second "
                  f"thread saves {1 - t['inverse torch'] / t['inverse torch 1']:.0%} (MKL) / "
                  f"{1 - t['inverse scipy'] / t['inverse scipy 1']:.0%} (OpenBLAS) / "
                  f"{1 - t['inverse blocked'] / t['inverse blocked 1']:.0%} (blocked)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 2000, 4000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sgpr-sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--svgp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--kernel-backward", action="store_true",
                        help="time the SE kernel's backward product, compiled vs eager, and "
                             "the elementwise product of mixed vs matching memory layouts")
    parser.add_argument("--matern-routes", action="store_true",
                        help="time the Matern kernel's two routes (exact differences, matrix "
                             "product) at small sizes: where the crossover lies")
    parser.add_argument("--kernel-matrices", type=int, default=0, metavar="N",
                        help="time the rational quadratic, periodic and linear kernels' "
                             "matrices (forward + backward) at N points against GPyTorch's")
    parser.add_argument("--svgp-split", type=int, default=0, metavar="STEPS",
                        help="also time STEPS SVGP steps split into forward / backward / Adam")
    parser.add_argument("--svgp-ops", type=int, default=0, metavar="STEPS",
                        help="also time our SVGP step's aten calls over STEPS steps: where "
                             "the time goes, and the dense linear algebra's Gflop/s")
    parser.add_argument("--inverse", type=int, nargs="*", default=[], metavar="N",
                        help="time the factor and the inverse alone at these sizes: torch's "
                             "LAPACK against SciPy's")
    parser.add_argument("--inverse-float32", action="store_true",
                        help="with --inverse, in float32 instead of float64")
    parser.add_argument("--inverse-panels", type=int, nargs="*", default=[], metavar="ROWS",
                        help="with --inverse, also time the blocked inverse in these panel "
                             "widths (its PANEL)")
    parser.add_argument("--inverse-one-thread", action="store_true",
                        help="with --inverse, also time both inverses on one thread")
    parser.add_argument("--kernel", choices=list(KERNELS), default="se",
                        help="the exact GP's and SGPR's kernel (both libraries; ARD): squared "
                             "exponential or Matern nu = 5/2, 3/2, 1/2")
    parser.add_argument("--sgpr-ours-only", action="store_true",
                        help="skip GPyTorch in SGPR runs (e.g. --sgpr-sizes 1000000 for memory)")
    args = parser.parse_args()
    header()
    try:
        import gpytorch
    except ImportError:
        gpytorch = None
        print("# gpytorch not installed")
    for n in args.sizes:
        X, y = data(n)
        ours = GPR(X, y, our_kernel(args.kernel), noise_variance=0.1)
        general = GPR(X, y, our_kernel(args.kernel, general=True), noise_variance=0.1)

        def run_ours(model=ours):
            model.zero_grad()
            loss = -model.log_marginal_likelihood()
            loss.backward()
            return float(loss.detach()) / len(model.y)

        K_floor = ours.kernel(X).detach() + 0.1 * torch.eye(n, dtype=torch.float64)

        def floor(K=K_floor):  # what any exact gradient needs: a factor and an inverse
            torch.cholesky_inverse(torch.linalg.cholesky(K))
            return float("nan")

        def blocked_floor(K=K_floor):  # the same with the blocked inverse
            cholesky_inverse(torch.linalg.cholesky(K), backend="blocked")
            return float("nan")

        def direct_floor(K=K_floor):  # LAPACK's potrf called in place, then potri
            torch.cholesky_inverse(cholesky_plus_diagonal(K, torch.zeros_like(K[0]))[0])
            return float("nan")

        def openblas_floor(K=K_floor):  # the same with OpenBLAS's inverse (workers stopped)
            cholesky_inverse(torch.linalg.cholesky(K), backend="openblas")
            return float("nan")

        contenders = {"bayeskit GPR": run_ours,
                      "bayeskit GPR, MKL potri": functools.partial(with_lapack, "torch",
                                                                   run_ours),
                      "bayeskit GPR, general route": functools.partial(run_ours, general),
                      "bayeskit GPR, blocked inverse": functools.partial(with_lapack, "blocked",
                                                                         run_ours),
                      "bayeskit GPR, torch's LAPACK wrappers": functools.partial(
                          with_env, "BAYESKIT_DIRECT_LAPACK", "0",
                          functools.partial(with_lapack, "torch", run_ours)),
                      "floor: cholesky + inverse": floor,
                      "floor, blocked inverse": blocked_floor,
                      "floor, OpenBLAS inverse": openblas_floor,
                      "floor, potrf in place + inverse": direct_floor}
        if gpytorch is not None:
            class Exact(gpytorch.models.ExactGP):
                def __init__(self, X, y, lik):
                    super().__init__(X, y, lik)
                    self.mean_module = gpytorch.means.ConstantMean()
                    self.covar_module = gpytorch.kernels.ScaleKernel(
                        gpytorch_kernel(gpytorch, args.kernel))

                forward = _gpytorch_prior

            lik = gpytorch.likelihoods.GaussianLikelihood().double()
            model = Exact(X, y, lik).double()
            model.covar_module.base_kernel.lengthscale = 0.5
            model.covar_module.outputscale = 1.0
            lik.noise = 0.1
            mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
            model.train()
            lik.train()

            def run_gpytorch(model=model, mll=mll, X=X, y=y):
                model.zero_grad()
                with gpytorch.settings.max_cholesky_size(10**6):
                    loss = -mll(model(X), y)
                loss.backward()
                return float(loss.detach())

            def run_gpytorch_cg(model=model, mll=mll, X=X, y=y):
                model.zero_grad()  # default settings: N > 800 takes the CG/Lanczos path
                loss = -mll(model(X), y)
                loss.backward()
                return float(loss.detach())

            contenders["GPyTorch (Cholesky)"] = run_gpytorch
            contenders["GPyTorch (CG, default)"] = run_gpytorch_cg
        values = {k: fn() for k, fn in contenders.items()}  # also the warm-up
        # blocks of 2 after an idle pause: any thread pool a contender leaves busy (SciPy's
        # OpenBLAS workers spin after a call made through SciPy; our own OpenBLAS route
        # stops them) must slow that contender's next call, not a competitor's
        times = blocked_medians(contenders, args.repeats, block=2, warmup=False)
        ours_t = times["bayeskit GPR"]
        print(f"\n## N = {n}, {args.kernel} kernel: -MLL/N + backward")
        for k, t in times.items():
            print(f"  {k:28s} {1e3 * t:9.1f} ms   {t / ours_t:5.2f}x ours   -MLL/N {values[k]:.6f}")
        print(f"  ours / floor {ours_t / times['floor: cholesky + inverse']:.3f}, ours / floor "
              f"with the blocked inverse {ours_t / times['floor, blocked inverse']:.3f}, "
              f"ours / floor with potrf in place "
              f"{ours_t / times['floor, potrf in place + inverse']:.3f} "
              f"(ours takes the inverse: {lapack_backend(K_floor)})")
        headline(f"gp.{args.kernel}.floor.{n}", ours_t / times["floor: cholesky + inverse"])
        if "GPyTorch (Cholesky)" in times:
            headline(f"gp.{args.kernel}.exact.{n}", times["GPyTorch (Cholesky)"] / ours_t)
    for n in args.sgpr_sizes:
        bench_sgpr(n, 256, args.repeats, None if args.sgpr_ours_only else gpytorch,
                   args.kernel)
    if args.sgpr_sizes:
        print(f"  peak RSS of this process: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
    if args.svgp:
        # 200 steps each; a run's ratio still moves ~1.45-1.8 between processes (page faults,
        # neighbours on a VM), so quote the median of several runs
        bench_svgp(256, 1024, max(args.repeats, 200), gpytorch, args.svgp_split,
                   args.svgp_ops)
    if args.kernel_backward:
        bench_kernel_backward(max(args.repeats, 15))
    if args.matern_routes:
        bench_matern_routes(args.repeats)
    if args.kernel_matrices:
        bench_kernel_matrices(args.kernel_matrices, max(args.repeats, 7), gpytorch)
    if args.inverse:
        bench_inverse(args.inverse, args.repeats, args.inverse_one_thread,
                      torch.float32 if args.inverse_float32 else torch.float64,
                      args.inverse_panels)


def _chunked_product(G, K, B, chunk=1024):
    """``(G * K) @ B`` eagerly, ``chunk`` columns at a time through one reused buffer (a
    candidate route for ``gp.compiled_products``, timed against it)."""
    out = torch.zeros(G.shape[0], B.shape[1], dtype=G.dtype)
    buf = torch.empty(G.shape[0], min(chunk, G.shape[1]), dtype=G.dtype)
    for j0 in range(0, G.shape[1], chunk):
        w = buf[:, : min(G.shape[1], j0 + chunk) - j0]
        torch.mul(G[:, j0:j0 + w.shape[1]], K[:, j0:j0 + w.shape[1]], out=w)
        out.addmm_(w, B[j0:j0 + w.shape[1]])
    return out


def bench_kernel_backward(repeats: int) -> None:
    """The pieces of the exact GP's backward pass (issue #18): ``(G * K) @ B`` with 17
    columns (8 features: ``[b, 1, b^2]``) by ``gp.compiled_products``, eagerly and eagerly in
    column chunks, for the exact GP at N = 2000 and 4000, an SVGP minibatch (256 x 1024) and
    SGPR's ``K_uf`` at N = 100 000; and ``G * K`` when
    ``G`` is column-major (what ``cholesky_inverse`` returns on the CPU) against row-major."""
    from bayeskit.gp.compiled_products import weighted_product

    g = torch.Generator().manual_seed(0)
    print("\n## SE kernel backward product (G * K) @ B, B with 17 columns")
    with torch.no_grad():
        for n, m in ((2000, 2000), (4000, 4000), (256, 1024), (256, 100_000)):
            G = torch.randn(n, m, dtype=torch.float64, generator=g)
            K = torch.rand(n, m, dtype=torch.float64, generator=g)
            B = torch.randn(m, 17, dtype=torch.float64, generator=g)
            times = interleaved_medians(
                {"compiled": functools.partial(weighted_product, G, K, B),
                 "eager": functools.partial(lambda G, K, B: (G * K) @ B, G, K, B),
                 "eager, column chunks": functools.partial(_chunked_product, G, K, B)},
                repeats, seed=1)
            print(f"  {n} x {m}: compiled {1e3 * times['compiled']:8.2f} ms, eager "
                  f"{1e3 * times['eager']:8.2f} ms, eager in column chunks of 1024 "
                  f"{1e3 * times['eager, column chunks']:8.2f} ms   eager / compiled "
                  f"{times['eager'] / times['compiled']:5.2f}, chunks / compiled "
                  f"{times['eager, column chunks'] / times['compiled']:5.2f}")
        A = torch.randn(2000, 2000, dtype=torch.float64, generator=g)
        K = torch.rand(2000, 2000, dtype=torch.float64, generator=g)
        col_major = torch.linalg.cholesky(A @ A.mT / 2000 + torch.eye(2000, dtype=torch.float64))
        col_major = torch.cholesky_inverse(col_major)  # as the exact GP's backward gets it
        row_major = col_major.mT
        times = interleaved_medians({"mixed": lambda: col_major * K,
                                     "matching": lambda: row_major * K}, repeats, seed=2)
        print(f"  G * K at 2000 x 2000, cholesky_inverse's layout: mixed "
              f"{1e3 * times['mixed']:.2f} ms, matching (its transpose) "
              f"{1e3 * times['matching']:.2f} ms   mixed / matching "
              f"{times['mixed'] / times['matching']:5.2f}")


def bench_matern_routes(repeats: int) -> None:
    """The Matérn-5/2 matrix ``K(X*, X)`` forward and backward (``X*`` needing a gradient, as
    in an acquisition's optimisation), D = 6, by its two routes: exact differences under
    plain autograd and the matrix product with the hand-written backward; the crossover
    sets ``bayeskit.gp.kernels._EXACT_DIFFERENCES``."""
    from bayeskit.gp import kernels

    g = torch.Generator().manual_seed(0)
    k = Matern(2.5, torch.full((6,), 0.3, dtype=torch.float64))
    before = kernels._EXACT_DIFFERENCES
    print("\n## Matern-5/2 K(X*, X) forward + backward, D = 6: its two routes")
    try:
        for n, m in ((64, 20), (64, 30), (64, 40), (64, 64), (128, 128), (512, 512)):
            X = torch.rand(m, 6, dtype=torch.float64, generator=g)
            Xs = torch.rand(n, 6, dtype=torch.float64, generator=g).requires_grad_()

            def run(threshold, X=X, Xs=Xs):
                kernels._EXACT_DIFFERENCES = threshold
                k(Xs, X).sum().backward()

            times = interleaved_medians({"differences": functools.partial(run, 2**62),
                                         "product": functools.partial(run, 0)},
                                        max(repeats, 50), seed=3)
            print(f"  {n} x {m} ({n * m * 6} differences): differences "
                  f"{1e6 * times['differences']:8.0f} us, product {1e6 * times['product']:8.0f}"
                  f" us   differences / product {times['differences'] / times['product']:5.2f}")
    finally:
        kernels._EXACT_DIFFERENCES = before


def bench_kernel_matrices(n: int, repeats: int, gpytorch) -> None:
    """The other stationary kernels' matrices ``K(X, X)``, N x N, D = 8, float64, forward
    and the backward of ``sum(W * K)`` to every hyperparameter: ours against GPyTorch's and
    against our own earlier formulas under plain autograd (until 2026-12-07: the rational
    quadratic from the three-term expansion ``|a|^2 + |b|^2 - 2 a b^T``, the periodic kernel
    from the ``[N, N, D]`` differences), interleaved medians."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, 8, dtype=torch.float64, generator=g)
    W = torch.rand(n, n, dtype=torch.float64, generator=g)
    ls = torch.full((8,), 0.5, dtype=torch.float64)
    ours = {"RQ": RationalQuadratic(1.0, ls, 1.0), "Periodic": Periodic(1.0, ls, 1.0),
            "Linear": Linear(1.0)}

    def rq_expansion(X2=None, k=ours["RQ"]):
        a = X / k.lengthscale
        sq = ((a * a).sum(-1)[:, None] + (a * a).sum(-1)[None, :] - 2 * a @ a.mT).clamp_min(0)
        return k.variance * (1 + sq / (2 * k.alpha)) ** (-k.alpha)

    def periodic_differences(X2=None, k=ours["Periodic"]):
        s = torch.sin((X[:, None, :] - X[None, :, :]) * (math.pi / k.period))
        weights = (-2 / k.lengthscale**2).expand(X.shape[-1])
        return torch.exp((s * s) @ weights + k.variance.log())

    def run(kernel, dense=False, formula=None):
        kernel.zero_grad()
        K = kernel(X) if formula is None else formula()
        (W * (K.to_dense() if dense else K)).sum().backward()

    contenders = {f"bayeskit {k}": functools.partial(run, v) for k, v in ours.items()}
    contenders["earlier RQ"] = functools.partial(run, ours["RQ"], formula=rq_expansion)
    contenders["earlier Periodic"] = functools.partial(run, ours["Periodic"],
                                                       formula=periodic_differences)
    if gpytorch is not None:
        theirs = {"RQ": gpytorch.kernels.RQKernel(ard_num_dims=8),
                  "Periodic": gpytorch.kernels.PeriodicKernel(ard_num_dims=8),
                  "Linear": gpytorch.kernels.LinearKernel()}
        for k, v in theirs.items():
            contenders[f"GPyTorch {k}"] = functools.partial(run, v.double(), True)
    times = interleaved_medians(contenders, repeats, seed=5)
    print(f"\n## kernel matrix K(X, X), N = {n}, D = 8: forward + backward of sum(W * K)")
    for k in ours:
        line = f"  {k:9s} ours {1e3 * times[f'bayeskit {k}']:8.1f} ms"
        if f"GPyTorch {k}" in times:
            line += (f"   GPyTorch {1e3 * times[f'GPyTorch {k}']:8.1f} ms   GPyTorch / ours "
                     f"{times[f'GPyTorch {k}'] / times[f'bayeskit {k}']:5.2f}")
        if f"earlier {k}" in times:
            line += (f"   our earlier formula {1e3 * times[f'earlier {k}']:8.1f} ms, / ours "
                     f"{times[f'earlier {k}'] / times[f'bayeskit {k}']:5.2f}")
        print(line)


def _gpytorch_prior(model, x):
    """``forward`` of every GPyTorch model here: the prior ``N(mean(x), covar(x))``."""
    import gpytorch

    return gpytorch.distributions.MultivariateNormal(model.mean_module(x),
                                                     model.covar_module(x))


def bench_svgp(m: int, batch: int, repeats: int, gpytorch, split_rounds: int = 0,
               ops_rounds: int = 0) -> None:
    """One Adam step of SVGP (Gaussian likelihood, whitened, full q_sqrt), M inducing points,
    a minibatch of ``batch`` from N = 100k, D = 8 (ANCHORS: GPyTorch 28.6 ms); with
    ``split_rounds`` also the step's split into the loss's forward, its backward and Adam;
    with ``ops_rounds`` our step's time per aten call (``_timing.aten_op_times``)."""
    from bayeskit.gp import SVGP

    n = 100_000
    torch.manual_seed(0)
    X = torch.rand(n, 8, dtype=torch.float64)
    y = torch.sin(2 * math.pi * X).sum(-1) + 0.1 * torch.randn(n, dtype=torch.float64)
    ours = SVGP(X[:m].clone(), SquaredExponential(torch.full((8,), 0.5), 1.0),
                noise_variance=0.1, num_data=n)
    opt = torch.optim.Adam(ours.parameters(), lr=0.01)
    batches = [torch.randint(0, n, (batch,), generator=torch.Generator().manual_seed(i))
               for i in range(repeats + 1)]

    def run_ours(i, split=None):
        b = batches[i]
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = -ours.elbo(X[b], y[b])
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        if split is not None:
            split.append((t1 - t0, t2 - t1, time.perf_counter() - t2))

    contenders = {"bayeskit SVGP": run_ours}
    if gpytorch is not None:
        class Approx(gpytorch.models.ApproximateGP):
            def __init__(self, Z):
                dist = gpytorch.variational.CholeskyVariationalDistribution(Z.shape[0])
                strategy = gpytorch.variational.VariationalStrategy(
                    self, Z, dist, learn_inducing_locations=True)
                super().__init__(strategy)
                self.mean_module = gpytorch.means.ZeroMean()
                self.covar_module = gpytorch.kernels.ScaleKernel(
                    gpytorch.kernels.RBFKernel(ard_num_dims=8))

            forward = _gpytorch_prior

        theirs = Approx(X[:m].clone()).double()
        lik = gpytorch.likelihoods.GaussianLikelihood().double()
        mll = gpytorch.mlls.VariationalELBO(lik, theirs, num_data=n)
        opt2 = torch.optim.Adam([*theirs.parameters(), *lik.parameters()], lr=0.01)
        theirs.train()
        lik.train()

        def run_gpytorch(i, split=None):
            b = batches[i]
            t0 = time.perf_counter()
            opt2.zero_grad()
            loss = -mll(theirs(X[b]), y[b])
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            opt2.step()
            if split is not None:
                split.append((t1 - t0, t2 - t1, time.perf_counter() - t2))

        contenders["GPyTorch SVGP"] = run_gpytorch
    for fn in contenders.values():
        fn(repeats)  # warm-up on the spare batch
    # each contender walks through the same batches in the same order
    stepping = {k: functools.partial(next, map(fn, itertools.count()))
                for k, fn in contenders.items()}
    times = interleaved_medians(stepping, repeats, seed=2, warmup=False)
    ours_t = times["bayeskit SVGP"]
    print(f"\n## SVGP Adam step, M = {m}, batch {batch}, D = 8 (ANCHORS: GPyTorch 28.6 ms)")
    for k, t in times.items():
        print(f"  {k:30s} {1e3 * t:9.1f} ms   {t / ours_t:5.2f}x ours")
    if "GPyTorch SVGP" in times:
        headline("gp.svgp", times["GPyTorch SVGP"] / ours_t)
    if split_rounds:
        # where a step's time goes: the same batches again, each step timed in three parts
        # (contenders alternate step by step), medians over the steps
        splits = {k: [] for k in contenders}
        faults = {k: 0 for k in contenders}  # minor page faults: fresh memory touched
        for i in range(split_rounds):
            for k, fn in contenders.items():
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                fn(i % (repeats + 1), splits[k])
                faults[k] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        print(f"  time split over {split_rounds} steps (medians): loss forward / backward / "
              "optimiser step; minor page faults per step (glibc returning freed memory "
              "to the system and faulting it in again; they vary between processes)")
        for k, parts in splits.items():
            med = [statistics.median(p[j] for p in parts) for j in range(3)]
            print(f"  {k:30s} {1e3 * med[0]:7.2f} / {1e3 * med[1]:7.2f} / "
                  f"{1e3 * med[2]:6.2f} ms   {faults[k] / split_rounds:7.1f} faults")
    if ops_rounds:
        steps = itertools.count()
        rows = aten_op_times(lambda: run_ours(next(steps) % (repeats + 1)), ops_rounds)
        total = sum(r["ms"] for r in rows)
        dense = [r for r in rows if r["gflops"] is not None]
        dense_ms = sum(r["ms"] for r in dense)
        print(f"  our step's aten calls over {ops_rounds} steps: {total:.2f} ms a step in "
              f"aten, of it {dense_ms:.2f} ms ({dense_ms / total:.0%}) dense linear algebra "
              f"(products, triangular solves, Cholesky); the slowest calls:")
        for r in rows[:12]:
            rate = "" if r["gflops"] is None else f"  {r['gflops']:5.1f} Gflop/s"
            print(f"    {r['ms']:6.3f} ms  x{r['calls']:4.1f}  {r['op']} {r['shapes']}{rate}")


def bench_sgpr(n: int, m: int, repeats: int, gpytorch, kernel: str = "se") -> None:
    """Collapsed SGPR bound + backward, N points, M inducing points, as in ANCHORS.md (there
    with the squared exponential; GPyTorch's initial hyperparameters)."""
    torch.manual_seed(0)
    X = torch.rand(n, 8, dtype=torch.float64)
    y = torch.sin(2 * math.pi * X).sum(-1) + 0.1 * torch.randn(n, dtype=torch.float64)
    ours = SGPR(X, y, X[:m], our_kernel(kernel, lengthscale=0.69315, variance=0.69315),
                noise_variance=0.69325, learn_mean=False, jitter=0.0)

    def run_ours():
        ours.zero_grad()
        loss = -ours.elbo()
        loss.backward()
        return float(loss.detach()) / n

    def run_plain():  # the same bound with A A^T and A r as plain autograd products
        import bayeskit.gp.sgpr as sgpr_module

        before = sgpr_module.gram
        sgpr_module.gram = lambda A, v: (A @ A.mT, A @ v)
        try:
            return run_ours()
        finally:
            sgpr_module.gram = before

    contenders = {"bayeskit SGPR": run_ours,
                  "bayeskit SGPR, plain products (no linalg.gram)": run_plain}
    if gpytorch is not None:
        class Sparse(gpytorch.models.ExactGP):
            def __init__(self, X, y, lik):
                super().__init__(X, y, lik)
                self.mean_module = gpytorch.means.ZeroMean()
                base = gpytorch.kernels.ScaleKernel(gpytorch_kernel(gpytorch, kernel))
                self.covar_module = gpytorch.kernels.InducingPointKernel(
                    base, inducing_points=X[:m].clone(), likelihood=lik)

            forward = _gpytorch_prior

        lik = gpytorch.likelihoods.GaussianLikelihood().double()
        model = Sparse(X, y, lik).double()
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
        model.train()

        def run_gpytorch():
            model.zero_grad()
            loss = -mll(model(X), y)
            loss.backward()
            return float(loss.detach())

        contenders["GPyTorch InducingPointKernel"] = run_gpytorch
    values = {k: fn() for k, fn in contenders.items()}  # also the warm-up
    times = interleaved_medians(contenders, repeats, seed=1, warmup=False)
    ours_t = times["bayeskit SGPR"]
    anchor = " (ANCHORS: 1.418632 at N=10k)" if kernel == "se" else ""
    print(f"\n## SGPR N = {n}, M = {m}, {kernel} kernel: -bound/N + backward{anchor}")
    for k, t in times.items():
        print(f"  {k:46s} {1e3 * t:9.1f} ms   {t / ours_t:5.2f}x ours   -bound/N {values[k]:.6f}")
    if "GPyTorch InducingPointKernel" in times:
        headline(f"gp.{kernel}.sgpr.{n}", times["GPyTorch InducingPointKernel"] / ours_t)


if __name__ == "__main__":
    main()

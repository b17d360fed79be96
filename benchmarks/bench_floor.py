"""The Gaussian floor's hot paths against the routes they replaced (issues #16 and #18), in
one process, interleaved rounds, medians:

- ``linalg.solve_lower`` vs ``torch.linalg.solve_triangular(L, B)`` and the transposed solve
  over a grid of ``N x K`` (it takes the transposed one for ``K >= 1024`` on the CPU);
- ``validation.all_finite`` vs ``torch.isfinite(x).all()`` on a [100, 1024] tensor;
- ``natural_to_moments`` (reverse Cholesky) vs the two-factorisation route it replaced
  (factor the precision, invert, multiply, factor the covariance), M = 100;
- ``conditional``'s whitened marginals forward + backward (the hand-written backward
  reusing ``D A``) vs autograd through the plain formula ``k - |A|^2 + |S^T A|^2``,
  M = 100, B = 1024 (the Polya-gamma SVGP step's shapes);
- ``validation.check_cholesky_factor(..., full=False)`` (the diagonal gathered once, the
  above-diagonal probe as three sums of slices) vs the checks it replaced (two passes over
  the strided diagonal, a probe of five slices stacked), on 256 factors of 100 x 100 (the
  batched rank-1 update's shapes) and one of 2000 x 2000 in a larger column-major buffer
  (the append's).

Float64, 2 threads by default (``BENCH_THREADS``).

    .venv/bin/python benchmarks/bench_floor.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import math
import os

import torch

from _timing import header, interleaved_medians
from bayeskit.distributions.gaussian import conditional, natural_to_moments
from bayeskit.linalg import jittered_cholesky, solve_lower
from bayeskit.validation import all_finite, check_cholesky_factor

F64 = torch.float64


def spd(n: int, g: torch.Generator) -> torch.Tensor:
    A = torch.randn(n, n, dtype=F64, generator=g)
    return A @ A.mT / n + torch.eye(n, dtype=F64)


def timed(fns: dict, repeats: int, inner: int) -> dict:
    """Median microseconds per call of each function (``inner`` calls per timing)."""
    def many(fn):
        for _ in range(inner):
            fn()
    med = interleaved_medians({k: (lambda f=f: many(f)) for k, f in fns.items()}, repeats)
    return {k: 1e6 * v / inner for k, v in med.items()}


def two_factorisations(eta: torch.Tensor, precision: torch.Tensor):
    """The route ``natural_to_moments`` used before (reference for the timing)."""
    Lp, _ = jittered_cholesky(0.5 * (precision + precision.mT))
    mean = torch.cholesky_solve(eta.unsqueeze(-1), Lp).squeeze(-1)
    eye = torch.eye(Lp.shape[-1], dtype=Lp.dtype)
    U = torch.linalg.solve_triangular(Lp.mT, eye, upper=True)
    cov = U @ U.mT
    return mean, jittered_cholesky(0.5 * (cov + cov.mT))[0]


def five_slice_check(L: torch.Tensor) -> None:
    """The factor check ``check_cholesky_factor(full=False)`` made before the fifteenth
    session (reference for the timing): five stacked slice sums, two diagonal passes."""
    n = L.shape[-1]
    if L.stride(-2) == 1:
        cols = sorted({*range(max(1, n - 4), n), n // 2} - {0})
        upper = torch.stack([L[..., :c, c].abs().sum(-1) for c in cols], -1)
    else:
        rows = sorted({*range(min(n, 4)), n // 2} - {n - 1})
        upper = torch.stack([L[..., r, r + 1:].abs().sum(-1) for r in rows], -1)
    d = L.diagonal(dim1=-2, dim2=-1)
    assert not bool(upper.ne(0).any()) and bool((d > 0).all()) and bool((d < math.inf).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    header()
    g = torch.Generator().manual_seed(0)

    print("\n## L^-1 B: plain solve_triangular / transposed solve (left=False) / solve_lower "
          "(which picks one, with its checks), us")
    for n in (16, 64, 100, 256):
        L = torch.linalg.cholesky(spd(n, g))
        row = []
        for k in (100, 256, 1024, 4096):
            B = torch.randn(n, k, dtype=F64, generator=g)
            t = timed({
                "plain": lambda L=L, B=B: torch.linalg.solve_triangular(L, B, upper=False),
                "transposed": lambda L=L, B=B: torch.linalg.solve_triangular(
                    L.mT, B.mT, upper=True, left=False),
                "ours": lambda L=L, B=B: solve_lower(L, B)}, args.repeats, 20)
            row.append(f"K={k}: {t['plain']:.0f}/{t['transposed']:.0f}/{t['ours']:.0f}")
        print(f"  N={n:4d}  " + "   ".join(row))

    x = torch.randn(100, 1024, dtype=F64, generator=g)
    t = timed({"isfinite.all": lambda: bool(torch.isfinite(x).all()),
               "all_finite": lambda: all_finite(x)}, args.repeats, 200)
    print(f"\n## finiteness of a [100, 1024] tensor: isfinite(x).all() {t['isfinite.all']:.0f} "
          f"us, all_finite {t['all_finite']:.0f} us")

    prec, eta = spd(100, g), torch.randn(100, dtype=F64, generator=g)
    ref, ours = two_factorisations(eta, prec), natural_to_moments(eta, prec)
    err = max(float((a - b).abs().max()) for a, b in zip(ref, ours, strict=True))
    t = timed({"before": lambda: two_factorisations(eta, prec),
               "ours": lambda: natural_to_moments(eta, prec)}, args.repeats, 50)
    print(f"\n## natural_to_moments, M = 100: two factorisations {t['before']:.0f} us, reverse "
          f"Cholesky {t['ours']:.0f} us ({t['before'] / t['ours']:.2f}x); max difference "
          f"{err:.1e}")

    M, B = 100, 1024
    Lm = torch.linalg.cholesky(spd(M, g))
    K = torch.randn(M, B, dtype=F64, generator=g) / 3
    A = solve_lower(Lm, K).requires_grad_()
    knn = torch.full((B,), 2.0, dtype=F64)
    f = torch.randn(M, dtype=F64, generator=g)
    S = torch.tril(torch.randn(M, M, dtype=F64, generator=g)) / M ** 0.5
    w = torch.randn(B, dtype=F64, generator=g)

    def plain():
        mean = (f.unsqueeze(-2) @ A).squeeze(-2)
        var = knn - (A * A).sum(-2) + ((S.mT @ A) ** 2).sum(-2)
        (mean * w + var * w).sum().backward()

    def ours():
        mean, var = conditional(K, Lm, knn, f, q_sqrt=S, white=True, projection=A)
        (mean * w + var * w).sum().backward()

    t = timed({"plain": plain, "ours": ours}, args.repeats, 20)
    print(f"\n## whitened marginals forward + backward in A, M = {M}, B = {B}: autograd "
          f"through S^T A {t['plain']:.0f} us, conditional {t['ours']:.0f} us "
          f"({t['plain'] / t['ours']:.2f}x; conditional includes its input checks)")

    batch = torch.linalg.cholesky(torch.stack([spd(100, g) for _ in range(256)]))
    buffer = torch.zeros(2001, 2001, dtype=F64).mT  # column-major, like a growing buffer
    buffer[:2000, :2000] = torch.linalg.cholesky(spd(2000, g))
    for label, L in (("256 x 100 x 100", batch), ("2000 x 2000 view", buffer[:2000, :2000])):
        t = timed({"before": lambda L=L: five_slice_check(L),
                   "ours": lambda L=L: check_cholesky_factor("L", L, full=False)},
                  args.repeats, 20)
        print(f"\n## check_cholesky_factor(full=False), {label}: before {t['before']:.0f} us, "
              f"now {t['ours']:.0f} us ({t['before'] / t['ours']:.2f}x)")


if __name__ == "__main__":
    main()

"""Reference 01: Cholesky factors of low-rank updates (rank-1, rank-M, and their cost)."""

from __future__ import annotations

import functools
import math
import time

import torch

from bayeskit.cli.reproduce import Context
from bayeskit.cli.reproduce.report import Figure, TopicResult
from bayeskit.linalg import (
    cholesky_append,
    cholesky_delete,
    cholesky_update,
    cholesky_update_lowrank,
)
from bayeskit.plotting.figures import pyplot, save

TITLE = "Cholesky decomposition of low-rank updates"


def _spd(n: int, g: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    X = torch.randn(n, n + 10, dtype=dtype, generator=g)
    return X @ X.mT / n + torch.eye(n, dtype=dtype)


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1e3 * times[len(times) // 2]


def _maxabs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _accuracy(res: TopicResult, g: torch.Generator, quick: bool) -> None:
    n, m = (60, 5) if quick else (500, 16)
    a = _spd(n, g)
    a_factor = torch.linalg.cholesky(a)
    u = torch.randn(n, dtype=torch.float64, generator=g)
    b_factor = torch.linalg.cholesky(a + torch.outer(u, u))
    res.add(f"rank-1: max |cholesky_update(L, u) - cholesky(A + uu^T)|, N={n}",
            _maxabs(cholesky_update(a_factor, u), b_factor), 0.0,
            source="reference: assert_array_almost_equal (decimal 6)", tolerance=1.5e-6)

    U = torch.randn(n, m, dtype=torch.float64, generator=g)
    update1 = (U.unsqueeze(-2) * U.unsqueeze(-3)).sum(-1)  # [N, 1, M] [1, N, M] -> [N, N]
    update2 = U @ U.mT
    res.add("sum of M outer products vs U U^T, max abs difference", _maxabs(update1, update2),
            0.0, source="reference: equal to 14 decimals", tolerance=1.5e-14)

    direct = torch.linalg.cholesky(a + update2)
    iterated = functools.reduce(cholesky_update, U.unbind(-1), a_factor)
    blocked = cholesky_update_lowrank(a_factor, U)
    res.add(f"rank-{m}: iterated rank-1 updates vs cholesky(A + UU^T), max abs diff",
            _maxabs(iterated, direct), 0.0, source="reference (decimal 6)", tolerance=1.5e-6)
    res.add(f"rank-{m}: blocked cholesky_update_lowrank vs cholesky(A + UU^T), max abs diff",
            _maxabs(blocked, direct), 0.0, source="float64 recomputation", tolerance=1e-10)
    res.add(f"rank-{m}: downdate of the update returns L, max abs diff",
            _maxabs(cholesky_update_lowrank(blocked, U, -1.0), a_factor), 0.0,
            source="float64 identity", tolerance=1e-9)

    full = _spd(n + 3, g)
    grown = cholesky_append(torch.linalg.cholesky(full[:n, :n]), full[:n, n:], full[n:, n:])
    res.add("append 3 rows vs cholesky of the bordered matrix, max abs diff",
            _maxabs(grown, torch.linalg.cholesky(full)), 0.0, source="float64 recomputation",
            tolerance=1e-10)
    keep = [i for i in range(n + 3) if i not in (1, n // 2)]
    shrunk = cholesky_delete(torch.linalg.cholesky(full), [1, n // 2])
    res.add("delete 2 rows vs cholesky of the reduced matrix, max abs diff",
            _maxabs(shrunk, torch.linalg.cholesky(full[keep][:, keep])), 0.0,
            source="float64 recomputation", tolerance=1e-10)

    a32, u32 = a.float(), U.float()
    up32 = cholesky_update_lowrank(torch.linalg.cholesky(a32), u32)
    res.add(f"float32 rank-{m} update, max abs diff vs float64 factor",
            _maxabs(up32.double(), direct), 0.0, source="float64 recomputation",
            tolerance=1e-3)


def _stability(res: TopicResult, g: torch.Generator, ctx: Context) -> None:
    """A sliding window of rank-1 updates and downdates, as in an online GP."""
    n, steps = (40, 60) if ctx.quick else (200, 400)
    A = _spd(n, g)
    L = torch.linalg.cholesky(A)
    errs = []
    for _ in range(steps):
        u = torch.randn(n, dtype=torch.float64, generator=g) / math.sqrt(n)
        v = torch.randn(n, dtype=torch.float64, generator=g) / math.sqrt(n)
        # add u u^T, then remove a direction that keeps A positive definite
        A = A + torch.outer(u, u)
        L = cholesky_update(L, u)
        scale = 0.5 / float(v @ torch.cholesky_solve(v[:, None], L)[:, 0])
        A = A - scale * torch.outer(v, v)
        L = cholesky_update(L, v, -scale)
        exact = torch.linalg.cholesky(A)
        errs.append(float((L - exact).norm() / exact.norm()))
    res.add(f"relative error after {steps} update+downdate pairs, N={n}", errs[-1], 0.0,
            source="float64 recomputation", tolerance=1e-11)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(range(1, steps + 1), errs)
    ax.set_xlabel("number of (rank-1 update, rank-1 downdate) pairs")
    ax.set_ylabel("||L_upd - chol(A)||_F / ||chol(A)||_F")
    ax.set_title(f"Error of repeated update/downdate pairs (N={n}, float64)", fontsize=10)
    save(fig, ctx.path("cholesky_stability.png"))
    res.figures.append(Figure("cholesky_stability.png",
                              "Relative error of a factor maintained only by rank-1 updates and "
                              "downdates, against recomputing it from scratch."))


def _recompute(A: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    return torch.linalg.cholesky(A + U @ U.mT)


def _timings(res: TopicResult, g: torch.Generator, ctx: Context) -> None:
    sizes = [50, 100, 200] if ctx.quick else [250, 500, 1000, 2000]
    repeats = 3 if ctx.quick else 7
    m = 16
    series: dict[str, list[float]] = {k: [] for k in (
        "recompute chol(A + uu^T)", "cholesky_update (rank 1)",
        f"recompute chol(A + UU^T), M={m}", f"cholesky_update_lowrank (M={m})",
        f"{m} iterated rank-1 updates")}
    for n in sizes:
        A = _spd(n, g)
        L = torch.linalg.cholesky(A)
        u = torch.randn(n, dtype=torch.float64, generator=g)
        U = torch.randn(n, m, dtype=torch.float64, generator=g)
        names = list(series)
        fns = [
            functools.partial(_recompute, A, u[:, None]),
            functools.partial(cholesky_update, L, u),
            functools.partial(_recompute, A, U),
            functools.partial(cholesky_update_lowrank, L, U),
            functools.partial(functools.reduce, cholesky_update, U.unbind(-1), L),
        ]
        for name, fn in zip(names, fns, strict=True):
            series[name].append(_median_ms(fn, repeats))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, ts in series.items():
        ax.loglog(sizes, ts, "o-", label=name)
    ax.set_xlabel("N")
    ax.set_ylabel("median time [ms]")
    ax.set_title(f"Cost of a low-rank update vs recomputing (float64, "
                 f"{torch.get_num_threads()} threads)")
    ax.legend(fontsize=8)
    save(fig, ctx.path("cholesky_timings.png"))
    res.figures.append(Figure("cholesky_timings.png",
                              "Median wall time against N: recomputing is O(N^3); the update "
                              "is O(N^2 M). Machine-dependent; see benchmarks/RESULTS.md."))
    big = sizes[-1]
    names = list(series)
    res.add(f"speed-up of rank-1 update over recompute at N={big} (informational)",
            series[names[0]][-1] / series[names[1]][-1])
    res.add(f"speed-up of rank-{m} update over recompute at N={big} (informational)",
            series[names[2]][-1] / series[names[3]][-1])
    res.add(f"speed-up of blocked rank-{m} over {m} iterated rank-1 at N={big} (informational)",
            series[names[4]][-1] / series[names[3]][-1])
    slope = math.log(series[names[1]][-1] / series[names[1]][0]) / math.log(big / sizes[0])
    res.add("log-log slope of rank-1 update time vs N (informational; O(N^2) is 2)", slope)


def run(ctx: Context) -> TopicResult:
    g = torch.Generator().manual_seed(ctx.seed)
    res = TopicResult("cholesky", TITLE,
                      summary="Rank-1 and rank-M updates of a Cholesky factor against "
                              "recomputation, repeated update/downdate stability, and cost")
    _accuracy(res, g, ctx.quick)
    _stability(res, g, ctx)
    _timings(res, g, ctx)
    return res

"""The one timing loop of the benchmark scripts: interleaved rounds, medians.

Scripts run as ``python benchmarks/bench_*.py``, so this module is importable as
``_timing`` (the script's folder is on ``sys.path``).
"""

from __future__ import annotations

import math
import os
import platform
import random
import statistics
import time
from collections.abc import Callable


def header() -> None:
    """Set torch's threads from ``BENCH_THREADS`` (default 2) and print the date, torch
    version, CPU model and load average: the provenance every recorded figure needs."""
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    from bayeskit.machine import cpu_info

    cpu = cpu_info("model name") or platform.processor() or "unknown CPU"
    with open("/proc/loadavg") as f:
        load = f.read().strip()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} torch {torch.__version__}, {cpu}, "
          f"{torch.get_num_threads()} threads, loadavg {load}")


def interleaved_medians(contenders: dict[str, Callable[[], object]], repeats: int,
                        seed: int = 0, warmup: bool = True) -> dict[str, float]:
    """Median seconds of each zero-argument callable, run round-robin.

    The order is shuffled every round (seeded): a contender that frees a large buffer
    changes what the next one pays for fresh memory, so a fixed order would bias the
    comparison. No pause between calls: a pause lets the OpenMP workers fall asleep, and
    waking them costs every parallel op tens of microseconds, which is not what a loop of
    updates sees. ``warmup`` calls each contender once first (JIT compilation, caches).
    """
    return blocked_medians(contenders, repeats, block=1, pause=0.0, seed=seed, warmup=warmup)


def blocked_medians(contenders: dict[str, Callable[[], object]], rounds: int, block: int = 3,
                    pause: float = 0.3, seed: int = 0, warmup: bool = True) -> dict[str, float]:
    """Median seconds of each zero-argument callable, run in blocks of ``block`` calls.

    For contenders that leave another thread pool busy after they return: SciPy's OpenBLAS
    keeps its workers spinning after a call made through SciPy, which slows whatever torch
    runs next on a 2-core machine (three 64 x 64 ``tril`` right after such a call: ~4 ms,
    against ~0.02 ms after MKL's; measured by a ``bench_lapack.py`` mode removed in the
    fourteenth session, RESULTS.md; bayeskit's own OpenBLAS route stops its workers after
    each call). Interleaving
    call by call would charge that to the next contender; here every block starts after
    ``pause`` seconds of idle, and a contender's own calls inside a block pay for what the
    previous one left, as they would in a loop. The order of the blocks is shuffled every
    round (seeded); ``warmup`` runs each contender once first (compilation, caches).
    """
    if warmup:
        for fn in contenders.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    order = list(contenders.items())
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name, fn in order:
            if pause:
                time.sleep(pause)
            for _ in range(block):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def headline(key: str, value: float) -> None:
    """Print a headline figure as ``HEADLINE <key> <value>``: the line ``check_targets.py``
    reads back (it judges the keys its ``TARGETS`` name; the others are for the record)."""
    print(f"HEADLINE {key} {value:.6g}", flush=True)


def _flops(name: str, shapes: list[tuple[int, ...]]) -> float | None:
    """Floating-point operations of one dense linear-algebra call from its tensor
    arguments' shapes (products, left triangular solves, Cholesky), else ``None``."""
    def batch(shape):
        return math.prod(shape[:-2])

    if name in ("mm", "bmm") and len(shapes) >= 2:
        (*_, m, k), (*_, n) = shapes[0], shapes[1]
        return 2.0 * batch(shapes[0]) * m * k * n
    if name in ("addmm", "baddbmm") and len(shapes) >= 3:
        (*_, m, k), (*_, n) = shapes[1], shapes[2]
        return 2.0 * batch(shapes[1]) * m * k * n
    if name in ("mv", "addmv") and len(shapes) >= 2:
        a = shapes[0] if name == "mv" else shapes[1]
        return 2.0 * a[-2] * a[-1]
    if name == "linalg_solve_triangular" and len(shapes) >= 2:  # left solve: n^2 k
        (*_, n, _), (*_, k) = shapes[0], shapes[1]
        return float(batch(shapes[1]) * n * n * k)
    if name in ("linalg_cholesky_ex", "linalg_cholesky") and shapes:
        return batch(shapes[0]) * shapes[0][-1] ** 3 / 3.0
    return None


def aten_op_times(step: Callable[[], object], rounds: int) -> list[dict]:
    """Where ``step``'s time goes, op by op: ``rounds`` calls of ``step`` under a
    ``TorchDispatchMode`` that times every aten call (the forward's, autograd's backward
    and the optimiser's) with ``perf_counter``, grouped by op and argument shapes. One row
    per group, slowest first: ``{"op", "shapes", "ms" (per step), "calls" (per step),
    "gflops" (dense linear algebra only, else None)}``. The mode's own overhead (a Python
    call per op) falls outside the op times, so their sum is the step's time in aten."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    times: dict[tuple, list[float]] = {}

    class Timed(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            start = time.perf_counter()
            out = func(*args, **(kwargs or {}))
            elapsed = time.perf_counter() - start
            shapes = tuple(tuple(a.shape) for a in args if isinstance(a, torch.Tensor))
            times.setdefault((func.__name__.split(".")[0], shapes), []).append(elapsed)
            return out

    with Timed():
        for _ in range(rounds):
            step()
    rows = []
    for (op, shapes), spent in times.items():
        flops = _flops(op, list(shapes))
        rows.append({"op": op, "shapes": shapes, "ms": 1e3 * sum(spent) / rounds,
                     "calls": len(spent) / rounds,
                     "gflops": None if flops is None else flops * len(spent) / sum(spent) / 1e9})
    return sorted(rows, key=lambda r: -r["ms"])

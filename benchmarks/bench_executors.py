"""Local process pools: what each start method costs, and how often a forked worker hangs.

    .venv-bench/bin/python benchmarks/bench_executors.py            # both parts
    .venv-bench/bin/python benchmarks/bench_executors.py --tries 6 --timeout 45 --no-starts

Part 1 (pool start): in a fresh interpreter per start method (a forkserver is process-wide),
after a matrix product has run, the wall time of a 2-worker pool (torch on one thread per
worker, as ``bayeskit.training.make_executor`` makes it) from creation to both workers'
first answers and shutdown; the first pool and the median of the next five. The forkserver
preloads ``bayeskit.mcmc.gibbs`` (as ``run_gibbs`` asks).

Part 2 (the hang ``run_gibbs(executor="process")`` met with forked workers): the script of
``tests/mcmc/test_gibbs.py::test_process_split_under_blas_threads`` (a background thread
keeps starting short-lived threads that each run one 100 x 100 product while the main
thread runs eight short Gibbs splits, ``num_tasks=2``) as it is (``executor="process"``:
the library's forkserver) and with a pool of forked workers passed in instead; ``--tries``
runs each, killed after ``--timeout`` seconds (a hang).
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _timing import header

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tests.subprocesses import run_own_session  # noqa: E402 - the repository's root first

_STARTS = '''
import concurrent.futures as cf, multiprocessing as mp, os, statistics, sys, time
import torch
from bayeskit.training import one_thread_worker

if __name__ == "__main__":
    method = sys.argv[1]
    torch.randn(300, 300) @ torch.randn(300, 300)
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["bayeskit.mcmc.gibbs"])
    times = []
    for _ in range(6):
        start = time.perf_counter()
        with cf.ProcessPoolExecutor(2, mp_context=ctx, initializer=one_thread_worker) as pool:
            list(pool.map(abs, [-1, -2]))
        times.append(time.perf_counter() - start)
    print(times[0], statistics.median(times[1:]))
'''

_FORK_POOL = """
import concurrent.futures as _cf, multiprocessing as _mp
from bayeskit.training import one_thread_worker as _one_thread


def _fork_pool():
    return _cf.ProcessPoolExecutor(2, mp_context=_mp.get_context("fork"),
                                   initializer=_one_thread)
"""


def _hang_script(method: str) -> str:
    """The test's script (read from the test file, not imported: no pytest needed), with
    the library's own ``executor="process"`` (a forkserver) or a pool of forked workers."""
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "mcmc", "test_gibbs.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    text = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and getattr(node.targets[0], "id", "") == "_GIBBS_SCRIPT")
    text = text.format(guard='if __name__ == "__main__":')
    if method == "fork":
        assert 'executor="process"' in text
        text = _FORK_POOL + text.replace('executor="process"', "executor=_fork_pool()")
    return text


def _script(text: str, folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def starts(folder: str) -> None:
    script = _script(_STARTS, folder, "starts.py")
    print("\n## a 2-worker pool, creation to shutdown (fresh interpreter per method)")
    for method in ("fork", "forkserver", "spawn"):
        out = subprocess.run([sys.executable, script, method], capture_output=True, text=True,
                             timeout=300, check=True)
        first, later = map(float, out.stdout.split())
        print(f"  {method:10s} first pool {first:6.3f} s   later pools (median of 5) "
              f"{later:6.3f} s")


def hangs(folder: str, tries: int, timeout: float) -> None:
    print(f"\n## eight Gibbs splits beside BLAS-calling threads: hangs in {tries} tries "
          f"(killed after {timeout:g} s)")
    for method in ("fork", "forkserver"):
        script = _script(_hang_script(method), folder, f"hang_{method}.py")
        hung, walls = 0, []
        for _ in range(tries):
            start = time.perf_counter()
            # a session of its own: a hung try is killed with its workers, which would
            # otherwise spin on and slow every later try
            code, out, err = run_own_session([sys.executable, script], timeout)
            if code is None:
                hung += 1
            elif "finished" not in out:
                raise RuntimeError(err[-1500:])
            else:
                walls.append(time.perf_counter() - start)
        done = f", finished runs {statistics.median(walls):.1f} s (median)" if walls else ""
        print(f"  {method:10s} hung in {hung} of {tries}{done}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--tries", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=45.0)
    args = parser.parse_args()
    header()
    with tempfile.TemporaryDirectory() as folder:
        if args.starts:
            starts(folder)
        if args.tries:
            hangs(folder, args.tries, args.timeout)


if __name__ == "__main__":
    main()

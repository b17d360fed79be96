"""Executors for independent work (BO evaluations, Gibbs chain groups): the one place that
turns ``"serial"`` / ``"thread"`` / ``"process"`` / a :class:`concurrent.futures.Executor`
(a Dask ``Client(...).get_executor()``, a Ray pool, ...) into something to submit to.

Local process pools fork by default; a parallel torch op in a forked child of a process that
already ran one hangs in GNU OpenMP (measured with plain torch), so their workers run torch
on one thread (the pool spreads the work over the cores instead). A fork also copies MKL's
allocator state: while another thread of this process is inside MKL's allocator, a forked
worker whose first matrix product needs a buffer spins there forever (reproduced by a test
script of ``tests/mcmc/test_gibbs.py``; seen twice in ~22 test-suite runs). Tasks that do
BLAS work and are importable (bayeskit's own: Gibbs chain groups) therefore run on
``executor="forkserver"``: workers are forked from a clean server process that has only
imported the ``preload`` modules, never from this one. As with ``"spawn"``, a script that
starts such a pool needs the usual ``if __name__ == "__main__":`` guard.

Examples:
    >>> with executor_for("thread", 2) as (pool, owned):
    ...     sorted(pool.map(abs, [-2, 1]))
    [1, 2]
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Iterator

import torch

from bayeskit.errors import ArgumentTypeError, ArgumentValueError
from bayeskit.training.io import current_umask
from bayeskit.validation import as_int, check_choice

__all__ = ["executor_for", "make_executor", "check_executor", "one_thread_worker",
           "torch_threads", "broken_pool_message", "EXECUTOR_NAMES"]

log = logging.getLogger(__name__)

#: ``"forkserver"``: a local process pool whose workers start from multiprocessing's
#: forkserver (``"process"`` uses the caller's choice of start method, by default the
#: platform's: a fork on Linux); where there is no forkserver, ``"spawn"``
EXECUTOR_NAMES = ("serial", "thread", "process", "forkserver")


def one_thread_worker() -> None:
    """Part of what local process-pool workers run first: torch on one thread (module doc).

    Examples:
        >>> import concurrent.futures as cf
        >>> with cf.ProcessPoolExecutor(1, initializer=one_thread_worker) as pool:
        ...     pool.submit(torch.get_num_threads).result()
        1
    """
    torch.set_num_threads(1)


_THREADS_LOCK = threading.Lock()
#: bodies of :func:`torch_threads` running now in this process, and the count the first
#: of them found
_bodies = {"running": 0, "first": 1}


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the body with torch on ``n`` threads, then restore the caller's count.

    A task that must give the same numbers wherever it runs (serially in the caller, in a
    thread pool, in a one-thread process worker, on a Dask worker) fixes its thread count:
    MKL's matrix products may split a reduction between threads, so their rounding can
    depend on the count. ``torch.set_num_threads`` sets the calling thread's count (torch's
    OpenMP regions and MKL's) and the process's default, which a thread takes up at its
    first parallel operation (torch's OpenMP builds, as its x86-64 Linux wheels; a build on
    its native thread pool has one count per process). So each body sets ``n`` for its own
    thread and restores that thread's count when it leaves, and the last of the bodies
    running at once in a process restores the default the first of them found.

    Examples:
        >>> before = torch.get_num_threads()
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    n = as_int(n, "n", positive=True)
    with _THREADS_LOCK:
        mine = torch.get_num_threads()
        if _bodies["running"] == 0:
            _bodies["first"] = mine
        _bodies["running"] += 1
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            _bodies["running"] -= 1
            last = _bodies["running"] == 0
            torch.set_num_threads(_bodies["first"] if last else mine)


def check_executor(executor) -> None:
    """``executor`` is one of :data:`EXECUTOR_NAMES` or a ``concurrent.futures.Executor``.

    Examples:
        >>> check_executor("process")  # fine
        >>> try:
        ...     check_executor("cluster")
        ... except ValueError as err:
        ...     print(type(err).__name__)
        ArgumentValueError
    """
    if isinstance(executor, cf.Executor):
        return
    if not isinstance(executor, str):
        raise ArgumentTypeError(f"executor must be one of {EXECUTOR_NAMES} or a "
                                f"concurrent.futures.Executor (e.g. a Dask client's "
                                f"get_executor()), got {type(executor).__name__}")
    if executor not in EXECUTOR_NAMES:
        raise ArgumentValueError(f"executor must be one of {EXECUTOR_NAMES} or a "
                                 f"concurrent.futures.Executor, got {executor!r}")


def make_executor(executor, n_tasks: int, *, payload=None, start_method: str | None = None,
                  preload: tuple[str, ...] = ()) -> tuple[cf.Executor | None, bool]:
    """``(pool, owned)`` for ``n_tasks`` independent tasks; ``pool`` is ``None`` for serial
    work (``"serial"``, one task, or a ``payload`` a process pool cannot pickle: logged).
    The caller shuts down a pool it ``owned``; a caller's executor is passed through.

    ``start_method`` (one of ``multiprocessing.get_all_start_methods()``; default the
    platform's) starts a ``"process"`` pool's workers (``executor="forkserver"`` is
    ``"process"`` with ``start_method="forkserver"``); with a forkserver, ``preload``
    names modules the server imports once (so each worker starts in ~20 ms instead of
    importing torch): multiprocessing's process-wide preload list, honoured when this
    process starts its forkserver (the first pool that asks for one).

    Examples:
        >>> pool, owned = make_executor("thread", 2)
        >>> list(pool.map(abs, [-1, 2])), owned
        ([1, 2], True)
        >>> pool.shutdown()
        >>> make_executor("serial", 4)  # serial: no pool
        (None, False)
    """
    check_executor(executor)
    n_tasks = as_int(n_tasks, "n_tasks", positive=True)
    if executor == "forkserver":
        if start_method not in (None, _FRESH):
            raise ArgumentValueError(f"executor='forkserver' starts its workers by {_FRESH!r}; "
                                     f"got start_method={start_method!r} as well: pass one "
                                     "(executor='process' takes any start_method)")
        start_method = _FRESH
    context = _process_context(start_method, preload)
    if isinstance(executor, cf.Executor):
        return executor, False
    if executor == "thread" and n_tasks > 1:
        return cf.ThreadPoolExecutor(max_workers=n_tasks), True
    if executor in ("process", "forkserver") and n_tasks > 1:
        try:
            pickle.dumps(payload)
        except Exception:  # noqa: BLE001 - whatever pickling raises, run serially
            log.warning("%s is not picklable; running serially", type(payload).__name__)
            return None, False
        return cf.ProcessPoolExecutor(max_workers=min(n_tasks, os.cpu_count() or 1),
                                      mp_context=context, initializer=_start_worker,
                                      initargs=(current_umask(), _settings())), True
    return None, False


# a start method whose workers are never forks of the caller
_FRESH = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _settings() -> dict[str, str]:
    """The caller's ``BAYESKIT_*`` environment variables (the library's switches)."""
    return {k: v for k, v in os.environ.items() if k.startswith("BAYESKIT_")}


def _start_worker(umask: int, settings: dict[str, str]) -> None:
    """Initializer of local process-pool workers: torch on one thread, and the caller's
    umask and ``BAYESKIT_*`` variables as they are now (a forkserver's workers would
    otherwise keep those the server started with: a checkpoint would ignore a later umask,
    a switch set in ``os.environ`` later would not reach them)."""
    one_thread_worker()
    os.umask(umask)
    for key in [k for k in os.environ if k.startswith("BAYESKIT_")]:
        del os.environ[key]
    os.environ.update(settings)


def _process_context(start_method, preload):
    """The multiprocessing context for ``start_method`` (``None``: the platform default)."""
    if not isinstance(preload, (tuple, list)) or not all(isinstance(m, str) for m in preload):
        raise ArgumentTypeError(f"preload must be a tuple of module names, got {preload!r}")
    if start_method is None:
        return None
    check_choice(start_method, "start_method", multiprocessing.get_all_start_methods())
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver" and preload:
        context.set_forkserver_preload(list(preload))
    return context


def broken_pool_message(executor) -> str:
    """Why a local pool's worker died before returning (its pool then raises
    ``BrokenProcessPool``), for the error a caller raises or records; for a pool whose
    workers start from a forkserver it names the missing main guard too.

    Examples:
        >>> broken_pool_message("process").startswith("a worker process died")
        True
        >>> "__main__" in broken_pool_message("forkserver")  # the guard a script needs
        True
    """
    check_executor(executor)
    text = ("a worker process died before returning (killed, e.g. out of memory, or a crash "
            "in native code)")
    if executor == "forkserver":
        text += ("; or the calling script lacks its main guard: the workers start from "
                 "multiprocessing's forkserver, which imports the script again, so its work "
                 "must sit under `if __name__ == \"__main__\":` (or use executor=\"thread\")")
    return text


@contextlib.contextmanager
def executor_for(executor, n_tasks: int, *, payload=None, start_method: str | None = None,
                 preload: tuple[str, ...] = ()) -> Iterator[tuple[cf.Executor | None, bool]]:
    """:func:`make_executor` as a context: a pool made here is shut down on exit.

    Examples:
        >>> with executor_for("thread", 2) as (pool, owned):
        ...     sorted(pool.map(abs, [-2, 1])), owned
        ([1, 2], True)
    """
    pool, owned = make_executor(executor, n_tasks, payload=payload, start_method=start_method,
                                preload=preload)
    try:
        yield pool, owned
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)

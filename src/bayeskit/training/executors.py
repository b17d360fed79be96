"""Executors for independent work (BO evaluations, Gibbs chain groups): the one place that
turns ``"serial"`` / ``"thread"`` / ``"process"`` / a :class:`concurrent.futures.Executor`
(a Dask ``Client(...).get_executor()``, a Ray pool, ...) into something to submit to.

Local process pools fork; a parallel torch op in a forked child of a process that already
ran one hangs in GNU OpenMP (measured with plain torch), so their workers run torch on one
thread (the pool spreads the work over the cores instead).

Examples:
    >>> with executor_for("thread", 2) as (pool, owned):
    ...     sorted(pool.map(abs, [-2, 1]))
    [1, 2]
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import pickle
from collections.abc import Iterator

import torch

from bayeskit.errors import ArgumentTypeError, ArgumentValueError
from bayeskit.validation import as_int

__all__ = ["executor_for", "make_executor", "check_executor", "one_thread_worker",
           "EXECUTOR_NAMES"]

log = logging.getLogger(__name__)

EXECUTOR_NAMES = ("serial", "thread", "process")


def one_thread_worker() -> None:
    """Initializer of local process-pool workers: torch on one thread (see module doc).

    Examples:
        >>> import concurrent.futures as cf
        >>> with cf.ProcessPoolExecutor(1, initializer=one_thread_worker) as pool:
        ...     pool.submit(torch.get_num_threads).result()
        1
    """
    torch.set_num_threads(1)


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


def make_executor(executor, n_tasks: int, *, payload=None) -> tuple[cf.Executor | None, bool]:
    """``(pool, owned)`` for ``n_tasks`` independent tasks; ``pool`` is ``None`` for serial
    work (``"serial"``, one task, or a ``payload`` a process pool cannot pickle: logged).
    The caller shuts down a pool it ``owned``; a caller's executor is passed through.

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
    if isinstance(executor, cf.Executor):
        return executor, False
    if executor == "thread" and n_tasks > 1:
        return cf.ThreadPoolExecutor(max_workers=n_tasks), True
    if executor == "process" and n_tasks > 1:
        try:
            pickle.dumps(payload)
        except Exception:  # noqa: BLE001 - whatever pickling raises, run serially
            log.warning("%s is not picklable; running serially", type(payload).__name__)
            return None, False
        return cf.ProcessPoolExecutor(max_workers=min(n_tasks, os.cpu_count() or 1),
                                      initializer=one_thread_worker), True
    return None, False


@contextlib.contextmanager
def executor_for(executor, n_tasks: int, *, payload=None
                 ) -> Iterator[tuple[cf.Executor | None, bool]]:
    """:func:`make_executor` as a context: a pool made here is shut down on exit.

    Examples:
        >>> with executor_for("thread", 2) as (pool, owned):
        ...     sorted(pool.map(abs, [-2, 1])), owned
        ([1, 2], True)
    """
    pool, owned = make_executor(executor, n_tasks, payload=payload)
    try:
        yield pool, owned
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)

"""Executors: the start method of local process pools and its validation."""

import os

import pytest
import torch

from bayeskit.errors import ArgumentTypeError, ArgumentValueError
from bayeskit.training import executor_for, make_executor


@pytest.mark.parametrize("start_method", [None, "forkserver"])
def test_process_workers_start_as_asked(start_method):
    """The default (fork on Linux) makes workers forks of this process; forkserver's are
    forks of its server (so no MKL or OpenMP state of this process is inherited), and every
    local worker runs torch on one thread."""
    preload = ("bayeskit.mcmc.gibbs",) if start_method == "forkserver" else ()
    with executor_for("process", 2, start_method=start_method, preload=preload) as (pool, owned):
        assert owned
        parents = {pool.submit(os.getppid).result() for _ in range(2)}
        threads = pool.submit(torch.get_num_threads).result()
    assert threads == 1
    if start_method is None:
        assert parents == {os.getpid()}
    else:
        assert os.getpid() not in parents


def test_the_forkserver_executor_name():
    """``executor="forkserver"``: a process pool whose workers are not forks of the caller."""
    with executor_for("forkserver", 2) as (pool, owned):
        assert owned and pool.submit(os.getppid).result() != os.getpid()
        assert pool.submit(torch.get_num_threads).result() == 1
    assert make_executor("forkserver", 1) == (None, False)  # one task: serial
    with pytest.raises(ArgumentValueError, match="start_method"):
        make_executor("forkserver", 2, start_method="fork")


def test_start_method_is_validated():
    with pytest.raises(ArgumentValueError, match="start_method"):
        make_executor("process", 2, start_method="fork-please")
    for preload in ("bayeskit", 3, ("bayeskit", None)):
        for start_method in ("forkserver", None):  # checked whether or not it is used
            with pytest.raises(ArgumentTypeError, match="preload"):
                make_executor("process", 2, start_method=start_method, preload=preload)
    # threads and serial work ignore a valid start method
    assert make_executor("serial", 2, start_method="spawn") == (None, False)


def test_forkserver_workers_see_the_callers_switches_as_they_are_now(monkeypatch):
    """A forkserver started earlier keeps its environment; workers still get the caller's
    current ``BAYESKIT_*`` variables (set, changed and removed ones) and umask."""
    with executor_for("process", 2, start_method="forkserver") as (pool, _):
        pool.submit(os.getpid).result()  # the server is running from here on
    monkeypatch.setenv("BAYESKIT_EXECUTOR_TEST", "now")
    monkeypatch.delenv("BAYESKIT_PROGRESS", raising=False)
    old = os.umask(0o027)
    try:
        with executor_for("process", 2, start_method="forkserver") as (pool, _):
            seen = pool.submit(os.getenv, "BAYESKIT_EXECUTOR_TEST").result()
            progress = pool.submit(os.getenv, "BAYESKIT_PROGRESS").result()
            umask = pool.submit(os.umask, 0o022).result()  # returns the worker's umask
    finally:
        os.umask(old)
    assert (seen, progress, umask) == ("now", None, 0o027)


def test_torch_threads_sets_and_restores_the_count_across_concurrent_bodies():
    """Each body runs on one thread, also while others run in other threads; each thread
    gets its count back when its body leaves, a thread started afterwards the caller's
    count, also after an exception."""
    import threading

    from bayeskit.training import torch_threads

    before = torch.get_num_threads()
    inside, entered, release = [], threading.Barrier(4), threading.Event()

    def body():
        with torch_threads(1):
            entered.wait(timeout=30)
            inside.append(torch.get_num_threads())
            release.wait(timeout=30)

    workers = [threading.Thread(target=body, daemon=True) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        with torch_threads(1):  # the caller's own body too, leaving first
            entered.wait(timeout=30)
            inside.append(torch.get_num_threads())
            while len(inside) < 4:
                threading.Event().wait(0.01)
            assert inside == [1, 1, 1, 1]
        if "parallel backend: OpenMP" in torch.__config__.parallel_info():
            assert torch.get_num_threads() == before  # per thread, while the others run
    finally:
        release.set()
    for w in workers:
        w.join(timeout=30)
    assert _running_bodies() == 0 and torch.get_num_threads() == before
    fresh = []
    later = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    later.start()
    later.join(timeout=30)
    assert fresh == [before]  # the process's default came back too
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("a failing task")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n"):
        with torch_threads(0):
            pass


def _running_bodies():
    import bayeskit.training.executors as executors

    return executors._bodies["running"]

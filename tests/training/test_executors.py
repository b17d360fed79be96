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


def test_start_method_is_validated():
    with pytest.raises(ArgumentValueError, match="start_method"):
        make_executor("process", 2, start_method="fork-please")
    for preload in ("bayeskit", 3, ("bayeskit", None)):
        with pytest.raises(ArgumentTypeError, match="preload"):
            make_executor("process", 2, start_method="forkserver", preload=preload)
    # threads and serial work ignore a valid start method
    assert make_executor("serial", 2, start_method="spawn") == (None, False)

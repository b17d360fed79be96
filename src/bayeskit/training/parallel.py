"""Data-parallel helpers shared by minibatch trainers (SVGP, VAE).

Under ``torchrun`` (``torch.distributed`` initialised) each process takes a contiguous slice
of every *global* minibatch, scales its loss by its share of the batch, and gradients are
summed across processes: the same arithmetic as ``DistributedDataParallel``, so the run
matches a single process on the whole batch up to summation order. Without
``torch.distributed`` everything degrades to the single-process case.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from bayeskit.validation import as_int, as_scalar, as_tensor_list

__all__ = ["world", "local_rows", "allreduce_grads", "allreduce_sum", "epoch_generator"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator for all randomness of one epoch, a function of ``(seed, epoch)`` only:
    a resumed run and every process of a distributed run draw the same numbers.

    Examples:
        >>> a = torch.rand(2, generator=epoch_generator(seed=0, epoch=3))
        >>> torch.equal(a, torch.rand(2, generator=epoch_generator(seed=0, epoch=3)))
        True
    """
    seed = as_int(seed, "seed", nonnegative=True, high=2**43)  # the product fits 64 bits
    epoch = as_int(epoch, "epoch", nonnegative=True, high=1_000_002)
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when not distributed.

    Examples:
        >>> world()  # (rank, world size); (0, 1) without torch.distributed
        (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_rows(batch: int) -> torch.Tensor:
    """Indices ``[b]`` of this process's contiguous slice of a global batch of ``batch``.

    Examples:
        >>> local_rows(5)  # this process's share of a batch of 5 (all of it in one process)
        tensor([0, 1, 2, 3, 4])
    """
    batch = as_int(batch, "batch", nonnegative=True)
    rank, size = world()
    return torch.arange(batch).tensor_split(size)[rank]


def allreduce_grads(params) -> None:
    """Sum the gradients of ``params`` over processes (no-op on one process).

    Examples:
        >>> p = torch.nn.Parameter(torch.ones(2))
        >>> (3 * p).sum().backward()
        >>> allreduce_grads([p])  # one process: unchanged
        >>> p.grad
        tensor([3., 3.])
    """
    params = as_tensor_list(params)
    if world()[1] == 1:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def allreduce_sum(*values: float) -> list[float]:
    """Sum Python floats over processes.

    Examples:
        >>> allreduce_sum(1.5, 2.0)  # summed over processes (one process: unchanged)
        [1.5, 2.0]
    """
    values = tuple(as_scalar(v, f"values[{i}]", finite=False) for i, v in enumerate(values))
    if world()[1] == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()

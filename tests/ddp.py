"""Two-process (torch.distributed, gloo) runs for the data-parallel tests: each process
builds and fits a model with ``build_and_fit()`` (a module-level function, so it pickles)
and rank 0 saves the state and history (``build_and_fit`` returns ``(model, history)``)."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank, size, init, out, build_and_fit):
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    torch.set_num_threads(1)
    model, history = build_and_fit()
    if rank == 0:
        torch.save({"state": model.state_dict(), "history": history}, out)
    dist.barrier()  # both ranks are done talking
    # leave without Python's teardown: gloo's destructors racing the interpreter's exit
    # aborted (SIGABRT) now and then under load, failing a test whose work had succeeded
    os._exit(0)


def run_two_processes(build_and_fit, tmp_path) -> dict:
    """``{"state", "history"}`` of rank 0 after both processes ran ``build_and_fit``."""
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'rdv'}", str(out), build_and_fit),
             nprocs=2, join=True)
    return torch.load(out, weights_only=True)

"""Training infrastructure shared by every long run: atomic writes, the one checkpoint
schema, data-parallel helpers, executors for independent tasks, the minibatch trainer and
the L-BFGS-with-restarts helper.

Layer 0: depends only on :mod:`bayeskit.errors` and :mod:`bayeskit.validation`.
"""

from bayeskit.training.checkpoint import Checkpoint, fingerprint, load_state
from bayeskit.training.executors import (
    EXECUTOR_NAMES,
    broken_pool_message,
    check_executor,
    executor_for,
    make_executor,
    one_thread_worker,
    torch_threads,
)
from bayeskit.training.io import atomic_save, atomic_write, atomic_write_text
from bayeskit.training.optim import (
    AllStartsFailedError,
    fit_with_restarts,
    minimise_lbfgs,
    parameter_values,
)
from bayeskit.training.parallel import (
    allreduce_grads,
    allreduce_sum,
    epoch_generator,
    local_rows,
    world,
)
from bayeskit.training.progress import progress_bar, progress_enabled, set_progress
from bayeskit.training.trainer import TrainingDivergedError, make_optimizer, train

__all__ = ["Checkpoint", "fingerprint", "load_state", "atomic_save", "atomic_write",
           "atomic_write_text", "allreduce_grads", "allreduce_sum", "epoch_generator",
           "local_rows", "world", "AllStartsFailedError", "fit_with_restarts",
           "minimise_lbfgs", "parameter_values", "TrainingDivergedError",
           "make_optimizer", "train", "set_progress", "progress_enabled", "progress_bar",
           "EXECUTOR_NAMES", "broken_pool_message", "check_executor", "executor_for",
           "make_executor", "one_thread_worker", "torch_threads"]

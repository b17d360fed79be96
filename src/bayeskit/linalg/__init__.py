"""Cholesky factorisations and their low-rank modifications (layer 1: functions on tensors).

All functions work on batches ``[..., N, N]``, on float32 and float64, on CPU and CUDA,
and are differentiable (but :func:`cholesky_plus_diagonal`, an in-place factorisation
for samplers and hand-written gradients). Depends on nothing else in bayeskit except
:mod:`bayeskit.errors`, :mod:`bayeskit.validation` and :mod:`bayeskit.machine` (the CPU's
vendor, for the inverse's route).
"""

from bayeskit.linalg.append import cholesky_append, cholesky_delete
from bayeskit.linalg.cholesky import (
    cholesky_inverse,
    cholesky_logdet,
    cholesky_plus_diagonal,
    cholesky_solve,
    jittered_cholesky,
    solve_lower,
    stabilised_cholesky,
)
from bayeskit.linalg.iterative import (
    LowRankPreconditioner,
    low_rank_eigenpairs,
    solve_plus_diagonal,
)
from bayeskit.linalg.lapack import lapack_backend
from bayeskit.linalg.structure import identity_multiple
from bayeskit.linalg.update import cholesky_update, cholesky_update_lowrank
from bayeskit.linalg.weighted_gram import WeightedGram

__all__ = [
    "LowRankPreconditioner",
    "WeightedGram",
    "cholesky_append",
    "cholesky_delete",
    "cholesky_inverse",
    "cholesky_logdet",
    "cholesky_plus_diagonal",
    "cholesky_solve",
    "cholesky_update",
    "cholesky_update_lowrank",
    "identity_multiple",
    "jittered_cholesky",
    "lapack_backend",
    "low_rank_eigenpairs",
    "solve_lower",
    "solve_plus_diagonal",
    "stabilised_cholesky",
]

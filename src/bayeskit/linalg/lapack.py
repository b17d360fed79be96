"""How the inverse from a Cholesky factor is computed: LAPACK's ``potri`` or blocked products.

An exact GP's gradient needs the inverse of ``K + noise I`` (its trace against each kernel
derivative), which after the factorisation is the largest cost of an evaluation. torch's
``cholesky_inverse`` calls LAPACK's ``potri`` (MKL in torch's CPU wheels), which on an AMD
EPYC runs at under half the speed (Gflop/s) of a matrix product; :mod:`bayeskit.linalg.blocked`
arranges nearly the same flops as panel products on torch's BLAS and took 0.64-0.79x of
``potri``'s time at N = 1500-4000 in float64 and 0.76-0.89x in float32 (at N = 1000
0.88-0.94x and 1.02-1.09x), and the whole -MLL + gradient 0.76-0.89x of its time with ``potri`` at
N = 1500-4000 (0.98x at N = 1000), in two or three runs of ``benchmarks/bench_gp.py --inverse``
and ``benchmarks/bench_lapack.py`` (each route in fresh processes).

So on such a machine (torch's LAPACK is MKL, the CPU an AMD one) the inverse of a float32
or float64 CPU factor of ``N >= 1500`` that autograd does not record is blocked; elsewhere
torch's ``cholesky_inverse`` runs: on Intel (not measured there), on CUDA, for smaller
matrices and for anything autograd records. The environment variable ``BAYESKIT_LAPACK``
(``auto``, ``torch`` or ``blocked``) or a ``backend`` argument overrides the choice; the
two routes agree to rounding (``tests/linalg/test_lapack.py``).

(SciPy's OpenBLAS ``potri``, 0.73-1.10x of the blocked time in isolation in the same
runs, was this module's other route until the blocked one replaced it: its idle threads
keep spinning after a call and slowed the torch work after it by ~4 ms per switch on
2 cores; ``benchmarks/RESULTS.md``.)
"""

from __future__ import annotations

import os

import torch

from bayeskit.machine import cpu_info
from bayeskit.validation import check_choice, check_square

__all__ = ["lapack_backend", "BACKENDS"]

#: the values ``backend`` and ``BAYESKIT_LAPACK`` take
BACKENDS = ("auto", "torch", "blocked")
#: the size from which ``"auto"`` picks the blocked inverse (see the module's docstring)
BLOCKED_FROM = 1500


def _env_backend() -> str:
    value = os.environ.get("BAYESKIT_LAPACK", "auto").strip().lower() or "auto"
    return check_choice(value, "the environment variable BAYESKIT_LAPACK", BACKENDS)


def lapack_backend(A: torch.Tensor, backend: str | None = None) -> str:
    """How :func:`~bayeskit.linalg.cholesky_inverse` inverts from the factor
    ``A [..., N, N]``: ``"torch"`` (LAPACK's ``potri``) or ``"blocked"``
    (:mod:`bayeskit.linalg.blocked`).

    ``backend``: ``"auto"`` (the default, or ``BAYESKIT_LAPACK``), ``"torch"`` or
    ``"blocked"``. ``"blocked"`` applies to float32/float64 matrices that autograd does not
    record (the rest take torch's route whatever is asked); ``"auto"`` picks it for CPU ones
    of ``N >= 1500`` when torch's LAPACK is MKL and the CPU is an AMD one.

    Examples:
        >>> lapack_backend(torch.eye(3, dtype=torch.float64))  # small: torch's
        'torch'
        >>> lapack_backend(torch.eye(3, dtype=torch.float64), "blocked")
        'blocked'
    """
    n = check_square("A", A)
    choice = _env_backend() if backend is None else check_choice(backend, "backend", BACKENDS)
    possible = (A.dtype in (torch.float32, torch.float64)
                and not (A.requires_grad and torch.is_grad_enabled()))
    if not possible or choice == "torch":
        return "torch"
    if choice == "blocked":
        return "blocked"
    wanted = (A.device.type == "cpu" and n >= BLOCKED_FROM
              and cpu_info("vendor_id") == "AuthenticAMD" and torch.backends.mkl.is_available())
    return "blocked" if wanted else "torch"

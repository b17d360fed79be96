"""How the inverse from a Cholesky factor is computed: LAPACK's ``potri`` or blocked products.

An exact GP's gradient needs the inverse of ``K + noise I`` (its trace against each kernel
derivative), which after the factorisation is the largest cost of an evaluation. torch's
``cholesky_inverse`` calls LAPACK's ``potri`` (MKL in torch's CPU wheels), which runs at
under half the speed (Gflop/s) of a matrix product on an AMD EPYC and at about half on an
Intel Xeon (``benchmarks/bench_gp.py --inverse``). :mod:`bayeskit.linalg.blocked` does
``potri``'s arithmetic as panel products (``backend="blocked"``): as accurate as ``potri``,
but slower than it on an Intel Xeon (2 cores: 1.17-1.76x ``potri``'s time at
N = 1000-4000) and about level on an AMD EPYC (Zen 4, 2 cores: 0.84-1.02x at N = 2000,
0.83-0.95x at 4000, 1.11x at 1500), so ``"auto"`` (the default) takes ``potri``
everywhere. The environment variable ``BAYESKIT_LAPACK`` (``auto``, ``torch`` or
``blocked``) or a ``backend`` argument overrides the choice; the two routes agree to
rounding (``tests/linalg/test_lapack.py``).

(Two earlier routes were taken out: SciPy's OpenBLAS ``potri``, whose idle threads kept
spinning after a call and slowed the torch work after it by ~4 ms per switch on 2 cores,
and a first blocked arrangement, bottom-up by block columns, 0.64-0.79x of ``potri``'s time
on an AMD EPYC but up to 17x less accurate in float32 (``benchmarks/RESULTS.md``).)
"""

from __future__ import annotations

import os

import torch

from bayeskit.validation import check_choice, check_square

__all__ = ["lapack_backend", "BACKENDS"]

#: the values ``backend`` and ``BAYESKIT_LAPACK`` take
BACKENDS = ("auto", "torch", "blocked")


def _env_backend() -> str:
    value = os.environ.get("BAYESKIT_LAPACK", "auto").strip().lower() or "auto"
    return check_choice(value, "the environment variable BAYESKIT_LAPACK", BACKENDS)


def lapack_backend(A: torch.Tensor, backend: str | None = None) -> str:
    """How :func:`~bayeskit.linalg.cholesky_inverse` inverts from the factor
    ``A [..., N, N]``: ``"torch"`` (LAPACK's ``potri``) or ``"blocked"``
    (:mod:`bayeskit.linalg.blocked`).

    ``backend``: ``"auto"`` (the default, or ``BAYESKIT_LAPACK``), ``"torch"`` or
    ``"blocked"``. ``"blocked"`` applies to float32/float64 matrices that autograd does not
    record (the rest take torch's route whatever is asked); ``"auto"`` is torch's route (see
    the module's docstring).

    Examples:
        >>> lapack_backend(torch.eye(3, dtype=torch.float64))
        'torch'
        >>> lapack_backend(torch.eye(3, dtype=torch.float64), "blocked")
        'blocked'
    """
    check_square("A", A)
    choice = _env_backend() if backend is None else check_choice(backend, "backend", BACKENDS)
    possible = (A.dtype in (torch.float32, torch.float64)
                and not (A.requires_grad and torch.is_grad_enabled()))
    return "blocked" if possible and choice == "blocked" else "torch"

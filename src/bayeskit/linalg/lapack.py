"""Which LAPACK inverts a matrix from its Cholesky factor: torch's (MKL) or SciPy's (OpenBLAS).

An exact GP's gradient needs the inverse of ``K + noise I`` (its trace against each kernel
derivative), which after the factorisation is the largest cost of an evaluation. torch's
CPU wheels call MKL's ``potri``; SciPy's wheels ship OpenBLAS, whose ``potri`` on an AMD
EPYC (2 cores, float64) took 0.59-0.82x MKL's time at N = 1500-4000, and 0.64x on one
thread at N = 4000 (``benchmarks/bench_gp.py --inverse``; MKL's factorisation is as fast or
faster, so it keeps that). But after a call OpenBLAS's idle workers keep spinning, and on
a small machine every switch between them and torch's threads costs a scheduler slice
(~4 ms here: ``benchmarks/bench_lapack.py --spin``), so the whole -MLL + gradient took
0.74-0.84x / 0.67-0.83x / 0.63-0.88x of its time with MKL's inverse at N = 4000 / 3000 /
2500, and 1.10x / 0.90x at 2000, in two runs of ``benchmarks/bench_lapack.py`` (each route
in fresh processes). With ``OPENBLAS_THREAD_TIMEOUT=4`` in the environment before Python
starts (the threads sleep at once): 0.67x / 0.79x / 0.89x / 0.88x at N = 4000 / 3000 / 2500
/ 2000.

So on such a machine the inverse of a CPU float32/float64 factor of ``N >= 2500`` (2000
with that timeout set) that autograd does not record runs on SciPy's ``potri``, in place on
one copy of the factor, in torch's thread count; elsewhere torch's ``cholesky_inverse``
runs: on Intel (MKL not measured against OpenBLAS there), on CUDA, for smaller matrices,
and for anything autograd records. The environment variable ``BAYESKIT_LAPACK`` (``auto``,
``torch`` or ``scipy``) or a ``backend`` argument overrides the choice; the two routes
agree to rounding (``tests/linalg/test_lapack.py``).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from bayeskit.validation import check_choice, check_square

__all__ = ["lapack_backend", "BACKENDS"]

#: the values ``backend`` and ``BAYESKIT_LAPACK`` take
BACKENDS = ("auto", "torch", "scipy")
#: sizes from which SciPy's inverse pays on AMD: OpenBLAS's idle threads spinning / asleep
_SCIPY_FROM = {"spinning": 2500, "asleep": 2000}


def _env_backend() -> str:
    value = os.environ.get("BAYESKIT_LAPACK", "auto").strip().lower() or "auto"
    return check_choice(value, "the environment variable BAYESKIT_LAPACK", BACKENDS)


def _scipy_from() -> int:
    """The size from which ``"auto"`` picks SciPy's inverse (see the module's docstring)."""
    try:
        short = int(os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")) <= 8
    except ValueError:
        short = False
    return _SCIPY_FROM["asleep" if short else "spinning"]


@functools.lru_cache(maxsize=1)
def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


@functools.lru_cache(maxsize=1)
def _scipy_lapack():
    """``{dtype: potri}`` and a thread controller, or ``None`` without SciPy."""
    try:
        from scipy.linalg import lapack
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover  (both install with bayeskit's dependencies)
        return None
    routines = {torch.float32: lapack.spotri, torch.float64: lapack.dpotri}
    return routines, ThreadpoolController()


@functools.lru_cache(maxsize=1)
def _scipy_is_openblas_beside_mkl() -> bool:
    try:
        import scipy

        name = scipy.show_config(mode="dicts")["Build Dependencies"]["lapack"]["name"]
    except Exception:  # noqa: BLE001  (an unusual SciPy build: keep torch's LAPACK)
        return False
    return "openblas" in str(name).lower() and torch.backends.mkl.is_available()


def lapack_backend(A: torch.Tensor, backend: str | None = None) -> str:
    """Which LAPACK :func:`~bayeskit.linalg.cholesky_inverse` uses for the factor
    ``A [..., N, N]``: ``"torch"`` or ``"scipy"``.

    ``backend``: ``"auto"`` (the default, or ``BAYESKIT_LAPACK``), ``"torch"`` or ``"scipy"``.
    ``"scipy"`` applies to CPU float32/float64 matrices that autograd does not record (the
    rest take torch's route whatever is asked); ``"auto"`` picks it for those of
    ``N >= 2500`` (2000 when ``OPENBLAS_THREAD_TIMEOUT`` is at most 8) when torch's LAPACK
    is MKL, SciPy's is OpenBLAS and the CPU is an AMD one.

    Examples:
        >>> lapack_backend(torch.eye(3, dtype=torch.float64))  # small: torch's
        'torch'
        >>> lapack_backend(torch.eye(3, dtype=torch.float64), "scipy")
        'scipy'
    """
    n = check_square("A", A)
    choice = _env_backend() if backend is None else check_choice(backend, "backend", BACKENDS)
    possible = (A.device.type == "cpu" and A.dtype in (torch.float32, torch.float64)
                and not (A.requires_grad and torch.is_grad_enabled())
                and _scipy_lapack() is not None)
    if not possible or choice == "torch":
        return "torch"
    if choice == "scipy":
        return "scipy"
    wanted = (n >= _scipy_from() and _cpu_vendor() == "AuthenticAMD"
              and _scipy_is_openblas_beside_mkl())
    return "scipy" if wanted else "torch"


def _scipy_potri(A: torch.Tensor) -> torch.Tensor:
    """Run SciPy's ``potri`` on the lower factor in each matrix of the dense ``A [..., N, N]``
    in place (one triangle of the inverse); returns LAPACK's ``info`` ``[...]``.

    LAPACK is column-major: a column-major matrix is passed as it is (its lower triangle),
    a row-major one as its transpose (whose upper triangle holds the same numbers)."""
    routines, threads = _scipy_lapack()
    potri = routines[A.dtype]
    n = A.shape[-1]
    flat = A.view(-1, n, n)  # raises rather than copy: LAPACK must write through these views
    info = torch.zeros(flat.shape[0], dtype=torch.int32)
    with threads.limit(limits=torch.get_num_threads(), user_api="blas"):
        for i, M in enumerate(flat):
            column_major = M.stride(-2) == 1
            a = M.numpy() if column_major else M.numpy().T
            c, info[i] = potri(a, lower=1 if column_major else 0, overwrite_c=1)
            if not np.shares_memory(c, a):  # f2py copied after all: write the result back
                a[...] = c
    return info.view(A.shape[:-2])


def scipy_inverse_in_place(A: torch.Tensor) -> torch.Tensor:
    """Overwrite the lower factors ``A [..., N, N]`` (dense) with ``(L L^T)^-1``, both
    triangles; returns ``info [...]``."""
    info = _scipy_potri(A)
    _mirror_lower(A)
    return info


def _mirror_lower(A: torch.Tensor, block: int = 256) -> None:
    """Copy the lower triangle of the square ``A`` onto its upper one, block by block."""
    n = A.shape[-1]
    for i in range(0, n, block):
        j = min(i + block, n)
        A[..., i:j, j:] = A[..., j:, i:j].mT
        D = A[..., i:j, i:j]
        D.copy_(D.tril() + D.tril(-1).mT)

"""How the inverse from a Cholesky factor is computed: LAPACK's ``potri`` on torch's library
or on SciPy's OpenBLAS, or blocked products.

An exact GP's gradient needs the inverse of ``K + noise I`` (its trace against each kernel
derivative), which after the factorisation is the largest cost of an evaluation. torch's
``cholesky_inverse`` calls LAPACK's ``potri`` (MKL in torch's CPU wheels), which runs at
under half the speed (Gflop/s) of a matrix product on an AMD EPYC and at about half on an
Intel Xeon (``benchmarks/bench_gp.py --inverse``). Three routes (``backend``):

* ``"torch"``: torch's LAPACK (MKL's ``potri``);
* ``"openblas"``: SciPy's OpenBLAS ``potri``, its worker threads stopped after each call
  (:mod:`bayeskit.linalg.openblas`). On an AMD EPYC (Zen 4, 2 cores) the whole exact-GP
  evaluation (-MLL + gradient) took 0.71-0.88x of its time with MKL's inverse at
  N = 2000 and 0.68-0.76x at 4000 (``benchmarks/bench_gp.py``'s "MKL potri" row, three
  runs), and, each route in fresh processes, 0.89x / 0.78x / 0.86x / 0.77x at
  N = 1000 / 1500 / 2000 / 3000 (``benchmarks/bench_lapack.py``; ``benchmarks/RESULTS.md``);
* ``"blocked"``: :mod:`bayeskit.linalg.blocked`, ``potri``'s arithmetic in panel
  products on torch's BLAS: as accurate as ``potri``, slower than it on an Intel Xeon
  (1.17-1.76x ``potri``'s time at N = 1000-4000) and about level on an AMD EPYC.

``"auto"`` (the default) takes ``"openblas"`` for matrices of ``N >= 1500`` on an AMD CPU
when torch's LAPACK is MKL, SciPy's is OpenBLAS and no other Python thread runs
(:func:`bayeskit.linalg.openblas.sole_thread`: stopping OpenBLAS's workers while another
thread is inside it could hang that thread); ``"torch"`` otherwise (on Intel, OpenBLAS was
not measured against MKL). The environment variable ``BAYESKIT_LAPACK`` (``auto``,
``torch``, ``openblas`` or ``blocked``) or a ``backend`` argument overrides the choice;
an explicit ``"openblas"`` is taken even beside other threads, so it is for programs in
which no other thread calls SciPy's BLAS (scikit-learn, SciPy) at the same time. The
routes agree to rounding (``tests/linalg/test_lapack.py``).

(Two earlier routes were taken out: SciPy's OpenBLAS ``potri`` without stopping its
workers, whose idle threads kept spinning after a call and slowed the torch work after it
by ~4 ms per switch on 2 cores, and a first blocked arrangement, bottom-up by block
columns, 0.64-0.79x of ``potri``'s time on an AMD EPYC but up to 17x less accurate in
float32 (``benchmarks/RESULTS.md``).)
"""

from __future__ import annotations

import os

import torch

from bayeskit.linalg import direct, openblas
from bayeskit.machine import cpu_info
from bayeskit.validation import check_choice, check_square

__all__ = ["lapack_backend", "potri_in_place", "BACKENDS"]

#: the values ``backend`` and ``BAYESKIT_LAPACK`` take
BACKENDS = ("auto", "torch", "openblas", "blocked")
#: the size from which ``"auto"`` takes OpenBLAS's inverse on an AMD CPU (see above)
OPENBLAS_FROM = 1500


def _env_backend() -> str:
    value = os.environ.get("BAYESKIT_LAPACK", "auto").strip().lower() or "auto"
    return check_choice(value, "the environment variable BAYESKIT_LAPACK", BACKENDS)


def lapack_backend(A: torch.Tensor, backend: str | None = None) -> str:
    """How :func:`~bayeskit.linalg.cholesky_inverse` inverts from the factor
    ``A [..., N, N]``: ``"torch"`` (torch's LAPACK ``potri``), ``"openblas"`` (SciPy's
    OpenBLAS ``potri``) or ``"blocked"`` (:mod:`bayeskit.linalg.blocked`).

    ``backend``: ``"auto"`` (the default, or ``BAYESKIT_LAPACK``), ``"torch"``,
    ``"openblas"`` or ``"blocked"``. ``"blocked"`` applies to float32/float64 matrices that
    autograd does not record, ``"openblas"`` to those on the CPU where SciPy's OpenBLAS is
    found (the rest take torch's route whatever is asked); ``"auto"`` is described in the
    module's docstring.

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
    if choice == "auto" and not (n >= OPENBLAS_FROM and cpu_info("vendor_id") == "AuthenticAMD"
                                 and torch.backends.mkl.is_available()
                                 and openblas.sole_thread()):
        return "torch"  # (checked first: finding OpenBLAS imports SciPy)
    return "openblas" if A.device.type == "cpu" and openblas.available(A.dtype) else "torch"


def potri_in_place(buf: torch.Tensor) -> torch.Tensor | None:
    """``(L L^T)^-1`` in place of its factor on the LAPACK :func:`lapack_backend` picks for
    ``buf``: SciPy's OpenBLAS (:func:`bayeskit.linalg.openblas.cholesky_inverse_in_place`)
    or torch's own (:func:`bayeskit.linalg.direct.cholesky_inverse_in_place`, which returns
    ``None`` where it does not apply). ``buf [..., N, N]`` holds ``L`` in ``buf.mT``'s lower
    triangle and afterwards the inverse in its upper triangle; returns ``info [...]``.
    A building block for callers that validated ``buf`` (the exact GP's fused likelihood).

    Examples:
        >>> buf = torch.tensor([[2.0, 1.0], [99.0, 1.0]], dtype=torch.float64)
        >>> info = potri_in_place(buf)  # inv([[4, 2], [2, 2]])
        >>> info is None or buf.triu().tolist() == [[0.5, -0.5], [0.0, 1.0]]
        True
    """
    if lapack_backend(buf) == "openblas":
        return openblas.cholesky_inverse_in_place(buf)
    return direct.cholesky_inverse_in_place(buf)

"""SciPy's OpenBLAS ``potri`` with its worker threads stopped after each call.

On an AMD EPYC (Zen 4, 2 cores) MKL's ``potri``, which torch's CPU wheels call, inverts
from a Cholesky factor at 33-39 Gflop/s, under half its own matrix product's speed;
OpenBLAS's ``potri`` (SciPy's wheels ship OpenBLAS) runs at about 63 Gflop/s
(``benchmarks/bench_gp.py --inverse``). An earlier route to it was taken out because after
a call OpenBLAS's idle workers keep spinning for a while before they sleep, and on a small
machine torch's threads then wait for the cores (about 4 ms per switch between the two
pools, measured in the thirteenth session: ``benchmarks/RESULTS.md``; that script mode went
with the route). Here every call ends with OpenBLAS's own
``blas_thread_shutdown_``, which stops its workers (the next call that needs them starts
them again), so nothing is left spinning.

Stopping the workers while another thread is inside OpenBLAS could hang that thread, so
:func:`~bayeskit.linalg.lapack_backend` takes this route by itself only while no other
Python thread runs (:func:`sole_thread`; tqdm's monitor, which never calls BLAS, aside),
and the calls here hold the GIL (SciPy's own wrappers hold it too). OpenBLAS runs in
torch's thread count during the call and gets its own count back afterwards.

Found through ``threadpoolctl`` among the libraries SciPy's import loads: the first
OpenBLAS that exports ``dpotri_``/``spotri_`` (with SciPy's ``scipy_`` prefix or without)
and ``blas_thread_shutdown_``, and inverts a small matrix as torch does. Where there is
none (SciPy built on another LAPACK, a big-endian machine), :func:`available` is False and
callers keep torch's route. Not exported from :mod:`bayeskit.linalg`: a building block for
:func:`~bayeskit.linalg.cholesky_inverse` and the exact GP's gradient, which validate.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading

import torch

from bayeskit.errors import ArgumentValueError
from bayeskit.linalg.direct import _lapack_lower, _self_check

__all__ = ["available", "cholesky_inverse_in_place", "sole_thread"]

_SYMBOLS = {torch.float64: "dpotri_", torch.float32: "spotri_"}
_PREFIXES = ("scipy_", "")  # SciPy's wheels (scipy-openblas) prefix the BLAS/LAPACK names
_LOCK = threading.Lock()


class _OpenBLAS:
    """The routines of one loaded OpenBLAS, called with the GIL held (``ctypes.PyDLL``)."""

    def __init__(self, path: str):
        lib = ctypes.PyDLL(path)
        self.potri = {}
        for dtype, name in _SYMBOLS.items():
            fn = _first(lib, [p + name for p in _PREFIXES])
            if fn is not None:
                fn.restype = None
                self.potri[dtype] = fn
        self.shutdown = _first(lib, ["blas_thread_shutdown_"])
        self.get_threads = _first(lib, [p + "openblas_get_num_threads" for p in _PREFIXES])
        self.set_threads = _first(lib, [p + "openblas_set_num_threads" for p in _PREFIXES])
        if self.get_threads is not None:
            self.get_threads.restype = ctypes.c_int
        if self.set_threads is not None:
            self.set_threads.restype = None
            self.set_threads.argtypes = [ctypes.c_int]

    def complete(self) -> bool:
        return bool(self.potri) and None not in (self.shutdown, self.get_threads,
                                                  self.set_threads)

    def potri_lower(self, buf: torch.Tensor) -> torch.Tensor:
        """``potri("L")`` on each ``[N, N]`` matrix of the contiguous ``buf`` (LAPACK's
        column-major lower triangle, the row-major upper one), in torch's thread count,
        then the workers stopped; ``info`` per matrix (int32)."""
        n = buf.shape[-1]
        with _LOCK:
            before = self.get_threads()
            self.set_threads(torch.get_num_threads())
            try:  # the same calling convention as torch's own LAPACK (bayeskit.linalg.direct)
                info = _lapack_lower(self.potri[buf.dtype], buf.view(-1, n, n))
            finally:
                self.set_threads(before)
                self.shutdown()
        return info.view(buf.shape[:-2])


def _first(lib, names):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


@functools.cache
def _library() -> _OpenBLAS | None:
    """SciPy's OpenBLAS, checked (see the module's docstring), or ``None``."""
    if sys.byteorder != "little":
        return None
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's BLAS and LAPACK)
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover  (both install with bayeskit's dependencies)
        return None
    for info in threadpool_info():
        if info.get("internal_api") != "openblas" or not info.get("filepath"):
            continue
        try:
            lib = _OpenBLAS(info["filepath"])
        except OSError:
            continue
        # a 3 x 3 inverse against torch's (too small for OpenBLAS to start its workers)
        if lib.complete() and all(_self_check("potri", dtype, fn)
                                  for dtype, fn in lib.potri.items()):
            return lib
    return None


def available(dtype: torch.dtype) -> bool:
    """Whether OpenBLAS's ``potri`` runs in ``dtype`` here (float32/float64, see the
    module's docstring).

    Examples:
        >>> available(torch.float16)
        False
    """
    lib = _library()
    return lib is not None and dtype in lib.potri


def sole_thread() -> bool:
    """Whether the calling thread is the process's only Python thread (tqdm's monitor
    aside): the condition under which the route is taken by itself.

    Examples:
        >>> isinstance(sole_thread(), bool)
        True
    """
    others = [t for t in threading.enumerate() if t is not threading.current_thread()
              and not type(t).__module__.startswith("tqdm")]
    return not others


def cholesky_inverse_in_place(buf: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^-1`` in place of its factor, on OpenBLAS: as
    :func:`bayeskit.linalg.direct.cholesky_inverse_in_place` (``buf [..., N, N]``
    contiguous, row-major, holding ``L`` in ``buf.mT``'s lower triangle; afterwards
    ``buf``'s upper triangle holds the inverse's), returning ``info [...]`` (int32).
    Requires :func:`available` for ``buf``'s dtype and a CPU tensor autograd does not
    record; the values are not checked.

    Raises:
        ArgumentValueError: OpenBLAS's ``potri`` is not available for ``buf``'s dtype here,
            or ``buf`` is not a contiguous square CPU buffer autograd does not record.

    Examples:
        >>> buf = torch.tensor([[2.0, 1.0], [99.0, 1.0]], dtype=torch.float64)
        >>> if available(torch.float64):
        ...     info = cholesky_inverse_in_place(buf)
        ...     assert buf.triu().tolist() == [[0.5, -0.5], [0.0, 1.0]]
    """
    if not available(buf.dtype):
        raise ArgumentValueError(f"SciPy's OpenBLAS potri is not available for {buf.dtype} "
                                 f"here; use bayeskit.linalg.cholesky_inverse, which falls "
                                 f"back to torch's LAPACK")
    if not (buf.dim() >= 2 and buf.shape[-1] == buf.shape[-2] and buf.is_contiguous()
            and buf.device.type == "cpu" and not buf.requires_grad):
        raise ArgumentValueError(f"buf must be a contiguous square CPU buffer [..., N, N] "
                                 f"that autograd does not record, got {tuple(buf.shape)} "
                                 f"on {buf.device}")
    return _library().potri_lower(buf)

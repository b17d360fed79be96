"""BLAS/LAPACK called directly in the library torch links, where torch's wrappers copy.

torch's wrappers take a matrix only if it is contiguous in one of the two orders and
return a new one in LAPACK's (column-major) layout, zeroing the unused triangle in that
layout. Three places in bayeskit pay for that:

* the append into a growing buffer solves against the top-left block of the buffer, a view
  whose leading dimension is the capacity, not N: ``solve_triangular`` first copies it (at
  N = 2000, float64, it took 3.0-4.6x as long as ``trsm`` on the view on an Intel Xeon:
  ``benchmarks/bench_cholesky.py``'s append rows). :func:`solve_lower_strided` calls BLAS's
  ``trsm`` on the view itself;
* the factorisation of ``K + diag(d)`` (an exact GP, the Gibbs sampler's Matheron step):
  ``cholesky_ex`` zeroes the upper triangle of its column-major result by a pass across
  strides. :func:`cholesky_in_place` calls LAPACK's ``potrf`` on a row-major symmetric
  buffer (whose memory is the column-major matrix too) and zeroes the triangle along rows,
  or leaves it for a caller that reads only the factor's triangle;
* the inverse from that factor (an exact GP's gradient): ``cholesky_inverse`` copies the
  factor, and fills the inverse's other triangle. :func:`cholesky_inverse_in_place` calls
  ``potri`` on the factor's own buffer and leaves one triangle for a caller that reads one.

The routines are those of torch's CPU library (MKL in the x86-64 wheels, which exports
``dtrsm_``, ``dpotrf_``, ``dpotri_`` and their float32 versions), called through ``ctypes``
in torch's thread pool; nothing is compiled. Where they are not found (no MKL, another platform's
library name, a big-endian machine), where a first-use self-check against torch's own
routines fails, or with ``BAYESKIT_DIRECT_LAPACK=0``, the functions return ``None`` and
the caller takes torch's route (the results agree to rounding: ``tests/linalg/test_direct.py``).

These are building blocks for bayeskit's own routines, not exported from
:mod:`bayeskit.linalg`: they take tensors their callers have validated, and check only what
decides whether the call applies.

Integers are passed as 64-bit values: on a little-endian machine an LP64 library reads the
low 32 bits and an ILP64 one all 64, the same number either way. The hidden lengths of
Fortran's character arguments are passed too (1 each).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import torch

__all__ = ["available", "cholesky_in_place", "cholesky_inverse_in_place", "solve_lower_strided"]

_SYMBOLS = {"trsm": {torch.float64: "dtrsm_", torch.float32: "strsm_"},
            "potrf": {torch.float64: "dpotrf_", torch.float32: "spotrf_"},
            "potri": {torch.float64: "dpotri_", torch.float32: "spotri_"}}
_LIBRARY = {"linux": "libtorch_cpu.so", "darwin": "libtorch_cpu.dylib", "win32": "torch_cpu.dll"}
_INT = ctypes.c_int64
_ONE = {torch.float64: ctypes.c_double(1.0), torch.float32: ctypes.c_float(1.0)}
_LENGTH = ctypes.c_size_t(1)


def _char(c: bytes):
    return ctypes.byref(ctypes.c_char(c))


def _trsm(fn, L: torch.Tensor, B: torch.Tensor) -> torch.Tensor | None:
    n, k = B.shape
    rows, cols = L.stride()
    if rows == 1 and cols >= max(1, n):  # column-major: L itself, lower
        uplo, trans, lda = b"L", b"N", cols
    elif cols == 1 and rows >= max(1, n):  # row-major: column-major L^T, upper, transposed
        uplo, trans, lda = b"U", b"T", rows
    else:
        return None
    X = torch.empty(k, n, dtype=B.dtype).mT  # column-major, overwritten by trsm
    X.copy_(B)
    m_, k_, lda_, ldb_ = _INT(n), _INT(k), _INT(lda), _INT(max(1, n))
    fn(_char(b"L"), _char(uplo), _char(trans), _char(b"N"), ctypes.byref(m_), ctypes.byref(k_),
       ctypes.byref(_ONE[B.dtype]), ctypes.c_void_p(L.data_ptr()), ctypes.byref(lda_),
       ctypes.c_void_p(X.data_ptr()), ctypes.byref(ldb_), _LENGTH, _LENGTH, _LENGTH, _LENGTH)
    return X


def _lapack_lower(fn, buf: torch.Tensor) -> torch.Tensor:
    """``fn("L", ...)`` (``potrf`` or ``potri``) on each matrix of a contiguous ``[B, N, N]``
    buffer; ``info [B]``."""
    n = buf.shape[-1]
    n_, info_ = _INT(n), _INT(0)
    info = torch.zeros(buf.shape[0], dtype=torch.int32)
    step = n * n * buf.element_size()
    for i in range(buf.shape[0]):
        fn(_char(b"L"), ctypes.byref(n_), ctypes.c_void_p(buf.data_ptr() + i * step),
           ctypes.byref(n_), ctypes.byref(info_), _LENGTH)
        info[i] = info_.value
    return info


def _self_check(kind: str, dtype: torch.dtype, fn) -> bool:
    """Does ``fn`` give torch's answer on a tiny problem (a strided factor, either layout)?"""
    A = torch.tensor([[4.0, 2.0, 1.0], [2.0, 5.0, 3.0], [1.0, 3.0, 6.0]], dtype=dtype)
    L = torch.linalg.cholesky(A)
    if kind == "potrf":
        buf = A.clone().unsqueeze(0)
        info = _lapack_lower(fn, buf)
        return int(info[0]) == 0 and torch.allclose(torch.tril(buf[0].mT), L)
    if kind == "potri":
        buf = L.mT.contiguous().unsqueeze(0)  # buf.mT: the column-major lower factor
        info = _lapack_lower(fn, buf)
        return int(info[0]) == 0 and torch.allclose(torch.triu(buf[0]),
                                                     torch.triu(torch.linalg.inv(A)))
    B = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=dtype)
    expected = torch.linalg.solve_triangular(L, B, upper=False)
    big = torch.arange(1.0, 26.0, dtype=dtype).reshape(5, 5)  # nonzeros above the diagonal
    for layout in (big, big.mT.contiguous().mT):
        layout[:3, :3] = torch.tril(L) + torch.triu(layout[:3, :3], 1)
        X = _trsm(fn, layout[:3, :3], B)
        if X is None or not torch.allclose(X, expected):
            return False
    return True


@functools.cache
def _routines() -> dict:
    """``{(kind, dtype): function}`` found in torch's CPU library and checked; or ``{}``."""
    name = _LIBRARY.get(sys.platform)
    if name is None or sys.byteorder != "little" or not torch.backends.mkl.is_available():
        return {}
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", name))
    except OSError:
        return {}
    routines = {}
    for kind, symbols in _SYMBOLS.items():
        for dtype, symbol in symbols.items():
            fn = getattr(lib, symbol, None)
            if fn is None:
                continue
            fn.restype = None
            if _self_check(kind, dtype, fn):
                routines[kind, dtype] = fn
    return routines


def _routine(kind: str, dtype: torch.dtype):
    if os.environ.get("BAYESKIT_DIRECT_LAPACK", "1").strip() == "0":
        return None
    return _routines().get((kind, dtype))


def available(kind: str, dtype: torch.dtype) -> bool:
    """Whether the direct ``kind`` (``"trsm"``, ``"potrf"`` or ``"potri"``) runs in ``dtype`` here.

    Examples:
        >>> available("trsm", torch.float16)
        False
    """
    return _routine(kind, dtype) is not None


def _plain_cpu(*tensors: torch.Tensor) -> bool:
    return all(t.device.type == "cpu" and not t.is_conj() and not t.is_neg()
               and not (t.requires_grad and torch.is_grad_enabled()) for t in tensors)


def solve_lower_strided(L: torch.Tensor, B: torch.Tensor) -> torch.Tensor | None:
    """``L^{-1} B`` for a lower-triangular ``L [N, N]`` laid out with any leading dimension,
    without copying ``L``; ``None`` where this BLAS call does not apply.

    It applies to CPU float32/float64 matrices (2-D, no batch), ``L`` with unit stride in one
    dimension, ``B [N, K]`` of ``L``'s dtype, and no autograd. Only ``L``'s lower triangle is
    read. Returns a new column-major ``[N, K]`` tensor. No checks of the values: a caller
    validates ``L`` and the result (a zero on the diagonal gives inf, a NaN propagates).

    Examples:
        >>> buf = torch.zeros(4, 4, dtype=torch.float64)
        >>> buf[:2, :2] = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
        >>> X = solve_lower_strided(buf[:2, :2], torch.tensor([[2.0], [3.0]], dtype=torch.float64))
        >>> X is None or X.tolist() == [[1.0], [2.0]]
        True
    """
    if (L.dim() != 2 or B.dim() != 2 or L.dtype != B.dtype or L.shape[0] != L.shape[1]
            or B.shape[0] != L.shape[0] or B.numel() == 0 or not _plain_cpu(L, B)):
        return None
    fn = _routine("trsm", L.dtype)
    return None if fn is None else _trsm(fn, L, B)


def _in_place(kind: str, buf: torch.Tensor) -> torch.Tensor | None:
    """LAPACK's ``kind`` (``"potrf"``/``"potri"``, lower) on each matrix of a contiguous
    square CPU buffer ``[..., N, N]``: ``info [...]``, or ``None`` where it does not apply."""
    if not (buf.dim() >= 2 and buf.shape[-1] == buf.shape[-2] and buf.is_contiguous()
            and buf.numel() > 0 and _plain_cpu(buf)):
        return None
    fn = _routine(kind, buf.dtype)
    if fn is None:
        return None
    return _lapack_lower(fn, buf.view(-1, *buf.shape[-2:])).reshape(buf.shape[:-2])


def cholesky_in_place(buf: torch.Tensor, *, zero_triangle: bool = True) -> torch.Tensor | None:
    """Factor symmetric matrices in place: ``buf [..., N, N]``, contiguous (row-major), holds
    ``A``; afterwards ``buf.mT`` is the lower Cholesky factor of ``A``, its upper triangle
    zero (``zero_triangle=False`` leaves ``A``'s entries there, for a caller that reads
    only the lower triangle of ``buf.mT``, as the triangular solves and
    :func:`cholesky_inverse_in_place` do). Returns ``info [...]`` (int32) as
    :func:`torch.linalg.cholesky_ex`'s (``k > 0``: the leading minor of order ``k`` is not
    positive definite and the factorisation stopped there), or ``None`` where this LAPACK
    call does not apply (then ``buf`` is untouched).

    It applies to contiguous CPU float32/float64 buffers that autograd does not record. Only
    the lower triangle of ``buf.mT`` (the upper of ``buf``) is read, as in LAPACK. No checks
    of the values (a NaN stops the factorisation as a negative pivot does).

    Examples:
        >>> buf = torch.tensor([[4.0, 2.0], [2.0, 2.0]], dtype=torch.float64)
        >>> info = cholesky_in_place(buf)
        >>> info is None or (info.tolist(), buf.mT.tolist()) == (0, [[2.0, 0.0], [1.0, 1.0]])
        True
    """
    info = _in_place("potrf", buf)
    if info is not None and zero_triangle:
        buf.triu_()  # the strictly upper triangle of buf.mT, along rows of buf
    return info


def cholesky_inverse_in_place(buf: torch.Tensor) -> torch.Tensor | None:
    """``(L L^T)^-1`` in place of its factor: ``buf [..., N, N]``, contiguous (row-major),
    holds ``L`` as :func:`cholesky_in_place` leaves it (``buf.mT``'s lower triangle);
    afterwards ``buf``'s upper triangle (``buf[i, j]``, ``j >= i``: the lower one of
    ``buf.mT``) holds the inverse's, and its strictly lower triangle is left as it was.
    Returns ``info [...]`` (int32; ``k > 0``: ``L[k-1, k-1]`` is zero, no inverse), or
    ``None`` where this LAPACK call does not apply (then ``buf`` is untouched).

    It applies where :func:`cholesky_in_place` does; only the triangle it wrote is read.

    Examples:
        >>> # buf.mT's lower triangle: L = [[2, 0], [1, 1]]; buf[1, 0] is not read
        >>> buf = torch.tensor([[2.0, 1.0], [99.0, 1.0]], dtype=torch.float64)
        >>> info = cholesky_inverse_in_place(buf)  # inv([[4, 2], [2, 2]]) = [[.5, -.5], [-.5, 1]]
        >>> info is None or (info.tolist(), buf.triu().tolist()) == (0, [[0.5, -0.5], [0.0, 1.0]])
        True
    """
    return _in_place("potri", buf)

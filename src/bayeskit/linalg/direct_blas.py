"""A triangular solve against a strided factor, by calling the BLAS that torch links.

torch's ``solve_triangular`` accepts a factor only if it is contiguous in one of the two
orders, so a factor that is the top-left block of a larger buffer (a growing buffer's
leading dimension is its capacity, not N) is first copied: at N = 2000 (float64) the copy
alone costs 1.4 ms, three times the solve. BLAS's ``trsm`` takes a leading dimension, so
:func:`solve_lower_strided` calls it on the view itself, through ``ctypes``, in the BLAS
that torch's CPU library already carries (MKL in the x86-64 wheels, where ``dtrsm_`` and
``strsm_`` are exported). It runs in torch's thread pool; nothing is compiled.

Where that BLAS is not found (no MKL, another platform's library name, a big-endian
machine) or fails a first-use self-check against torch's own solve,
:func:`solve_lower_strided` returns ``None`` and the caller takes its eager route.

Integers are passed as 64-bit values: on a little-endian machine an LP64 BLAS reads the
low 32 bits and an ILP64 one all 64, the same number either way. The hidden lengths of
Fortran's character arguments are passed too (1 each).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import torch

__all__ = ["solve_lower_strided", "available"]

_SYMBOLS = {torch.float64: "dtrsm_", torch.float32: "strsm_"}
_LIBRARY = {"linux": "libtorch_cpu.so", "darwin": "libtorch_cpu.dylib", "win32": "torch_cpu.dll"}
_INT = ctypes.c_int64
_ONE = {torch.float64: ctypes.c_double(1.0), torch.float32: ctypes.c_float(1.0)}


@functools.cache
def _routines() -> dict:
    """``{dtype: trsm}`` from torch's CPU library, or ``{}``; checked once on a 3 x 3 system."""
    name = _LIBRARY.get(sys.platform)
    if name is None or sys.byteorder != "little" or not torch.backends.mkl.is_available():
        return {}
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", name))
        found = {dtype: getattr(lib, symbol) for dtype, symbol in _SYMBOLS.items()}
    except (OSError, AttributeError):
        return {}
    for fn in found.values():
        fn.restype = None
    routines = {}
    for dtype, fn in found.items():
        # a strided lower factor (leading dimension 5) in either order, two right-hand sides
        buf = torch.arange(1.0, 26.0, dtype=dtype).reshape(5, 5)
        L = torch.tril(buf[:3, :3]) + 4 * torch.eye(3, dtype=dtype)
        B = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=dtype)
        expected = torch.linalg.solve_triangular(L, B, upper=False)
        ok = True
        for layout in (buf, buf.mT.contiguous().mT):
            layout[:3, :3] = L
            X = _call(fn, layout[:3, :3], B)
            ok = ok and X is not None and torch.allclose(X, expected)
        if ok:
            routines[dtype] = fn
    return routines


def available(dtype: torch.dtype) -> bool:
    """Whether :func:`solve_lower_strided` can solve in ``dtype`` on this machine.

    Examples:
        >>> available(torch.float16)
        False
    """
    return dtype in _routines()


def _call(fn, L: torch.Tensor, B: torch.Tensor) -> torch.Tensor | None:
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
    chars = [ctypes.c_char(c) for c in (b"L", uplo, trans, b"N")]
    ints = [_INT(n), _INT(k), _INT(lda), _INT(max(1, n))]
    fn(*(ctypes.byref(c) for c in chars), ctypes.byref(ints[0]), ctypes.byref(ints[1]),
       ctypes.byref(_ONE[B.dtype]), ctypes.c_void_p(L.data_ptr()), ctypes.byref(ints[2]),
       ctypes.c_void_p(X.data_ptr()), ctypes.byref(ints[3]), *([ctypes.c_size_t(1)] * 4))
    return X


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
    if (L.dim() != 2 or B.dim() != 2 or L.device.type != "cpu" or B.device.type != "cpu"
            or L.dtype != B.dtype or L.shape[0] != L.shape[1] or B.shape[0] != L.shape[0]
            or (torch.is_grad_enabled() and (L.requires_grad or B.requires_grad))
            or L.is_conj() or L.is_neg() or B.numel() == 0):
        return None
    fn = _routines().get(L.dtype)
    return None if fn is None else _call(fn, L.detach(), B.detach())

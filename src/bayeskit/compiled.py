"""Compiled CPU kernels (numba), with the eager torch code as the fallback.

The hot scalar loops of the library (Pólya-gamma rejection sampling, low-rank Cholesky
updates, the flows' spline and its backward pass) are branchy or sequential per element: in
eager torch every branch becomes a masked pass over the whole array, a sequential sweep a
chain of small operations (each costing microseconds). The SE kernel's backward product
needs an ``N x N`` temporary in eager torch. numba compiles them to plain loops, parallel
over blocks.

One policy for every kernel:

- A kernel runs only for CPU tensors, when numba imports, and unless the environment
  variable ``BAYESKIT_COMPILED=0`` (or :func:`set_compiled`) turns kernels off; otherwise
  the eager torch path runs. Both paths are tested.
- Kernels use ``torch.get_num_threads()`` threads (:func:`threads`).
- Random kernels draw from their own counter-based streams (xoshiro256+, one per block of
  ``BLOCK`` elements, seeded by splitmix64 from one 63-bit seed taken from the caller's
  ``torch.Generator``): the result depends on the generator and the input only, never on
  the number of threads.
- The first call compiles (a few seconds); the machine code is cached on disk
  (numba's ``cache=True``), so later processes load it.

Examples:
    >>> import bayeskit.compiled as compiled
    >>> compiled.enabled(torch.zeros(3)) in (True, False)
    True
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np
import torch

__all__ = ["available", "enabled", "set_compiled", "use_compiled", "jit", "prange", "seed_from",
           "threads", "serial", "launch", "BLOCK", "uniform", "normal_pair", "block_state"]

try:  # numba is a dependency, but a platform without its wheels still works (eagerly)
    import numba as _numba
except ImportError:  # pragma: no cover  (numba installs with bayeskit)
    _numba = None

_switch = {"on": os.environ.get("BAYESKIT_COMPILED", "1") != "0"}

#: elements per random stream; a block is also the unit of parallel work
BLOCK = 2048


def available() -> bool:
    """Whether numba imported (kernels can run at all)."""
    return _numba is not None


def set_compiled(on: bool) -> None:
    """Turn the compiled kernels on or off for this process (off: the eager torch code)."""
    _switch["on"] = bool(on)


@contextlib.contextmanager
def use_compiled(on: bool):
    """Context manager form of :func:`set_compiled` (restores the previous setting)."""
    before = _switch["on"]
    _switch["on"] = bool(on)
    try:
        yield
    finally:
        _switch["on"] = before


def enabled(*tensors: torch.Tensor) -> bool:
    """True when kernels are on, numba imported, and every tensor lives on the CPU."""
    return _switch["on"] and _numba is not None and all(t.device.type == "cpu"
                                                         for t in tensors)


def jit(fn=None, **options):
    """``numba.njit(cache=True, nogil=True, error_model="numpy", **options)``, or the plain
    function without numba. The NumPy error model makes ``x / 0.0`` give ``inf``/``nan`` as
    in the eager torch code, where numba's default raises ZeroDivisionError inside a
    parallel kernel (an opaque SystemError for the caller). numba's cache is keyed on the
    kernel's own file: after changing the options here, delete ``__pycache__/*.nb[ic]``.
    """
    def wrap(f):
        if _numba is None:  # pragma: no cover
            return f
        return _numba.njit(cache=True, nogil=True, error_model="numpy", **options)(f)
    return wrap if fn is None else wrap(fn)


#: ``numba.prange`` inside kernels (plain ``range`` when numba is missing)
prange = range if _numba is None else _numba.prange


_forked = {"child": False}
os.register_at_fork(after_in_child=lambda: _forked.update(child=True))


def serial() -> bool:
    """Run kernels serially (no OpenMP region): with one torch thread, or in a process
    forked from another (GNU OpenMP is not fork-safe: a parallel kernel in a forked child
    of a process that had run one hung, measured)."""
    return _forked["child"] or torch.get_num_threads() == 1


@contextlib.contextmanager
def threads():
    """Run parallel kernels inside this: they get as many threads as torch uses (at most
    numba's maximum), and torch's setting is restored afterwards (numba's OpenMP layer,
    which shares torch's OpenMP runtime, resets the thread count torch reads).

    Kernels use numba's ``prange``: a thread pool over ``nogil`` kernels was tried and was
    slower on 2 cores (a one-off comparison while writing the PG kernel, not kept).
    """
    before = torch.get_num_threads()
    if _numba is not None:
        _numba.set_num_threads(max(1, min(before, _numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def launch(blocks_kernel, parallel_kernel, n: int, args: tuple) -> None:
    """Run a random kernel over ``n`` elements in blocks of :data:`BLOCK`:
    ``blocks_kernel(*args, 0, blocks)`` serially (one block, or when :func:`serial` says
    so), otherwise ``parallel_kernel(*args)``, the same blocks under ``prange`` in
    :func:`threads`. Each block draws from its own stream, so both give the same numbers.
    """
    blocks = -(-n // BLOCK)
    if blocks <= 1 or serial():
        blocks_kernel(*args, 0, blocks)
    else:
        with threads():
            parallel_kernel(*args)


def seed_from(generator: torch.Generator | None) -> int:
    """One 63-bit seed drawn from ``generator`` (the global one when ``None``)."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator))


# ----------------------------------------------------------- counter-based random streams
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TWO53 = 1.0 / 9007199254740992.0


@jit(inline="always")
def _splitmix(x):
    z = x
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@jit
def block_state(seed, block):
    """xoshiro256+ state of stream ``block`` under ``seed``: 4 words from splitmix64."""
    s = np.empty(4, dtype=np.uint64)
    x = np.uint64(seed) ^ (np.uint64(block) * _MIX2)
    for i in range(4):
        x = x + _GOLDEN
        s[i] = _splitmix(x)
    return s


@jit(inline="always")
def uniform(s):
    """A uniform on ``(0, 1]`` (53 random bits) from xoshiro256+ state ``s`` (advanced)."""
    result = s[0] + s[3]
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = (s[3] << np.uint64(45)) | (s[3] >> np.uint64(19))
    return float(np.int64(result >> np.uint64(11)) + 1) * _TWO53


@jit(inline="always")
def normal_pair(s):
    """Two independent standard normals from xoshiro256+ state ``s`` (advanced), by
    Marsaglia's polar method: a point ``(u, v)`` uniform in the unit disc (``4 / pi``
    pairs of uniforms per point on average), then ``(u, v) sqrt(-2 log q / q)`` with
    ``q = u^2 + v^2``: one logarithm and one square root per pair, no sine or cosine."""
    while True:
        u = 2.0 * uniform(s) - 1.0
        v = 2.0 * uniform(s) - 1.0
        q = u * u + v * v
        if 0.0 < q < 1.0:
            f = math.sqrt(-2.0 * math.log(q) / q)
            return u * f, v * f

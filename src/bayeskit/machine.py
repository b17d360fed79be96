"""What machine this is: fields of ``/proc/cpuinfo`` (the CPU's vendor and model).

Read once per field and cached. Used in provenance (the ``bayeskit reproduce`` report and
the benchmarks' headers, ``benchmarks/_timing.py``) and by :mod:`bayeskit.linalg.lapack`,
whose choice of LAPACK for the inverse depends on the CPU's vendor.
"""

from __future__ import annotations

import functools

from bayeskit.errors import ArgumentTypeError

__all__ = ["cpu_info"]


def cpu_info(field: str) -> str:
    """The first value of ``field`` (e.g. ``"vendor_id"``, ``"model name"``) in
    ``/proc/cpuinfo``, or ``""`` where there is no such file or field (macOS, Windows,
    some ARM kernels).

    Examples:
        >>> isinstance(cpu_info("vendor_id"), str)
        True
        >>> cpu_info("no such field")
        ''
    """
    if not isinstance(field, str):
        raise ArgumentTypeError(f"field must be a string such as 'vendor_id', got "
                                f"{type(field).__name__}")
    return _read(field)


@functools.lru_cache(maxsize=8)
def _read(field: str) -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return ""

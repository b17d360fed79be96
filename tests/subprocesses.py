"""Run a script in a session of its own and kill the whole session afterwards, so that a
hung run's workers (spinning forever in a forked child) die with it instead of slowing
everything that runs next. Standard library only: ``benchmarks/bench_executors.py`` uses
it too."""

from __future__ import annotations

import os
import signal
import subprocess


def run_own_session(args: list[str], timeout: float, **popen) -> tuple[int | None, str, str]:
    """``(returncode, stdout, stderr)`` of ``args``; ``returncode`` is ``None`` when the run
    took longer than ``timeout`` seconds (it and every process it started are killed)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        out, err, code = "", "", None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        rest = proc.communicate()
    if code is None:
        out, err = rest
    return code, out, err

"""Crash-safe file writes for every checkpointing loop (Gibbs, flows, SVGP, VAE, BO) and
the report.

The data go to a temporary file in the target's folder, are flushed to disk (``fsync``),
get the permissions an ordinary ``open`` would give (``0o666`` less the umask), and are
renamed over the target; the folder is synced too. A kill at any moment leaves either the
old file or the new one, never half a file. A temporary file left by a killed process
(its name carries the writer's process id) is removed by the next write to that target.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from bayeskit.validation import as_path, check_callable, check_instance

__all__ = ["atomic_write", "atomic_save", "atomic_write_text", "current_umask"]


def current_umask() -> int:
    """The process's umask (read without changing it where ``/proc`` allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no way to read it without setting it elsewhere
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[^.]+\.tmp$")
    for other in path.parent.glob(f".{path.name}.*.tmp"):
        m = pattern.match(other.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                other.unlink()
            except OSError:
                pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, fsync, and rename ``tmp_path`` to ``path`` (parents
    created). On any failure, interrupts included, the temporary file is removed and the
    previous ``path`` (if any) is left untouched.

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_write(folder / "a.bin", lambda tmp: pathlib.Path(tmp).write_bytes(b"abc"))
        >>> (folder / "a.bin").read_bytes(), sorted(p.name for p in folder.iterdir())
        (b'abc', ['a.bin'])
    """
    path = as_path(path)
    check_callable(write, "write")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save(obj, path)`` atomically (load it with ``weights_only=True``).

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_save({"step": torch.tensor(3)}, folder / "state.pt")
        >>> torch.load(folder / "state.pt", weights_only=True)["step"]
        tensor(3)
    """
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically.

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_write_text(folder / "out.txt", "done")  # fsynced, renamed into place
        >>> (folder / "out.txt").read_text()
        'done'
    """
    check_instance(text, "text", str, "a str")
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

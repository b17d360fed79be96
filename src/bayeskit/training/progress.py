"""The one progress-bar convention of every long loop (trainers, Gibbs chains, the BO loop).

Every ``progress=`` argument in bayeskit takes ``True`` (show a tqdm bar), ``False`` (never)
or ``None``, the default everywhere: then :func:`set_progress` decides if it was called,
else the ``BAYESKIT_PROGRESS`` environment variable (``1``/``0``), else a bar is shown
exactly when standard error is an interactive terminal (so notebooks and shells see bars,
logs and CI do not). Under ``torch.distributed`` only rank 0 draws.

Examples:
    >>> progress_enabled(False), progress_enabled(True)
    (False, True)
    >>> with progress_bar(3, desc="demo", progress=False) as bar:
    ...     for _ in range(3):
    ...         bar.update(1)
"""

from __future__ import annotations

import os
import sys

from bayeskit.errors import ArgumentTypeError
from bayeskit.validation import as_int

__all__ = ["set_progress", "progress_enabled", "progress_bar"]

_default: bool | None = None


def set_progress(enabled: bool | None) -> None:
    """Set the library-wide default for ``progress=None`` (``None``: back to automatic).

    Examples:
        >>> set_progress(False)  # no bars anywhere in this process
        >>> progress_enabled(None), progress_enabled(True)  # an explicit argument still wins
        (False, True)
        >>> set_progress(None)  # back to the default: a bar when stderr is a terminal
    """
    global _default
    if enabled is not None and not isinstance(enabled, bool):
        raise ArgumentTypeError(f"set_progress takes True, False or None, got {enabled!r}")
    _default = enabled


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether a loop given ``progress`` draws a bar (see the module docstring).

    Examples:
        >>> progress_enabled(False), progress_enabled(True)
        (False, True)
    """
    if progress is not None:
        if not isinstance(progress, (bool, int)) or isinstance(progress, str):
            raise ArgumentTypeError(f"progress must be True, False or None, got {progress!r}")
        return bool(progress)
    if _default is not None:
        return _default
    env = os.environ.get("BAYESKIT_PROGRESS", "").strip().lower()
    if env in ("1", "true", "yes", "on"):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(total: int, *, desc: str, progress: bool | None = None, initial: int = 0):
    """A tqdm bar (or an object with the same ``update``/``set_postfix``/``close``) for a
    loop of ``total`` steps starting at ``initial``; drawn on rank 0 only.

    Examples:
        >>> bar = progress_bar(3, desc="demo", progress=False)  # a silent stand-in
        >>> for _ in range(3):
        ...     bar.update(1)
        >>> bar.close()
    """
    from bayeskit.training.parallel import world

    total = as_int(total, "total", nonnegative=True)
    initial = as_int(initial, "initial", nonnegative=True)
    if not progress_enabled(progress) or world()[0] != 0:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc)

"""Exception types raised by bayeskit.

Every error about an argument subclasses a built-in (``ValueError`` or ``TypeError``) so
callers that already catch those keep working; the subclasses let callers react to a specific
failure. Messages name the argument, say what was wrong and how to fix it. A worker process
that died is a :class:`WorkerError` (a ``RuntimeError``): nothing was wrong with the arguments.
"""

from __future__ import annotations

__all__ = [
    "BayeskitError",
    "ArgumentTypeError",
    "ArgumentValueError",
    "CheckpointError",
    "NotPositiveDefiniteError",
    "ShapeError",
    "NonFiniteError",
    "WorkerError",
]


class BayeskitError(Exception):
    """Base class of every exception bayeskit raises on purpose.

    Examples:
        >>> from bayeskit.linalg import cholesky_solve
        >>> try:
        ...     cholesky_solve("not a matrix", [1.0])
        ... except BayeskitError as err:  # every deliberate bayeskit error
        ...     print(isinstance(err, (TypeError, ValueError)))
        True
    """


class ArgumentTypeError(BayeskitError, TypeError):
    """An argument has the wrong type (a string or ``None`` where an array is expected, a
    complex array, a float where an integer is needed, ...).

    Examples:
        >>> [issubclass(ArgumentTypeError, base) for base in (TypeError, BayeskitError)]
        [True, True]
    """


class ArgumentValueError(BayeskitError, ValueError):
    """An argument has the right type but a value outside its allowed range or set.

    Examples:
        >>> [issubclass(ArgumentValueError, base) for base in (ValueError, BayeskitError)]
        [True, True]
    """


class ShapeError(BayeskitError, ValueError):
    """Tensor shapes do not fit together (or data are empty); the message names the shapes
    received.

    Examples:
        >>> [issubclass(ShapeError, base) for base in (ValueError, BayeskitError)]
        [True, True]
    """


class NonFiniteError(BayeskitError, ValueError):
    """An input holds NaN or infinity where finite numbers are required.

    Examples:
        >>> [issubclass(NonFiniteError, base) for base in (ValueError, BayeskitError)]
        [True, True]
    """


class CheckpointError(BayeskitError, ValueError):
    """A checkpoint file is damaged, belongs to other data or settings, or would overwrite
    a previous run; the message names the file and what to do.

    Examples:
        >>> [issubclass(CheckpointError, base) for base in (ValueError, BayeskitError)]
        [True, True]
    """


class NotPositiveDefiniteError(BayeskitError, ValueError):
    """A matrix that must be positive definite is not (numerically).

    Attributes:
        batch_index: index (tuple) of the first offending matrix in the batch, or ``None``
            for an unbatched input.
        jitter: the largest diagonal jitter that was tried, if any.

    Examples:
        >>> [issubclass(NotPositiveDefiniteError, base) for base in (ValueError, BayeskitError)]
        [True, True]
    """

    def __init__(self, message: str, *, batch_index: tuple[int, ...] | None = None,
                 jitter: float | None = None):
        super().__init__(message)
        self.batch_index = batch_index
        self.jitter = jitter


class WorkerError(BayeskitError, RuntimeError):
    """A worker process of a local process pool died before returning its result.

    Examples:
        >>> [issubclass(WorkerError, base) for base in (RuntimeError, BayeskitError)]
        [True, True]
    """

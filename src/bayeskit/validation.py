"""The one home of bayeskit's boundary checks.

Every public entry point turns its arguments into tensors and numbers through these
functions, so bad input always fails the same way: a :mod:`bayeskit.errors` exception that
names the argument, says what was wrong and how to fix it. Never an opaque torch or LAPACK
error, never NaN, never silent acceptance.

Conventions (see ``docs/architecture.md``):

- arrays: NumPy arrays, nested lists and tensors are accepted alike; the result is always a
  *copy* (the caller may change or free its array afterwards); floating tensors keep their
  dtype and device, everything else becomes float64 unless ``dtype`` says otherwise;
  strings, ``None``, complex and object arrays are refused; finiteness is checked *after*
  the cast, so a value that overflows float32 is reported, not passed on as ``inf``.
- scalars: Python/NumPy numbers or one-element tensors; booleans are refused where a
  number is expected.

Examples:
    >>> import numpy as np
    >>> X = as_tensor(np.ones((3, 2)), "X", ndim=2)
    >>> X.dtype, X.shape
    (torch.float64, torch.Size([3, 2]))
    >>> as_scalar(0.5, "noise", positive=True)
    0.5
    >>> as_scalar(-1, "noise", positive=True)
    Traceback (most recent call last):
    ...
    bayeskit.errors.ArgumentValueError: noise must be > 0, got -1; pass a positive number
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from bayeskit.errors import (
    ArgumentTypeError,
    ArgumentValueError,
    NonFiniteError,
    NotPositiveDefiniteError,
    ShapeError,
)

__all__ = [
    "as_tensor",
    "as_inputs",
    "as_scalar",
    "as_int",
    "as_bounds",
    "as_binary_labels",
    "as_param",
    "check_tensor",
    "check_choice",
    "check_callable",
    "as_tensor_list",
    "check_instance",
    "as_path",
    "check_generator",
    "check_factor_dtype",
    "check_floating",
    "check_square",
    "check_cholesky_factor",
    "check_finite",
    "all_finite",
    "check_same_rows",
    "check_same_dtype",
    "check_batch_shapes",
    "as_indices",
    "first_true_index",
    "raise_if_not_pd",
    "raise_singular_factor",
    "resolve_dtype",
]

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    if isinstance(x, np.ndarray):
        return f"a {x.dtype} array of shape {x.shape}"
    return type(x).__name__


def resolve_dtype(x, dtype: torch.dtype | None = None) -> torch.dtype:
    """The dtype data ``x`` becomes: ``dtype`` if given, a floating tensor's own dtype,
    else float64 (Python and NumPy input).

    Examples:
        >>> resolve_dtype([1, 2]), resolve_dtype(torch.zeros(2))  # lists: float64
        (torch.float64, torch.float32)
    """
    if dtype is not None:
        if not isinstance(dtype, torch.dtype):
            raise ArgumentTypeError(f"dtype must be a torch.dtype such as torch.float64, got "
                                    f"{_describe(dtype)}")
        return dtype
    if isinstance(x, torch.Tensor) and x.dtype in _FLOATS:
        return x.dtype
    return torch.float64


def as_tensor(x, name: str, *, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None, ndim: int | Sequence[int] | None = None,
              column: bool = False, min_rows: int = 0, finite: bool = True,
              nonnegative: bool = False) -> torch.Tensor:
    """A validated *copy* of array-like ``x`` as a floating tensor.

    Args:
        x: tensor, NumPy array, list or number.
        name: the argument's name, used in messages.
        dtype: target dtype; default: a floating tensor keeps its own, others float64.
        device: target device (default: the tensor's own, else CPU).
        ndim: allowed number(s) of dimensions (after ``column``).
        column: a 1-D ``x`` of length N becomes ``[N, 1]`` (one feature).
        min_rows: the first dimension must have at least this many entries.
        finite: refuse NaN and infinity.
        nonnegative: refuse negative entries.

    Raises:
        ArgumentTypeError: strings, None, complex, object or non-numeric input.
        ShapeError: wrong number of dimensions or too few rows.
        NonFiniteError: NaN/inf (also values that overflow the target dtype).

    Examples:
        >>> as_tensor([[1, 2], [3, 4]], "A")  # lists become float64 copies
        tensor([[1., 2.],
                [3., 4.]], dtype=torch.float64)
        >>> try:
        ...     as_tensor("abc", "A")
        ... except ArgumentTypeError as e:
        ...     print(type(e).__name__)
        ArgumentTypeError
    """
    if x is None or isinstance(x, (str, bytes)):
        raise ArgumentTypeError(f"{name} must be an array of numbers, got {_describe(x)}; "
                                "pass a NumPy array, list or torch tensor")
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as err:  # ragged lists and the like
            raise ArgumentTypeError(f"{name} must be a rectangular array of numbers: {err}"
                                    ) from None
        if a.dtype.kind not in "biuf":
            raise ArgumentTypeError(
                f"{name} must hold real numbers, got {a.dtype} data"
                + ("; drop the imaginary part explicitly (x.real) if that is intended"
                   if a.dtype.kind == "c" else "; convert it to floats first"))
        a = np.ascontiguousarray(a)
        t = torch.from_numpy(a if a.flags.writeable else a.copy())  # read-only memmaps too
    if t.is_complex():
        raise ArgumentTypeError(f"{name} must be real, got a complex tensor; drop the imaginary "
                                "part explicitly (x.real) if that is intended")
    target = resolve_dtype(x, dtype)
    source_max = (torch.finfo(t.dtype).max if t.dtype in _FLOATS else math.inf)
    # copy=True: the result never shares memory with the caller's array
    t = t.to(dtype=target, device=device if device is not None else t.device, copy=True)
    if column and t.dim() == 1:
        t = t[:, None]
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.dim() not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ShapeError(f"{name} must be {want}, got shape {tuple(t.shape)}")
    if min_rows and (t.dim() == 0 or t.shape[0] < min_rows):
        got = 0 if t.dim() == 0 else t.shape[0]
        raise ShapeError(f"{name} must have at least {min_rows} row(s), got {got} "
                         f"(shape {tuple(t.shape)}); pass non-empty data")
    if finite and t.is_floating_point() and not all_finite(t):
        why = ""
        if source_max > torch.finfo(target).max:
            why = f" (values beyond {torch.finfo(target).max:.3g} overflow {target})"
        raise NonFiniteError(f"{name} contains NaN or infinite values{why}; remove or impute "
                             "them first")
    if nonnegative and t.numel() and bool((t < 0).any()):
        raise ArgumentValueError(f"{name} must be non-negative, got a minimum of "
                                 f"{float(t.min()):.4g}")
    return t


def as_inputs(X, name: str = "X", *, dim: int | None = None, dtype: torch.dtype | None = None,
              device=None, min_rows: int = 1) -> torch.Tensor:
    """Model inputs as a ``[N, D]`` copy (a vector is one feature); with ``dim`` the number
    of features must match the model's.

    Examples:
        >>> as_inputs([0.5, 1.5], dim=1).shape  # a vector is one feature: [N, 1]
        torch.Size([2, 1])
    """
    X = as_tensor(X, name, dtype=dtype, device=device, ndim=2, column=True,
                  min_rows=min_rows)
    if dim is not None and X.shape[-1] != dim:
        raise ShapeError(f"{name} must be [N, {dim}] (the model has {dim} features), got "
                         f"{tuple(X.shape)}")
    return X


def as_param(x, name: str) -> torch.Tensor:
    """A numeric parameter that may be a number or an array (it broadcasts): a floating
    tensor (a floating tensor keeps its dtype, anything else becomes float64), *not*
    copied. Refuses None, strings, booleans and complex numbers; values are not checked
    (the caller knows its range).

    Examples:
        >>> as_param([1.0, 2.0], "b")
        tensor([1., 2.], dtype=torch.float64)
    """
    if x is None or isinstance(x, (str, bytes, bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be a number or an array of numbers, got "
                                f"{_describe(x)}" + (f" {x!r}" if isinstance(x, (str, bool))
                                                     else ""))
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise ArgumentTypeError(f"{name} must be real numbers, got a {x.dtype} tensor")
        return x if x.is_floating_point() else x.to(torch.float64)
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as err:
        raise ArgumentTypeError(f"{name} must be a number or a rectangular array: {err}"
                                ) from None
    if a.dtype.kind not in "iuf":
        raise ArgumentTypeError(f"{name} must hold real numbers, got {a.dtype} data")
    return torch.as_tensor(a, dtype=torch.float64)


def check_tensor(name: str, x, *, min_dim: int = 0, finite: bool = True) -> torch.Tensor:
    """Layer-1 check of a tensor argument: a floating ``torch.Tensor`` with at least
    ``min_dim`` dimensions (and finite entries, one pass). Returns ``x`` unchanged.

    Examples:
        >>> try:
        ...     check_tensor("x", torch.tensor([1.0, float("nan")]))
        ... except NonFiniteError as e:
        ...     print(type(e).__name__)
        NonFiniteError
    """
    check_floating(name, x)
    if x.dim() < min_dim:
        raise ShapeError(f"{name} must have at least {min_dim} dimension(s), got shape "
                         f"{tuple(x.shape)}")
    if finite:
        check_finite(name, x)
    return x


def check_same_rows(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise :class:`ShapeError` unless ``a`` and ``b`` have as many rows.

    Examples:
        >>> try:
        ...     check_same_rows("X", torch.zeros(3, 2), "y", torch.zeros(4))
        ... except ShapeError as e:
        ...     print(type(e).__name__)
        ShapeError
    """
    check_floating(name_a, a)
    check_floating(name_b, b)
    if a.shape[0] != b.shape[0]:
        raise ShapeError(f"{name_b} has {b.shape[0]} rows but {name_a} has {a.shape[0]}; "
                         "they must describe the same points")


def as_indices(indices, name: str, n: int) -> torch.Tensor:
    """Distinct integer indices into ``n`` items (an int, a sequence or a 1-D integer tensor;
    negative values count from the end) as a CPU ``long`` tensor, in the given order.

    Raises:
        ArgumentTypeError: None, strings, booleans, floats, anything torch cannot read as
        integers (sets, ``None`` entries, values beyond int64). ShapeError: nested
        sequences (more than one dimension). ArgumentValueError: an index out of range or
        repeated.

    Examples:
        >>> as_indices([0, -1], "rows", 5).tolist()
        [0, 4]
    """
    if indices is None or isinstance(indices, (str, bytes)):
        raise ArgumentTypeError(f"{name} must be integers, got {indices!r}")
    try:
        idx = torch.as_tensor(indices)
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise ArgumentTypeError(f"{name} must be integers, got {_describe(indices)} "
                                f"({err})") from None
    if idx.numel() == 0:  # [] converts to a float tensor
        return torch.zeros(0, dtype=torch.long)
    if idx.dtype == torch.bool or idx.is_floating_point() or idx.is_complex():
        raise ArgumentTypeError(f"{name} must be integers, got dtype {idx.dtype}")
    if idx.dim() > 1:
        raise ShapeError(f"{name} must be one sequence of indices, got shape "
                         f"{tuple(idx.shape)}")
    idx = idx.to(torch.long).reshape(-1).cpu()
    if bool((idx >= n).any()) or bool((idx < -n).any()):
        raise ArgumentValueError(f"{name} {idx.tolist()} out of range for {n} rows")
    idx = torch.remainder(idx, n)  # n > 0 here: any index is out of range for n = 0
    if torch.unique(idx).numel() != idx.numel():
        raise ArgumentValueError(f"{name} must not repeat, got {idx.tolist()}")
    return idx


def check_same_dtype(**tensors: torch.Tensor) -> None:
    """Raise :class:`ArgumentTypeError` unless every named tensor has the same dtype (torch
    would otherwise fail inside a product with a message naming none of them, or promote).

    Examples:
        >>> try:
        ...     check_same_dtype(L=torch.zeros(2, dtype=torch.float64), U=torch.zeros(2))
        ... except TypeError as e:
        ...     print(e)
        L and U must share a dtype, got torch.float64 and torch.float32
    """
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {_describe(t)}")
    dtypes = [t.dtype for t in tensors.values()]
    if len(set(dtypes)) > 1:
        names = list(tensors)
        raise ArgumentTypeError(f"{', '.join(names[:-1])} and {names[-1]} must share a dtype, "
                                f"got {', '.join(map(str, dtypes[:-1]))} and {dtypes[-1]}")


def check_batch_shapes(what: str, **shapes) -> torch.Size:
    """The broadcast of the named batch shapes, or a :class:`ShapeError` naming them all
    (torch's own says only "the size of tensor a must match ...").

    ``what`` says which dimensions these are, for the message.

    Examples:
        >>> check_batch_shapes("batch", mean=(3,), cov=(1,))
        torch.Size([3])
        >>> try:
        ...     check_batch_shapes("batch", mean=(3,), cov=(4,))
        ... except ValueError as e:
        ...     print(e)
        the batch dimensions of mean (3,) and cov (4,) do not broadcast
    """
    for name, v in shapes.items():
        if not (isinstance(v, (tuple, list, torch.Size))
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v)):
            raise ArgumentTypeError(f"{name}'s shape must be a tuple of sizes, got {v!r}")
    try:
        return torch.broadcast_shapes(*shapes.values())
    except RuntimeError:
        names = [f"{k} {tuple(v)}" for k, v in shapes.items()]
        raise ShapeError(f"the {what} dimensions of {', '.join(names[:-1])} and {names[-1]} "
                         "do not broadcast") from None


def _number(x, name: str):
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            raise ArgumentTypeError(f"{name} must be a single number, got {_describe(x)}")
        if x.is_complex():
            raise ArgumentTypeError(f"{name} must be real, got a complex number")
        x = x.item()
    elif isinstance(x, np.ndarray):
        if x.size != 1 or x.dtype.kind not in "biuf":
            raise ArgumentTypeError(f"{name} must be a single real number, got {_describe(x)}")
        x = x.item()
    if isinstance(x, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be a number, got the boolean {x}")
    if not isinstance(x, numbers.Real):
        raise ArgumentTypeError(f"{name} must be a real number, got {_describe(x)}"
                                + (f" {x!r}" if isinstance(x, str) else ""))
    return x


def _range_checks(v, name: str, positive: bool, nonnegative: bool, low, high,
                  low_open: bool, high_open: bool, raw) -> None:
    if positive and not v > 0:
        raise ArgumentValueError(f"{name} must be > 0, got {raw}; pass a positive number")
    if nonnegative and not v >= 0:
        raise ArgumentValueError(f"{name} must be >= 0, got {raw}")
    if low is not None and (v <= low if low_open else v < low):
        op = ">" if low_open else ">="
        raise ArgumentValueError(f"{name} must be {op} {low}, got {raw}")
    if high is not None and (v >= high if high_open else v > high):
        op = "<" if high_open else "<="
        raise ArgumentValueError(f"{name} must be {op} {high}, got {raw}")


def as_scalar(x, name: str, *, positive: bool = False, nonnegative: bool = False,
              low: float | None = None, high: float | None = None, low_open: bool = False,
              high_open: bool = False, finite: bool = True) -> float:
    """A validated real number as a Python float (NaN always refused; infinity unless
    ``finite=False``).

    Examples:
        >>> as_scalar(2, "rate", positive=True)
        2.0
        >>> try:
        ...     as_scalar("0.5", "beta")
        ... except ArgumentTypeError as e:
        ...     print(type(e).__name__)
        ArgumentTypeError
    """
    raw = _number(x, name)
    v = float(raw)
    if math.isnan(v) or (finite and math.isinf(v)):
        raise NonFiniteError(f"{name} must be a finite number, got {raw}")
    _range_checks(v, name, positive, nonnegative, low, high, low_open, high_open, raw)
    return v


def as_int(x, name: str, *, positive: bool = False, nonnegative: bool = False,
           low: int | None = None, high: int | None = None) -> int:
    """A validated whole number as a Python int (``2.0`` is accepted, ``2.5`` is not).

    Examples:
        >>> as_int(3.0, "n")
        3
        >>> try:
        ...     as_int(2.5, "n")
        ... except ArgumentTypeError as e:
        ...     print(type(e).__name__)
        ArgumentTypeError
    """
    raw = _number(x, name)
    if isinstance(raw, float) and not (math.isfinite(raw) and raw == int(raw)):
        raise ArgumentTypeError(f"{name} must be a whole number, got {raw}")
    v = int(raw)
    _range_checks(v, name, positive, nonnegative, low, high, False, False, raw)
    return v


def check_choice(value, name: str, choices: Iterable):
    """Return ``value`` if it is one of ``choices``; else an error listing them.

    Examples:
        >>> check_choice("ei", "acquisition", ("ei", "kg"))
        'ei'
        >>> try:
        ...     check_choice("pi", "acquisition", ("ei", "kg"))
        ... except ArgumentValueError as e:
        ...     print(type(e).__name__)
        ArgumentValueError
    """
    choices = tuple(choices)
    try:
        if not isinstance(value, bool) and value in choices:
            return value
    except TypeError:  # unhashable or incomparable: not one of the choices
        pass
    raise ArgumentValueError(f"{name} must be one of {', '.join(map(repr, choices))}; "
                             f"got {value!r}")


def check_callable(fn, name: str):
    """Return ``fn`` if it can be called; else an :class:`ArgumentTypeError`.

    Examples:
        >>> check_callable(abs, "objective")(-2)
        2
        >>> try:
        ...     check_callable("f", "objective")
        ... except ArgumentTypeError as e:
        ...     print(type(e).__name__)
        ArgumentTypeError
    """
    if not callable(fn):
        raise ArgumentTypeError(f"{name} must be callable (a function), got {_describe(fn)}")
    return fn


def as_tensor_list(params, name: str = "params") -> list[torch.Tensor]:
    """An iterable of tensors (e.g. ``module.parameters()``) as a list, each checked.

    Examples:
        >>> len(as_tensor_list(torch.nn.Linear(2, 1).parameters()))  # weight and bias
        2
        >>> try:
        ...     as_tensor_list(None)
        ... except ArgumentTypeError as e:
        ...     print(type(e).__name__)
        ArgumentTypeError
    """
    if isinstance(params, (str, bytes, torch.Tensor)) or not isinstance(params, Iterable):
        raise ArgumentTypeError(f"{name} must be an iterable of tensors (e.g. "
                                f"module.parameters()), got {_describe(params)}")
    params = list(params)
    for i, p in enumerate(params):
        check_instance(p, f"{name}[{i}]", torch.Tensor, "a torch.Tensor")
    return params


def check_instance(obj, name: str, cls: type | tuple[type, ...], what: str | None = None):
    """Return ``obj`` if it is an instance of ``cls``; else an :class:`ArgumentTypeError`
    naming ``what`` it should be (default: the class names).

    Examples:
        >>> layer = check_instance(torch.nn.Linear(2, 1), "model", torch.nn.Module)
        >>> try:
        ...     check_instance(None, "model", torch.nn.Module, "a torch.nn.Module")
        ... except ArgumentTypeError as e:
        ...     print(e)
        model must be a torch.nn.Module, got NoneType
    """
    if not isinstance(obj, cls):
        if what is None:
            classes = cls if isinstance(cls, tuple) else (cls,)
            what = " or ".join(f"a {c.__name__}" for c in classes)
        raise ArgumentTypeError(f"{name} must be {what}, got {_describe(obj)}")
    return obj


def as_path(path, name: str = "path") -> Path:
    """A file-system path (a ``str`` or ``os.PathLike``) as a ``pathlib.Path``.

    Examples:
        >>> as_path("runs/a.pt").name
        'a.pt'
        >>> try:
        ...     as_path(None, "checkpoint")
        ... except ArgumentTypeError as e:
        ...     print(type(e).__name__)
        ArgumentTypeError
    """
    if not isinstance(path, (str, os.PathLike)) or (isinstance(path, str) and not path):
        raise ArgumentTypeError(f"{name} must be a file path (a non-empty str or "
                                f"pathlib.Path), got {_describe(path)}"
                                + (" ''" if isinstance(path, str) else ""))
    return Path(path)


def check_generator(generator, name: str = "generator", *, device=None
                    ) -> torch.Generator | None:
    """``None`` or a ``torch.Generator`` (with ``device``: one on that kind of device, where
    the draws are made: torch's own error names neither the argument nor the fix).

    Examples:
        >>> check_generator(None) is None
        True
        >>> try:
        ...     check_generator(3)
        ... except ArgumentTypeError as e:
        ...     print(type(e).__name__)
        ArgumentTypeError
        >>> try:
        ...     check_generator(torch.Generator(), device=torch.device("meta"))
        ... except ArgumentValueError as e:
        ...     print(type(e).__name__)
        ArgumentValueError
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ArgumentTypeError(f"{name} must be a torch.Generator or None, got "
                                f"{_describe(generator)}; create one with "
                                "torch.Generator().manual_seed(seed)")
    if generator is not None and device is not None:
        where, have = torch.device(device), generator.device
        if have.type != where.type or (where.index is not None and have.index is not None
                                        and have.index != where.index):
            raise ArgumentValueError(
                f"{name} is on {have} but the draws are made on {where}: "
                f"create it there, torch.Generator(device={str(where)!r}).manual_seed(seed)")
    return generator


def as_bounds(bounds, name: str = "bounds", *, dim: int | None = None) -> torch.Tensor:
    """A box ``[2, D]`` (row 0 lower, row 1 upper; a pair is one dimension) as float64.

    Examples:
        >>> as_bounds([[0, 0], [1, 2]])  # [2, D]: lower row, upper row
        tensor([[0., 0.],
                [1., 2.]], dtype=torch.float64)
    """
    b = as_tensor(bounds, name, dtype=torch.float64, ndim=(1, 2))
    if b.dim() == 1 and b.shape[0] == 2:
        b = b[:, None]
    if b.dim() != 2 or b.shape[0] != 2 or b.shape[1] == 0:
        raise ShapeError(f"{name} must have shape [2, D] (lower row, upper row), got "
                         f"{tuple(b.shape)}")
    if dim is not None and b.shape[1] != dim:
        raise ShapeError(f"{name} must be [2, {dim}], got {tuple(b.shape)}")
    if not bool((b[0] < b[1]).all()):
        bad = torch.nonzero(b[0] >= b[1]).flatten().tolist()
        raise ArgumentValueError(f"{name}: lower bound must be < upper bound in "
                                 f"every dimension; violated in dimension(s) {bad}: "
                                 f"lower={b[0].tolist()}, upper={b[1].tolist()}")
    return b


def as_binary_labels(y, name: str = "y") -> tuple[torch.Tensor, np.ndarray]:
    """Labels of exactly two classes as a float64 0/1 tensor and the sorted ``classes``
    (any two distinct values: ``{0, 1}``, ``{1, 2}``, strings, booleans).

    Examples:
        >>> codes, classes = as_binary_labels(["no", "yes", "yes"])
        >>> codes, classes.tolist()
        (tensor([0., 1., 1.], dtype=torch.float64), ['no', 'yes'])
    """
    if y is None or isinstance(y, (str, bytes)):
        raise ArgumentTypeError(f"{name} must be an array of labels, got {_describe(y)}")
    a = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if a.dtype.kind == "c":
        raise ArgumentTypeError(f"{name} must hold real labels, got complex values")
    if a.ndim != 1 or a.shape[0] == 0:
        raise ShapeError(f"{name} must be a non-empty 1-D array of labels, got shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise NonFiniteError(f"{name} contains NaN or infinite labels")
    classes, codes = np.unique(a, return_inverse=True)
    if len(classes) != 2:
        raise ArgumentValueError(f"{name} must hold exactly two classes for binary "
                                 f"classification, got {len(classes)}: "
                                 f"{classes[:5].tolist()}")
    return torch.as_tensor(codes.astype(np.float64)), classes


# --- layer-1 checks: cheap, no conversion (functions on tensors take tensors) ----------

def check_floating(name: str, x) -> None:
    """Raise ``ArgumentTypeError`` unless ``x`` is a floating-point tensor.

    Examples:
        >>> try:
        ...     check_floating("x", torch.tensor([1, 2]))
        ... except ArgumentTypeError as e:
        ...     print(type(e).__name__)
        ArgumentTypeError
    """
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {_describe(x)}")
    if not x.is_floating_point():
        raise ArgumentTypeError(
            f"{name} must be a floating-point tensor (float32 or float64), got {x.dtype}; "
            f"convert it with {name}.double()")


def check_square(name: str, x) -> int:
    """Check ``x`` is a floating tensor ``[..., N, N]`` and return ``N``.

    Examples:
        >>> check_square("A", torch.zeros(3, 3))  # returns N
        3
    """
    check_floating(name, x)
    if x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"{name} must have shape [..., N, N] (a batch of square matrices), "
                         f"got shape {tuple(x.shape)}")
    return x.shape[-1]


def check_factor_dtype(name: str, x: torch.Tensor) -> None:
    """Cholesky factors (and the matrices factorised) must be float32 or float64: the
    factorisations, triangular solves and compiled kernels have no half-precision versions
    (they raise an opaque torch/numba error).

    Examples:
        >>> try:
        ...     check_factor_dtype("L", torch.eye(2, dtype=torch.float16))
        ... except ArgumentTypeError as e:
        ...     print(type(e).__name__)
        ArgumentTypeError
    """
    check_floating(name, x)
    if x.dtype not in (torch.float32, torch.float64):
        raise ArgumentTypeError(f"{name} must be float32 or float64 (the Cholesky routines "
                                f"have no {x.dtype} versions), got {x.dtype}; convert with "
                                f"{name}.double() or {name}.float()")


def all_finite(x: torch.Tensor) -> bool:
    """Whether a floating tensor holds no NaN or infinity (``True`` when empty).

    One reduction pass: the sum is finite whenever every entry is (a NaN or an infinity
    makes it NaN or infinite), and only a non-finite sum, from a bad entry or from finite
    entries overflowing, pays for the elementwise test. ``torch.isfinite(x).all()`` reads
    ``x`` three times (116 against 14 us on a [100, 1024] float64 tensor, 2 AMD EPYC cores:
    ``benchmarks/bench_floor.py``), which showed up in every minibatch step of the sparse GPs.

    Examples:
        >>> all_finite(torch.tensor([1.0, 2.0])), all_finite(torch.tensor([1.0, float("nan")]))
        (True, False)
        >>> all_finite(torch.full((2,), 3e38))  # the sum overflows float32: checked elementwise
        True
    """
    check_floating("x", x)
    if not x.numel():
        return True
    x = x.detach()
    # one scalar read of the sum, no elementwise test of the 0-d sum (4 small ops fewer)
    return math.isfinite(float(x.sum())) or bool(torch.isfinite(x).all())


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` if ``x`` holds NaN or infinity.

    Examples:
        >>> try:
        ...     check_finite("x", torch.tensor([1.0, float("inf")]))
        ... except NonFiniteError as e:
        ...     print(type(e).__name__)
        NonFiniteError
    """
    check_floating(name, x)
    if not all_finite(x):
        raise NonFiniteError(f"{name} contains NaN or infinite values; clean the input first")


def check_cholesky_factor(name: str, L, *, full: bool = True) -> int:
    """Check ``L`` ``[..., N, N]`` is a lower Cholesky factor: floating, finite, zero above
    the diagonal (a full matrix ``A`` passed by mistake is caught here) and a positive
    diagonal. Returns ``N``. ``full=True`` reads the whole matrix; ``full=False`` (for
    O(N^2) routines that read the lower triangle anyway and check their own results)
    probes five rows' (or, for a column-major ``L``, five columns') entries above the
    diagonal and checks that the diagonal is positive and finite.

    Examples:
        >>> check_cholesky_factor("L", torch.eye(3))
        3
        >>> try:
        ...     check_cholesky_factor("L", torch.ones(3, 3))
        ... except ArgumentValueError as e:
        ...     print(type(e).__name__)
        ArgumentValueError
    """
    n = check_square(name, L)
    check_factor_dtype(name, L)
    if full:
        check_finite(name, L)
        nonzero_above = n > 1 and bool(torch.triu(L, 1).ne(0).any())
    else:
        nonzero_above = n > 1 and _nonzero_above_probe(L, n)
    if nonzero_above:
        raise ArgumentValueError(
            f"{name} has nonzeros above the diagonal: pass the lower Cholesky factor "
            f"(torch.linalg.cholesky(A)), not the matrix A or an upper factor")
    # one strided gather, then the checks on the copy: each pass over the strided diagonal
    # of a batch costs a cache line (of a large factor, a page) per entry
    d = L.diagonal(dim1=-2, dim2=-1).contiguous()
    if not full and d.numel() and not all_finite(d):
        raise NonFiniteError(f"{name} has a NaN or infinite diagonal entry: not a Cholesky "
                             "factor")
    if d.numel() and not bool((d > 0).all()):
        raise ArgumentValueError(f"{name} must have a positive diagonal (a Cholesky factor); "
                                 f"its smallest diagonal entry is {float(d.min()):.4g}")
    return n


def _nonzero_above_probe(L: torch.Tensor, n: int) -> bool:
    """Whether some of ``L``'s above-diagonal entries (NaN counts) are nonzero: those of the
    last four columns and the middle one, or for a row-major ``L`` of the first four rows
    and the middle one. A column-major ``L`` (``torch.linalg.cholesky``'s) holds its columns
    contiguous in memory, a row-major one its rows (a row of a column-major batch would
    touch a cache line per entry). Three absolute sums of slices. The whole check against
    the one it replaced: ``benchmarks/bench_floor.py``."""
    k = min(n, 4)
    if L.stride(-2) == 1:
        parts = (L[..., : n - k, n - k:], torch.triu(L[..., n - k:, n - k:], 1),
                 L[..., : n // 2, n // 2])
    else:
        parts = (L[..., :k, k:], torch.triu(L[..., :k, :k], 1), L[..., n // 2, n // 2 + 1:])
    return bool(sum(p.abs().sum() for p in parts) != 0)


def first_true_index(mask: torch.Tensor) -> tuple[int, ...] | None:
    """Index of the first ``True`` of a boolean tensor, or ``None`` if there is none.

    Examples:
        >>> first_true_index(torch.tensor([[False, False], [False, True]]))
        (1, 1)
    """
    if mask.dim() == 0:
        return () if bool(mask) else None
    hits = torch.nonzero(mask)
    if hits.shape[0] == 0:
        return None
    return tuple(int(i) for i in hits[0])


def raise_singular_factor(what: str, name: str, diagonal: torch.Tensor) -> None:
    """Raise :class:`NonFiniteError` for ``what`` (``"the solve"``, ``"the inverse"``)
    overflowing on a finite but numerically singular triangular factor ``name``, whose
    diagonal entries are ``diagonal`` (any shape): the message gives the smallest.

    Examples:
        >>> diagonal = torch.tensor([2.0, 1e-300], dtype=torch.float64)
        >>> try:
        ...     raise_singular_factor("the inverse", "L", diagonal)
        ... except NonFiniteError as e:
        ...     print(e)
        the inverse overflowed: L is numerically singular (its smallest diagonal entry is 1e-300)
    """
    smallest = float(diagonal.abs().min())
    raise NonFiniteError(f"{what} overflowed: {name} is numerically singular (its smallest "
                         f"diagonal entry is {smallest:.3g})")


def raise_if_not_pd(failed: torch.Tensor, what: str, *, jitter: float | None = None) -> None:
    """Raise :class:`NotPositiveDefiniteError` if any batch element of ``failed`` is true.

    Args:
        failed: boolean tensor over the batch shape, true where a factorisation failed.
        what: human-readable description of the matrix, used in the message.
        jitter: largest jitter tried, reported in the message when given.

    Examples:
        >>> try:
        ...     raise_if_not_pd(torch.tensor([False, True]), "K")
        ... except NotPositiveDefiniteError as e:
        ...     print(type(e).__name__)
        NotPositiveDefiniteError
    """
    index = first_true_index(failed)
    if index is None:
        return
    where = f" at batch index {index}" if index else ""
    extra = f" even with diagonal jitter {jitter:.3g}" if jitter is not None else ""
    raise NotPositiveDefiniteError(
        f"{what} is not positive definite{where}{extra}", batch_index=index or None,
        jitter=jitter,
    )

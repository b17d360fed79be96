"""Dense ``ij``-indexed grids (``np.mgrid`` conventions) for evaluating functions on tensors.

A range is ``(start, stop, step)``. As in ``np.mgrid``, a real ``step`` is a spacing
(``stop`` excluded, like ``arange``) and an imaginary ``step`` such as ``5j`` is a number of
points (``stop`` included, like ``linspace``). ``(start, stop)`` with ``num=`` is shorthand
for ``(start, stop, num * 1j)``.

Examples:
    >>> grid = Grid.from_ranges((1, 11, 2), (-12, -3, 3))   # np.mgrid[1:11:2, -12:-3:3]
    >>> grid.shape
    (5, 3)
    >>> grid.points().shape
    torch.Size([15, 2])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from bayeskit.errors import ArgumentTypeError, ArgumentValueError, ShapeError
from bayeskit.validation import as_int, check_callable

__all__ = ["Grid", "mgrid", "ogrid", "evaluate_on_grid"]

RangeLike = Sequence[float | complex]


def _axis(spec: RangeLike, num: int | None, dtype: torch.dtype,
          device: torch.device | None) -> torch.Tensor:
    """One axis of the grid from ``(start, stop[, step])``."""
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence):
        raise ArgumentTypeError(f"a range must be a (start, stop[, step]) tuple, got {spec!r}")
    if len(spec) == 2:
        if num is None:
            raise ArgumentValueError(
                f"range {tuple(spec)} has no step: give (start, stop, step), a complex step "
                "like 50j for a number of points, or pass num="
            )
        num = as_int(num, "num", positive=True)
        start, stop, step = spec[0], spec[1], complex(0, num)
    elif len(spec) == 3:
        start, stop, step = spec
    else:
        raise ArgumentValueError(f"a range must have 2 or 3 entries, got {tuple(spec)}")
    for value in (start, stop):
        if isinstance(value, complex) or not math.isfinite(float(value)):
            raise ArgumentValueError(f"range bounds must be finite real numbers, got {tuple(spec)}")
    start, stop = float(start), float(stop)
    if isinstance(step, complex):
        if step.real != 0:
            raise ArgumentValueError(
                f"a complex step must be purely imaginary (e.g. 5j), got {step}")
        count = int(abs(step.imag))
        if count < 1:
            raise ArgumentValueError(f"a complex step asks for at least one point, got {step}")
        return torch.linspace(start, stop, count, dtype=dtype, device=device)
    step = float(step)
    if step == 0 or not math.isfinite(step):
        raise ArgumentValueError(f"step must be a non-zero finite number, got {step}")
    # np.mgrid: ceil((stop - start) / step) points at start + i * step
    count = max(0, math.ceil((stop - start) / step))
    return start + step * torch.arange(count, dtype=dtype, device=device)


@dataclass(frozen=True)
class Grid:
    """A dense rectangular grid in ``D`` dimensions, ``ij``-indexed like ``np.mgrid``.

    Attributes:
        axes: one 1-D tensor of coordinates per dimension.

    Examples:
        >>> grid = Grid.from_ranges((0, 1, 3j), (0, 2, 2j))  # like np.mgrid[0:1:3j, 0:2:2j]
        >>> grid.shape, grid.dense().shape, grid.points().shape
        ((3, 2), torch.Size([2, 3, 2]), torch.Size([6, 2]))
    """

    axes: tuple[torch.Tensor, ...]

    @classmethod
    def from_ranges(cls, *ranges: RangeLike, num: int | Sequence[int] | None = None,
                    dtype: torch.dtype = torch.float64,
                    device: torch.device | None = None) -> Grid:
        """Build a grid from ``(start, stop[, step])`` ranges; ``num`` fills missing steps."""
        if not ranges:
            raise ArgumentValueError("give at least one range")
        if isinstance(num, (str, bytes)):
            raise ArgumentTypeError(f"num must be a number of points (or one per range), got "
                                    f"{num!r}")
        nums = list(num) if isinstance(num, Sequence) else [num] * len(ranges)
        if len(nums) != len(ranges):
            raise ArgumentValueError(f"num has {len(nums)} entries for {len(ranges)} ranges")
        return cls(tuple(_axis(r, n, dtype, device) for r, n in zip(ranges, nums, strict=True)))

    @property
    def shape(self) -> tuple[int, ...]:
        """``(n_1, ..., n_D)``: points along each axis."""
        return tuple(a.shape[0] for a in self.axes)

    @property
    def ndim(self) -> int:
        return len(self.axes)

    def open(self) -> list[torch.Tensor]:
        """Open grid (``np.ogrid``): axis ``d`` shaped to broadcast along dimension ``d``."""
        out = []
        for d, a in enumerate(self.axes):
            shape = [1] * self.ndim
            shape[d] = a.shape[0]
            out.append(a.reshape(shape))
        return out

    def dense(self, indexing: str = "ij") -> torch.Tensor:
        """Stacked coordinates ``[D, n_1, ..., n_D]`` (``np.mgrid``), or ``xy`` order.

        ``indexing="xy"`` swaps the first two grid dimensions, as ``np.meshgrid`` does.
        """
        if indexing not in ("ij", "xy"):
            raise ArgumentValueError(f"indexing must be 'ij' or 'xy', got {indexing!r}")
        return torch.stack(torch.meshgrid(*self.axes, indexing=indexing))

    def points(self) -> torch.Tensor:
        """All grid points as rows ``[P, D]`` with ``P = n_1 * ... * n_D`` (``ij`` order)."""
        return self.dense().reshape(self.ndim, -1).T

    def reshape(self, values: torch.Tensor) -> torch.Tensor:
        """Reshape ``[..., P]`` values, one per point of :meth:`points`, to ``[..., *shape]``."""
        size = math.prod(self.shape)
        if values.shape[-1:] != (size,):
            raise ShapeError(
                f"values must end in the number of grid points {size}, got {tuple(values.shape)}"
            )
        return values.reshape(*values.shape[:-1], *self.shape)


def mgrid(*ranges: RangeLike, num: int | None = None, dtype: torch.dtype = torch.float64,
          device: torch.device | None = None) -> torch.Tensor:
    """Torch version of ``np.mgrid[r_1, ..., r_D]``: returns ``[D, n_1, ..., n_D]``.

    Examples:
        >>> mgrid((-12, -3, 3j), (-5, 5, 5j)).shape   # np.mgrid[-12:-3:3j, -5:5:5j]
        torch.Size([2, 3, 5])
    """
    return Grid.from_ranges(*ranges, num=num, dtype=dtype, device=device).dense()


def ogrid(*ranges: RangeLike, num: int | None = None, dtype: torch.dtype = torch.float64,
          device: torch.device | None = None) -> list[torch.Tensor]:
    """Torch version of ``np.ogrid``: one broadcastable tensor per axis.

    Examples:
        >>> a, b = ogrid((0, 1, 3j), (0, 2, 2j))  # broadcast a + b to the dense [3, 2]
        >>> a.shape, b.shape, (a + b).shape
        (torch.Size([3, 1]), torch.Size([1, 2]), torch.Size([3, 2]))
    """
    return Grid.from_ranges(*ranges, num=num, dtype=dtype, device=device).open()


def evaluate_on_grid(
    fn: Callable[[torch.Tensor], torch.Tensor],
    *ranges: RangeLike,
    num: int | Sequence[int] | None = None,
    batch_size: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | None = None,
) -> tuple[Grid, torch.Tensor]:
    """Evaluate a batched function at every point of a grid.

    Args:
        fn: maps points ``[B, D]`` to values ``[B]`` or ``[B, ...]``.
        ranges: ``(start, stop[, step])`` per dimension (see module docstring).
        num: number of points for ranges given without a step.
        batch_size: evaluate at most this many points per call (memory bound).

    Returns:
        ``(grid, values)`` with ``values: [n_1, ..., n_D, ...]``; ``grid.dense()`` gives the
        matching coordinates, e.g. ``plt.contour(*grid.dense(), values)`` in 2-D.

    Examples:
        >>> grid, z = evaluate_on_grid(lambda x: (x ** 2).sum(-1), (-1, 1), (0, 2), num=3)
        >>> z.shape
        torch.Size([3, 3])
    """
    grid = Grid.from_ranges(*ranges, num=num, dtype=dtype, device=device)
    pts = grid.points()
    check_callable(fn, "fn")
    if batch_size is not None:
        batch_size = as_int(batch_size, "batch_size", positive=True)
    chunks = [pts] if batch_size is None else list(torch.split(pts, batch_size))
    outs = []
    for chunk in chunks:
        value = torch.as_tensor(fn(chunk))
        if value.dim() == 0 or value.shape[0] != chunk.shape[0]:
            raise ShapeError(
                f"fn must return one value per point: input {tuple(chunk.shape)} gave "
                f"{tuple(value.shape)}"
            )
        outs.append(value)
    values = torch.cat(outs) if outs else torch.empty(0, dtype=dtype)
    return grid, values.reshape(*grid.shape, *values.shape[1:])

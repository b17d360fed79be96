"""MNIST from the standard IDX files in a user-given directory (never downloaded).

Accepted layouts: ``DIR/train-images-idx3-ubyte`` (or ``.gz``) and the other three files,
or torchvision's ``DIR/MNIST/raw/...``. Images are returned as ``[N, 784]`` floats in
[0, 1]; binarisation is dynamic (a fresh Bernoulli draw per use, as in the IWAE paper) or
static (one fixed draw).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from bayeskit.errors import ArgumentValueError, NonFiniteError, ShapeError
from bayeskit.validation import as_int, as_path, as_tensor, check_choice, check_generator

__all__ = ["read_idx", "load_mnist", "dynamic_binarize", "static_binarize", "MAX_IDX_BYTES"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


#: the largest IDX payload read (MNIST's training images are 47 MB)
MAX_IDX_BYTES = 1 << 30


def read_idx(path: str | Path, *, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into an array of its declared shape.

    The header is read first and the declared size checked against ``max_bytes`` before
    anything else is read; the data are then streamed into a preallocated array (never
    more than the declared size plus one byte is decompressed), so a hostile or damaged
    file costs at most ``max_bytes`` of memory and gives a clear error.

    Examples:
        >>> import struct, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny-idx3-ubyte"
        >>> _ = path.write_bytes(struct.pack(">BBBBII", 0, 0, 8, 2, 2, 3) + bytes(range(6)))
        >>> read_idx(path)  # uint8 (0x08), 2 dimensions: 2 x 3
        array([[0, 1, 2],
               [3, 4, 5]], dtype=uint8)
    """
    path = as_path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES:
                raise ArgumentValueError(f"{path} is not an IDX file (bad magic number "
                                         f"{head.hex()})")
            ndim = head[3]
            dims = fh.read(4 * ndim)
            if len(dims) != 4 * ndim:
                raise ArgumentValueError(f"{path}: the header is cut short")
            shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(_DTYPES[head[2]])
            expected = dtype.itemsize
            for d in shape:
                expected *= d
            if expected > max_bytes:
                raise ArgumentValueError(
                    f"{path}: header declares shape {shape} ({expected} bytes), more than "
                    f"max_bytes={max_bytes}; pass a larger max_bytes if the file is genuine")
            out = np.empty(expected, dtype=np.uint8)
            view = memoryview(out)
            filled = 0
            while filled < expected:
                # in 1 MiB pieces: gzip's readinto builds a bytes object of the request first
                n = fh.readinto(view[filled:filled + (1 << 20)])
                if not n:
                    break
                filled += n
            extra = fh.read(1)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ArgumentValueError(f"{path} cannot be read as an IDX file: {err}") from None
    if filled != expected or extra:
        raise ArgumentValueError(f"{path}: header declares shape {shape} ({expected} bytes) "
                                 f"but the file holds {'more' if extra else filled} bytes of "
                                 "data")
    return out.view(dtype).reshape(shape)


def _find(directory: Path, name: str) -> Path:
    for base in (directory, directory / "MNIST" / "raw"):
        for candidate in (base / name, base / f"{name}.gz"):
            if candidate.exists():
                return candidate
    raise FileNotFoundError(f"{name}[.gz] not found in {directory} or {directory}/MNIST/raw; "
                            "download MNIST yourself and point load_mnist at that folder")


def load_mnist(directory: str | Path, split: str = "train", *, binarize: str | None = None,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images [N, 784] float32 in [0, 1], labels [N])`` of ``split`` ("train"/"test").

    ``binarize``: ``None`` (grey levels), ``"static"`` (one Bernoulli draw fixed by
    ``seed``) or ``"dynamic"`` (grey levels returned; pass :func:`dynamic_binarize` as
    ``bayeskit.vae.fit(..., transform=...)`` to draw afresh every minibatch).

    Examples:
        >>> import struct, tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())  # two blank 28 x 28 images, labels 3 and 7
        >>> _ = (folder / "train-images-idx3-ubyte").write_bytes(
        ...     struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 28, 28) + bytes(2 * 784))
        >>> _ = (folder / "train-labels-idx1-ubyte").write_bytes(
        ...     struct.pack(">BBBBI", 0, 0, 8, 1, 2) + bytes([3, 7]))
        >>> images, labels = load_mnist(folder)
        >>> images.shape, images.dtype, labels
        (torch.Size([2, 784]), torch.float32, tensor([3, 7]))
    """
    check_choice(split, "split", tuple(_FILES))
    check_choice(binarize, "binarize", (None, "static", "dynamic"))
    directory = as_path(directory, "directory")
    images = read_idx(_find(directory, _FILES[split][0]))
    labels = read_idx(_find(directory, _FILES[split][1]))
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ShapeError(f"unexpected shapes: images {images.shape}, labels {labels.shape}")
    if not np.all(np.isfinite(images)):
        raise NonFiniteError("the MNIST images contain NaN or infinite values")
    if images.min() < 0 or images.max() > 255:
        raise ArgumentValueError(f"MNIST pixels must lie in [0, 255], got "
                                 f"[{images.min()}, {images.max()}]")
    if labels.min() < 0 or labels.max() > 9:
        raise ArgumentValueError(f"MNIST labels must be digits 0-9, got "
                                 f"[{labels.min()}, {labels.max()}]")
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    if binarize == "static":
        x = static_binarize(x, seed)
    return x, torch.from_numpy(labels.astype(np.int64))


def static_binarize(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One fixed Bernoulli draw per pixel with probability equal to its grey level.

    Examples:
        >>> static_binarize(torch.tensor([[0.0, 1.0, 0.5]]))  # 0 and 1 stay; 0.5 is a coin flip
        tensor([[0., 1., 1.]])
    """
    x = _grey_levels(x)
    seed = as_int(seed, "seed", nonnegative=True)
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))


def _grey_levels(x) -> torch.Tensor:
    """``x`` as a floating tensor of probabilities in [0, 1] (a copy for non-tensors)."""
    dtype = x.dtype if isinstance(x, torch.Tensor) and x.is_floating_point() else torch.float32
    x = as_tensor(x, "x", dtype=dtype)
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise ArgumentValueError("x must hold grey levels in [0, 1] (the Bernoulli "
                                 "probabilities); scale the images first, e.g. pixels / 255")
    return x


def dynamic_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fresh Bernoulli draw (use as a per-minibatch ``transform``).

    Examples:
        >>> dynamic_binarize(torch.tensor([[0.0, 1.0]]), torch.Generator().manual_seed(0))
        tensor([[0., 1.]])
    """
    x = _grey_levels(x)
    generator = None if generator is None else check_generator(generator)
    return torch.bernoulli(x, generator=generator)

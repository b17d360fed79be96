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

__all__ = ["read_idx", "load_mnist", "dynamic_binarize", "static_binarize"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into an array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: header declares shape {shape} ({expected} bytes) but the "
                         f"file holds {len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


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
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if binarize not in (None, "static", "dynamic"):
        raise ValueError(f"binarize must be None, 'static' or 'dynamic', got {binarize!r}")
    directory = Path(directory)
    images = read_idx(_find(directory, _FILES[split][0]))
    labels = read_idx(_find(directory, _FILES[split][1]))
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"unexpected shapes: images {images.shape}, labels {labels.shape}")
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    if binarize == "static":
        x = static_binarize(x, seed)
    return x, torch.from_numpy(labels.astype(np.int64))


def static_binarize(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One fixed Bernoulli draw per pixel with probability equal to its grey level."""
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))


def dynamic_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fresh Bernoulli draw (use as a per-minibatch ``transform``)."""
    return torch.bernoulli(x, generator=generator)

import gzip

import numpy as np
import pytest
import torch

from bayeskit.data import (
    dynamic_binarize,
    load_digits_split,
    load_mnist,
    read_idx,
    static_binarize,
)


def write_idx(path, array: np.ndarray, code: int, compress: bool = False):
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    path = tmp_path / ("img.gz" if compress else "img")
    write_idx(path, images, 0x08, compress)
    assert np.array_equal(read_idx(path), images)
    ints = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    write_idx(tmp_path / "ints", ints, 0x0C)
    assert np.array_equal(read_idx(tmp_path / "ints"), ints)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x56\x78")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((2, 2), np.uint8), 0x08)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="declares shape"):
        read_idx(tmp_path / "short")


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_load_mnist_from_a_user_directory(tmp_path, layout):
    rng = np.random.default_rng(1)
    base = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    base.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    write_idx(base / "t10k-images-idx3-ubyte.gz", images, 0x08, compress=True)
    write_idx(base / "t10k-labels-idx1-ubyte", labels, 0x08)
    x, y = load_mnist(tmp_path, "test")
    assert x.shape == (5, 784) and x.dtype == torch.float32
    assert torch.allclose(x, torch.from_numpy(images.reshape(5, -1) / 255.0).float())
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    xs, _ = load_mnist(tmp_path, "test", binarize="static", seed=3)
    assert set(xs.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(xs, load_mnist(tmp_path, "test", binarize="static", seed=3)[0])
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match="binarize"):
        load_mnist(tmp_path, "test", binarize="otsu")


def test_binarisation_is_unbiased():
    x = torch.full((200, 50), 0.3)
    b = dynamic_binarize(x, torch.Generator().manual_seed(0))
    # mean of 10 000 Bernoulli(0.3): sd 0.0046
    assert abs(float(b.mean()) - 0.3) < 4 * (0.3 * 0.7 / 10_000) ** 0.5
    assert not torch.equal(b, dynamic_binarize(x, torch.Generator().manual_seed(1)))
    assert torch.equal(static_binarize(x, 2), static_binarize(x, 2))


def test_digits_split():
    x_tr, y_tr, x_te, y_te = load_digits_split()
    assert x_tr.shape == (1437, 64) and x_te.shape == (360, 64)
    assert float(x_tr.min()) == 0.0 and float(x_tr.max()) == 1.0
    assert torch.equal(torch.bincount(y_te), torch.bincount(load_digits_split()[3]))
    assert set(torch.bincount(y_te).tolist()) <= {35, 36, 37}  # stratified


def test_hostile_idx_files_fail_fast_with_clear_errors(tmp_path):
    """Issue 14: a small .gz declaring a huge payload was decompressed whole before the
    size check (peak 2.27 GB); 65536^4 dimensions gave an opaque reshape error; labels above
    9 and NaN images were accepted."""
    import gzip
    import struct
    import tracemalloc

    from bayeskit.errors import BayeskitError

    # a 1 MB-ish gzip bomb: header declares 60000 x 28 x 28, payload is 200 MB of zeros
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as fh:
        fh.write(struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", 60000, 28, 28))
        chunk = bytes(1 << 20)
        for _ in range(200):
            fh.write(chunk)
    tracemalloc.start()
    try:
        with pytest.raises(BayeskitError, match="more"):
            read_idx(bomb)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak_mb < 60, peak_mb  # the declared 47 MB plus 1 MiB pieces (was 400 MB)
    huge = tmp_path / "huge"
    huge.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 4) + struct.pack(">IIII", *[65535] * 4))
    with pytest.raises(BayeskitError, match="max_bytes"):
        read_idx(huge)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8), 0x08)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 12, 3], np.uint8), 0x08)
    with pytest.raises(BayeskitError, match="labels"):
        load_mnist(tmp_path, "test")
    nan_images = np.zeros((3, 28, 28), ">f4")
    nan_images[0, 0, 0] = np.nan
    write_idx(tmp_path / "t10k-images-idx3-ubyte", nan_images, 0x0D)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], np.uint8), 0x08)
    with pytest.raises(BayeskitError, match="NaN"):
        load_mnist(tmp_path, "test")

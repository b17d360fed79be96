"""Atomic writes: a failed write leaves the old file and no temporary behind."""

import pytest
import torch

from bayeskit.training import atomic_save, atomic_write, atomic_write_text


def test_atomic_writes_replace_or_keep(tmp_path):
    path = tmp_path / "sub" / "state.pt"
    atomic_save({"x": torch.arange(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.arange(3))

    def crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.arange(3))
    assert [p.name for p in path.parent.iterdir()] == ["state.pt"]
    atomic_write_text(tmp_path / "a.json", "{}")
    assert (tmp_path / "a.json").read_text() == "{}"


def test_files_get_the_umask_permissions_and_stale_temporaries_are_removed(tmp_path):
    import os

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "r.json", "{}")
        assert (os.stat(tmp_path / "r.json").st_mode & 0o777) == 0o640
    finally:
        os.umask(old)
    # a writer killed mid-write left its temporary file (pid of a process that is gone)
    stale = tmp_path / ".r.json.999999999.abc.tmp"
    stale.write_text("half")
    atomic_write_text(tmp_path / "r.json", "[]")
    assert not stale.exists() and (tmp_path / "r.json").read_text() == "[]"

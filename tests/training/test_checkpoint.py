"""The one checkpoint schema: fingerprints, refusal of foreign or damaged files, no silent
overwrite; SVGP training through the shared trainer."""

import pytest
import torch

from bayeskit.errors import CheckpointError
from bayeskit.gp import SVGP, SquaredExponential
from bayeskit.training import Checkpoint, fingerprint

F64 = torch.float64


def test_fingerprint_separates_data_and_settings():
    a = torch.arange(4.0)
    assert fingerprint(a) == fingerprint(a.clone())
    assert fingerprint(a) != fingerprint(a + 1)
    assert fingerprint(a) != fingerprint(a.double())
    assert fingerprint(lr=0.1) != fingerprint(lr=0.2)
    assert fingerprint(lr=0.1, seed=0) == fingerprint(seed=0, lr=0.1)


def test_resume_refuse_and_overwrite(tmp_path):
    path = tmp_path / "run.pt"
    mine = dict(kind="demo", data=fingerprint(torch.ones(3)), settings=fingerprint(lr=0.1))
    Checkpoint(path, **mine).save({"epoch": 2})
    assert Checkpoint(path, **mine).load() == {"epoch": 2}
    with pytest.raises(CheckpointError, match="other data"):
        Checkpoint(path, **{**mine, "data": fingerprint(torch.zeros(3))}).load()
    with pytest.raises(CheckpointError, match="other settings"):
        Checkpoint(path, **{**mine, "settings": fingerprint(lr=0.2)}).load()
    with pytest.raises(CheckpointError, match="'demo' run"):
        Checkpoint(path, **{**mine, "kind": "svgp"}).load()
    with pytest.raises(CheckpointError, match="overwrite=True"):
        Checkpoint(path, **mine, resume=False).load()
    assert Checkpoint(path, **mine, resume=False, overwrite=True).load() is None


def test_damaged_checkpoint_names_the_file_and_never_suggests_unsafe_loading(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        Checkpoint(path, kind="demo", data=None, settings=None).load()
    assert str(path) in str(err.value) and "weights_only=False" not in str(err.value)


def _svgp_data(shift=0.0):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(100, 1, dtype=F64, generator=g) * 6
    return X, torch.sin(X[:, 0]) + shift


def test_svgp_refuses_a_checkpoint_of_other_data(tmp_path):
    X, y = _svgp_data()
    path = tmp_path / "svgp.pt"
    model = SVGP(X[::10], SquaredExponential(), num_data=100)
    model.fit(X, y, epochs=2, batch_size=50, checkpoint=path)
    with pytest.raises(CheckpointError, match="other data"):
        SVGP(X[::10], SquaredExponential(), num_data=100).fit(
            X, _svgp_data(1.0)[1], epochs=3, batch_size=50, checkpoint=path)
    with pytest.raises(CheckpointError, match="other settings"):
        SVGP(X[::10], SquaredExponential(), num_data=100).fit(
            X, y, epochs=3, batch_size=25, checkpoint=path)
    with pytest.raises(CheckpointError, match="overwrite"):
        SVGP(X[::10], SquaredExponential(), num_data=100).fit(
            X, y, epochs=3, batch_size=50, checkpoint=path, resume=False)
    hist = SVGP(X[::10], SquaredExponential(), num_data=100).fit(
        X, y, epochs=3, batch_size=50, checkpoint=path, resume=False, overwrite=True)
    assert len(hist) == 3

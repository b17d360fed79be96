"""One progress convention: explicit argument, then set_progress, then BAYESKIT_PROGRESS,
then "is stderr a terminal"."""

import io
import sys

import pytest

from bayeskit.training import progress_bar, progress_enabled, set_progress


@pytest.fixture(autouse=True)
def _reset():
    yield
    set_progress(None)


def test_precedence(monkeypatch):
    monkeypatch.delenv("BAYESKIT_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert progress_enabled(None) is False
    monkeypatch.setenv("BAYESKIT_PROGRESS", "1")
    assert progress_enabled(None) is True
    set_progress(False)
    assert progress_enabled(None) is False
    assert progress_enabled(True) is True
    set_progress(None)
    monkeypatch.setenv("BAYESKIT_PROGRESS", "off")
    assert progress_enabled(None) is False


def test_bar_draws_only_when_enabled(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with progress_bar(5, desc="quiet", progress=False) as bar:
        bar.update(5)
    assert err.getvalue() == ""
    bar = progress_bar(5, desc="loud", progress=True)
    bar.update(5)
    bar.close()
    assert "loud" in err.getvalue()


def test_bad_values():
    with pytest.raises(TypeError, match="True, False or None"):
        set_progress("yes")
    with pytest.raises(TypeError, match="progress"):
        progress_enabled("no")

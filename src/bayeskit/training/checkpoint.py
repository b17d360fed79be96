"""The one checkpoint schema of every long run (SVGP, VAE, flows, Gibbs, the BO loop).

A checkpoint file holds::

    {"schema": 1, "kind": "svgp", "data": "<digest>", "settings": "<digest>",
     "state": {...}}

``data`` is a digest of the training data (shapes, dtypes and bytes) and ``settings`` one of
the settings that must not change across a resume (batch size, seed, objective, ...), so a
run never continues from a checkpoint of other data or settings. The rules, the same in
every loop:

- ``resume=True`` (default) and the file exists: continue from it; if it belongs to other
  data or settings, or is damaged, raise :class:`~bayeskit.errors.CheckpointError`
  naming the file.
- ``resume=False`` and the file exists: refuse (a previous run is never overwritten
  silently) unless ``overwrite=True``, which starts afresh and replaces it.
- Files are written atomically (:mod:`bayeskit.training.io`) and read with
  ``weights_only=True``.

Examples:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.pt"
    >>> ckpt = Checkpoint(path, kind="demo", data=fingerprint(torch.ones(3)),
    ...                   settings=fingerprint(lr=0.1))
    >>> ckpt.load() is None  # nothing to resume yet
    True
    >>> ckpt.save({"epoch": 1})
    >>> ckpt.load()["epoch"]
    1
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from bayeskit.errors import CheckpointError
from bayeskit.training.io import atomic_save, atomic_write_text
from bayeskit.validation import as_path, check_choice, check_instance

__all__ = ["Checkpoint", "fingerprint", "load_state"]

SCHEMA = 1


def _update(h, value) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"tensor{tuple(t.shape)}{t.dtype}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        _update(h, torch.from_numpy(np.ascontiguousarray(value)))
    elif isinstance(value, (list, tuple)):
        h.update(f"seq{len(value)}".encode())
        for v in value:
            _update(h, v)
    elif isinstance(value, dict):
        h.update(f"dict{len(value)}".encode())
        for k in sorted(value, key=str):
            h.update(str(k).encode())
            _update(h, value[k])
    else:
        h.update(json.dumps(value, sort_keys=True, default=repr).encode())


def fingerprint(*values, **named) -> str:
    """A short hex digest of tensors, arrays, numbers, strings and nested lists/dicts of
    them (order matters; keyword names are part of the digest).

    Examples:
        >>> a = fingerprint(torch.arange(3.0), lr=0.1)
        >>> a == fingerprint(torch.arange(3.0), lr=0.1), a == fingerprint(torch.arange(3.0), lr=0.2)
        (True, False)
    """
    h = hashlib.blake2b(digest_size=16)
    _update(h, list(values))
    _update(h, named)
    return h.hexdigest()


def load_state(path: str | Path, *, format: str = "torch") -> dict:
    """``torch.load(path, weights_only=True)`` (or ``json.loads`` for ``format="json"``)
    with a clear :class:`CheckpointError` for a damaged or foreign file (never a suggestion
    to load unsafely).

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> ckpt = Checkpoint(folder / "run.pt", kind="demo", data=None, settings=None)
        >>> ckpt.save({"step": 5})
        >>> sorted(load_state(folder / "run.pt"))  # the raw file: state and its provenance
        ['data', 'kind', 'schema', 'settings', 'state']
    """
    path = as_path(path)
    check_choice(format, "format", ("torch", "json"))
    try:
        if format == "json":
            return json.loads(path.read_text(encoding="utf-8"))
        return torch.load(path, weights_only=True, map_location="cpu")
    except (OSError, UnicodeDecodeError, EOFError, RuntimeError, pickle.UnpicklingError,
            zipfile.BadZipFile, ValueError, KeyError) as err:
        raise CheckpointError(
            f"checkpoint {path} is damaged or not a bayeskit checkpoint "
            f"({type(err).__name__}); delete it or pass overwrite=True to start afresh"
        ) from None


class Checkpoint:
    """One run's checkpoint file: where it lives, what it belongs to, the resume policy.

    Args:
        path: the file (``None``: no checkpointing; every method is then a no-op).
        kind: the loop that writes it (``"svgp"``, ``"vae"``, ``"flow"``, ``"gibbs"``,
            ``"bo"``): a checkpoint of another loop is refused.
        data: :func:`fingerprint` of the training data (``None`` when it cannot be
            computed, e.g. a streaming DataLoader: then it is not checked).
        settings: :func:`fingerprint` of the settings a resume must share.
        resume: continue from an existing file (else refuse it unless ``overwrite``).
        overwrite: with ``resume=False``, start afresh and replace an existing file.
        format: ``"torch"`` (``torch.save``; tensors) or ``"json"`` (plain numbers and
            strings; nothing executable is ever loaded).

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> data = fingerprint([1.0])  # what the run belongs to
        >>> ckpt = Checkpoint(folder / "run.pt", kind="demo", data=data, settings=None)
        >>> ckpt.load() is None  # nothing saved yet: a fresh run
        True
        >>> ckpt.save({"step": 5})
        >>> Checkpoint(folder / "run.pt", kind="demo", data=data, settings=None).load()
        {'step': 5}
    """

    def __init__(self, path: str | Path | None, *, kind: str, data: str | None,
                 settings: str | None, resume: bool = True, overwrite: bool = False,
                 format: str = "torch"):
        self.path = as_path(path) if path is not None else None
        check_instance(kind, "kind", str, "a str naming the loop")
        for name, value in (("data", data), ("settings", settings)):
            if value is not None:
                check_instance(value, name, str, "a fingerprint (a str) or None")
        self.kind, self.data, self.settings = kind, data, settings
        self.resume, self.overwrite = bool(resume), bool(overwrite)
        self.format = check_choice(format, "format", ("torch", "json"))

    def load(self) -> dict | None:
        """The saved state to resume from, or ``None`` to start afresh."""
        if self.path is None or not self.path.exists():
            return None
        if not self.resume:
            if self.overwrite:
                return None
            raise CheckpointError(
                f"checkpoint {self.path} already exists and resume=False: a previous run "
                "would be overwritten; pass resume=True to continue it, overwrite=True to "
                "replace it, or another path")
        saved = load_state(self.path, format=self.format)
        if not isinstance(saved, dict) or saved.get("schema") != SCHEMA:
            raise CheckpointError(
                f"checkpoint {self.path} was not written by this version of bayeskit's "
                "checkpoint schema; delete it or pass resume=False, overwrite=True")
        if saved.get("kind") != self.kind:
            raise CheckpointError(
                f"checkpoint {self.path} belongs to a {saved.get('kind')!r} run, not "
                f"{self.kind!r}; use another path")
        for field, what in (("data", "data"), ("settings", "settings")):
            mine, theirs = getattr(self, field), saved.get(field)
            if mine is not None and theirs is not None and mine != theirs:
                raise CheckpointError(
                    f"checkpoint {self.path} belongs to other {what} than this run's; resume "
                    f"with the same {what}, or pass resume=False, overwrite=True to start "
                    "afresh (or use another path)")
        return saved["state"]

    def save(self, state: dict) -> None:
        """Write ``state`` atomically with this run's fingerprints."""
        if self.path is None:
            return
        record = {"schema": SCHEMA, "kind": self.kind, "data": self.data,
                  "settings": self.settings, "state": state}
        if self.format == "json":
            atomic_write_text(self.path, json.dumps(record))
        else:
            atomic_save(record, self.path)

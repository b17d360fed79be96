"""``bayeskit reproduce``: regenerate the reference material's figures and numbers.

Each topic is a module in this package with ``TITLE`` and ``run(ctx) -> TopicResult``;
register it in :data:`TOPICS`. Topics write PNGs into ``ctx.out`` and report every number
next to its reference value.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bayeskit.cli.reproduce.report import TopicResult, provenance, write_report
from bayeskit.errors import ArgumentTypeError, ArgumentValueError
from bayeskit.validation import as_int, as_path, check_callable, check_instance

__all__ = ["TOPICS", "Context", "reproduce"]

log = logging.getLogger(__name__)

#: topic name -> module implementing it, in report order
TOPICS: dict[str, str] = {
    "cholesky": "bayeskit.cli.reproduce.cholesky",
    "polyagamma": "bayeskit.cli.reproduce.polyagamma",
    "kg": "bayeskit.cli.reproduce.kg",
    "svgp": "bayeskit.cli.reproduce.svgp",
    "pgsvgp": "bayeskit.cli.reproduce.pgsvgp",
    "ratio": "bayeskit.cli.reproduce.ratio",
    "bijectors": "bayeskit.cli.reproduce.bijectors",
    "vae": "bayeskit.cli.reproduce.vae",
    "grids": "bayeskit.cli.reproduce.grids",
}


@dataclass(frozen=True)
class Context:
    """What a topic needs: where to write, how big to go, which seed, and where to say
    what it is doing (``on_step(message)``; the command line prints it)."""

    out: Path
    quick: bool = False
    seed: int = 0
    on_step: Callable[[str], None] | None = None

    def __post_init__(self):
        object.__setattr__(self, "out", as_path(self.out, "out"))
        object.__setattr__(self, "seed", as_int(self.seed, "seed", nonnegative=True))
        check_instance(self.quick, "quick", bool, "True or False")
        if self.on_step is not None:
            check_callable(self.on_step, "on_step")

    def path(self, filename: str) -> Path:
        return self.out / filename

    def step(self, message: str) -> None:
        """Report progress inside a long topic (one line per stage)."""
        log.info(message)
        if self.on_step is not None:
            self.on_step(message)


def check_out(out: str | Path) -> Path:
    """The output folder, created and checked writable *before* anything is computed; a
    ``ValueError`` with a one-line reason otherwise."""
    out = as_path(out, "out")
    if out.exists() and not out.is_dir():
        raise ArgumentValueError(f"--out {out} is a file, not a folder; pass a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".bayeskit-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ArgumentValueError(f"cannot write into --out {out}: {err.strerror or err}") from None
    return out


def reproduce(topics: list[str], out: str | Path, *, quick: bool = False,
              seed: int = 0, on_topic=None, command: str | None = None,
              on_step: Callable[[str, str], None] | None = None) -> list[TopicResult]:
    """Run ``topics`` (names from :data:`TOPICS`, or ``["all"]``) and write the report
    (each section with its provenance: versions, date, CPU, seed, ``command``);
    ``on_topic(result)`` is called as each topic finishes and ``on_step(topic, message)``
    at each stage inside one (progress)."""
    if isinstance(topics, (str, bytes)) or not isinstance(topics, (list, tuple)):
        raise ArgumentTypeError(f"topics must be a list of topic names (e.g. ['all']), got "
                                f"{type(topics).__name__}")
    unknown = [n for n in topics if not isinstance(n, str) or n not in ("all", *TOPICS)]
    if unknown:
        raise ArgumentValueError(f"unknown topic(s) {unknown}; choose from {['all', *TOPICS]}")
    names = list(TOPICS) if (not topics or "all" in topics) else list(dict.fromkeys(topics))
    ctx = Context(check_out(out), quick=quick, seed=seed)
    run_info = provenance(seed=seed, quick=quick, command=command)
    results = []
    for name in names:
        module = importlib.import_module(TOPICS[name])
        ctx = dataclasses.replace(ctx, on_step=None if on_step is None else
                                  functools.partial(on_step, name))
        log.info("reproducing %s", name)
        start = time.perf_counter()
        # topics seed torch's global generator (module initialisation draws from it):
        # fork it so the caller's random state is left as it was
        with torch.random.fork_rng(devices=[]):
            result = module.run(ctx)
        result.seconds = time.perf_counter() - start
        results.append(result)
        # a partial report survives a crash later
        write_report(results, ctx.out, quick=quick, run_info=run_info)
        if on_topic is not None:
            on_topic(result)
    return results

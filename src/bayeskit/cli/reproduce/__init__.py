"""``bayeskit reproduce``: regenerate the reference material's figures and numbers.

Each topic is a module in this package with ``TITLE`` and ``run(ctx) -> TopicResult``;
register it in :data:`TOPICS`. Topics write PNGs into ``ctx.out`` and report every number
next to its reference value.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from bayeskit.cli.reproduce.report import TopicResult, write_report

__all__ = ["TOPICS", "Context", "reproduce"]

log = logging.getLogger(__name__)

#: topic name -> module implementing it, in report order
TOPICS: dict[str, str] = {
    "cholesky": "bayeskit.cli.reproduce.cholesky",
    "polyagamma": "bayeskit.cli.reproduce.polyagamma",
    "kg": "bayeskit.cli.reproduce.kg",
    "svgp": "bayeskit.cli.reproduce.svgp",
    "ratio": "bayeskit.cli.reproduce.ratio",
    "bijectors": "bayeskit.cli.reproduce.bijectors",
    "vae": "bayeskit.cli.reproduce.vae",
    "grids": "bayeskit.cli.reproduce.grids",
}


@dataclass(frozen=True)
class Context:
    """What a topic needs: where to write, how big to go, which seed."""

    out: Path
    quick: bool = False
    seed: int = 0

    def path(self, filename: str) -> Path:
        return self.out / filename


def reproduce(topics: list[str], out: str | Path, *, quick: bool = False,
              seed: int = 0) -> list[TopicResult]:
    """Run ``topics`` (names from :data:`TOPICS`, or ``["all"]``) and write the report."""
    names = list(TOPICS) if (not topics or "all" in topics) else list(dict.fromkeys(topics))
    unknown = [n for n in names if n not in TOPICS]
    if unknown:
        raise ValueError(f"unknown topic(s) {unknown}; choose from {['all', *TOPICS]}")
    ctx = Context(Path(out), quick=quick, seed=seed)
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        module = importlib.import_module(TOPICS[name])
        log.info("reproducing %s", name)
        start = time.perf_counter()
        result = module.run(ctx)
        result.seconds = time.perf_counter() - start
        results.append(result)
        write_report(results, ctx.out, quick=quick)  # partial report survives a crash later
    return results

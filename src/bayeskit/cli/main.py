"""Entry point of the ``bayeskit`` command."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

import bayeskit

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from bayeskit.cli.reproduce import TOPICS

    plain = re.sub(r":\w+:`~?([^`]+)`", r"\1", bayeskit.__doc__ or "").replace("``", "")
    parser = argparse.ArgumentParser(prog="bayeskit", description=plain)
    parser.add_argument("--version", action="version", version=bayeskit.__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "reproduce",
        help="regenerate the reference material's figures and numbers",
        description="Write one PNG per figure, results.json and index.html into --out.",
    )
    rep.add_argument("topics", nargs="*", default=["all"],
                     help=f"topics to run: all (default) or any of {', '.join(TOPICS)}")
    rep.add_argument("--out", default="results", help="output folder (default: results)")
    rep.add_argument("--quick", action="store_true", help="reduced sizes, seconds per topic")
    rep.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    # -v also after the subcommand (bayeskit reproduce -v); SUPPRESS keeps the global one
    rep.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                     help="log progress")
    chk = sub.add_parser(
        "check-report",
        help="check a written report: images load, links land, every figure is shown",
        description="Check --out/index.html as a reader meets it; with a headless Chromium "
                    "installed, also open it there and capture it as "
                    "--out/report-screenshot-NN.png to look at.")
    chk.add_argument("--out", default="results", help="report folder (default: results)")
    return parser


def _check_report(out: str) -> int:
    from bayeskit.cli.reproduce.check import check_in_browser, check_report, render_screenshot

    problems = check_report(out)
    browser = check_in_browser(out) if not problems else None
    if browser is not None:
        problems += browser[0]
    for problem in problems:
        print(f"check-report: {problem}", file=sys.stderr)
    if problems:
        return 1
    if browser is None:
        print(f"check-report: {out}/index.html: every image loads, every link lands; no "
              "Chromium on this machine, so the page was not opened in a browser nor "
              "captured (Debian: apt install chromium)")
        return 0
    tiles = render_screenshot(out, Path(out) / "report-screenshot.png",
                              height=browser[1] + 40)
    print(f"check-report: {out}/index.html: every image loads, every link lands, also in "
          f"headless Chromium; the page is captured in {len(tiles)} screenshots, "
          f"{tiles[0].name} .. {tiles[-1].name}: look at them")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "check-report":
        return _check_report(args.out)
    if args.command == "reproduce":
        from bayeskit.cli.reproduce import reproduce

        def progress(r):  # one line per topic, as soon as it finishes
            checked = [n for n in r.numbers if n.within_tolerance is not None]
            print(f"{r.name:10s} {len(r.figures)} figure(s), "
                  f"{len(checked) - len(r.failures)}/{len(checked)} numbers within tolerance, "
                  f"{r.seconds:.1f} s", flush=True)

        started = time.perf_counter()

        def step(topic, message):  # stages inside a long topic, as they start
            print(f"  {topic}: {message} ({time.perf_counter() - started:.0f} s)", flush=True)

        try:
            results = reproduce(args.topics, args.out, quick=args.quick, seed=args.seed,
                                on_topic=progress, on_step=step,
                                command=" ".join(["bayeskit", *(argv or sys.argv[1:])]))
        except ValueError as err:
            print(f"bayeskit reproduce: {err}", file=sys.stderr)
            return 2
        bad = [(r.name, n.name) for r in results for n in r.failures]
        print(f"report: {Path(args.out) / 'index.html'}")
        if bad:
            print(f"outside tolerance: {bad}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

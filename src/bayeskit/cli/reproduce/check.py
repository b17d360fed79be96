"""Check a written report as a reader would meet it (``bayeskit check-report``,
``make check-report``): every image loads and shows something, every internal link lands,
every figure of ``results.json`` is on the page; with a headless Chromium on the machine,
the page is also rendered to a screenshot to look at.

Examples:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (out / "index.html").write_text("<a href='#x'>x</a><img src='a.png' alt='a'>")
    >>> check_report(out)
    ['a.png: missing (an <img> source)', "#x: no element has id 'x' (an internal link)"]
"""

from __future__ import annotations

import html.parser
import json
import shutil
import subprocess
from pathlib import Path

__all__ = ["check_report", "render_screenshot", "find_chromium"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Page(html.parser.HTMLParser):
    """Images (source, alt), link targets and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, str | None]] = []
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append((a.get("src") or "", a.get("alt")))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])


def _image_problem(path: Path) -> str | None:
    """Why the PNG at ``path`` would not show a figure, or ``None``."""
    if not path.is_file():
        return "missing"
    if path.read_bytes()[:8] != PNG_SIGNATURE:
        return "not a PNG"
    try:
        from PIL import Image

        with Image.open(path) as img:
            img.load()
            width, height = img.size
            lo, hi = img.convert("L").getextrema()
    except Exception as err:  # noqa: BLE001 - any decoding failure is the finding
        return f"does not decode ({type(err).__name__}: {err})"
    if width < 100 or height < 100:
        return f"only {width}x{height} pixels"
    if lo == hi:
        return "blank (one colour)"
    return None


def check_report(out: str | Path) -> list[str]:
    """Problems a reader of ``out/index.html`` would meet; empty when there are none."""
    out = Path(out)
    index = out / "index.html"
    if not index.is_file():
        return [f"{index}: no report (run bayeskit reproduce first)"]
    page = _Page()
    page.feed(index.read_text(encoding="utf-8"))
    problems = []
    for src, alt in page.images:
        problem = _image_problem(out / src)
        if problem:
            problems.append(f"{src}: {problem} (an <img> source)")
        if not alt:
            problems.append(f"{src}: no alt text")
    for href in page.links:
        if href.startswith("#"):
            if href[1:] not in page.ids:
                problems.append(f"{href}: no element has id '{href[1:]}' (an internal link)")
        elif "://" not in href and not href.startswith("mailto:"):
            if not (out / href.split("#")[0]).exists():
                problems.append(f"{href}: the linked file is missing")
    results = out / "results.json"
    if results.is_file():
        shown = {src for src, _ in page.images}
        for topic, entry in json.loads(results.read_text()).items():
            for fig in entry.get("figures", []) if isinstance(entry, dict) else []:
                if fig.get("file") not in shown:
                    problems.append(f"{fig.get('file')}: a figure of '{topic}' is not on the page")
    if not page.images:
        problems.append("index.html shows no figures")
    return problems


def find_chromium() -> str | None:
    """A headless-capable Chromium/Chrome on the PATH, or ``None``."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render_screenshot(out: str | Path, dest: str | Path, *, height: int = 12000
                      ) -> Path | None:
    """Render ``out/index.html`` in headless Chromium to the PNG ``dest`` (the whole page
    down to ``height`` pixels); ``None`` when no Chromium is installed."""
    browser = find_chromium()
    if browser is None:
        return None
    dest = Path(dest).resolve()
    subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox",
                    f"--screenshot={dest}", f"--window-size=1200,{height}",
                    (Path(out) / "index.html").resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    return dest

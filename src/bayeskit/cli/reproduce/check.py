"""Check a written report as a reader would meet it (``bayeskit check-report``,
``make check-report``): every image loads and shows something, every internal link lands,
every figure of ``results.json`` is on the page. With a headless Chromium on the machine
the page is also opened in it, served over localhost: the browser's own account of which
images failed to decode and which links lead nowhere is added to the findings, and the
rendered page is captured as screenshots to look at.

Examples:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (out / "index.html").write_text("<a href='#x'>x</a><img src='a.png' alt='a'>")
    >>> check_report(out)
    ['a.png: missing (an <img> source)', "#x: no element has id 'x' (an internal link)"]
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

__all__ = ["check_report", "check_in_browser", "render_screenshot", "find_chromium"]

# Chromium as a batch tool on a machine with no outside network: no first-run, sync,
# component-update or background connections, a fresh profile per run.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")
PROBE_PATH = "/__bayeskit_probe__.html"
# Runs in the browser: opens index.html in a same-origin frame, makes every image load,
# then writes what it found into #result (read back through --dump-dom).
PROBE_PAGE = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="page" src="index.html" style="width:1200px;height:900px"></iframe>
<script>
const frame = document.getElementById("page");
frame.addEventListener("load", async () => {
  const doc = frame.contentDocument;
  const images = [...doc.images];
  await Promise.all(images.map(img => {
    img.loading = "eager";
    return img.complete ? null : new Promise(done => { img.onload = img.onerror = done; });
  }));
  const broken = images.filter(img => !(img.complete && img.naturalWidth > 0))
                       .map(img => img.getAttribute("src"));
  const anchors = [...doc.querySelectorAll("a[href]")].map(a => a.getAttribute("href"));
  const deadAnchors = anchors.filter(h => h.startsWith("#")
      && !doc.getElementById(decodeURIComponent(h.slice(1))));
  const files = anchors.filter(h => !h.startsWith("#") && !h.includes("://")
                                    && !h.startsWith("mailto:"));
  const deadFiles = [];
  for (const h of files) {
    const r = await fetch(h.split("#")[0], {method: "HEAD"});
    if (!r.ok) deadFiles.push(h + " (HTTP " + r.status + ")");
  }
  document.getElementById("result").textContent = JSON.stringify({
    images: images.length, broken, deadAnchors, deadFiles,
    height: doc.documentElement.scrollHeight});
});
</script></body></html>"""

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


class _ReportServer(http.server.SimpleHTTPRequestHandler):
    """Serves the report folder, plus the probe page at ``PROBE_PATH``."""

    def do_GET(self):  # noqa: N802 - the http.server hook's name
        if self.path == PROBE_PATH:
            body = PROBE_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            super().do_GET()

    def log_message(self, *args):  # quiet: the findings are the output
        pass


def _chromium(browser: str, *args: str, timeout: float = 120) -> str:
    """Run headless Chromium with a fresh profile; its standard output."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              check=True, capture_output=True, text=True, timeout=timeout)
    return done.stdout


class _served:
    """``with _served(folder) as url:`` the folder over http://127.0.0.1 on a free port."""

    def __init__(self, folder: Path):
        handler = functools.partial(_ReportServer, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def check_in_browser(out: str | Path) -> tuple[list[str], int] | None:
    """Open ``out/index.html`` in headless Chromium over localhost and report what the
    browser met: images that did not load or decode, ``#`` links to no element, links
    to files the server does not have. Returns (problems, page height in CSS pixels), or
    ``None`` when no Chromium is installed."""
    browser = find_chromium()
    if browser is None:
        return None
    with _served(Path(out)) as url:
        dom = _chromium(browser, "--virtual-time-budget=30000", "--dump-dom",
                        url + PROBE_PATH)
    start = dom.find('<pre id="result">')
    text = html.unescape(dom[start + len('<pre id="result">'):dom.find("</pre>", start)])
    if start < 0 or text == "pending":
        return ["the browser did not finish loading index.html within 30 s"], 0
    found = json.loads(text)
    problems = [f"{src}: the browser could not show it (an <img> source)"
                for src in found["broken"]]
    problems += [f"{href}: the browser found no element with that id (an internal link)"
                 for href in found["deadAnchors"]]
    problems += [f"{href}: the browser could not open it" for href in found["deadFiles"]]
    if found["images"] == 0:
        problems.append("the browser saw no images on index.html")
    return problems, int(found["height"])


def render_screenshot(out: str | Path, dest: str | Path, *, height: int = 12000,
                      tile: int = 1600) -> list[Path] | None:
    """Render ``out/index.html`` in headless Chromium, 1200 CSS pixels wide and ``height``
    tall, and save it as PNG tiles ``tile`` pixels high, ``dest`` with ``-01``, ``-02``,
    ... before the suffix (small enough to look at one by one). The tiles' paths, or
    ``None`` when no Chromium is installed."""
    browser = find_chromium()
    if browser is None:
        return None
    from PIL import Image

    dest = Path(dest).resolve()
    whole = dest.with_name(dest.stem + "-page.png")
    with _served(Path(out)) as url:
        _chromium(browser, f"--screenshot={whole}", f"--window-size=1200,{height}",
                  url + "/index.html")
    tiles = []
    with Image.open(whole) as page:
        for k, top in enumerate(range(0, page.height, tile), start=1):
            path = dest.with_name(f"{dest.stem}-{k:02d}{dest.suffix}")
            page.crop((0, top, page.width, min(top + tile, page.height))).save(path)
            tiles.append(path)
    whole.unlink()
    return tiles

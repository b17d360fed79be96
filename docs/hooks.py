"""mkdocs hook: fill the gallery page from the report that `make docs` writes into
docs/gallery/ (results.json and the PNGs)."""

from __future__ import annotations

import json
from pathlib import Path

GALLERY = Path(__file__).parent / "gallery"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != "gallery.md" or "<!-- gallery -->" not in markdown:
        return markdown
    results = GALLERY / "results.json"
    if not results.is_file():
        return markdown.replace("<!-- gallery -->", "*No report found: run `make docs`.*")
    parts = []
    for name, entry in json.loads(results.read_text()).items():
        checked = [n for n in entry.get("numbers", []) if n.get("within_tolerance") is not None]
        ok = sum(n["within_tolerance"] is True for n in checked)
        parts.append(f"## {entry.get('title', name)}\n\n{entry.get('summary', '')}. "
                     f"{ok} of {len(checked)} checked numbers within tolerance.\n")
        for fig in entry.get("figures", []):
            parts.append(f"![{fig['caption']}](gallery/{fig['file']})\n\n*{fig['caption']}*\n")
    return markdown.replace("<!-- gallery -->", "\n".join(parts))

"""Collect a topic's numbers and figures, and write ``results.json`` and ``index.html``."""

from __future__ import annotations

import datetime
import html
import importlib.metadata
import json
import math
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import bayeskit
from bayeskit import compiled
from bayeskit.linalg import lapack_backend
from bayeskit.machine import cpu_info
from bayeskit.training import atomic_write_text

__all__ = ["Number", "Figure", "TopicResult", "write_report", "provenance", "ARTICLES"]

#: each topic's reference article (the specification it reproduces), cited by title
ARTICLES: dict[str, str] = {
    "cholesky": "Efficient Cholesky decomposition of low-rank updates",
    "polyagamma": "A Primer on Pólya-gamma Random Variables - Part II: Bayesian Logistic "
                  "Regression",
    "kg": "An Illustrated Guide to the Knowledge Gradient Acquisition Function",
    "svgp": "A Handbook for Sparse Variational Gaussian Processes",
    "pgsvgp": "F. Wenzel, T. Galy-Fajou, C. Donner, M. Kloft, M. Opper: Efficient Gaussian "
              "Process Classification Using Pólya-Gamma Data Augmentation (AAAI 2019)",
    "ratio": "Density Ratio Estimation for KL Divergence Minimization between Implicit "
             "Distributions",
    "bijectors": "Building Probability Distributions with the TensorFlow Probability "
                 "Bijector API",
    "vae": "A Tutorial on Variational Autoencoders with a Concise Keras Implementation",
    "grids": "NumPy mgrid vs. meshgrid",
}


def provenance(*, seed: int, quick: bool, command: str | None = None) -> dict:
    """What a reader needs to trust or rerun a section: versions, date, machine, settings."""
    versions = {"bayeskit": bayeskit.__version__, "torch": torch.__version__,
                "python": platform.python_version()}
    for name in ("numpy", "numba", "scipy", "scikit-learn", "matplotlib"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "versions": versions,
            "cpu": cpu_info("model name") or platform.processor() or platform.machine(),
            "machine": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            # settings that change results at rounding level (compiled kernels, inverse route)
            "compiled_kernels": compiled.enabled(torch.zeros(())),
            "lapack": lapack_backend(torch.zeros((), dtype=torch.float64).expand(4096, 4096)),
            "seed": seed, "quick": quick,
            "command": command or " ".join(["bayeskit", *sys.argv[1:]])}


@dataclass
class Number:
    """A reproduced number next to its reference value.

    ``tolerance`` is absolute; ``None`` marks a number that is reported, not checked
    (timings, which depend on the machine). ``bound`` makes the check one-sided:
    ``"at most"`` passes when value <= reference + tolerance, ``"at least"`` when
    value >= reference - tolerance (a lower bound below the quantity it bounds, say).
    """

    name: str
    value: float
    reference: float | None = None
    source: str = ""
    tolerance: float | None = None
    abs_diff: float | None = None
    rel_diff: float | None = None
    within_tolerance: bool | None = None
    bound: str | None = None

    def __post_init__(self) -> None:
        self.value = float(self.value)
        if self.bound not in (None, "at most", "at least"):
            raise ValueError(f"bound must be None, 'at most' or 'at least', not {self.bound!r}")
        if self.reference is not None:
            self.reference = float(self.reference)
            self.abs_diff = abs(self.value - self.reference)
            scale = abs(self.reference)
            self.rel_diff = self.abs_diff / scale if scale > 0 else None
            if self.tolerance is not None:  # a NaN is never within tolerance
                excess = {None: self.abs_diff, "at most": self.value - self.reference,
                          "at least": self.reference - self.value}[self.bound]
                self.within_tolerance = bool(excess <= self.tolerance)
        elif self.tolerance is not None and not math.isfinite(self.value):
            self.within_tolerance = False


@dataclass
class Figure:
    file: str
    caption: str


@dataclass
class TopicResult:
    """Everything one ``reproduce`` topic produced."""

    name: str
    title: str
    summary: str = ""
    numbers: list[Number] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, name: str, value: float, reference: float | None = None, *,
            source: str = "", tolerance: float | None = None) -> Number:
        number = Number(name, value, reference, source, tolerance)
        self.numbers.append(number)
        return number

    def add_bound(self, name: str, value: float, *, at_most: float | None = None,
                  at_least: float | None = None, source: str = "",
                  slack: float = 0.0) -> Number:
        """A one-sided check: ``value <= at_most + slack`` or ``value >= at_least - slack``
        (exactly one of the two bounds)."""
        if (at_most is None) == (at_least is None):
            raise ValueError("give exactly one of at_most and at_least")
        bound, reference = ("at most", at_most) if at_most is not None else ("at least",
                                                                              at_least)
        number = Number(name, value, reference, source, slack, bound=bound)
        self.numbers.append(number)
        return number

    @property
    def failures(self) -> list[Number]:
        return [n for n in self.numbers if n.within_tolerance is False]


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _fmt(x) -> str:
    """A number for the table, one rule for every column: whole numbers as they are, the
    rest to five significant digits, in scientific notation outside [0.001, 1e5), with
    trailing zeros only where the value was rounded (1.0000 is not exactly 1); ``None`` is
    blank, non-numbers (``"nan"`` as stored in ``results.json``) as they are.

    >>> [_fmt(v) for v in (3, 2.0, 0.16, 0.0025989, 3714.5912, 1.000012, 1.5e-6, 5.51e-15)]
    ['3', '2', '0.16', '0.0025989', '3714.6', '1.0000', '1.5e-06', '5.51e-15']
    >>> _fmt(None), _fmt("nan")
    ('', 'nan')
    """
    if x is None:
        return ""
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e5:
        return str(int(x))
    fixed = 1e-3 <= abs(x) < 1e5
    if fixed:
        short = f"{x:.5g}"
    else:
        mantissa, exponent = f"{x:.4e}".split("e")
        short = mantissa.rstrip("0").rstrip(".") + "e" + exponent
    if float(short) == x:
        return short
    return f"{x:#.5g}".rstrip(".") if fixed else f"{x:.4e}"


def write_report(results: list[TopicResult], out: Path, *, quick: bool,
                 run_info: dict | None = None) -> None:
    """Write ``results.json`` (keyed by topic) and ``index.html`` into ``out``.

    Topics already present in an existing ``results.json`` and not re-run are kept, so
    ``reproduce cholesky`` after ``reproduce all`` updates one section.
    """
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    merged: dict[str, dict] = {}
    if json_path.exists():
        try:
            merged = json.loads(json_path.read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError):
            merged = {}
        if not isinstance(merged, dict):
            merged = {}
    for r in results:
        entry = asdict(r)
        entry["quick"] = quick
        entry["provenance"] = run_info or provenance(seed=0, quick=quick)
        merged[r.name] = _json_safe(entry)
    atomic_write_text(json_path, json.dumps(merged, indent=2) + "\n")
    atomic_write_text(out / "index.html", _html(merged))


def _html(merged: dict[str, dict]) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>bayeskit reproduce</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;font-size:90%}td.n{text-align:right;font-family:monospace;"
        "white-space:nowrap}.prov{font-size:85%;color:#444}"
        ".ok{color:#060}.bad{color:#b00;font-weight:bold}img{max-width:100%;"
        "border:1px solid #ddd}figure{margin:1em 0}</style></head><body>",
        "<h1>bayeskit: reproduced figures and numbers</h1>",
    ]
    checked = [(name, n) for name, entry in merged.items() for n in entry.get("numbers", [])
               if n.get("within_tolerance") is not None]
    failed = [(name, n["name"]) for name, n in checked if n["within_tolerance"] is False]
    verdict = ("<span class='ok'>all within tolerance</span>" if not failed else
               f"<span class='bad'>{len(failed)} outside tolerance</span>")
    parts.append(f"<p><b>{len(checked) - len(failed)} of {len(checked)} checked numbers "
                 f"within tolerance</b> ({verdict}) in {len(merged)} topics; numbers without "
                 "a tolerance (timings, diagnostics) are reported, not checked.</p>")
    latest = max((e.get("provenance") or {} for e in merged.values()),
                 key=lambda p: p.get("date", ""), default={})
    if latest:
        parts.append(_provenance_html(latest, "Latest run"))
    parts.append("<ul>")
    for name, entry in merged.items():
        parts.append(f"<li><a href='#{esc(name)}'>{esc(entry.get('title', name))}</a></li>")
    parts.append("</ul>")
    for name, entry in merged.items():
        quick = " (quick mode: reduced sizes)" if entry.get("quick") else ""
        parts.append(f"<h2 id='{esc(name)}'>{esc(entry.get('title', name))}</h2>")
        parts.append(f"<p>{esc(entry.get('summary', ''))}{quick}. "
                     f"Ran in {entry.get('seconds', 0):.1f} s.</p>")
        if name in ARTICLES:
            parts.append(f"<p class='prov'>Reference article: <i>{esc(ARTICLES[name])}</i>."
                         "</p>")
        if entry.get("provenance"):
            parts.append(_provenance_html(entry["provenance"], "This section"))
        parts.append("<table><tr><th>quantity</th><th>value</th><th>reference</th>"
                     "<th>source</th><th>abs diff</th><th>rel diff</th><th>tolerance</th>"
                     "<th>ok</th></tr>")
        for n in entry.get("numbers", []):
            ok = n.get("within_tolerance")
            mark = "" if ok is None else ("<span class='ok'>yes</span>" if ok
                                          else "<span class='bad'>NO</span>")
            cells = [_fmt(n.get(k)) for k in ("value", "reference")]
            if n.get("bound") and cells[1]:  # a one-sided check: the bound's direction
                cells[1] = {"at most": "\u2264 ", "at least": "\u2265 "}[n["bound"]] + cells[1]
            parts.append(
                f"<tr><td>{esc(n['name'])}</td><td class='n'>{esc(cells[0])}</td>"
                f"<td class='n'>{esc(cells[1])}</td><td>{esc(n.get('source', ''))}</td>"
                f"<td class='n'>{_fmt(n.get('abs_diff'))}</td>"
                f"<td class='n'>{_fmt(n.get('rel_diff'))}</td>"
                f"<td class='n'>{_fmt(n.get('tolerance'))}</td><td>{mark}</td></tr>"
            )
        parts.append("</table>")
        for fig in entry.get("figures", []):
            parts.append(f"<figure><img src='{esc(fig['file'])}' alt='{esc(fig['caption'])}'>"
                         f"<figcaption>{esc(fig['caption'])}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _provenance_html(prov: dict, label: str) -> str:
    esc = html.escape
    versions = ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items())
    return (f"<p class='prov'>{esc(label)}: {esc(str(prov.get('date', '?')))}; "
            f"<code>{esc(str(prov.get('command', '')))}</code> (seed {prov.get('seed')}, "
            f"{'quick' if prov.get('quick') else 'full'} sizes); {esc(versions)}; "
            f"{esc(str(prov.get('cpu', '?')))}, {prov.get('torch_threads')} torch thread(s), "
            f"compiled kernels {'on' if prov.get('compiled_kernels') else 'off'}, large "
            f"inverses from a Cholesky factor: {esc(str(prov.get('lapack', '?')))} (LAPACK "
            f"route); "
            f"{esc(str(prov.get('machine', '')))}.</p>")

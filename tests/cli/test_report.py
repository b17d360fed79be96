"""The report survives NaN numbers (issue 14): no crash now or on the next write; the
report check finds what a reader, and a browser, would meet (issue 15)."""

import json
import math

import pytest

from bayeskit.cli.reproduce.check import find_chromium
from bayeskit.cli.reproduce.report import TopicResult, write_report


def test_nan_numbers_are_reported_not_fatal(tmp_path):
    r = TopicResult("demo", "Demo")
    r.add("broken", math.nan, reference=1.0, tolerance=0.1)
    r.add("no reference", math.nan, tolerance=0.1)
    r.add("fine", 1.0, reference=1.0, tolerance=0.1)
    assert [n.name for n in r.failures] == ["broken", "no reference"]
    write_report([r], tmp_path, quick=True)
    write_report([TopicResult("other", "Other")], tmp_path, quick=True)  # reads the NaNs back
    merged = json.loads((tmp_path / "results.json").read_text())
    assert set(merged) == {"demo", "other"}
    assert "nan" in (tmp_path / "index.html").read_text()


def test_check_report_finds_what_a_reader_would(tmp_path, capsys):
    from bayeskit.cli.main import main
    from bayeskit.cli.reproduce.check import check_report

    assert main(["reproduce", "grids", "--quick", "--out", str(tmp_path)]) == 0
    assert check_report(tmp_path) == []
    assert main(["check-report", "--out", str(tmp_path)]) == 0
    assert "every image loads" in capsys.readouterr().out
    png = tmp_path / "grids.png"
    png.write_bytes(png.read_bytes()[:200])  # a truncated image
    assert any("does not decode" in p for p in check_report(tmp_path))
    png.unlink()
    assert check_report(tmp_path) == ["grids.png: missing (an <img> source)"]
    assert main(["check-report", "--out", str(tmp_path)]) == 1
    assert main(["check-report", "--out", str(tmp_path / "nowhere")]) == 1


def _tiny_report(folder):
    """A page with one good figure, one undecodable one, and good and dead links."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(folder / "good.png")
    plt.close(fig)
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 300)
    (folder / "index.html").write_text(
        "<h1 id='top'>t</h1><a href='#top'>up</a><a href='#gone'>gone</a>"
        "<a href='elsewhere.html'>file</a><img src='good.png' alt='g'><img src='bad.png' alt='b'>")


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium on this machine")
def test_the_browser_reports_what_it_could_not_show(tmp_path):
    from bayeskit.cli.reproduce.check import check_in_browser, render_screenshot

    _tiny_report(tmp_path)
    problems, height = check_in_browser(tmp_path)
    assert problems == ["bad.png: the browser could not show it (an <img> source)",
                        "#gone: the browser found no element with that id (an internal link)",
                        "elsewhere.html (HTTP 404): the browser could not open it"]
    assert height > 0
    tiles = render_screenshot(tmp_path, tmp_path / "shot.png", height=1000, tile=600)
    assert [t.name for t in tiles] == ["shot-01.png", "shot-02.png"]
    from PIL import Image

    with Image.open(tiles[0]) as first:
        assert first.size == (1200, 600)
        assert first.convert("L").getextrema()[0] < 100  # the plotted line, not a blank page


def test_without_chromium_the_browser_steps_say_so(tmp_path, monkeypatch):
    import bayeskit.cli.reproduce.check as check

    monkeypatch.setattr(check.shutil, "which", lambda name: None)
    _tiny_report(tmp_path)
    assert check.check_in_browser(tmp_path) is None
    assert check.render_screenshot(tmp_path, tmp_path / "shot.png") is None


def test_one_sided_checks_show_their_bound_not_a_tolerance_equal_to_the_value(tmp_path):
    r = TopicResult("demo", "Demo")
    assert r.add_bound("gap", 0.16, at_least=0.0).within_tolerance is True
    assert r.add_bound("negative gap", -1e-9, at_least=0.0).within_tolerance is False
    assert r.add_bound("rmse", 3.2, at_most=3.71).within_tolerance is True
    assert r.add_bound("ratio", 1.08, at_most=1.0, slack=0.1).within_tolerance is True
    assert r.add_bound("ratio", 1.12, at_most=1.0, slack=0.1).within_tolerance is False
    with pytest.raises(ValueError, match="exactly one"):
        r.add_bound("both", 1.0, at_most=2.0, at_least=0.0)
    write_report([r], tmp_path, quick=True)
    page = (tmp_path / "index.html").read_text()
    assert "\u2265 0" in page and "\u2264 3.71" in page
    assert "0.16</td><td class='n'>\u2265 0" in page.replace("</td>\n<td", "</td><td")

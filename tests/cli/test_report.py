"""The report survives NaN numbers (issue 14): no crash now or on the next write."""

import json
import math

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

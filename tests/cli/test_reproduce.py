"""`bayeskit reproduce all --quick` writes figures, results.json and index.html."""

import json

import pytest

from bayeskit.cli.main import main
from bayeskit.cli.reproduce import TOPICS


def test_reproduce_all_quick_writes_report(tmp_path, capsys):
    assert main(["reproduce", "all", "--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data) == set(TOPICS)
    html = (tmp_path / "index.html").read_text()
    for name, entry in data.items():
        assert entry["quick"] is True
        assert entry["numbers"], name
        for fig in entry["figures"]:
            png = tmp_path / fig["file"]
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert fig["file"] in html
        for n in entry["numbers"]:
            if n["reference"] is not None:
                assert n["abs_diff"] == pytest.approx(abs(n["value"] - n["reference"]))
            if n["tolerance"] is not None:
                assert n["within_tolerance"] is True, n
    printed = capsys.readouterr().out
    assert "grids" in printed
    # stages inside long topics are printed as they start
    assert "  svgp: Mauna Loa: SGPR with M = 30" in printed
    assert "  kg: BO loop with KG" in printed
    # provenance and the overall count at the top; articles cited by title, not by number
    checked = sum(n["within_tolerance"] is not None for e in data.values()
                  for n in e["numbers"])
    assert f"{checked} of {checked} checked numbers within tolerance" in html
    prov = data["grids"]["provenance"]
    assert prov["versions"]["torch"] and prov["cpu"] and prov["seed"] == 0
    assert prov["command"].startswith("bayeskit reproduce all --quick")
    assert prov["lapack"] in ("torch", "openblas", "blocked")  # "openblas": an AMD CPU
    assert isinstance(prov["compiled_kernels"], bool)
    assert "LAPACK" in html
    assert "NumPy mgrid vs. meshgrid" in html and "reference 0" not in html
    assert "ANCHORS" not in html and "the issue" not in html


def test_topics_leave_the_callers_random_state_alone(tmp_path):
    import torch

    from bayeskit.cli.reproduce import reproduce

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    reproduce(["bijectors"], tmp_path, quick=True)
    assert torch.equal(torch.rand(3), expected)


def test_single_topic_updates_existing_report(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"other": {"title": "kept"}}))
    assert main(["reproduce", "grids", "--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data) == {"other", "grids"}


def test_unknown_topic_is_an_error(tmp_path, capsys):
    assert main(["reproduce", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown topic" in capsys.readouterr().err


def test_command_line_checks_out_first_and_accepts_v_after_the_subcommand(tmp_path, capsys):
    """Issue 15: `reproduce -v` was rejected, --out pointing at a file gave a traceback after
    computing, and the last line read results//index.html."""
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    assert main(["reproduce", "-v", "grids", "--quick", "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["reproduce", "-v", "grids", "--quick", "--out", str(tmp_path) + "/"]) == 0
    out = capsys.readouterr().out
    assert "grids" in out and "//" not in out.splitlines()[-1]
    from bayeskit.cli.main import _parser

    assert ":mod:" not in _parser().format_help()

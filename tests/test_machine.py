"""cpu_info reads /proc/cpuinfo fields; absent files and fields give ''."""

import builtins
import io

import pytest

import bayeskit.machine as machine
from bayeskit.errors import ArgumentTypeError

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
"""


@pytest.fixture
def fake_cpuinfo(monkeypatch):
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if path == "/proc/cpuinfo":
            return io.StringIO(CPUINFO)
        return real_open(path, *args, **kwargs)

    machine._read.cache_clear()
    monkeypatch.setattr(builtins, "open", fake_open)
    yield
    machine._read.cache_clear()


def test_reads_fields_by_their_exact_name(fake_cpuinfo):
    assert machine.cpu_info("vendor_id") == "AuthenticAMD"
    assert machine.cpu_info("model name") == "AMD EPYC 7B13"
    assert machine.cpu_info("model") == ""  # a prefix of "model name" is another field
    assert machine.cpu_info("no such field") == ""


def test_no_cpuinfo_file_gives_empty(monkeypatch):
    def no_file(path, *args, **kwargs):
        raise FileNotFoundError(path)

    machine._read.cache_clear()
    monkeypatch.setattr(builtins, "open", no_file)
    try:
        assert machine.cpu_info("vendor_id") == ""
    finally:
        monkeypatch.undo()
        machine._read.cache_clear()


def test_field_must_be_a_string():
    with pytest.raises(ArgumentTypeError, match="field"):
        machine.cpu_info(None)
    with pytest.raises(ArgumentTypeError, match="field"):
        machine.cpu_info(["vendor_id"])  # unhashable: not lru_cache's TypeError

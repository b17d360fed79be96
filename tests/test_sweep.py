"""The invalid-input sweep (issue 14) in make test: every swept call of the public numeric
API with input it can never accept gives a bayeskit error (never NaN, an opaque error,
silent acceptance or a hang); `python tests/sweep_invalid_inputs.py` prints the table."""

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sweep_invalid_inputs import NOT_SWEPT, public_names, sweep, swept_names  # noqa: E402


def test_invalid_inputs_give_clear_errors():
    rows = sweep()
    outcomes = Counter(r[3].split(":")[0] for r in rows)
    assert len(rows) > 2000 and len({r[0] for r in rows}) >= 180
    not_clear = [r for r in rows if r[3] != "clear"]
    assert outcomes["clear"] == len(rows), not_clear


def test_every_public_name_is_swept_or_exempt_with_a_reason():
    names = public_names()
    missing = names - swept_names() - set(NOT_SWEPT)
    assert not missing, f"public names neither swept nor exempt: {sorted(missing)}"
    assert set(NOT_SWEPT) <= names  # no stale exemptions

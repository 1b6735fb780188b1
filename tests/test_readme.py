"""The README's session is what the tool prints (issue 16, item 16): scripts/readme_session.py runs it again
here, on an embedded server of its own, and the README must match it apart from ids, times and durations."""

from __future__ import annotations

import difflib
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_session", ROOT / "scripts" / "readme_session.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_session"] = module
    spec.loader.exec_module(module)
    return module


def test_normalise_keeps_words_and_counts_and_drops_ids_times_and_durations() -> None:
    session = _script()
    one = "6. applied: 42 rows changed (run 1a756534-976a-4f48-99f9-f8ccf8c9b969, 1.8 s) at 2026-11-25 15:15:46"
    other = "6. applied: 42 rows changed (run dd118dd8-bdd7-4d15-800b-e6b27b1b9f15, 12.3 s) at 2026-12-06 14:59:31"
    assert session.normalise(one) == session.normalise(other)
    assert session.normalise(one) != session.normalise(one.replace("42 rows", "41 rows"))
    assert session.normalise("9. checked again and recorded the run") != session.normalise(
        "9. checked again and recorded both checks")


def test_the_readme_session_matches_a_real_run() -> None:
    session = _script()
    readme = (ROOT / "README.md").read_text()
    documented = session.blocks_in(readme)
    assert len(documented) == 2, "README.md lost its session markers"
    # Not under pytest's tmp_path: the embedded server runs as its own user, who cannot enter that folder.
    with tempfile.TemporaryDirectory(prefix="mita-readme-") as home:
        produced = session.run_session(Path(home))
    for number, (want, got) in enumerate(zip(documented, produced, strict=True), start=1):
        want_n, got_n = session.normalise(want), session.normalise(got)
        if want_n != got_n:
            diff = "\n".join(difflib.unified_diff(want_n.splitlines(), got_n.splitlines(), "README.md", "a real run",
                                                  lineterm="", n=1))
            pytest.fail(f"session {number} of README.md differs from a real run; regenerate it with:\n"
                        f"    python scripts/readme_session.py\n{diff[:6000]}")

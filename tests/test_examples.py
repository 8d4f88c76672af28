"""Examples run (tiny settings), as numpyro's test_examples does."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize(
    "script, args",
    [("quickstart.py", ["--steps", "20"]), ("ood_digits.py", ["--quick"]), ("ood_novelty.py", ["--quick"])],
)
def test_example_runs(script, args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert capsys.readouterr().out

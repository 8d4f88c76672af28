"""Examples run as they are (tiny settings), as numpyro's test_examples does.

Every script in ``examples/`` has a row in ``RUNS``: the arguments of its smoke run, or the
reason it is not run here (another test runs it with checks of its own, or it cannot run
in a few seconds). A new script without a row fails ``test_every_example_has_a_row``.
Each run goes through the script's ``if __name__ == "__main__"`` path with ``sys.argv`` set,
as ``python examples/<script> <arguments>`` would, and its printed output is checked.
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"

#: script -> arguments of its smoke run ({tmp}: a fresh folder), or why it is not run here
RUNS: dict[str, list[str] | str] = {
    "quickstart.py": ["--steps", "20"],
    "ood_digits.py": ["--quick"],
    "ood_novelty.py": ["--quick"],
    "ood_mnist.py": "fits 28x28 PixelCNNs and compiles the 784-step purification even with --quick (85 s wall on the "
    "loaded machine, over the budget); its parts are tested in test_ood_mnist.py and test_ood_detector.py",
    "bayesnet_asia.py": ["--quick"],
    "tabular_anomaly.py": ["--quick"],
    "digits_samples.py": ["--quick", "--model", "made", "--out", "{tmp}/grid.png"],
    "digits_conv.py": ["--models", "fvsbn", "--steps", "20"],
    "digits_levels.py": "run with checks of its record files by tests/test_mixed_models.py::test_digits_levels_example_runs",
    "numpyro_interop.py": "run with checks of SVI, NUTS and the count head by tests/test_numpyro_interop.py",
    "digits_neural.py": "fits five neural models even with --quick (40 s wall here, over the budget); each family is tested in "
    "its own test file (test_made.py, test_transformer.py)",
}


def _percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


def _check_asia(out: str, tmp: Path) -> None:
    estimate, exact = map(float, re.search(r"estimate ([\d.]+) \(ESS.*exact ([\d.]+);", out).groups())
    assert abs(estimate - exact) < 0.1, out  # likelihood weighting of 4,000 draws against enumeration
    gap = float(re.search(r"gap to the truth: (-?[\d.]+) nats", out).group(1))
    assert abs(gap) < 0.05, out  # tables counted from 4,000 samples of the network


def _check_tabular(out: str, tmp: Path) -> None:
    fpr = _percent(re.search(r"flagged ([\d.]+%) of normal test records", out).group(1))
    assert fpr <= 0.09, out  # target 5% on 1,000 normal records (conformal: at most 5% in expectation)
    rows = {m.group(1): m.groups()[1:] for m in re.finditer(r"^\| ([a-z ]+) \| \w+ \| ([\d.]+%) \| ([\d.]+) \| "
                                                             r"([\d.]+%) \|$", out, re.MULTILINE)}
    assert set(rows) == {"rare vehicle", "long distance", "fuel mismatch"}, out
    for kind in ("long distance", "fuel mismatch"):  # one changed real column: found, and blamed on that column
        detected, auroc, culprit = rows[kind]
        assert _percent(detected) > 0.8 and float(auroc) > 0.9 and _percent(culprit) > 0.8, (kind, out)
    assert float(rows["rare vehicle"][1]) > 0.7, out  # a 1% vehicle: only partly separable by design


def _check_digits_samples(out: str, tmp: Path) -> None:
    test_nll = float(re.search(r"test NLL ([\d.]+) nats per image", out).group(1))
    assert test_nll < 64 * 0.6931, out  # better than independent fair coins
    assert (tmp / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


CHECKS = {"bayesnet_asia.py": _check_asia, "tabular_anomaly.py": _check_tabular,
          "digits_samples.py": _check_digits_samples}


def test_every_example_has_a_row():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == set(RUNS), f"no row in RUNS: {sorted(scripts - set(RUNS))}; stale: {sorted(set(RUNS) - scripts)}"
    for script in scripts:
        assert (EXAMPLES / script).read_text().lstrip().startswith('"""'), f"{script}: no module docstring"


@pytest.mark.parametrize("script", [s for s, args in RUNS.items() if isinstance(args, list)])
def test_example_runs(script, monkeypatch, capsys, tmp_path):
    args = [a.format(tmp=tmp_path) for a in RUNS[script]]
    monkeypatch.setattr(sys, "argv", [script, *args])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    out = capsys.readouterr().out
    assert out
    if script in CHECKS:
        CHECKS[script](out, tmp_path)

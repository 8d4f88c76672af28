"""`arprob detect` and `arprob purify`: report files, decisions, one-line errors with exit 2."""

from __future__ import annotations

import json

import numpy as np

from arprob.cli import main
from arprob.data import load_digits

SPEC = """
[[variables]]
kind = "binary"
name = "img"
shape = [8, 8]

[conditionals.img]
kind = "table"
neighbours = [[0, -1], [-1, 0], [-1, -1]]
"""


def test_detect_and_purify_from_files(tmp_path, capsys):
    train, test = load_digits()
    noise = np.random.default_rng(0).integers(0, 2, (40, 8, 8))
    (tmp_path / "spec.toml").write_text(SPEC)
    np.savez(tmp_path / "train.npz", img=train[:1000])
    np.savez(tmp_path / "cal.npz", img=train[1000:])
    np.savez(tmp_path / "data.npz", img=np.concatenate([test[:40], noise]))
    ckpt = str(tmp_path / "m.ckpt")
    assert main(["fit", str(tmp_path / "spec.toml"), str(tmp_path / "train.npz"), "--out", ckpt]) == 0
    report = tmp_path / "report"
    args = [ckpt, str(tmp_path / "cal.npz"), str(tmp_path / "data.npz"), "--fpr", "0.05", "--out", str(report)]
    assert main(["detect", *args]) == 0
    assert "records flagged at fpr=0.05" in capsys.readouterr().out
    rows = [json.loads(line) for line in (report / "scores.jsonl").read_text().splitlines()]
    flagged = np.array([r["flagged"] for r in rows])
    assert len(rows) == 80 and flagged[40:].mean() > 0.95 and flagged[:40].mean() < 0.2
    assert (report / "scores.csv").read_text().startswith("index,score,nll_nats,bits_per_dim,p_value,flagged")
    assert (report / "scores.png").stat().st_size > 1000 and (report / "surprisal_img.png").exists()
    summary = json.loads((report / "summary.json").read_text())
    assert summary["num_flagged"] == int(flagged.sum()) and summary["num_calibration"] == 400
    assert "auroc" not in summary  # no labels: the data's mix of records gives no honest AUROC

    # An existing report is replaced only with --force, and then as a whole (no scores.png left
    # from the run with plots); labels give the AUROC; two-sided runs have two thresholds.
    assert main(["detect", *args]) == 2 and "exists; pass --force" in capsys.readouterr().err
    np.save(tmp_path / "labels.npy", np.repeat([0, 1], 40))
    assert main(["detect", *args, "--force", "--two-sided", "--no-plots", "--labels", str(tmp_path / "labels.npy")]) == 0
    summary = json.loads((report / "summary.json").read_text())
    assert summary["auroc"] > 0.95 and summary["lower_threshold"] < summary["threshold"] and summary["two_sided"]
    assert sorted(p.name for p in report.iterdir()) == ["detector.arprob", "scores.csv", "scores.jsonl", "summary.json"]
    assert not list(tmp_path.glob(".report*"))

    out = tmp_path / "purified.npz"
    assert main(["purify", ckpt, str(tmp_path / "data.npz"), "--eps", "1", "--out", str(out)]) == 0
    assert "elements changed" in capsys.readouterr().out
    assert np.load(out)["img"].shape == (80, 8, 8)


def test_detect_errors_are_one_line_with_exit_2(tmp_path, capsys):
    train, _ = load_digits()
    (tmp_path / "spec.toml").write_text(SPEC)
    np.savez(tmp_path / "train.npz", img=train[:200])
    np.savez(tmp_path / "few.npz", img=train[:5])
    np.savez(tmp_path / "bad.npz", img=np.full((2, 8, 8), 3))
    np.savez(tmp_path / "nan.npz", img=np.full((2, 8, 8), np.nan))
    ckpt = str(tmp_path / "m.ckpt")
    assert main(["fit", str(tmp_path / "spec.toml"), str(tmp_path / "train.npz"), "--out", ckpt]) == 0
    capsys.readouterr()
    cases = {
        "few.npz": "calibration set has 5 records",
        "bad.npz": "has value 3",
        "nan.npz": "nan",
    }
    for name, message in cases.items():
        cal = "few.npz" if name == "few.npz" else "train.npz"
        data = "train.npz" if name == "few.npz" else name
        code = main(["detect", ckpt, str(tmp_path / cal), str(tmp_path / data), "--out", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 2 and message in err.lower() and len(err.strip().splitlines()) == 1, (name, err)
    assert main(["purify", ckpt, str(tmp_path / "bad.npz"), "--eps", "1", "--out", str(tmp_path / "p.npz")]) == 2
    assert not (tmp_path / "p.npz").exists()

"""The arprob command: main job, fit/score/sample round trip through files, clear errors."""

from __future__ import annotations

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
neighbours = [[0, -1], [-1, 0]]
"""


def test_digits_main_job_runs(capsys):
    assert main(["digits", "--steps", "20", "--detection-steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "independent Bernoulli" in out and "FVSBN" in out and "bits/dim" in out
    assert "uniform noise" in out and "PGD" in out and "purified (eps 2)" in out


def test_fit_score_sample_round_trip(tmp_path, capsys):
    train, test = load_digits()
    (tmp_path / "spec.toml").write_text(SPEC)
    np.savez(tmp_path / "train.npz", img=train)
    np.savez(tmp_path / "test.npz", img=test)
    ckpt = tmp_path / "m.ckpt"
    assert main(["fit", str(tmp_path / "spec.toml"), str(tmp_path / "train.npz"), "--out", str(ckpt), "--steps", "5"]) == 0
    assert main(["score", str(ckpt), str(tmp_path / "test.npz"), "--out", str(tmp_path / "lp.npy")]) == 0
    lp = np.load(tmp_path / "lp.npy")
    assert lp.shape == (len(test),) and np.all(lp < 0)
    assert main(["sample", str(ckpt), "-n", "3", "--out", str(tmp_path / "s.npz")]) == 0
    samples = np.load(tmp_path / "s.npz")["img"]
    assert samples.shape == (3, 8, 8) and set(np.unique(samples)) <= {0, 1}


def test_errors_are_reported_not_raised(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text(SPEC.replace("neighbours", "neighbors"))
    np.savez(tmp_path / "d.npz", img=np.zeros((2, 8, 8), int))
    assert main(["fit", str(tmp_path / "bad.toml"), str(tmp_path / "d.npz"), "--out", str(tmp_path / "m.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "conditionals.img: unknown key 'neighbors'" in err
    assert not (tmp_path / "m.ckpt").exists()

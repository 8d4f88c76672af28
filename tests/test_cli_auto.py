"""``arprob auto`` end to end (in-process: ``arprob.cli.main``), and the spec-free record reader."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import arprob as ar
from arprob.cli import main
from arprob.records import read_records, read_records_csv


def _write_csv(path, n: int, seed: int, hostile: bool = False) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\ufeffcolour,size,weight,flag\n")  # a UTF-8 byte-order mark, as spreadsheets write
        for i in range(n):
            colour = rng.choice(["red", "green", "blue"])
            size = rng.normal(3.0 if colour == "red" else 0.0)
            weight = 2.0 * size + rng.normal(0.0, 0.3)
            if hostile and i == 1:
                colour = "purple"  # a state never seen in training
            if hostile and i == 2:
                weight += 6.0
            f.write(f"{colour},{'' if i == 3 else size},{weight},{rng.random() < 0.3}\n")


def test_auto_fits_reports_and_reuses_its_detector(tmp_path, capsys):
    train, test, out = tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "report"
    _write_csv(train, 240, 0)
    _write_csv(test, 20, 1, hostile=True)
    assert main(["auto", str(train), str(test), "--fdr", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "colour (categorical), size (real), weight (real), flag (categorical)" in printed and "chosen" in printed
    assert sorted(p.name for p in out.iterdir()) == ["detector.arprob", "scores.csv", "scores.jsonl", "summary.json"]
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert rows[1]["score_nats"] == "inf" and rows[1]["flagged"] == "True" and rows[1]["unseen"] == "colour"
    assert rows[2]["flagged"] == "True" and rows[2]["column_1"] == "weight"
    assert rows[3]["score_nats"] != "inf"  # the missing size is marginalised
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_records"] == 20 and summary["columns"]["size"] == "real"
    # an existing report is refused without --force, and left as it was
    before = (out / "scores.csv").read_bytes()
    assert main(["auto", str(train), str(test), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and (out / "scores.csv").read_bytes() == before
    # the saved detector scores new data without refitting: the same scores
    again = tmp_path / "again"
    assert main(["auto", "--detector", str(out / "detector.arprob"), str(test), "--out", str(again)]) == 0
    assert (again / "scores.csv").read_bytes() == before


@pytest.mark.parametrize(
    ("content", "match"),
    [("a,b,a\n1,2,3\n", "'a' appears twice"), ("a,b\n1,2\n3\n", "line 3: 1 cells"), ("", "empty file"),
     ("a,b\n", "no records")],
)
def test_bad_csv_files_are_one_line_errors(tmp_path, capsys, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ar.DataError, match=match):
        read_records_csv(path)
    assert main(["auto", str(path), str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "arprob auto: error:" in err and not (tmp_path / "r").exists()


def test_records_reader_kinds_and_formats(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,y,z\n1,a,\n2.5,NA,3\n,b,4\n")
    cols = read_records_csv(path)
    assert cols["x"].dtype == np.float64 and np.isnan(cols["x"][2])
    assert list(cols["y"]) == ["a", None, "b"] and np.isnan(cols["z"][0])
    np.save(tmp_path / "a.npy", np.ones((3, 2)))
    assert read_records(tmp_path / "a.npy").shape == (3, 2)
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ar.DataError, match="broken.npz"):
        read_records(tmp_path / "broken.npz")
    with pytest.raises(ar.DataError, match="expected a .csv"):
        read_records(tmp_path / "t.txt")

"""The command line as a user meets it: each misuse is exit 2 and one line naming the culprit.

Add a row to MISUSE whenever a new misuse is found."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from arprob.cli import main

SPEC = """
[[variables]]
kind = "binary"
name = "img"
shape = [4, 4]

[conditionals.img]
kind = "logistic"
"""

# (arguments, with {d} for the folder of files made below) -> a fragment of the one-line message
MISUSE = [
    ("fit {d}/spec.toml {d}/data.npz --out {d}/m.ckpt --steps -5", "--steps: expected a positive integer, got '-5'"),
    ("fit {d}/spec.toml {d}/data.npz --out {d}/m.ckpt --steps 0", "expected a positive integer, got '0'"),
    ("fit {d}/spec.toml {d}/data.npz --out {d}/m.ckpt --validation 1.5", "expected a number in (0, 1)"),
    ("fit {d}/spec.toml {d}/data.npz --out {d}/existing.ckpt", "existing.ckpt exists; pass --resume"),
    ("fit {d}/missing.toml {d}/data.npz --out {d}/m.ckpt", "missing.toml: cannot read spec file"),
    ("fit {d}/bad.toml {d}/data.npz --out {d}/m.ckpt", "bad.toml"),
    ("fit {d}/spec.toml {d}/missing.npz --out {d}/m.ckpt", "missing.npz"),
    ("fit {d}/spec.toml {d}/wrong_shape.npz --out {d}/m.ckpt", "expected shape (batch, 4, 4)"),
    ("fit {d}/spec.toml {d}/out_of_range.npz --out {d}/m.ckpt", "has value 2.0"),
    ("fit {d}/spec.toml {d}/nan.npz --out {d}/m.ckpt", "values must be finite"),
    ("score {d}/spec.toml {d}/data.npz", "not an arprob checkpoint"),
    ("score {d}/existing.ckpt {d}/data.npz --out {d}/x.txt", "expected a .csv or .jsonl"),
    ("sample {d}/existing.ckpt -n 0 --out {d}/s.npz", "expected a positive integer, got '0'"),
    ("sample {d}/existing.ckpt --out {d}/s.csv", "CSV holds scalar variables only"),
    ("sample {d}/existing.ckpt --out {d}/s.txt", "expected a .npz or .csv"),
    ("detect {d}/existing.ckpt {d}/data.npz {d}/data.npz --fpr 2 --out {d}/r", "expected a number in (0, 1)"),
    ("detect {d}/existing.ckpt {d}/data.npz {d}/data.npz --correction likelihood_ratio --out {d}/r", "--background"),
    ("purify {d}/existing.ckpt {d}/data.npz --eps=-1 --out {d}/p.npz", "expected a finite number >= 0"),
    ("frobnicate", "invalid choice: 'frobnicate'"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "spec.toml").write_text(SPEC)
    (d / "bad.toml").write_text(SPEC.replace('kind = "logistic"', 'kind = "logistic"\nhiden = [3]'))
    rng = np.random.default_rng(0)
    np.savez(d / "data.npz", img=rng.integers(0, 2, (40, 4, 4)))
    np.savez(d / "wrong_shape.npz", img=rng.integers(0, 2, (40, 4, 5)))
    np.savez(d / "out_of_range.npz", img=np.full((3, 4, 4), 2))
    np.savez(d / "nan.npz", img=np.full((3, 4, 4), np.nan))
    fit = ["fit", str(d / "spec.toml"), str(d / "data.npz"), "--out", str(d / "existing.ckpt"), "--steps", "3"]
    assert main(fit) == 0
    return d


def run(argv: list[str]) -> int:
    """``main`` as the shell sees it: argparse's usage errors exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("command,message", MISUSE, ids=[m[0].split()[0] + ":" + m[1][:30] for m in MISUSE])
def test_misuse_is_one_line_and_exit_2(files, command, message, capsys):
    capsys.readouterr()
    code = run(command.format(d=files).split())
    err = capsys.readouterr().err
    assert code == 2, (command, err)
    assert message in err and len(err.strip().splitlines()) == 1, (command, err)


def test_version_and_help_in_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "arprob.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("arprob ")


def test_ctrl_c_during_fit_writes_the_checkpoint_and_exits_130(files, tmp_path):
    ckpt = tmp_path / "run.ckpt"
    args = [sys.executable, "-m", "arprob.cli", "fit", str(files / "spec.toml"), str(files / "data.npz"), "--out",
            str(ckpt), "--steps", "1000000", "--checkpoint-every", "1000000", "--batch-size", "8"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    time.sleep(15)  # imports, compile, then training (a million updates would take many minutes)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted by SIGINT" in out and "--resume" in out and ckpt.exists()
    assert "Traceback" not in err

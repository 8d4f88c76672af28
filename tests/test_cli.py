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


def test_ctrl_c_while_jax_imports_is_one_line_and_130(tmp_path):
    """The console script imports arprob (and JAX) before ``main`` runs: a Ctrl-C at any
    moment of it is ``arprob: interrupted`` and status 130, never a traceback. The child is
    the console script's own code; it touches a marker file just before ``import arprob``
    (a Ctrl-C during Python's own start-up is Python's, not arprob's)."""
    import signal
    import subprocess
    import sys
    import time

    marker = tmp_path / "importing"
    code = (f"import pathlib, sys; sys.argv = ['arprob', 'inspect', 'missing.toml']; "
            f"pathlib.Path({str(marker)!r}).touch(); from arprob.cli import main; sys.exit(main())")
    for delay in (0.2, 1.0):
        marker.unlink(missing_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while not marker.exists() and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 2:  # the machine was fast: the job had already ended (one line too)
            continue
        assert proc.returncode == 130 and err.strip().splitlines()[-1:] == ["arprob: interrupted"], (proc.returncode, err)
        assert len(err.strip().splitlines()) == 1, err


def test_resume_continues_the_run_with_its_stored_settings(tmp_path, capsys):
    """``fit --resume`` with no options continues with the checkpoint's own settings (here
    --steps 6 --batch-size 16 --learning-rate 0.05), so the resumed run reaches step 6, not
    the default 1000, and an explicit option overrides a stored one."""
    from arprob.checkpoint import read_header

    train, _ = load_digits()
    (tmp_path / "spec.toml").write_text(SPEC.replace('kind = "table"\nneighbours = [[0, -1], [-1, 0]]',
                                                     'kind = "logistic"'))
    np.savez(tmp_path / "d.npz", img=train[:64])
    ckpt = tmp_path / "m.ckpt"
    args = [str(tmp_path / "spec.toml"), str(tmp_path / "d.npz"), "--out", str(ckpt)]
    assert main(["fit", *args, "--steps", "3", "--batch-size", "16", "--learning-rate", "0.05"]) == 0
    settings = read_header(ckpt)["state"]["settings"]
    assert (settings["num_steps"], settings["batch_size"], settings["learning_rate"]) == (3, 16, 0.05)
    assert main(["fit", *args, "--resume", "--steps", "6"]) == 0  # explicit --steps, the rest stored
    header = read_header(ckpt)
    assert header["step"] == 6 and header["state"]["settings"]["batch_size"] == 16
    assert header["state"]["settings"]["learning_rate"] == 0.05
    capsys.readouterr()
    assert main(["fit", *args, "--resume"]) == 0  # nothing given: the stored run, already complete
    assert read_header(ckpt)["step"] == 6


def test_every_option_has_help_and_shows_its_default_or_required():
    import argparse

    from arprob.cli import build_parser

    parser = build_parser()
    jobs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in jobs.items():
        text = sub.format_help()
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            shown = sub.formatter_class(prog=name)._get_help_string(action)
            assert action.help, (name, action.dest)
            if action.required and action.option_strings:  # (positional arguments are always required)
                assert "(required)" in shown and "default" not in shown, (name, action.dest, shown)
            elif action.option_strings and not isinstance(action, argparse._StoreTrueAction):
                assert "(default:" in shown, (name, action.dest, shown)
        assert "(required)" in text or not any(a.required and a.option_strings for a in sub._actions), name

"""Sane defaults: ``Table()`` has no parents (``parents="all"`` is the full chain rule), a
table too large is refused when declared or compiled, files keep the user's umask, and
one learning-rate default serves ``fit``, ``fit_order_agnostic`` and the CLI."""

from __future__ import annotations

import json
import os
import stat
import threading

import numpy as np
import pytest

import arprob as ar
from arprob import budget
from arprob.cli import build_parser
from arprob.conditioners.table import MAX_TABLE_CELLS
from arprob.fileio import atomic_write_bytes
from arprob.train import DEFAULT_LEARNING_RATE

VARIABLES = (ar.Ordinal("o", levels=3, shape=(3,)), ar.Categorical("w", 4))


def _rows(model, name: str) -> int:
    comp = next(c for c in model.components if c.name == name)
    return int(comp.conditioner.log_probs.shape[0])


# ------------------------------------------------------------------ Table parents
@pytest.mark.parametrize(
    "parents, rows",
    [((), 1), (None, 1), ("all", 3**3), (["o"], 3**3)],
    ids=["default", "None", "all", "listed"],
)
def test_table_parents(parents, rows):
    """``w`` declared after a 3-element ordinal: no parents by default (one row), every
    earlier element with ``"all"`` (27 rows), the listed ones otherwise."""
    cond = ar.Table() if parents == () else ar.Table(parents=parents)
    model = ar.compile(ar.Spec(variables=VARIABLES, conditionals={"o": ar.Table(), "w": cond}))
    assert _rows(model, "w") == rows
    assert _rows(model, "o") == 3  # one row per element of "o": no parents either
    if parents in ((), None):
        assert cond == ar.Table() and cond.parents == () and cond.parent_names == ()


SPEC_TOML = """
[[variables]]
kind = "ordinal"
name = "o"
levels = 3
shape = [3]

[[variables]]
kind = "categorical"
name = "w"
num_categories = 4

[conditionals.o]
kind = "table"

[conditionals.w]
kind = "table"
parents = "all"
"""


def test_spec_files_no_parents_key_means_none_and_all_works(tmp_path):
    (tmp_path / "m.toml").write_text(SPEC_TOML)
    spec = ar.load_spec(tmp_path / "m.toml")
    assert spec.conditional["o"].parents == () and spec.conditional["w"].parents == "all"
    ar.save_spec(spec, tmp_path / "m.json")
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["conditionals"]["w"]["parents"] == "all" and data["conditionals"]["o"]["parents"] == []
    assert ar.load_spec(tmp_path / "m.json") == spec
    assert _rows(ar.compile(spec), "w") == 27


def test_table_parent_declarations_that_make_no_sense_are_refused():
    with pytest.raises(ar.SpecError, match='parents="all" reads every earlier element already'):
        ar.Table(parents="all", neighbours=((0, -1),))
    with pytest.raises(ar.SpecError, match="fixed cpt needs listed parents"):
        ar.Table(parents="all", cpt=(0.5, 0.5))
    with pytest.raises(ar.SpecError, match="variable names or \"all\"; got 3"):
        ar.Table(parents=3)
    with pytest.raises(ar.SpecError, match="unknown parent 'every'"):
        ar.Spec(variables=VARIABLES, conditionals={"w": ar.Table(parents="every")})


def test_a_table_over_too_many_cells_is_refused_naming_variable_count_and_limit():
    with pytest.raises(ar.SpecError) as err:
        ar.Spec(variables=(ar.Binary("img", shape=(30,)),), conditionals={"img": ar.Table(parents="all")})
    message = str(err.value)
    assert "Table for 'img'" in message and f"limit of {MAX_TABLE_CELLS} cells" in message, message
    cells = int(message.split("would need ")[1].split(" cells")[0])
    assert cells > MAX_TABLE_CELLS


def test_a_table_over_the_memory_budget_is_refused_by_compile():
    """2^16 rows x 2 values of 8 bytes (about 1 MB) fit the cell limit; a 256 kB budget does not."""
    spec = ar.Spec(variables=(ar.Binary("img", shape=(17,)),), conditionals={"img": ar.Table(parents="all")})
    budget.set_memory_budget("256kB")
    try:
        with pytest.raises(ar.SpecError, match=r"Variable 'img' \(Table over 17 elements.*memory budget of 256 kB"):
            ar.compile(spec)
    finally:
        budget.set_memory_budget(None)


# ------------------------------------------------------------------ file modes
_UMASK_LOCK = threading.Lock()


def _with_umask(mask: int, fn):
    with _UMASK_LOCK:  # the umask is process-wide
        old = os.umask(mask)
        try:
            return fn()
        finally:
            os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_get_0666_less_the_umask(tmp_path, mask):
    path = tmp_path / "sub" / "f.bin"
    _with_umask(mask, lambda: atomic_write_bytes(path, b"abc"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert path.read_bytes() == b"abc" and sorted(os.listdir(path.parent)) == ["f.bin"]  # no temporary left


def test_rewriting_keeps_the_files_mode_and_save_functions_follow_the_umask(tmp_path):
    path = tmp_path / "private.bin"
    atomic_write_bytes(path, b"one")
    path.chmod(0o600)
    _with_umask(0o022, lambda: atomic_write_bytes(path, b"two"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == b"two"
    spec_path = tmp_path / "spec.json"
    _with_umask(0o027, lambda: ar.save_spec(ar.Spec(variables=VARIABLES), spec_path))
    assert stat.S_IMODE(spec_path.stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


# ------------------------------------------------------------------ learning rate
def test_cli_learning_rate_defaults_are_the_apis():
    from arprob.cli.model_jobs import FIT_DEFAULTS

    parser = build_parser()
    assert parser.parse_args(["digits"]).learning_rate == DEFAULT_LEARNING_RATE
    # fit: None means "not given" (a resumed run keeps its stored rate), then arprob.fit's default
    assert parser.parse_args(["fit", "s.toml", "d.npz", "--out", "m.ckpt"]).learning_rate is None
    assert FIT_DEFAULTS["learning_rate"] is None
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for name in ("digits", "fit"):
        assert f"default: {DEFAULT_LEARNING_RATE}" in " ".join(sub[name].format_help().split())


def test_fit_and_fit_order_agnostic_use_the_default_rate(monkeypatch):
    rng = np.random.default_rng(0)
    data = {"x": rng.integers(0, 2, (32, 2))}
    spec = ar.Spec(variables=(ar.Binary("x", shape=(2,)),))
    assert ar.fit(ar.compile(spec), data, num_steps=1, batch_size=8).history["lr"] == [DEFAULT_LEARNING_RATE]
    seen = {}
    monkeypatch.setattr(ar.ensembles, "fit", lambda model, data, **kwargs: seen.update(kwargs))
    made = ar.Spec(variables=(ar.Binary("x", shape=(2,)),), conditionals={"x": ar.MADE(hidden=(4,), num_orderings=2)})
    ar.fit_order_agnostic(ar.compile(made), data, num_steps=1)
    assert seen["optimizer"] is None and seen["learning_rate"] is None  # so fit's default, checked above

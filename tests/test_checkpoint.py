"""Checkpoints: atomic, verified, no pickle; an interrupted run resumes to the same parameters."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import arprob as ar
from arprob.checkpoint import load_model, read_header
from arprob.train import trainable_filter

SPEC = ar.Spec(variables=(ar.Categorical("w", 3), ar.Binary("img", shape=(2, 2))), conditionals={"w": ar.Table()})
MODEL = ar.compile(SPEC)
RNG = np.random.default_rng(0)
W = RNG.integers(0, 3, 80)
DATA = {"w": W, "img": (RNG.random((80, 2, 2)) < (0.2 + 0.3 * W[:, None, None])).astype(np.int64)}
VAL = {"w": W[:20], "img": DATA["img"][:20]}


class Interrupt(Exception):
    pass


def _leaves(model):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def _run(path, num_steps=12, **kwargs):
    return ar.fit(
        MODEL, DATA, num_steps=num_steps, batch_size=16, seed=1, optimizer=optax.adam(0.05), checkpoint=path,
        checkpoint_every=3, validation=VAL, eval_every=4, patience=10, **kwargs,
    )


def _interrupt_at(step):
    def cb(info):
        if info.step == step:
            raise Interrupt

    return cb


def test_interrupted_run_resumes_bit_for_bit(tmp_path):
    full = _run(tmp_path / "full.ckpt")
    path = tmp_path / "cut.ckpt"
    with pytest.raises(Interrupt):
        _run(path, callbacks=[_interrupt_at(7)])  # dies after 8 steps; last checkpoint at 6
    assert read_header(path)["step"] == 6
    resumed = _run(path, resume=path)
    assert resumed.history["loss"] == full.history["loss"]
    assert resumed.history["val_nll"] == full.history["val_nll"]
    assert resumed.history.best_step == full.history.best_step
    for a, b in zip(_leaves(resumed.model), _leaves(full.model)):
        np.testing.assert_array_equal(a, b)
    # The end-of-run checkpoint holds the final model; a fresh process can load it alone.
    for a, b in zip(_leaves(load_model(path)), _leaves(full.model)):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_saves_and_resume_true_continues(tmp_path):
    path = tmp_path / "run.ckpt"

    def ctrl_c(info):
        if info.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ar.fit(MODEL, DATA, num_steps=8, batch_size=16, checkpoint=path, checkpoint_every=100, callbacks=[ctrl_c])
    assert read_header(path)["step"] == 5  # saved on the way out
    resumed = ar.fit(MODEL, DATA, num_steps=8, batch_size=16, checkpoint=path, checkpoint_every=100, resume=True)
    full = ar.fit(MODEL, DATA, num_steps=8, batch_size=16)
    assert resumed.history["loss"] == full.history["loss"]
    # resume=True without a file starts afresh.
    fresh = ar.fit(MODEL, DATA, num_steps=2, batch_size=16, checkpoint=tmp_path / "new.ckpt", resume=True)
    assert fresh.history["step"] == [0, 1]


def test_round_trip_of_every_part(tmp_path):
    path = tmp_path / "c.ckpt"
    model = ar.fit(MODEL, DATA, num_steps=3, batch_size=16).model
    params = eqx.filter(model, trainable_filter(model))
    opt = optax.adam(1e-3)
    state = opt.init(params)
    ar.save_checkpoint(path, model=model, step=3, opt_state=state, rng={"seed": 5}, state={"x": 1.5})
    ck = ar.load_checkpoint(path, MODEL, opt_state_like=opt.init(params))
    assert ck.step == 3 and ck.header["rng"] == {"seed": 5} and ck.header["state"] == {"x": 1.5}
    assert ar.spec_from_dict(ck.header["spec"]) == SPEC
    for a, b in zip(_leaves(ck.model), _leaves(model)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree_util.tree_leaves(ck.opt_state), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert ck.best is None


@pytest.mark.parametrize("saved_x64", [False, True], ids=["float32-to-float64", "float64-to-float32"])
def test_a_checkpoint_loads_in_the_other_precision(tmp_path, saved_x64):
    """NumPyro users switch ``jax_enable_x64`` on and off: float leaves are cast to the running
    precision (float32 -> float64 exactly), integer leaves must fit, and the optimizer
    state resumes; the log-likelihood agrees to float32 rounding."""
    path = tmp_path / "p.ckpt"
    spec = ar.Spec(variables=(ar.Binary("img", shape=(2, 2)),), conditionals={"img": ar.MADE(hidden=(4,))})
    with jax.enable_x64(saved_x64):
        model = ar.compile(spec, jax.random.key(0))
        opt = optax.adam(1e-2)
        params = eqx.filter(model, trainable_filter(model))
        ar.save_checkpoint(path, model=model, step=2, opt_state=opt.init(params))
        data = {"img": DATA["img"]}
        before = np.asarray(model.log_prob(data), np.float64)
    with jax.enable_x64(not saved_x64):
        template = ar.compile(spec, jax.random.key(1))
        params = eqx.filter(template, trainable_filter(template))
        ck = ar.load_checkpoint(path, template, opt_state_like=optax.adam(1e-2).init(params))
        want = np.dtype("float32" if saved_x64 else "float64")
        assert {x.dtype for x in _leaves(ck.model) if x.dtype.kind == "f"} == {want}
        if not saved_x64:  # an exact upcast
            for a, b in zip(_leaves(ck.model), _leaves(model)):
                np.testing.assert_array_equal(a, np.asarray(b).astype(a.dtype))
        np.testing.assert_allclose(np.asarray(ck.model.log_prob(data), np.float64), before, rtol=1e-6)


def test_a_float_array_where_the_model_has_integers_is_refused(tmp_path):
    """Only the width may differ: a float array stored for an integer leaf names the segment."""
    path = tmp_path / "k.ckpt"
    ar.save_checkpoint(path, model=MODEL, step=0, state=None, opt_state={"n": jax.numpy.zeros(2)})
    with pytest.raises(ar.CheckpointError, match="segment 'opt_state'.*dtype float32 where the model has .*int32"):
        ar.load_checkpoint(path, MODEL, opt_state_like={"n": jax.numpy.zeros(2, jax.numpy.int32)})


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.ckpt"
    ar.fit(MODEL, DATA, num_steps=2, batch_size=16, checkpoint=path)
    return path


def _refused(path, match, model=MODEL, **kwargs):
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(ar.CheckpointError, match=match):
        ar.load_checkpoint(path, model, **kwargs)
    with pytest.raises(ar.CheckpointError, match=match):  # fit refuses too, and writes nothing
        ar.fit(model, DATA, num_steps=4, batch_size=16, checkpoint=path, checkpoint_every=1, resume=path)
    assert (path.read_bytes() if path.exists() else None) == before


def test_bad_files_raise_clear_errors_and_stay_untouched(good, tmp_path):
    raw = good.read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(raw[: len(raw) // 2])
    _refused(truncated, "corrupted or truncated")
    short = tmp_path / "short.ckpt"
    short.write_bytes(raw[:20])
    _refused(short, "truncated")
    flipped = tmp_path / "flipped.ckpt"
    flipped.write_bytes(raw[:-10] + bytes([raw[-10] ^ 1]) + raw[-9:])
    _refused(flipped, "corrupted")
    foreign = tmp_path / "foreign.ckpt"
    foreign.write_bytes(b"\x80\x04\x95 this is a pickle, not a checkpoint")
    _refused(foreign, "not an arprob checkpoint")
    _refused(tmp_path / "missing.ckpt", "does not exist")
    other = ar.compile(SPEC.replace(ordering=ar.Reverse()))
    _refused(good, r"another spec: differs at spec\.ordering", model=other)


def test_another_optimizer_is_refused(good):
    model = ar.fit(MODEL, DATA, num_steps=1, batch_size=16).model
    params = eqx.filter(model, trainable_filter(model))
    with pytest.raises(ar.CheckpointError, match="opt_state"):
        ar.load_checkpoint(good, MODEL, opt_state_like=optax.sgd(0.1, momentum=0.9).init(params))


# ------------------------------------------------------------------ compact history
def _million_step_history() -> ar.History:
    """What a float32 fit logs over 1,000,000 steps: step counters, float32 losses and
    gradient norms, the float32 values of a cosine learning-rate schedule."""
    n = 1_000_000
    rng = np.random.default_rng(0)
    loss = (2.0 + 0.5 * np.exp(-np.arange(n) / 2e5) + rng.normal(0, 0.05, n)).astype(np.float32)
    grad = np.abs(rng.normal(1.0, 0.3, n)).astype(np.float32)
    lr = np.asarray(optax.cosine_decay_schedule(1e-2, n)(np.arange(n)))
    h = ar.History(step=list(range(n)), loss=loss.astype(float).tolist(), grad_norm=grad.astype(float).tolist(),
                   lr=lr.tolist(), eval_step=[999_999], val_nll=[2.5], note=[None, "text"])
    h.best_step, h.best_val_nll = 999_999, 2.5
    return h


def test_a_million_step_history_is_under_10_mb_and_loads_back_identical(tmp_path):
    path = tmp_path / "long.ckpt"
    history = _million_step_history()
    ar.save_checkpoint(path, model=MODEL, step=1_000_000, history=history.to_json())
    assert path.stat().st_size < 10 * 10**6, path.stat().st_size
    back = ar.History.from_json(read_header(path)["history"])
    assert back.keys() == history.keys()
    for key in history:
        assert back[key] == history[key], key
        assert [type(v) for v in back[key][:3]] == [type(v) for v in history[key][:3]], key
    assert (back.best_step, back.best_val_nll) == (999_999, 2.5)


def test_history_arrays_are_verified(tmp_path):
    """A forged history directory (checksum recomputed) is refused with a CheckpointError."""
    import hashlib
    import json

    from arprob.checkpoint import _PREFIX, MAGIC, VERSION

    path = tmp_path / "h.ckpt"
    ar.save_checkpoint(path, model=MODEL, step=3, history={"series": {"step": [0, 1, 2], "loss": [0.5, 0.25, 0.125]}})
    raw = path.read_bytes()
    _, _, n, _ = _PREFIX.unpack_from(raw)
    header, payload = json.loads(raw[_PREFIX.size : _PREFIX.size + n]), raw[_PREFIX.size + n :]
    assert [a["key"] for a in header["history"]["arrays"]] == ["step", "loss"] and header["history"]["series"] == {}

    def forged(edit) -> str:
        h = json.loads(json.dumps(header))
        edit(h)
        text = json.dumps(h).encode()
        out = tmp_path / "forged.ckpt"
        out.write_bytes(_PREFIX.pack(MAGIC, VERSION, len(text), hashlib.sha256(text + payload).digest()) + text + payload)
        with pytest.raises(ar.CheckpointError) as err:
            read_header(out)
        return str(err.value)

    assert "history series 'loss' holds 12 bytes or more; its header declares 4 float32 values" in forged(
        lambda h: h["history"]["arrays"][1].update(length=4))
    assert "declare" in forged(lambda h: h["history"]["arrays"][0].update(bytes=1))
    assert "dtype" in forged(lambda h: h["history"]["arrays"][0].update(dtype="object"))
    assert "memory budget" in forged(lambda h: h["history"]["arrays"][0].update(length=10**15))


def test_format_1_checkpoints_still_load(tmp_path):
    """Format 1 kept the history as JSON lists and wrote Table() (then every earlier
    element) without a parents key: both load, the table as parents="all"."""
    from arprob.checkpoint import _tree_bytes, write_verified

    spec = ar.Spec(variables=(ar.Binary("a"), ar.Categorical("w", 3)), conditionals={"w": ar.Table(parents="all")})
    model = ar.compile(spec)
    old_spec = ar.spec_to_dict(spec)
    del old_spec["conditionals"]["w"]["parents"]
    history = {"series": {"step": [0, 1], "loss": [0.75, 0.5]}, "best_step": None, "best_val_nll": None}
    blob = _tree_bytes(model)
    write_verified(tmp_path / "v1.ckpt", {"format": "arprob.checkpoint/1", "spec": old_spec, "step": 2, "rng": {},
                                          "state": {}, "history": history,
                                          "segments": {"model": len(blob), "opt_state": 0, "best": 0}}, [blob])
    ck = ar.load_checkpoint(tmp_path / "v1.ckpt")
    assert ck.model.spec == spec and ck.header["history"] == history
    for a, b in zip(_leaves(ck.model), _leaves(model)):
        np.testing.assert_array_equal(a, b)

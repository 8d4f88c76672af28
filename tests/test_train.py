"""fit options, history, callbacks, NaN stop, evaluation and plots (tiny models)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import arprob as ar
from arprob.evaluate import evaluate
from arprob.train import fit_tables, trainable_filter

IMG = ar.Binary("img", shape=(3, 3))
SPEC = ar.Spec(variables=(IMG,))
MODEL = ar.compile(SPEC)


def _data(n: int = 96, seed: int = 0) -> np.ndarray:
    """Correlated binary 3x3 images: a random bit copied with noise (something to learn)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2, size=(n, 1, 1))
    flip = rng.random((n, 3, 3)) < 0.15
    return (base ^ flip).astype(np.int64)


DATA = {"img": _data()}


def _params(model):
    return jax.tree_util.tree_leaves(eqx.filter(model, trainable_filter(model)))


def _same(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(_params(a), _params(b)))


def test_basic_call_and_history():
    res = ar.fit(MODEL, DATA, num_steps=30, batch_size=32, optimizer=optax.adam(5e-2), seed=0)
    model, history = res  # still a 2-tuple
    assert history["step"] == list(range(30)) and len(history["loss"]) == 30
    assert np.mean(history["loss"][-5:]) < history["loss"][0] - 0.5  # it learns
    assert history["loss"][0] == pytest.approx(9 * math.log(2), rel=1e-5)  # zero init = uniform
    assert len(history["grad_norm"]) == 30 and "lr" not in history  # rate hidden inside the optimizer
    assert history.stop_reason == "steps"
    assert isinstance(model, ar.Model)


def test_deterministic_for_a_seed():
    a = ar.fit(MODEL, DATA, num_steps=12, batch_size=16, seed=3)
    b = ar.fit(MODEL, DATA, num_steps=12, batch_size=16, seed=3)
    c = ar.fit(MODEL, DATA, num_steps=12, batch_size=16, seed=4)
    assert a.history["loss"] == b.history["loss"] and _same(a.model, b.model)
    assert a.history["loss"] != c.history["loss"]


def test_epochs_and_option_errors():
    res = ar.fit(MODEL, DATA, epochs=2, batch_size=40)  # 96 // 40 = 2 batches per epoch
    assert len(res.history["loss"]) == 4 and res.history.stop_reason == "epochs"
    with pytest.raises(ValueError, match="num_steps or epochs"):
        ar.fit(MODEL, DATA, epochs=1, num_steps=3)
    with pytest.raises(ValueError, match="learning_rate"):
        ar.fit(MODEL, DATA, num_steps=1, optimizer=optax.sgd(0.1), learning_rate=0.1)
    with pytest.raises(TypeError, match="GradientTransformation"):
        ar.fit(MODEL, DATA, num_steps=1, optimizer="adam")
    with pytest.raises(ValueError, match="patience"):
        ar.fit(MODEL, DATA, num_steps=1, patience=2)
    with pytest.raises(ar.DataError, match="'img'"):
        ar.fit(MODEL, {"img": np.full((4, 3, 3), 2)}, num_steps=1)


def test_schedule_factory_and_clipping_are_exact():
    schedule = optax.linear_schedule(0.5, 0.1, transition_steps=4)
    res = ar.fit(MODEL, DATA, num_steps=5, batch_size=32, optimizer=optax.sgd, learning_rate=schedule)
    np.testing.assert_allclose(res.history["lr"], [float(schedule(s)) for s in range(5)], rtol=1e-6)
    # One SGD step from zero weights moves the parameters by lr * min(|g|, clip).
    for clip in (1e-3, 1e3):
        one = ar.fit(MODEL, DATA, num_steps=1, batch_size=32, optimizer=optax.sgd(0.1), clip_norm=clip)
        moved = math.sqrt(sum(float(jnp.sum((a - b) ** 2)) for a, b in zip(_params(one.model), _params(MODEL))))
        assert moved == pytest.approx(0.1 * min(one.history["grad_norm"][0], clip), rel=1e-4)


def test_early_stopping_restores_the_best_model():
    val = {"img": _data(40, seed=1)}
    res = ar.fit(
        MODEL, DATA, num_steps=50, batch_size=16, validation=val, eval_every=3, patience=1, min_delta=1e9, seed=0
    )
    h = res.history
    # The first evaluation is the best (nothing improves by 1e9 nats); the second one stops.
    assert h.stop_reason == "early_stopping" and h["eval_step"] == [2, 5] and len(h["loss"]) == 6
    assert h.best_step == 2
    ev = evaluate(res.model, val)
    assert ev.nll == pytest.approx(h["val_nll"][0], rel=1e-6) and ev.nll != pytest.approx(h["val_nll"][1], rel=1e-9)
    assert ev.bits_per_dim == pytest.approx(h["val_bpd"][0], rel=1e-6)


def test_validation_without_early_stopping_returns_the_best_model():
    val = {"img": _data(40, seed=1)}
    common = dict(num_steps=30, batch_size=16, validation=val, eval_every=3, seed=0, optimizer=optax.sgd(3.0))
    best = ar.fit(MODEL, DATA, **common)
    last = ar.fit(MODEL, DATA, restore_best=False, **common)
    h = best.history
    i = int(np.argmin(h["val_nll"]))
    assert i < len(h["val_nll"]) - 1, "the large step size must overshoot, so the best is not the last"
    assert evaluate(best.model, val).nll == pytest.approx(h["val_nll"][i], rel=1e-6)
    assert evaluate(last.model, val).nll == pytest.approx(h["val_nll"][-1], rel=1e-6)


def test_validation_fraction_evaluates_every_epoch():
    res = ar.fit(MODEL, DATA, epochs=3, batch_size=24, validation=0.25)  # 72 train rows: 3 batches per epoch
    assert res.history["eval_step"] == [2, 5, 8] and len(res.history["loss"]) == 9
    assert all(np.isfinite(res.history["val_bpd"]))
    with pytest.raises(ValueError, match=r"fraction in \(0, 1\)"):
        ar.fit(MODEL, DATA, num_steps=1, validation=1.5)


def test_tables_count_and_logistic_trains_in_a_mixed_model():
    spec = ar.Spec(
        variables=(ar.Categorical("w", 3), ar.Binary("s", shape=(2,))),
        conditionals={"w": ar.Table(prior=1.0)},
    )
    model = ar.compile(spec)
    rng = np.random.default_rng(0)
    w = rng.integers(0, 3, size=64)
    data = {"w": w, "s": (rng.random((64, 2)) < (w[:, None] / 3)).astype(np.int64)}
    val = {"w": w[:10], "s": data["s"][:10]}
    res = ar.fit(model, data, num_steps=20, batch_size=32, validation=val)
    counted = fit_tables(model, model.to_flat(data))
    np.testing.assert_array_equal(
        np.asarray(res.model.components[0].conditioner.log_probs), np.asarray(counted.components[0].conditioner.log_probs)
    )
    assert not _same(res.model, model)  # the logistic part moved


def test_progress_bar_is_quiet_unless_asked(capsys):
    ar.fit(MODEL, DATA, num_steps=3, batch_size=32)
    assert capsys.readouterr().err == ""  # not a terminal: quiet
    ar.fit(MODEL, DATA, num_steps=3, batch_size=32, progress=True, log_every=1, validation=0.25, eval_every=3)
    err = capsys.readouterr().err
    assert "fit (1 device)" in err and "3/3" in err and "loss=" in err and "ex/s=" in err and "val bpd=" in err


def test_callbacks_see_every_step_and_can_stop():
    seen = []

    def cb(info: ar.StepInfo):
        seen.append((info.step, info.loss))
        return info.step == 4

    res = ar.fit(MODEL, DATA, num_steps=20, batch_size=16, callbacks=[cb])
    assert [s for s, _ in seen] == [0, 1, 2, 3, 4] and res.history.stop_reason == "callback"
    assert [loss for _, loss in seen] == res.history["loss"]


def _nan_at(count: int) -> optax.GradientTransformation:
    """SGD whose update at step ``count`` is NaN (a stand-in for a diverging run)."""

    def init(params):
        return jnp.zeros((), jnp.int32)

    def update(grads, state, params=None):
        scale = jnp.where(state == count, jnp.nan, -0.1)
        return jax.tree_util.tree_map(lambda g: scale * g, grads), state + 1

    return optax.GradientTransformation(init, update)


def test_nan_loss_stops_with_step_and_batch_and_keeps_the_checkpoint(tmp_path):
    path = tmp_path / "run.ckpt"
    # NaN update at step 2 -> parameters NaN -> loss NaN at step 3 (epoch 0, batch 3).
    with pytest.raises(ar.NonFiniteLossError, match=r"loss is nan at step 3 \(epoch 0, batch 3, data rows") as err:
        ar.fit(MODEL, DATA, num_steps=10, batch_size=16, optimizer=_nan_at(2), checkpoint=path, checkpoint_every=2)
    assert err.value.step == 3 and err.value.batch == 3 and len(err.value.rows) == 16
    assert "last good checkpoint (step 2)" in str(err.value)
    ck = ar.load_checkpoint(path, MODEL)
    assert ck.step == 2 and all(np.isfinite(np.asarray(p)).all() for p in _params(ck.model))
    # NaN update right before a checkpoint: the parameter check refuses to save it.
    path2 = tmp_path / "run2.ckpt"
    with pytest.raises(ar.NonFiniteLossError, match="parameters are not finite after step 3"):
        ar.fit(MODEL, DATA, num_steps=10, batch_size=16, optimizer=_nan_at(3), checkpoint=path2, checkpoint_every=2)
    assert ar.load_checkpoint(path2, MODEL).step == 2


def test_evaluate_matches_log_prob_and_splits_by_variable():
    spec = ar.Spec(variables=(ar.Categorical("w", 3), ar.Binary("s", shape=(2,)), ar.Real("t")))
    model = ar.compile(spec)
    rng = np.random.default_rng(1)
    data = {"w": rng.integers(0, 3, 23), "s": rng.integers(0, 2, (23, 2)), "t": rng.normal(size=23)}
    model = ar.fit(model, data, num_steps=5, batch_size=8).model
    lp = np.asarray(model.log_prob(data), np.float64)
    by_var = {k: np.asarray(v, np.float64).mean() for k, v in model.log_prob_by_variable(data).items()}
    for batch_size in (7, 23, 100):  # padded last batch, exact fit, one short batch
        ev = evaluate(model, data, batch_size=batch_size, return_log_prob=True)
        assert ev.num_examples == 23
        assert ev.nll == pytest.approx(-lp.mean(), rel=1e-5)
        np.testing.assert_allclose(ev.log_prob, lp, rtol=1e-5)
        assert ev.bits_per_dim == pytest.approx(-lp.mean() / (4 * math.log(2)), rel=1e-5)
        for name in by_var:
            assert ev.per_variable[name] == pytest.approx(-by_var[name], rel=1e-5, abs=1e-6)
        assert sum(ev.per_variable.values()) == pytest.approx(ev.nll, rel=1e-6)
    assert ev.per_variable_bits_per_dim["s"] == pytest.approx(ev.per_variable["s"] / (2 * math.log(2)))
    assert ev.costliest() == max(ev.per_variable, key=ev.per_variable.get)
    assert "| **total** |" in ev.table()


def test_fit_with_context():
    spec = ar.Spec(variables=(ar.Binary("b", shape=(2,)),), context_size=1)
    model = ar.compile(spec)
    rng = np.random.default_rng(0)
    ctx = rng.integers(0, 2, (64, 1)).astype(np.float64)
    data = {"b": np.repeat(ctx.astype(np.int64), 2, axis=1)}
    res = ar.fit(model, data, context=ctx, num_steps=60, batch_size=32, validation=0.25, optimizer=optax.adam(0.1))
    assert res.history["val_nll"][-1] < 0.5  # the context determines the bits
    assert evaluate(res.model, data, ctx).nll < 0.5


def test_training_curve_png_is_written_atomically(tmp_path):
    path = tmp_path / "curve.png"
    ar.fit(MODEL, DATA, num_steps=6, batch_size=16, validation=0.25, eval_every=3, plot=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]  # no temporary files left
    ar.plot_history(ar.History(), tmp_path / "empty.png")  # an empty history still draws
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_fit_lowers_the_batch_to_fit_the_memory_budget():
    """Under a budget that holds 20 training examples, ``fit(batch_size=64)`` warns and trains on 20."""
    import warnings

    from arprob import budget

    spec = ar.Spec(variables=(ar.Binary("x", shape=(30,)),), conditionals={"x": ar.Logistic()})
    model = ar.compile(spec)
    data = np.random.default_rng(0).integers(0, 2, (100, 30))
    est = budget.estimate(spec)
    ar.set_memory_budget(est.peak_bytes(20, "fit"))
    try:
        with pytest.warns(budget.MemoryBudgetWarning, match="batch_size=20"):
            result = ar.fit(model, data, num_updates=2, batch_size=64, progress=False)
        assert len(result.history["loss"]) == 2
        with warnings.catch_warnings():
            warnings.simplefilter("error", budget.MemoryBudgetWarning)
            ar.fit(model, data, num_updates=1, batch_size=20, progress=False)
    finally:
        ar.set_memory_budget(None)

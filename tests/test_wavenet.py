"""WaveNet (dilated causal conv): contract, normalisation, queue cache == naive, errors."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import arprob as ar
from exactness import assert_cached_equals_naive, assert_contract, assert_normalised, randomize


# ------------------------------------------------------------------ shared helpers (also used by
# test_pixelcnn.py and test_rnn.py)
@eqx.filter_jit
def step_params(model: ar.Model, x: jax.Array, context=None, *, naive: bool) -> list[jax.Array]:
    """Parameters every component's ``step`` (or ``naive_step``) returns at each step, teacher-forced
    on data rows ``x`` (B, D): the sampler's ``lax.scan`` with the true values written instead of draws."""
    b, d = x.shape
    ctx_axis = None if context is None else 0
    xs = jnp.zeros((b, d), x.dtype)
    feats = jnp.zeros((b, model.encoder.num_features), x.dtype)
    caches = tuple(
        jax.vmap(lambda c, cond=comp.conditioner: cond.init_cache(c), in_axes=ctx_axis, axis_size=b)(context)
        for comp in model.components
    )

    def body(carry, s):
        xs, feats, caches = carry
        new, outs = [], []
        for i, comp in enumerate(model.components):
            fn = comp.conditioner.naive_step if naive else comp.conditioner.step
            rows, elems = comp.block_rows[s], comp.block_elements[s]
            params, cache = jax.vmap(fn, in_axes=(0, 0, 0, ctx_axis, None, None))(caches[i], xs, feats, context, s, rows)
            values = x[:, jnp.minimum(elems, d - 1)]
            xs = xs.at[:, elems].set(values, mode="drop")
            feats = jax.vmap(model.encoder.write, in_axes=(0, 0, None))(feats, values, elems)
            new.append(cache)
            outs.append(params)
        return (xs, feats, tuple(new)), tuple(outs)

    _, outs = jax.lax.scan(body, (xs, feats, caches), jnp.arange(model.spec.steps.num_steps))
    return [jnp.swapaxes(o, 0, 1) for o in outs]  # each (B, S, m, P)


def assert_cached_params_match(model: ar.Model, x: np.ndarray, context=None, *, rtol: float = 1e-5) -> float:
    """Cached step params == naive step params == teacher-forced params, on every real row.

    Returns the largest cached-vs-naive difference (0.0 when bit-identical)."""
    x = jnp.asarray(x)
    context = None if context is None else jnp.asarray(context)
    cached = [np.asarray(c) for c in step_params(model, x, context, naive=False)]
    naive = [np.asarray(c) for c in step_params(model, x, context, naive=True)]
    full = model.conditional_params(x, context)
    worst = 0.0
    for comp, c, nv in zip(model.components, cached, naive):
        rows = np.asarray(comp.block_rows)  # (S, m), padded with n
        real = rows < len(comp.elements)
        np.testing.assert_allclose(c[:, real], nv[:, real], rtol=rtol, atol=rtol, err_msg=f"{comp.name}: cached")
        tf = np.asarray(full[comp.name])[:, rows[real]]
        np.testing.assert_allclose(nv[:, real], tf, rtol=rtol, atol=rtol, err_msg=f"{comp.name}: teacher-forced")
        worst = max(worst, float(np.max(np.abs(c[:, real] - nv[:, real]), initial=0.0)))
    return worst


def random_rows(spec: ar.Spec, n: int, seed: int) -> np.ndarray:
    from exactness import random_data

    return random_data(spec, n, np.random.default_rng(seed))


def grads_finite(model: ar.Model, x: np.ndarray, context=None) -> None:
    params, static = eqx.partition(model, eqx.is_inexact_array)
    loss = lambda p: -jnp.mean(eqx.combine(p, static).log_prob(x, context))
    grads = jax.grad(loss)(params)
    leaves = [g for g in jax.tree_util.tree_leaves(grads) if g is not None]
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


def _model(spec, seed=0):
    return randomize(ar.compile(spec, jax.random.key(seed)), jax.random.key(seed + 1), scale=0.7)


# ------------------------------------------------------------------------------- cases
CASES = {
    "raster-binary-3x2": dict(variables=(ar.Binary("x", shape=(3, 2)),)),
    "snake-two-vars": dict(
        variables=(ar.Binary("a", shape=(2, 2)), ar.Categorical("b", 3, shape=(2,))), ordering=ar.Snake()
    ),
    "random-fixed2-k3": dict(
        variables=(ar.Binary("a", shape=(2, 3)),), ordering=ar.RandomOrder(1), partition=ar.FixedSize(2), k=3
    ),
    "per-row-ordinal": dict(variables=(ar.Ordinal("a", levels=3, shape=(3, 2)),), partition=ar.PerRow()),
    "context": dict(variables=(ar.Binary("a", shape=(2, 3)),), ordering=ar.EvenOdd(), context_size=2),
}


def _spec(case: dict, **kw) -> ar.Spec:
    case = dict(case)
    k = case.pop("k", 2)
    return ar.Spec(
        **case, conditionals={v.name: ar.WaveNet(channels=4, num_layers=3, kernel_size=k, **kw) for v in case["variables"]}
    )


FAST = ("snake-two-vars", "random-fixed2-k3", "context")


@pytest.mark.parametrize("name", [c if c in FAST else pytest.param(c, marks=pytest.mark.slow) for c in CASES])
def test_wavenet_exact(name):
    spec = _spec(CASES[name])
    model = _model(spec)
    ctx = np.array([0.5, -1.0], np.float32) if spec.context_size else None
    assert_normalised(model, ctx)
    assert_contract(model, np.random.default_rng(0), ctx)
    x = random_rows(spec, 4, 0)
    cb = None if ctx is None else np.repeat(ctx[None], 4, 0)
    assert_cached_params_match(model, x, cb)
    assert_cached_equals_naive(model, jax.random.key(2), n=16, context=None if ctx is None else np.repeat(ctx[None], 16, 0))
    if spec.context_size:
        grads_finite(model, x, cb)


@pytest.mark.slow
def test_wavenet_real_variable_gaussian():
    spec = ar.Spec(variables=(ar.Real("y", shape=(5,)), ar.Binary("z", shape=(2,))), ordering=ar.Reverse(),
                   conditionals={"y": ar.WaveNet(channels=4, num_layers=3), "z": ar.WaveNet(channels=4, num_layers=2)})
    model = _model(spec)
    assert_contract(model, np.random.default_rng(1))
    assert_cached_params_match(model, random_rows(spec, 4, 1))


def test_wavenet_context_reaches_every_conditional():
    case = CASES["context"]
    spec = ar.Spec(**case, conditionals={"a": ar.WaveNet(channels=16, num_layers=2)})
    model = _model(spec)
    x = random_rows(spec, 1, 0)[0]
    cond = model.components[0].conditioner
    jac = jax.jacfwd(lambda c: cond(jnp.asarray(x), model.encoder(jnp.asarray(x)), c))(jnp.zeros(2))
    assert np.all(np.abs(np.asarray(jac)).sum(-1) > 0)


def test_queue_cache_long_sequence():
    """Dilations beyond the sequence start and wrap-around of every ring buffer."""
    spec = ar.Spec(variables=(ar.Binary("x", shape=(40,)),), conditionals={"x": ar.WaveNet(channels=3, num_layers=5, kernel_size=3, dilation_cycle=4)})
    model = _model(spec)
    assert_cached_params_match(model, random_rows(spec, 3, 0))
    assert_cached_equals_naive(model, jax.random.key(0), n=8)


def test_contract_check_catches_a_shifted_input():
    """Feeding the current step's values (no shift) must be caught."""
    spec = _spec(CASES["raster-binary-3x2"])
    model = _model(spec)
    cond = model.components[0].conditioner
    leaky_index = jnp.concatenate([cond.inputs.feat_index[1:], cond.inputs.feat_index[-1:]], 0)
    leaky = eqx.tree_at(lambda m: m.components[0].conditioner.inputs.feat_index, model, leaky_index)
    with pytest.raises(AssertionError):
        assert_contract(leaky, np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(channels=0), "channels"),
        (dict(kernel_size=1), "kernel_size"),
        (dict(num_layers=-1), "num_layers"),
        (dict(dilation_cycle=0), "dilation_cycle"),
    ],
)
def test_wavenet_invalid_config(kwargs, match):
    with pytest.raises(ar.SpecError, match=match):
        ar.WaveNet(**kwargs)


def test_receptive_field():
    assert ar.WaveNet(num_layers=10, kernel_size=2).receptive_field() == 1 + 1 + 1023

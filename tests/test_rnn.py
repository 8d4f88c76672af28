"""Recurrent conditioner (GRU / LSTM): contract, normalisation, hidden-state cache == naive."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import arprob as ar
from exactness import assert_cached_equals_naive, assert_contract, assert_normalised, randomize
from test_wavenet import assert_cached_params_match, grads_finite, random_rows


def _model(spec, seed=0):
    return randomize(ar.compile(spec, jax.random.key(seed)), jax.random.key(seed + 1), scale=0.7)


CASES = {
    "gru-columns-two-vars": dict(
        variables=(ar.Binary("a", shape=(2, 2)), ar.Categorical("b", 3, shape=(2,))), ordering=ar.Columns(), cell="gru"
    ),
    "lstm-evenodd-fixed2-context": dict(
        variables=(ar.Binary("a", shape=(2, 3)),), ordering=ar.EvenOdd(), partition=ar.FixedSize(2),
        context_size=2, cell="lstm",
    ),
    "lstm-random-ordinal": dict(
        variables=(ar.Ordinal("a", levels=3, shape=(3, 2)),), ordering=ar.RandomOrder(2), cell="lstm", slow=True
    ),
}


@pytest.mark.parametrize(
    "name", [pytest.param(c, marks=pytest.mark.slow) if CASES[c].get("slow") else c for c in CASES]
)
def test_rnn_exact(name):
    case = {k: v for k, v in CASES[name].items() if k != "slow"}
    cell = case.pop("cell")
    spec = ar.Spec(**case, conditionals={v.name: ar.RNN(hidden=6, cell=cell) for v in case["variables"]})
    model = _model(spec)
    ctx = np.array([1.0, -0.5], np.float32) if spec.context_size else None
    assert_normalised(model, ctx)
    assert_contract(model, np.random.default_rng(0), ctx)
    x = random_rows(spec, 4, 0)
    cb = None if ctx is None else np.repeat(ctx[None], 4, 0)
    assert_cached_params_match(model, x, cb)
    assert_cached_equals_naive(model, jax.random.key(1), n=16, context=None if ctx is None else np.repeat(ctx[None], 16, 0))
    grads_finite(model, x, cb)


def test_rnn_real_gaussian_cache():
    spec = ar.Spec(variables=(ar.Real("y", shape=(6,)),), ordering=ar.Reverse(), conditionals={"y": ar.RNN(hidden=5)})
    model = _model(spec)
    assert_contract(model, np.random.default_rng(2))
    assert_cached_params_match(model, random_rows(spec, 4, 2))
    assert_cached_equals_naive(model, jax.random.key(0), n=8)


def test_contract_check_catches_unshifted_input():
    spec = ar.Spec(variables=(ar.Binary("a", shape=(4,)),), conditionals={"a": ar.RNN(hidden=4)})
    model = _model(spec)
    idx = model.components[0].conditioner.inputs.feat_index
    leaky = eqx.tree_at(
        lambda m: m.components[0].conditioner.inputs.feat_index, model, jnp.concatenate([idx[1:], idx[-1:]], 0)
    )
    with pytest.raises(AssertionError):
        assert_contract(leaky, np.random.default_rng(0))


@pytest.mark.parametrize("kwargs, match", [(dict(cell="rnn"), "cell"), (dict(hidden=0), "hidden")])
def test_rnn_invalid_config(kwargs, match):
    with pytest.raises(ar.SpecError, match=match):
        ar.RNN(**kwargs)

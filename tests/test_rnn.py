"""Recurrent conditioner (GRU / LSTM) beyond the exactness table (tests/exactness.py): a real
variable's cache, a leak the checker must catch, errors."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import arprob as ar
from exactness import assert_cached_equals_naive, assert_cached_params_match, assert_contract, random_data, randomize


def _model(spec, seed=0):
    return randomize(ar.compile(spec, jax.random.key(seed)), jax.random.key(seed + 1), scale=0.7)


def test_rnn_real_gaussian_cache():
    spec = ar.Spec(variables=(ar.Real("y", shape=(6,)),), ordering=ar.Reverse(), conditionals={"y": ar.RNN(hidden=5)})
    model = _model(spec)
    assert_contract(model, np.random.default_rng(2))
    assert_cached_params_match(model, random_data(spec, 4, np.random.default_rng(2)))
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

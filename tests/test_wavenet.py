"""WaveNet (dilated causal conv): what the exactness table (tests/exactness.py) does not cover:
long sequences (ring-buffer wrap-around), the context path, a leak the checker must catch, errors."""

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


CONTEXT_CASE = dict(variables=(ar.Binary("a", shape=(2, 3)),), ordering=ar.EvenOdd(), context_size=2)


def random_rows(spec: ar.Spec, n: int, seed: int) -> np.ndarray:
    return random_data(spec, n, np.random.default_rng(seed))


def test_wavenet_context_reaches_every_conditional():
    spec = ar.Spec(**CONTEXT_CASE, conditionals={"a": ar.WaveNet(channels=16, num_layers=2)})
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
    spec = ar.Spec(variables=(ar.Binary("x", shape=(3, 2)),), conditionals={"x": ar.WaveNet(channels=4, num_layers=3)})
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

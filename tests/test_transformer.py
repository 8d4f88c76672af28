"""Causal transformer: contract, normalisation, KV-cached == uncached sampling, errors."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import arprob as ar
from arprob.conditioners.transformer import TransformerConditioner, _attend, _split, sinusoidal_code
from exactness import (
    all_configurations,
    assert_cached_equals_naive,
    assert_gradients_finite,
    assert_contract,
    assert_normalised,
    assert_samples_match,
    randomize,
)

SMALL = dict(width=8, num_heads=2)
CASES = {
    "raster-singletons-learned": (ar.Raster(), ar.Singletons(), ar.Transformer(num_layers=2, **SMALL)),
    "zigzag-pairs-sinusoidal": (ar.Zigzag(), ar.FixedSize(2), ar.Transformer(num_layers=2, coordinate_coding="sinusoidal", **SMALL)),
    "random-order-3-layers": (ar.RandomOrder(5), ar.Singletons(), ar.Transformer(num_layers=3, **SMALL)),
    "rows-as-blocks-1-layer": (ar.Reverse(), ar.PerRow(), ar.Transformer(num_layers=1, **SMALL)),
}


def _model(spec, seed=0, scale=1.0):
    return randomize(ar.compile(spec, jax.random.key(seed)), jax.random.key(seed + 1), scale)


SLOW_CASES = list(CASES)  # run with -m slow; the exactness table (tests/exactness.py) covers zigzag pairs


@pytest.fixture(
    scope="module",
    params=[pytest.param(k, marks=pytest.mark.slow) if k in SLOW_CASES else k for k in CASES],
)
def case_model(request):
    ordering, partition, tr = CASES[request.param]
    spec = ar.Spec(variables=(ar.Binary("img", shape=(2, 3)), ar.Categorical("label", 3)), ordering=ordering,
                   partition=partition, conditionals={"img": tr, "label": tr})
    return _model(spec)


def test_normalised_contract_cached_gradients(case_model):
    assert_normalised(case_model)
    assert_contract(case_model, np.random.default_rng(0))
    assert_cached_equals_naive(case_model, jax.random.key(0), n=64)
    assert_gradients_finite(case_model, all_configurations(case_model.spec)[:16])


def test_samples_match_likelihood():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(2, 2)),), ordering=ar.Snake(),
                   conditionals={"x": ar.Transformer(num_layers=2, **SMALL)})
    assert_samples_match(_model(spec, 2), jax.random.key(0), n=6000)


def test_context_and_ordinal():
    spec = ar.Spec(variables=(ar.Ordinal("o", levels=3, shape=(3,)), ar.Binary("b", shape=(2,))), context_size=2,
                   ordering=ar.RandomOrder(1), conditionals={"o": ar.Transformer(**SMALL)})
    model = _model(spec, 4)
    ctx = np.array([1.0, -0.5], np.float32)
    assert_normalised(model, ctx)
    assert_contract(model, np.random.default_rng(0), ctx)
    assert_cached_equals_naive(model, jax.random.key(0), n=32, context=np.repeat(ctx[None], 32, 0))
    x = all_configurations(spec)[:4]
    assert not np.allclose(model.log_prob(x, np.zeros((4, 2), np.float32)), model.log_prob(x, np.repeat(ctx[None], 4, 0)))


def test_real_variable_cached_matches_naive_to_rounding():
    """Continuous samples expose last-ulp differences between the KV-cached step (attention
    of the new queries only) and the full pass; equal to 1e-5 relative, far below any bug."""
    spec = ar.Spec(variables=(ar.Real("r", shape=(2, 3)),), ordering=ar.Snake(),
                   conditionals={"r": ar.Transformer(num_layers=2, **SMALL)})
    model = _model(spec, 6, scale=0.3)
    assert_contract(model, np.random.default_rng(2))
    cached = np.asarray(model.sample_flat(jax.random.key(2), 32))
    naive = np.asarray(model.sample_flat(jax.random.key(2), 32, naive=True))
    np.testing.assert_allclose(cached, naive, rtol=1e-5, atol=1e-5)


class _LeakyTransformer(TransformerConditioner):
    """Layer 1 with ``step[j] <= step[e]`` instead of ``<``: element e attends its own value."""

    def __call__(self, x, feats, context):
        d = self.step_of.shape[0]
        idx = jnp.arange(d)
        kv_in = self.ln_kv(jnp.concatenate([self._tokens(feats, idx), self._start(context)[None]], axis=0))
        h = self._query0(idx, context)
        step = self.step_of
        valid1 = jnp.concatenate([step[None, :] <= step[:, None], jnp.ones((d, 1), bool)], axis=1)
        blk = self.blocks[0]
        xq = blk.ln_q(h)
        k, v = self._kv(blk, kv_in)
        h = blk.mlp(h + _attend(_split(xq @ blk.wq, self.num_heads), k, v, valid1) @ blk.wo + blk.bo)
        return self._readout(h[self.elements[:-1]])


def test_contract_check_catches_self_attention_in_first_layer():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(4,)),), conditionals={"x": ar.Transformer(num_layers=1, **SMALL)})
    model = _model(spec)
    cond = model.components[0].conditioner
    leaky = _LeakyTransformer(**{f.name: getattr(cond, f.name) for f in dataclasses.fields(cond)})
    assert_contract(model, np.random.default_rng(0))  # the real one passes
    broken = eqx.tree_at(lambda m: m.components[0].conditioner, model, leaky)
    with pytest.raises(AssertionError):
        assert_contract(broken, np.random.default_rng(0))


def test_width_not_divisible_by_heads():
    with pytest.raises(ar.SpecError, match="width=10 is not divisible by num_heads=4"):
        ar.Transformer(width=10, num_heads=4)
    with pytest.raises(ar.SpecError, match="coordinate_coding"):
        ar.Transformer(coordinate_coding="rotary")
    with pytest.raises(ar.SpecError, match="num_layers"):
        ar.Transformer(num_layers=0)


def test_sinusoidal_code_distinguishes_coordinates():
    coords = np.array([[r, c, 0, 0] for r in range(8) for c in range(8)])
    code = sinusoidal_code(coords, 32)
    assert code.shape == (64, 32)
    assert len({tuple(np.round(row, 6)) for row in code}) == 64


def test_registered_kind():
    assert ar.conditioners.CONDITIONAL_KINDS["transformer"] is ar.Transformer

"""Gated PixelCNN: contract (mask A/B, stacks, channel groups), normalisation, row cache == naive,
orderings it honours and the errors for the rest."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import arprob as ar
from exactness import (
    assert_cached_equals_naive,
    assert_cached_params_match,
    assert_contract,
    assert_gradients_finite,
    assert_normalised,
    random_data,
    randomize,
)


def random_rows(spec: ar.Spec, n: int, seed: int) -> np.ndarray:
    return random_data(spec, n, np.random.default_rng(seed))

ORDERINGS = {
    "raster": ar.Raster(),
    "reverse": ar.Reverse(),
    "columns": ar.Columns(),
    "reverse-columns": ar.Reverse(ar.Columns()),
}


def _spec(shape, ordering=ar.Raster(), partition=ar.Singletons(), var=None, context_size=0, **kw):
    var = var or ar.Binary("img", shape=shape)
    kw = {"channels": 4, "num_layers": 2, **kw}
    return ar.Spec(
        variables=(var,), ordering=ordering, partition=partition, context_size=context_size,
        conditionals={var.name: ar.PixelCNN(**kw)},
    )


def _model(spec, seed=0):
    return randomize(ar.compile(spec, jax.random.key(seed)), jax.random.key(seed + 1), scale=0.7)


def _check(spec, context=None, enumerate_=True):
    model = _model(spec)
    if enumerate_:
        assert_normalised(model, context)
    assert_contract(model, np.random.default_rng(0), context)
    x = random_rows(spec, 4, 0)
    cb = None if context is None else np.repeat(np.asarray(context)[None], 4, 0)
    assert_cached_params_match(model, x, cb)
    cs = None if context is None else np.repeat(np.asarray(context)[None], 16, 0)
    assert_cached_equals_naive(model, jax.random.key(3), n=16, context=cs)
    return model


# reverse-columns (with a context) and per-pixel rows run in the exactness table (tests/exactness.py)
@pytest.mark.slow
@pytest.mark.parametrize("order", ORDERINGS)
def test_channels_singletons(order):
    """2-channel 2x2 binary image, one element per step: channel autoregression inside the pixel."""
    _check(_spec((2, 2, 2), ORDERINGS[order], kernel_size=3))


@pytest.mark.slow
def test_per_pixel():
    _check(_spec((2, 2, 2), ar.Columns(), ar.PerPixel()))


@pytest.mark.slow
def test_grayscale_reverse_and_gradients():
    model = _check(_spec((3, 2), ar.Reverse()))
    assert_gradients_finite(model, random_rows(model.spec, 4, 0))


def test_class_conditional_bias():
    spec = _spec((2, 3), context_size=3)
    ctx = np.array([0.0, 1.0, 0.0], np.float32)
    model = _check(spec, ctx)
    assert_gradients_finite(model, random_rows(spec, 4, 0), np.repeat(ctx[None], 4, 0))
    # the context reaches every conditional (Jacobian w.r.t. the context; wider net so no unit is dead)
    m16 = _model(_spec((2, 3), context_size=3, channels=16))
    x = jnp.asarray(random_rows(spec, 1, 0)[0])
    cond = m16.components[0].conditioner
    jac = eqx.filter_jit(lambda cond, enc, c: jax.jacfwd(lambda cc: cond(x, enc(x), cc))(c))(cond, m16.encoder, jnp.asarray(ctx))
    assert np.all(np.abs(np.asarray(jac)).sum(-1) > 0)


@pytest.mark.slow
def test_categorical_and_real_images():
    _check(_spec((2, 2), var=ar.Categorical("img", 3, shape=(2, 2))))
    spec = _spec((3, 3, 2), var=ar.Real("img", shape=(3, 3, 2)), channels=6, num_layers=3)
    model = _model(spec)
    assert_contract(model, np.random.default_rng(1))
    assert_cached_params_match(model, random_rows(spec, 4, 1))
    assert_cached_equals_naive(model, jax.random.key(0), n=8)


def test_no_blind_spot():
    """With enough layers the centre pixel's params depend on every earlier pixel (the
    upper-right wedge included) and on none after."""
    spec = _spec((5, 5), channels=8, num_layers=4)
    model = _model(spec)
    x = jnp.asarray(random_rows(spec, 1, 0)[0])
    cond = model.components[0].conditioner
    jac = np.asarray(eqx.filter_jit(lambda cond, f: jax.jacfwd(lambda ff: cond(x, ff, None))(f))(cond, model.encoder(x)))[12, 0]  # pixel (2, 2)
    assert np.all(jac[:12] != 0), jac.reshape(5, 5)
    assert np.all(jac[12:] == 0)


@pytest.mark.slow
def test_other_variables_ignored():
    """PixelCNN reads its own image only; another variable earlier in the ordering is fine."""
    spec = ar.Spec(
        variables=(ar.Categorical("label", 3), ar.Binary("img", shape=(2, 2))),
        conditionals={"label": ar.Table(), "img": ar.PixelCNN(channels=4, num_layers=2)},
    )
    _check(spec)


def test_contract_check_catches_mask_b_in_first_layer():
    spec = _spec((2, 2, 2))
    model = _model(spec)
    leaky = eqx.tree_at(
        lambda m: m.components[0].conditioner.layers[0].h_mask, model,
        jnp.ones_like(model.components[0].conditioner.layers[0].h_mask),
    )
    with pytest.raises(AssertionError):
        assert_contract(leaky, np.random.default_rng(0))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: _spec((3, 3), ar.Snake()), "MADE or Transformer"),
        (lambda: _spec((3, 3), ar.RandomOrder(0)), "honours only raster order"),
        (lambda: _spec((2, 4), partition=ar.FixedSize(2)), "share step"),
        (lambda: _spec((2, 2, 2), partition=ar.PerRow()), "PerPixel"),
        (lambda: _spec((4, 2), kernel_size=5), "kernel_size=5 reaches 2 pixels"),
        (lambda: _spec((2, 2, 3), channels=2), "channels >= 3"),
        (lambda: ar.Spec(variables=(ar.Binary("v", shape=(6,)),), conditionals={"v": ar.PixelCNN()}), "shape"),
        (lambda: ar.PixelCNN(kernel_size=4), "odd"),
        (lambda: ar.PixelCNN(kernel_size=1), "kernel_size"),
    ],
)
def test_invalid_configs_raise_at_spec_construction(build, match):
    with pytest.raises(ar.SpecError, match=match):
        build()

"""Blocked (flash-style) attention of the transformer's full pass equals dense attention."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import arprob as ar
from arprob.conditioners.transformer import _attend, _split, attention_tiles, blocked_attend
from arprob.spec.layout import may_read
from arprob.testing import randomize
from arprob.validation import as_flat

TOL = {False: dict(rtol=2e-5, atol=2e-6), True: dict(rtol=1e-12, atol=1e-13)}


def test_attention_tiles():
    assert attention_tiles(784, 128) == (7, 112)
    assert attention_tiles(26, 8) == (4, 8)
    assert attention_tiles(5, 128) == (1, 8)


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
def test_blocked_equals_dense(x64):
    """Random steps with ties (blocks), unsorted and sorted, strict (with the start token)
    and same-step rules, 37 rows in tiles of 8 (3 padding rows)."""
    n, heads, dh = 37, 2, 3
    rng = np.random.default_rng(0)
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        q, k, v = (jnp.asarray(3 * rng.normal(size=(n, heads, dh)), dtype) for _ in range(3))
        k0, v0 = (jnp.asarray(rng.normal(size=(heads, dh)), dtype) for _ in range(2))
        steps = rng.integers(0, 15, n)
        blocked = jax.jit(blocked_attend, static_argnames=("same_step", "tile"))
        dense = jax.jit(_attend)
        for same in (False, True):
            start = None if same else (k0, v0)
            for step in (jnp.asarray(steps), jnp.asarray(np.sort(steps))):
                got = blocked(q, k, v, step, step, same_step=same, start=start, tile=8)
                valid = may_read(step, step, same_step=same)
                if same:
                    want = dense(q, k, v, valid)
                else:  # the start token as one more, always visible key
                    want = dense(q, jnp.concatenate([k, k0[None]]), jnp.concatenate([v, v0[None]]),
                                 jnp.concatenate([valid, jnp.ones((n, 1), bool)], axis=1))
                assert got.dtype == dtype
                np.testing.assert_allclose(np.asarray(got), np.asarray(want), **TOL[x64])


def _dense_pass(cond, feats, context):
    """The transformer's full pass with dense attention (the implementation before tiling)."""
    d = cond.step_of.shape[0]
    idx = jnp.arange(d)
    kv_in = cond.ln_kv(jnp.concatenate([cond._tokens(feats, idx), cond._start(context)[None]], axis=0))
    h, step = cond._query0(idx, context), cond.step_of
    valid1 = jnp.concatenate([may_read(step, step), jnp.ones((d, 1), bool)], axis=1)
    for l, blk in enumerate(cond.blocks):
        xq = blk.ln_q(h)
        k, v = cond._kv(blk, kv_in if l == 0 else xq)
        valid = valid1 if l == 0 else may_read(step, step, same_step=True)
        h = blk.mlp(h + _attend(_split(xq @ blk.wq, cond.num_heads), k, v, valid) @ blk.wo + blk.bo)
    return cond._readout(h[cond.elements[:-1]])


def test_transformer_tiles_equal_dense_pass():
    """A 5x5 image in random order with pairs as blocks, tiles of 8 (4 tiles, 7 padding
    rows): the tiled full pass equals the dense one (float64: the kernel test above)."""
    tr = ar.Transformer(width=8, num_heads=2, num_layers=2)
    spec = ar.Spec(variables=(ar.Binary("img", shape=(5, 5)),), ordering=ar.RandomOrder(1),
                   partition=ar.FixedSize(2), conditionals={"img": tr})
    model = randomize(ar.compile(spec, jax.random.key(0)), jax.random.key(1))
    cond = dataclasses.replace(model.components[0].conditioner, attention_tile=8)
    x = as_flat(model.spec, {"img": np.random.default_rng(2).integers(0, 2, (4, 5, 5))})

    @jax.jit
    def both(encoder, cond, x):
        feats = jax.vmap(encoder)(x)
        return jax.vmap(lambda f: cond(None, f, None))(feats), jax.vmap(lambda f: _dense_pass(cond, f, None))(feats)

    got, want = both(model.encoder, cond, x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), **TOL[False])

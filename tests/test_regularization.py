"""Dropout and weight decay: on only in training, never in scoring or sampling, and never a leak.

Dropout masks are drawn from a key, not from the data, so the training-time density keeps
the autoregressive contract; with ``dropout=0`` (the default) nothing changes at all.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import arprob as ar
from arprob.conditioners.base import dropout
from arprob.model import flat_log_prob, flat_train_log_prob

# PixelCNN's dropout is the shared read-out's (``sequence.output_mlp``), tested through WaveNet
FAMILIES = {
    "made": lambda rate: ar.MADE(hidden=(24,), dropout=rate),
    "wavenet": lambda rate: ar.WaveNet(channels=8, num_layers=2, dropout=rate),
    "rnn": lambda rate: ar.RNN(hidden=8, dropout=rate),
    "transformer": lambda rate: ar.Transformer(width=8, num_heads=2, num_layers=1, dropout=rate),
}
X = (np.random.RandomState(0).rand(16, 9) > 0.5).astype(np.float32)


def _spec(cond):
    return ar.Spec([ar.Binary("img", (3, 3))], ordering=ar.Columns(), conditionals={"img": cond})


def _jitter(model, seed: int):
    """Every float weight moved off its initial value (read-outs start at zero, where dropout
    changes nothing), without paying for a training run."""
    rng = np.random.RandomState(seed)
    return jax.tree_util.tree_map(
        lambda a: a + jnp.asarray(0.3 * rng.randn(*a.shape), a.dtype) if eqx.is_inexact_array(a) else a, model
    )


@pytest.fixture(scope="module")
def trained():
    """Each family with dropout 0.5 and non-trivial weights."""
    return {name: _jitter(ar.compile(_spec(make(0.5))), 0) for name, make in FAMILIES.items()}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_dropout_only_in_training(trained, name):
    model = trained[name]
    assert model.uses_dropout
    x = jnp.asarray(X)
    a = flat_train_log_prob(model, x, None, jax.random.key(1))
    b = flat_train_log_prob(model, x, None, jax.random.key(2))
    assert not np.allclose(a, b), "dropout should make the training density depend on the key"
    np.testing.assert_array_equal(flat_train_log_prob(model, x, None, jax.random.key(1)), a)
    # scoring and sampling never drop: the same as the same weights declared without dropout
    no_drop = _with_rate(model, 0.0)
    np.testing.assert_array_equal(model.log_prob(x), no_drop.log_prob(x))
    if name in ("made", "wavenet"):  # sampler compiles are the slow part; two families suffice here
        np.testing.assert_array_equal(model.sample_flat(jax.random.key(3), 5), no_drop.sample_flat(jax.random.key(3), 5))


def _with_rate(model, rate):
    """The same weights with another dropout rate."""
    cond = dataclasses.replace(model.components[0].conditioner, dropout_rate=rate)
    return eqx.tree_at(lambda m: m.components[0].conditioner, model, cond)


@pytest.mark.parametrize("name", ["made"])
def test_training_density_keeps_the_contract(trained, name):
    """d log p(x_e | x_<e) / d x_j = 0 for every other j not before e, with dropout on (fixed key)."""
    model = trained[name]
    spec = model.spec
    step = spec.steps.step
    x = jnp.asarray(X[0], dtype=jnp.float32)

    def terms(v):
        return model._example_terms(v, None, jax.random.key(7))

    jac = np.asarray(jax.jacfwd(terms)(x))
    others_not_before = (step[None, :] >= step[:, None]) & ~np.eye(len(step), dtype=bool)
    assert np.all(jac[others_not_before] == 0.0)


def test_dropout_rate_and_scale():
    h = jnp.ones((20000,))
    out = np.asarray(dropout(h, 0.25, jax.random.key(0)))
    assert abs((out == 0).mean() - 0.25) < 0.02
    assert abs(out.mean() - 1.0) < 0.03  # inverted dropout keeps the mean
    np.testing.assert_array_equal(dropout(h, 0.25, None), h)
    np.testing.assert_array_equal(dropout(h, 0.0, jax.random.key(0)), h)


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.2", True])
def test_bad_dropout_rate_is_refused(rate):
    with pytest.raises(ar.SpecError, match="dropout"):
        ar.MADE(dropout=rate)


def test_weight_decay_shrinks_weights():
    spec = _spec(ar.MADE(hidden=(24,)))
    model = ar.compile(spec)
    kw = dict(num_updates=40, batch_size=8, progress=False, learning_rate=1e-2)
    plain = ar.fit(model, X, **kw).model
    decayed = ar.fit(model, X, weight_decay=5.0, **kw).model
    norm = lambda m: float(jnp.sum(m.components[0].conditioner.weights[0] ** 2))  # noqa: E731
    bias = lambda m: m.components[0].conditioner.biases[0]  # noqa: E731
    assert norm(decayed) < 0.8 * norm(plain)
    assert np.isfinite(np.asarray(decayed.log_prob(X))).all()
    assert bias(decayed).shape == bias(plain).shape
    with pytest.raises(ValueError, match="weight_decay"):
        ar.fit(model, X, weight_decay=-1.0, **kw)
    with pytest.raises(ValueError, match="own optimizer"):
        ar.fit(model, X, num_updates=2, progress=False, optimizer=optax.sgd(0.1), weight_decay=0.1)


def test_no_dropout_fit_is_unchanged():
    """dropout=0 (default) takes no key: the same numbers as before regularisation existed."""
    model = ar.compile(_spec(ar.MADE(hidden=(24,))))
    assert not model.uses_dropout
    x = jnp.asarray(X)
    np.testing.assert_array_equal(flat_train_log_prob(model, x, None, jax.random.key(0)), flat_log_prob(model, x))

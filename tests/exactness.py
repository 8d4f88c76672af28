"""Generic exactness checks every head x conditioner must pass.

- ``assert_normalised``: exp(log_prob) summed over every configuration is 1.
- ``assert_contract``: parameters of element e do not change when any element with
  step >= step[e] changes (exactly: perturbation test, and Jacobian zeros for
  differentiable conditioners).
- ``assert_samples_match``: a G-test of sample frequencies against exp(log_prob).
- ``assert_cached_equals_naive``: the cached sampler draws exactly the naive samples.
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy import special, stats

import arprob as ar


def randomize(model: ar.Model, key, scale: float = 1.0) -> ar.Model:
    """Replace every floating-point array of the model by N(0, scale^2) draws.

    Draws come from numpy (seeded from ``key``) so no JAX kernel is compiled per leaf shape.
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    leaves, treedef = jax.tree_util.tree_flatten(model)
    new = [
        jnp.asarray(scale * rng.normal(size=leaf.shape), leaf.dtype)
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jnp.floating) else leaf
        for leaf in leaves
    ]
    return jax.tree_util.tree_unflatten(treedef, new)


def all_configurations(spec: ar.Spec) -> np.ndarray:
    """Every configuration of a small, fully discrete spec, as flat rows."""
    cards = spec.layout.num_values
    assert np.all(cards > 0), "enumeration needs a discrete spec"
    return np.array(list(itertools.product(*[range(int(k)) for k in cards])), dtype=np.float32).reshape(-1, len(cards))


def random_data(spec: ar.Spec, n: int, rng: np.random.Generator) -> np.ndarray:
    cards = spec.layout.num_values
    x = rng.normal(size=(n, len(cards)))
    disc = cards > 0
    x[:, disc] = rng.integers(0, cards[disc], size=(n, int(disc.sum())))
    return x.astype(np.float32)


@eqx.filter_jit
def _jacobian(conditioner, x, feats, context):
    return jax.jacfwd(lambda f: conditioner(x, f, context))(feats)


def assert_normalised(model: ar.Model, context=None, atol: float = 1e-5) -> None:
    x = all_configurations(model.spec)
    ctx = None if context is None else np.repeat(np.asarray(context)[None], len(x), 0)
    total = float(jnp.exp(jax.scipy.special.logsumexp(model.log_prob(x, ctx))))
    assert abs(total - 1.0) < atol, f"probabilities sum to {total}, not 1"


def assert_contract(model: ar.Model, rng: np.random.Generator, context=None) -> None:
    spec = model.spec
    step = spec.steps.step
    x = random_data(spec, 1, rng)[0]
    perturbed = random_data(spec, spec.steps.num_steps, rng)
    for s in range(spec.steps.num_steps):
        perturbed[s, step < s] = x[step < s]
    # Two batches of equal shape, compared row by row at the same batch position, so both
    # rows go through identical kernels (XLA may round a row differently at another position).
    ctxs = None if context is None else np.repeat(np.asarray(context)[None], len(perturbed), 0)
    base = model.conditional_params(np.repeat(x[None], len(perturbed), 0), ctxs)
    moved = model.conditional_params(perturbed, ctxs)
    for comp in model.components:
        elems = np.asarray(comp.elements)
        for i, e in enumerate(elems):
            s = step[e]
            np.testing.assert_array_equal(
                np.asarray(moved[comp.name][s, i]), np.asarray(base[comp.name][s, i]),
                err_msg=f"params of {spec.layout.describe_element(int(e))} changed when steps >= {s} changed",
            )
    # Jacobian zeros w.r.t. the feature encoding (differentiable conditioners).
    feats = model.encoder(jnp.asarray(x))
    in_steps = step[spec.layout.feature_element]
    c = None if context is None else jnp.asarray(context)
    for comp in model.components:
        jac = _jacobian(comp.conditioner, jnp.asarray(x), feats, c)  # (n, P, F)
        out_steps = step[np.asarray(comp.elements)]
        forbidden = in_steps[None, :] >= out_steps[:, None]  # (n, F)
        leak = np.abs(np.asarray(jac)) * forbidden[:, None, :]
        assert np.all(leak == 0), f"{comp.name}: parameters depend on same-or-later steps (max {leak.max()})"


def assert_samples_match(model: ar.Model, key, n: int = 20000, alpha: float = 1e-3) -> None:
    configs = all_configurations(model.spec)
    probs = np.exp(np.asarray(model.log_prob(configs), dtype=np.float64))
    samples = np.asarray(model.sample_flat(key, n))
    cards = model.spec.layout.num_values
    radix = np.concatenate([np.cumprod(cards[::-1])[::-1][1:], [1]])
    index = (samples.astype(np.int64) * radix).sum(1)
    observed = np.bincount(index, minlength=len(configs)).astype(float)
    expected = n * probs / probs.sum()
    small = expected < 5
    if small.any():  # pool sparse cells
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    keep = expected > 0
    g = 2 * np.sum(special.xlogy(observed[keep], observed[keep] / expected[keep]))
    dof = max(int(keep.sum()) - 1, 1)
    p = stats.chi2.sf(g, dof)
    assert p > alpha, f"G-test rejects sampler vs likelihood: G={g:.1f}, dof={dof}, p={p:.2e}"


def assert_cached_equals_naive(model: ar.Model, key, n: int = 8, context=None) -> None:
    """Cached and naive samplers, same key: discrete draws identical; real draws equal up to
    float rounding (an incremental matmul of another shape may differ in the last ulp, which
    a continuous draw passes on; a cache bug changes parameters by far more)."""
    cached = np.asarray(model.sample_flat(key, n, context))
    naive = np.asarray(model.sample_flat(key, n, context, naive=True))
    discrete = model.spec.layout.num_values > 0
    np.testing.assert_array_equal(cached[:, discrete], naive[:, discrete])
    np.testing.assert_allclose(cached[:, ~discrete], naive[:, ~discrete], rtol=1e-5, atol=1e-6)


def assert_gradients_finite(model: ar.Model, x, context=None) -> None:
    """Gradients of the mean NLL w.r.t. every float leaf are finite, and not all zero."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    c = None if context is None else jnp.asarray(context)
    grads = jax.grad(lambda p: -jnp.mean(ar.flat_log_prob(eqx.combine(p, static), jnp.asarray(x), c)))(params)
    leaves = [g for g in jax.tree_util.tree_leaves(grads) if g.size]
    assert leaves and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves), "non-finite gradient"
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves), "every gradient is zero"

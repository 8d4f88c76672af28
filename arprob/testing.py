"""Contract checks for autoregressive models: the tests every arprob family passes.

Use them on a model with a conditioner or head of your own (see docs/architecture.md):

```python
from arprob import testing

model = testing.randomize(ar.compile(spec), jax.random.key(0))  # weights far from their init
testing.assert_autoregressive(model)      # params of e depend only on steps < step[e]
testing.assert_normalised(model)          # sum_x p(x) = 1 (small discrete specs)
testing.assert_cached_equals_naive(model) # the incremental sampler draws the naive samples
testing.check_model(model)                # all of the above that apply, plus gradients
```

- ``assert_autoregressive``: element ``e``'s parameters do not change when any element
  with ``step >= step[e]`` changes: exactly, by perturbation (every conditioner), and
  by zeros of the Jacobian w.r.t. the input features (differentiable conditioners).
- ``assert_normalised``: ``exp(log_prob)`` summed over every configuration is 1.
- ``assert_samples_match``: a G-test of sample frequencies against ``exp(log_prob)``.
- ``assert_cached_equals_naive``: same key, cached and naive samplers: identical discrete
  draws, real draws equal to float rounding.
- ``assert_cached_params_match``: the parameters each step of the cached sampler computes
  equal the naive step's and the teacher-forced pass's, teacher-forced on data rows.
- ``assert_gradients_finite``: the mean NLL has finite, not all zero, gradients.

Tolerances follow the model's float precision (float32 or float64).
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .model import Model, flat_log_prob
from .spec.layout import may_read
from .spec.spec import Spec

__all__ = [
    "all_configurations",
    "assert_autoregressive",
    "assert_cached_equals_naive",
    "assert_cached_params_match",
    "assert_gradients_finite",
    "assert_normalised",
    "assert_samples_match",
    "check_model",
    "random_data",
    "randomize",
    "block_params_scan",
]


def _float() -> np.dtype:
    """numpy dtype of JAX's default float (float64 under ``jax_enable_x64``)."""
    return np.dtype(jnp.result_type(float))


def _is_f64(model: Model) -> bool:
    leaves = [x for x in jax.tree_util.tree_leaves(model) if eqx.is_inexact_array(x)]
    return bool(leaves) and leaves[0].dtype == jnp.float64


def randomize(model: Model, key: PRNGKeyArray, scale: float = 1.0) -> Model:
    """Every floating-point array of ``model`` replaced by ``N(0, scale^2)`` draws, so that no
    weight is zero by initialisation (a mask bug hidden by a zero weight shows).

    Draws come from numpy (seeded from ``key``), so no JAX kernel is compiled per leaf shape.
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    leaves, treedef = jax.tree_util.tree_flatten(model)
    new = [
        jnp.asarray(scale * rng.normal(size=leaf.shape), leaf.dtype)
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jnp.floating) else leaf
        for leaf in leaves
    ]
    return jax.tree_util.tree_unflatten(treedef, new)


def all_configurations(spec: Spec) -> np.ndarray:
    """Every configuration of a small, fully discrete spec, as flat rows (C order)."""
    cards = spec.layout.num_values
    if not np.all(cards > 0):
        raise ValueError("Enumeration needs a fully discrete spec.")
    rows = list(itertools.product(*[range(int(k)) for k in cards]))
    return np.array(rows, dtype=_float()).reshape(-1, len(cards))


def random_data(spec: Spec, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` flat rows: uniform valid values for discrete elements, N(0, 1) for real ones."""
    cards = spec.layout.num_values
    x = rng.normal(size=(n, len(cards)))
    disc = cards > 0
    x[:, disc] = rng.integers(0, cards[disc], size=(n, int(disc.sum())))
    return x.astype(_float())


def _tiled(context, n: int):
    return None if context is None else np.repeat(np.asarray(context)[None], n, 0)


# ------------------------------------------------------------------ normalisation
def assert_normalised(model: Model, context=None, atol: float | None = None) -> None:
    """``sum_x exp(log p(x | context)) == 1`` over every configuration (fully discrete specs;
    ``context`` one vector). ``atol`` default 1e-5 in float32, 1e-10 in float64."""
    x = all_configurations(model.spec)
    atol = (1e-10 if _is_f64(model) else 1e-5) if atol is None else atol
    total = float(jnp.exp(jax.scipy.special.logsumexp(model.log_prob(x, _tiled(context, len(x))))))
    assert abs(total - 1.0) < atol, f"probabilities sum to {total!r}, not 1 (atol {atol})"


# ------------------------------------------------------------------ the contract
@eqx.filter_jit
def _jacobians(conditioners, x, feats, context):
    """``d params / d feats`` of every conditioner, one ``(n, P, F)`` array each (one compile)."""
    return jax.jacfwd(lambda f: [cond(x, f, context) for cond in conditioners])(feats)


def assert_autoregressive(model: Model, rng: np.random.Generator | None = None, context=None,
                          *, jacobian: bool = True) -> None:
    """The autoregressive contract: the parameters of element ``e`` depend only on elements
    with a smaller step (``may_read``), checked exactly by perturbation (for every step
    ``s``, all elements of steps ``>= s`` redrawn) and, with ``jacobian``, by zeros of
    ``d params / d features`` of every component at one random point.

    ``context``: one conditioning vector (spec ``context_size > 0``)."""
    rng = np.random.default_rng(0) if rng is None else rng
    spec = model.spec
    step = spec.steps.step
    x = random_data(spec, 1, rng)[0]
    perturbed = random_data(spec, spec.steps.num_steps, rng)
    for s in range(spec.steps.num_steps):
        kept = may_read(np.array([s]), step)[0]  # elements a step-s element may read
        perturbed[s, kept] = x[kept]
    # Two batches of equal shape, compared row by row at the same batch position, so both
    # rows go through identical kernels (XLA may round a row differently at another position).
    ctxs = _tiled(context, len(perturbed))
    base = model.conditional_params(np.repeat(x[None], len(perturbed), 0), ctxs)
    moved = model.conditional_params(perturbed, ctxs)
    for comp in model.components:
        for i, e in enumerate(np.asarray(comp.elements)):
            s = step[e]
            np.testing.assert_array_equal(
                np.asarray(moved[comp.name][s, i]), np.asarray(base[comp.name][s, i]),
                err_msg=f"params of {spec.layout.describe_element(int(e))} changed when steps >= {s} changed",
            )
    if not jacobian:
        return
    feats = model.encoder(jnp.asarray(x))
    in_steps = step[spec.layout.feature_element]
    c = None if context is None else jnp.asarray(context)
    jacs = _jacobians([comp.conditioner for comp in model.components], jnp.asarray(x), feats, c)
    for comp, jac in zip(model.components, jacs):
        forbidden = ~may_read(step[np.asarray(comp.elements)], in_steps)  # (n, F)
        leak = np.abs(np.asarray(jac)) * forbidden[:, None, :]
        assert np.all(leak == 0), f"{comp.name}: parameters depend on same-or-later steps (max {leak.max()})"


# ------------------------------------------------------------------ the sampler
def _g_test(samples: np.ndarray, model: Model, context=None, alpha: float = 1e-3) -> None:
    from scipy import special, stats

    configs = all_configurations(model.spec)
    probs = np.exp(np.asarray(model.log_prob(configs, _tiled(context, len(configs))), dtype=np.float64))
    cards = model.spec.layout.num_values
    radix = np.concatenate([np.cumprod(cards[::-1])[::-1][1:], [1]])
    index = (samples.astype(np.int64) * radix).sum(1)
    n = len(samples)
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


def assert_samples_match(model: Model, key: PRNGKeyArray, n: int = 20000, alpha: float = 1e-3,
                         context=None) -> None:
    """G-test of ``n`` samples against ``exp(log_prob)`` over every configuration (fully
    discrete specs; sparse cells pooled); fails when ``p <= alpha``."""
    _g_test(np.asarray(model.sample_flat(key, n, _tiled(context, n))), model, context, alpha)


def assert_cached_equals_naive(model: Model, key: PRNGKeyArray | None = None, n: int = 8, context=None,
                               *, return_samples: bool = False):
    """Cached and naive samplers, same key: discrete draws identical; real draws equal up to
    float rounding (an incremental product of another shape may differ in the last ulp,
    which a continuous draw passes on; a cache bug changes parameters by far more).

    ``context``: ``(n, C)`` vectors. With ``return_samples`` the cached samples are returned."""
    key = jax.random.key(0) if key is None else key
    cached = np.asarray(model.sample_flat(key, n, context))
    naive = np.asarray(model.sample_flat(key, n, context, naive=True))
    discrete = model.spec.layout.num_values > 0
    np.testing.assert_array_equal(cached[:, discrete], naive[:, discrete])
    tol = 1e-9 if _is_f64(model) else 1e-5
    np.testing.assert_allclose(cached[:, ~discrete], naive[:, ~discrete], rtol=tol, atol=tol / 10)
    return cached if return_samples else None


@eqx.filter_jit
def block_params_scan(model: Model, x: jax.Array, context=None, *, naive: bool) -> list[jax.Array]:
    """Parameters every component's ``step`` (or ``naive_step``) returns at each step, teacher-forced
    on data rows ``x`` (B, D): the sampler's scan with the true values written instead of draws.
    Returns one ``(B, S, m, P)`` array per component."""
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
    return [jnp.swapaxes(o, 0, 1) for o in outs]


def assert_cached_params_match(model: Model, x, context=None, *, rtol: float | None = None) -> float:
    """Cached step params == naive step params == teacher-forced params, on every real row of
    the block schedule, teacher-forced on flat rows ``x`` (``context`` ``(B, C)``). ``rtol``
    default 1e-5 (float32) or 1e-9 (float64). Returns the largest cached-vs-naive difference."""
    rtol = (1e-9 if _is_f64(model) else 1e-5) if rtol is None else rtol
    x = jnp.asarray(x)
    context = None if context is None else jnp.asarray(context)
    cached = [np.asarray(c) for c in block_params_scan(model, x, context, naive=False)]
    naive = [np.asarray(c) for c in block_params_scan(model, x, context, naive=True)]
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


# ------------------------------------------------------------------ gradients
@eqx.filter_jit
def _gradient_summary(model: Model, x, context):
    """``(leaves, all finite, any nonzero)`` of the gradients of the mean NLL of flat rows
    ``x`` w.r.t. the float leaves, reduced inside one compile."""
    grads = eqx.filter_grad(lambda m: -jnp.mean(flat_log_prob(m, x, context)))(model)
    leaves = [g for g in jax.tree_util.tree_leaves(grads) if g.size]
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in leaves])) if leaves else jnp.array(False)
    nonzero = jnp.any(jnp.stack([jnp.any(g != 0) for g in leaves])) if leaves else jnp.array(False)
    return len(leaves), finite, nonzero


def assert_gradients_finite(model: Model, x, context=None) -> None:
    """Gradients of the mean NLL on flat rows ``x`` w.r.t. every float leaf are finite, and
    not all zero."""
    c = None if context is None else jnp.asarray(context)
    count, finite, nonzero = _gradient_summary(model, jnp.asarray(x), c)
    assert count and bool(finite), "non-finite gradient"
    assert bool(nonzero), "every gradient is zero"


# ------------------------------------------------------------------ everything
def check_model(model: Model, key: PRNGKeyArray | None = None, context=None, *, num_samples: int = 4000,
                max_configs: int = 4096, g_test_configs: int = 64, jacobian: bool = True,
                step_params: bool = True) -> None:
    """Every check that applies to ``model``: the contract, cached == naive samples (and, with
    ``step_params``, per-step parameters), finite gradients; for discrete specs of at most
    ``max_configs`` configurations normalisation by enumeration, and with at most
    ``g_test_configs`` a G-test of ``num_samples`` samples. ``context``: one conditioning vector."""
    key = jax.random.key(0) if key is None else key
    spec = model.spec
    rng = np.random.default_rng(0)
    assert_autoregressive(model, rng, context, jacobian=jacobian)
    b = spec.steps.num_steps  # the contract's batch size: conditional_params compiles once
    x = random_data(spec, b, rng)
    if step_params:
        assert_cached_params_match(model, x, _tiled(context, b))
    assert_gradients_finite(model, x, _tiled(context, b))
    discrete = bool(np.all(spec.layout.num_values > 0))
    configs = float(np.prod(spec.layout.num_values.astype(float))) if discrete else np.inf
    g_test = configs <= g_test_configs
    n = num_samples if g_test else 16
    samples = assert_cached_equals_naive(model, key, n, _tiled(context, n), return_samples=True)
    if configs <= max_configs:
        assert_normalised(model, context)
    if g_test:
        _g_test(samples, model, context)

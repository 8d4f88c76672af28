"""MADE: contract, normalisation, cached == naive sampling, ensembles, order-agnostic training."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import arprob as ar
from arprob.conditioners.made import MADEConditioner
from arprob.ensembles import num_members, with_member
from arprob.masks import rank_mask, row_tiles
from exactness import (
    all_configurations,
    assert_cached_equals_naive,
    assert_gradients_finite,
    assert_contract,
    assert_normalised,
    assert_samples_match,
    random_model,
)

IMG = ar.Binary("img", shape=(2, 3))
CASES = {
    "raster-singletons-1layer": (ar.Raster(), ar.Singletons(), ar.MADE(hidden=(8,))),
    "snake-pairs-2layers-random-degrees": (ar.Snake(), ar.FixedSize(2), ar.MADE(hidden=(6, 5), degrees="random")),
    "random-order-narrow-no-direct": (ar.RandomOrder(4), ar.Singletons(), ar.MADE(hidden=(2,), direct=False)),
    "reverse-rows-direct-only": (ar.Reverse(), ar.PerRow(), ar.MADE(hidden=(), direct=True)),
}


SLOW_CASES = list(CASES)  # run with -m slow; the exactness table (tests/exactness.py) covers random degrees


@pytest.fixture(
    scope="module",
    params=[pytest.param(k, marks=pytest.mark.slow) if k in SLOW_CASES else k for k in CASES],
)
def case_model(request):
    ordering, partition, made = CASES[request.param]
    spec = ar.Spec(variables=(IMG, ar.Categorical("label", 3)), ordering=ordering, partition=partition,
                   conditionals={"img": made, "label": dataclasses.replace(made, head=None)})
    return random_model(spec)


def test_normalised_contract_cached_gradients(case_model):
    assert_normalised(case_model)
    assert_contract(case_model, np.random.default_rng(0))
    assert_cached_equals_naive(case_model, jax.random.key(0), n=64)
    assert_gradients_finite(case_model, all_configurations(case_model.spec)[:16])


def test_contract_with_context_ordinal_and_categorical():
    spec = ar.Spec(
        variables=(ar.Ordinal("o", levels=3, shape=(2,)), ar.Categorical("c", 3), ar.Binary("b", shape=(2,))),
        ordering=ar.RandomOrder(7),
        context_size=2,
        conditionals={"o": ar.MADE(hidden=(6,)), "c": ar.MADE(hidden=(4, 3), direct=False)},
    )
    model = random_model(spec, 3)
    ctx = np.array([0.5, -1.5], np.float32)
    assert_normalised(model, ctx)
    assert_contract(model, np.random.default_rng(0), ctx)
    assert_cached_equals_naive(model, jax.random.key(0), n=32, context=np.repeat(ctx[None], 32, 0))
    # the context reaches the first step (degree -1 hidden units + direct context weights)
    x = all_configurations(spec)[:4]
    lp0 = model.log_prob(x, np.zeros((4, 2), np.float32))
    lp1 = model.log_prob(x, np.repeat(ctx[None], 4, 0))
    assert not np.allclose(lp0, lp1)


def test_real_variable_cached_matches_naive_to_rounding():
    """Gaussian head: samples are continuous, so a last-ulp difference between the cached
    unit (small matmul) and the full pass (big matmul) shows. Equal to 1e-5 relative, which
    any real bug (a wrong mask, a stale cache entry) exceeds by orders of magnitude."""
    spec = ar.Spec(variables=(ar.Real("r", shape=(3, 2)),), ordering=ar.Snake(), partition=ar.FixedSize(2),
                   conditionals={"r": ar.MADE(hidden=(9, 7))})
    model = random_model(spec, 5, scale=0.3)
    assert_contract(model, np.random.default_rng(1))
    cached = np.asarray(model.sample_flat(jax.random.key(2), 32))
    naive = np.asarray(model.sample_flat(jax.random.key(2), 32, naive=True))
    np.testing.assert_allclose(cached, naive, rtol=1e-5, atol=1e-5)


def test_cached_check_catches_stale_cache():
    """A cache that skips the units of one degree must change the samples (the test can fail)."""
    spec = ar.Spec(variables=(ar.Binary("x", shape=(6,)),), conditionals={"x": ar.MADE(hidden=(12,), direct=False)})
    model = random_model(spec, 1, scale=3.0)
    cond = model.components[0].conditioner
    table = np.asarray(cond.units_at_step[0]).copy()
    table[:, 3] = 12  # never compute the units of degree 2
    broken = eqx.tree_at(lambda m: m.components[0].conditioner.units_at_step, model, (jnp.asarray(table),))
    with pytest.raises(AssertionError):
        assert_cached_equals_naive(broken, jax.random.key(0), n=256)


def test_contract_check_catches_non_strict_output():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(4,)),), conditionals={"x": ar.MADE(hidden=(6,), direct=False)})
    model = random_model(spec)
    cond = model.components[0].conditioner
    # generic (dense) path: the K = 1 block plans would also skip the leaked columns
    leaky_cond = dataclasses.replace(cond, plans=None, out_deg=cond.out_deg + 1)
    leaky = eqx.tree_at(lambda m: m.components[0].conditioner, model, leaky_cond)
    with pytest.raises(AssertionError):
        assert_contract(leaky, np.random.default_rng(0))


@pytest.mark.parametrize("ordering", [ar.Raster(), ar.Snake(), ar.RandomOrder(2)], ids=repr)
def test_masks_are_rank_masks_and_wide_layers_lose_nothing(ordering):
    """Connectivity through the network is exactly ``step[e] > step[j]`` when every degree has a unit."""
    spec = ar.Spec(variables=(ar.Binary("x", shape=(3, 3)),), ordering=ordering,
                   conditionals={"x": ar.MADE(hidden=(9, 9), direct=False)})
    cond = ar.compile(spec).components[0].conditioner
    masks = cond.masks(0)
    in_deg = np.asarray(cond.in_deg[0])[np.asarray(cond.in_perm)]
    h1, h2 = (np.asarray(d[0]) for d in cond.hidden_deg)
    np.testing.assert_array_equal(masks["hidden0"], rank_mask(in_deg, h1, strict=False))
    paths = masks["output"].astype(int) @ masks["hidden1"].astype(int) @ masks["hidden0"].astype(int)
    out_deg = np.asarray(cond.out_deg[0])
    np.testing.assert_array_equal(paths > 0, rank_mask(in_deg, out_deg, strict=True))


def test_narrow_layer_is_legal_but_loses_conditionals():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(8,)),), conditionals={"x": ar.MADE(hidden=(3,), direct=False)})
    model = random_model(spec)
    assert_normalised(model)
    cond = model.components[0].conditioner
    m = cond.masks(0)
    paths = (m["output"].astype(int) @ m["hidden0"].astype(int)) > 0
    allowed = rank_mask(np.arange(8), np.arange(8), strict=True)
    assert not np.any(paths & ~allowed)
    assert np.any(allowed & ~paths)  # the documented cost: some earlier inputs are unreachable


def test_blocked_product_equals_dense_masked_product():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(5, 4)),), ordering=ar.Snake(),
                   conditionals={"x": ar.MADE(hidden=(13, 11))})
    model = random_model(spec)
    cond = model.components[0].conditioner
    assert cond.plans is not None
    dense = dataclasses.replace(cond, plans=None)
    x = jnp.asarray(np.random.default_rng(0).integers(0, 2, 20), jnp.float32)
    np.testing.assert_allclose(cond(x, x, None), dense(x, x, None), rtol=1e-5, atol=1e-5)
    allowed = rank_mask(np.array([0, 1, 2, 3]), np.array([0, 0, 1, 2, 3]), strict=True)
    assert row_tiles(allowed, 2, align=1) == ((0, 2, 0), (2, 5, 3))  # rows 0-1 read no column; rows 2-4 the first 3
    assert row_tiles(allowed, 2, align=2) == ((0, 2, 0), (2, 5, 4))  # rounded up to the alignment


def _ensemble_spec(**kw):
    made = ar.MADE(hidden=(10,), num_orderings=4, degrees="random", **kw)
    return ar.Spec(variables=(ar.Binary("x", shape=(2, 2)), ar.Binary("y")), partition=ar.Singletons(),
                   conditionals={"x": made, "y": made})


def test_ensemble_members_orderings_and_normalisation():
    model = random_model(_ensemble_spec())
    assert num_members(model) == 4
    steps = [ar.member_model(model, k).spec.steps.step for k in range(4)]
    np.testing.assert_array_equal(steps[0], model.spec.steps.step)
    assert len({tuple(s) for s in steps}) > 1
    configs = all_configurations(model.spec)
    for k in range(4):
        member = ar.member_model(model, k)
        # a member's density equals the spec model switched to that member's masks
        np.testing.assert_allclose(member.log_prob(configs), with_member(model, k).log_prob(configs), rtol=1e-6)
        assert_normalised(member)
        assert_contract(member, np.random.default_rng(k))
    assert_cached_equals_naive(ar.member_model(model, 3), jax.random.key(1), n=64)
    total = float(jnp.exp(jax.scipy.special.logsumexp(ar.ensemble_log_prob(model, configs))))
    assert abs(total - 1.0) < 1e-5
    assert_samples_match(ar.member_model(model, 2), jax.random.key(0), n=6000)


def test_ensemble_sample_matches_ensemble_density():
    model = random_model(_ensemble_spec(), 2)
    configs = all_configurations(model.spec)
    probs = np.exp(np.asarray(ar.ensemble_log_prob(model, configs), np.float64))
    n = 6000
    samples = np.asarray(ar.ensemble_sample(model, jax.random.key(0), n)).astype(int)
    index = samples @ (2 ** np.arange(samples.shape[1])[::-1])
    observed = np.bincount(index, minlength=len(configs))
    expected = n * probs / probs.sum()
    g = 2 * np.sum(np.where(observed > 0, observed * np.log(np.maximum(observed, 1) / expected), 0.0))
    assert stats.chi2.sf(g, len(configs) - 1) > 1e-3


def test_fixed_family_is_connectivity_agnostic():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(4,)),),
                   conditionals={"x": ar.MADE(hidden=(6,), num_orderings=3, ordering_family="fixed", degrees="random")})
    model = random_model(spec)
    cond = model.components[0].conditioner
    assert all(np.array_equal(np.asarray(cond.member_steps[k]), spec.steps.step) for k in range(3))
    assert not np.array_equal(np.asarray(cond.hidden_deg[0][0]), np.asarray(cond.hidden_deg[0][1]))
    for k in range(3):
        assert_normalised(ar.member_model(model, k))


def test_explicit_family_orderings():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(2, 2)),), partition=ar.PerRow(),
                   conditionals={"x": ar.MADE(hidden=(4,), num_orderings=2, ordering_family=(ar.Reverse(),))})
    model = random_model(spec)
    np.testing.assert_array_equal(ar.member_model(model, 1).spec.steps.step, [1, 1, 0, 0])
    assert_cached_equals_naive(ar.member_model(model, 1), jax.random.key(0), n=16)


def test_fit_order_agnostic_learns_and_visits_members():
    train, test = ar.data.load_digits()
    spec = ar.Spec(variables=(ar.Binary("img", shape=(8, 8)),),
                   conditionals={"img": ar.MADE(hidden=(64,), num_orderings=4)})
    model = ar.compile(spec)
    before = float(-ar.ensemble_log_prob(model, {"img": test}).mean())
    result = ar.fit_order_agnostic(model, {"img": train}, num_steps=60, batch_size=64, seed=0)
    after = float(-ar.ensemble_log_prob(result.model, {"img": test}).mean())
    assert set(result.history["member"]) == {0, 1, 2, 3}
    assert after < before - 5.0
    assert int(result.model.components[0].conditioner.member) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hidden=(), direct=False), "direct=True"),
        (dict(hidden=(0,)), "hidden\\[0\\]"),
        (dict(num_orderings=0), "num_orderings"),
        (dict(num_orderings=3, ordering_family=(ar.Reverse(),)), "needs 2 orderings"),
        (dict(ordering_family="shuffle"), "ordering_family"),
        (dict(degrees="spread"), "degrees"),
        (dict(activation="swish"), "activation"),
    ],
)
def test_spec_errors(kwargs, match):
    with pytest.raises(ar.SpecError, match=match):
        ar.MADE(**kwargs)


def test_family_ordering_must_keep_blocks():
    with pytest.raises(ar.SpecError, match="member 1"):
        ar.Spec(variables=(ar.Binary("x", shape=(2, 2)),), partition=ar.PerRow(),
                conditionals={"x": ar.MADE(hidden=(4,), num_orderings=2, ordering_family=(ar.Columns(),))})


def test_ensemble_needs_made_everywhere():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(3,)), ar.Binary("y")),
                   conditionals={"x": ar.MADE(hidden=(4,), num_orderings=2)})
    model = ar.compile(spec)
    with pytest.raises(ar.SpecError, match="'y'"):
        ar.ensemble_log_prob(model, np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="member index"):
        ar.member_model(ar.compile(spec.replace(conditionals={"x": ar.MADE(hidden=(4,))})), 1)


def test_registered_kind():
    assert ar.conditioners.CONDITIONAL_KINDS["made"] is ar.MADE
    assert isinstance(ar.compile(ar.Spec(variables=(IMG,), conditionals={"img": ar.MADE(hidden=(3,))})).components[0].conditioner, MADEConditioner)

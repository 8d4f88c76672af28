"""Heads against reference densities; fitting; mixed models; spec files."""

from __future__ import annotations

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import arprob as ar
from arprob.heads.base import categorical_from_uniform, logistic_from_uniform, normal_from_uniform
from exactness import randomize


def test_gaussian_head_matches_scipy_and_numpyro():
    import numpyro.distributions as dist

    rng = np.random.default_rng(0)
    mean, log_scale, x = rng.normal(size=(3, 50)).astype(np.float32)
    lp = ar.Gaussian().log_prob(jnp.stack([mean, log_scale], 1), jnp.asarray(x))
    np.testing.assert_allclose(lp, stats.norm.logpdf(x, mean, np.exp(log_scale)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lp, dist.Normal(mean, np.exp(log_scale)).log_prob(x), rtol=1e-5, atol=1e-5)


def test_bernoulli_and_categorical_heads_match_scipy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(40, 4)).astype(np.float32)
    x = rng.integers(0, 4, 40).astype(np.float32)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ref = np.log(p[np.arange(40), x.astype(int)])
    np.testing.assert_allclose(ar.heads.Categorical(4).log_prob(jnp.asarray(logits), jnp.asarray(x)), ref, rtol=1e-5)
    xb = (x > 1).astype(np.float32)
    ref_b = stats.bernoulli.logpmf(xb, 1 / (1 + np.exp(-logits[:, 0])))
    np.testing.assert_allclose(ar.Bernoulli().log_prob(jnp.asarray(logits[:, :1]), jnp.asarray(xb)), ref_b, rtol=1e-5)


def test_inverse_cdf_draws_on_a_uniform_grid_give_the_probabilities():
    """Heads sample by inverse CDF from uniforms: on a grid of N uniforms the draw counts are
    N * p to within one (a deterministic check of the sampler's exactness), a class of
    probability 0 (logit -inf: first, middle or last) is never drawn, and the standard
    normal and logistic draws are the scipy quantiles of the same uniforms."""
    grid = (np.arange(4096) + 0.5) / 4096
    logits = np.array([[-np.inf, 2.0, -3.0, -np.inf, 0.5, -np.inf], [8.0, -8.0, 0.0, 1e-3, -np.inf, 30.0]], np.float32)
    for row in logits:
        draws = np.asarray(categorical_from_uniform(jnp.asarray(grid, jnp.float32), jnp.tile(row, (grid.size, 1))))
        p = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        counts = np.bincount(draws, minlength=len(row))
        assert np.all(np.abs(counts - grid.size * p) <= 1), (counts, grid.size * p)
        assert not counts[p == 0].any()
    u = jnp.asarray(grid, jnp.float32)
    bern = np.asarray(ar.Bernoulli().sample_uniform(u[:, None], jnp.full((grid.size, 1), 0.3)))
    assert abs(bern.sum() - grid.size / (1 + np.exp(-0.3))) <= 1
    np.testing.assert_allclose(normal_from_uniform(u), stats.norm.ppf(grid), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logistic_from_uniform(u), stats.logistic.ppf(grid), rtol=1e-4, atol=1e-4)
    zero = jnp.zeros(1)  # uniforms are in [0, 1): the lowest draw must stay finite
    assert np.isfinite(normal_from_uniform(zero)).all() and np.isfinite(logistic_from_uniform(zero)).all()


def test_linear_gaussian_ar1_recovers_its_coefficients():
    """x_t = 0.8 x_{t-1} + 0.5 eps: a Logistic conditioner with a Gaussian head is linear-Gaussian AR."""
    rng = np.random.default_rng(0)
    n, d = 2000, 6
    x = np.zeros((n, d))
    x[:, 0] = rng.normal(size=n)
    for t in range(1, d):
        x[:, t] = 0.8 * x[:, t - 1] + 0.5 * rng.normal(size=n)
    spec = ar.Spec(variables=(ar.Real("x", shape=(d,)),))
    model = ar.fit(ar.compile(spec), {"x": x}, num_steps=1500, batch_size=256).model
    w = np.asarray(model.components[0].conditioner.weight)[:, 0, :]  # (d, d): mean weights
    np.testing.assert_allclose(np.diag(w, -1), 0.8, atol=0.05)
    assert np.all(np.abs(np.tril(w, -2)) < 0.06)
    log_scale = np.asarray(model.components[0].conditioner.bias)[1:, 1]
    np.testing.assert_allclose(np.exp(log_scale), 0.5, atol=0.05)


def test_fitted_tables_are_posterior_means():
    spec = ar.Spec(variables=(ar.Categorical("a", 3), ar.Binary("b")), conditionals={"a": ar.Table(prior=1.0), "b": ar.Table(parents=["a"], prior=0.5)})
    data = {"a": np.array([0, 0, 1, 2, 2, 2]), "b": np.array([1, 0, 1, 1, 1, 0])}
    model = ar.fit(ar.compile(spec), data, num_steps=0).model
    pa = np.exp(np.asarray(model.components[0].conditioner.log_probs))[0]
    np.testing.assert_allclose(pa, np.array([3, 2, 4]) / 9, rtol=1e-6)
    pb = np.exp(np.asarray(model.components[1].conditioner.log_probs))
    np.testing.assert_allclose(pb[:, 1], [1.5 / 3, 1.5 / 2, 2.5 / 4], rtol=1e-6)


def test_mixed_model_compiles_fits_and_samples():
    spec = ar.Spec(
        variables=(ar.Categorical("weather", 3), ar.Binary("sprinkler"), ar.Real("temp"), ar.Ordinal("img", levels=2, shape=(4, 4))),
        conditionals={"weather": ar.Table(), "sprinkler": ar.Table(parents=["weather"]), "temp": ar.Logistic(parents=["weather"], head=ar.Gaussian())},
    )
    truth = randomize(ar.compile(spec, jax.random.key(1)), jax.random.key(2))
    data = truth.sample(jax.random.key(3), 2000)
    assert set(data) == {"weather", "sprinkler", "temp", "img"} and data["img"].shape == (2000, 4, 4)
    model = ar.compile(spec, jax.random.key(0))
    before = -float(model.log_prob(data).mean())
    result = ar.fit(model, data, num_steps=300, batch_size=200)
    after = -float(result.model.log_prob(data).mean())
    assert after < before - 1.0 and np.isfinite(result.history["loss"]).all()
    assert after < -float(truth.log_prob(data).mean()) + 0.6  # close to the data-generating model
    by_var = result.model.log_prob_by_variable(data)
    np.testing.assert_allclose(sum(by_var.values()), result.model.log_prob(data), rtol=1e-5)


def test_blocks_are_drawn_together_and_per_row_sampling_works():
    spec = ar.Spec(variables=(ar.Binary("img", shape=(3, 4)),), partition=ar.PerRow())
    model = randomize(ar.compile(spec), jax.random.key(0))
    assert spec.steps.num_steps == 3
    assert model.sample(jax.random.key(0), 5)["img"].shape == (5, 3, 4)


def test_log_prob_compiles_once_per_shape():
    import equinox as eqx

    spec = ar.Spec(variables=(ar.Binary("x", shape=(5,)),))
    model = ar.compile(spec)
    counted = eqx.debug.assert_max_traces(lambda m, x: ar.flat_log_prob(m, x), max_traces=1)
    f = eqx.filter_jit(counted)
    x = np.zeros((4, 5), np.float32)
    for _ in range(3):
        f(model, x)
    trained = ar.fit(model, x, num_steps=2, batch_size=4).model
    f(trained, x)  # new weights, same structure: no retrace


def test_spec_round_trips_through_json_and_toml(tmp_path):
    spec = ar.Spec(
        variables=(ar.Categorical("w", 3), ar.Binary("s"), ar.Real("t"), ar.Ordinal("img", levels=4, shape=(2, 2))),
        ordering=ar.ByVariable(("w", "s", "t", "img"), within=ar.Reverse(ar.Columns())),
        partition=ar.PerVariable(),
        conditionals={"w": ar.Table(prior=0.5), "s": ar.Table(parents=["w"], cpt=((0.5, 0.5), (0.1, 0.9), (1.0, 0.0))), "t": ar.Logistic(parents=("w",), head=ar.Gaussian())},
    )
    assert ar.spec_from_dict(json.loads(json.dumps(ar.spec_to_dict(spec)))) == spec
    for name in ("s.json", "s.toml"):
        ar.save_spec(spec, tmp_path / name)
        assert ar.load_spec(tmp_path / name) == spec


@pytest.mark.parametrize(
    "text, match",
    [
        ('[[variables]]\nkind = "binary"\nname = "x"\n[ordering]\nkind = "rastr"\n', r"s.toml: ordering.kind: unknown kind 'rastr'"),
        ('[[variables]]\nkind = "binary"\nname = "x"\nshap = [2]\n', r"s.toml: variables\[0\]: unknown key 'shap'"),
        ('[[variables]]\nkind = "binary"\nname = "x"\n[conditionals.x]\nkind = "table"\nparents = ["y"]\n', "unknown parent 'y'"),
        ('[[variables]]\nkind = "binary"\nname = "x"\n[conditionals.x]\nkind = "logistic"\nhead = {kind = "variable:categorical"}\n', r"conditionals.x.head.kind: expected a head here; got 'variable:categorical'"),
        ('[[variables]\nkind = "binary"', "malformed TOML"),
        ('[[variables]]\nkind = "categorical"\nname = "x"\nnum_categories = 1\n', r"variables\[0\].num_categories: expected an integer >= 2, got 1"),
    ],
)
def test_malformed_spec_files_name_file_and_key(tmp_path, text, match):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ar.SpecError, match=match):
        ar.load_spec(path)


@pytest.mark.parametrize(
    "variables, partition",
    [
        ((ar.Binary("img", shape=(12, 12)),), ar.Singletons()),
        ((ar.Categorical("img", 3, shape=(6, 8)),), ar.PerRow()),
        ((ar.Real("a", shape=(40,)), ar.Binary("b", shape=(60,))), ar.FixedSize(7)),
    ],
)
def test_logistic_tiles_skip_only_masked_blocks(variables, partition):
    """The tiled Logistic product (features past a tile's last allowed one skipped) equals
    the full masked product and keeps the contract, on models large enough to use tiles."""
    from exactness import assert_contract

    from arprob.masks import rank_mask

    spec = ar.Spec(variables=variables, partition=partition)
    model = randomize(ar.compile(spec, jax.random.key(3)), jax.random.key(4), scale=1.0)
    assert any(len(c.conditioner.tiles) > 1 for c in model.components), "test model too small to tile"
    full = model
    for i, c in enumerate(model.components):
        n, p, f = c.conditioner.weight.shape
        full = eqx.tree_at(lambda m, i=i: m.components[i].conditioner, full,
                           dataclasses.replace(c.conditioner, tiles=((0, n * p, f),)))
    x = model.sample_flat(jax.random.key(5), 16)
    np.testing.assert_allclose(ar.flat_log_prob(model, x), ar.flat_log_prob(full, x), rtol=1e-5, atol=1e-4)
    assert_contract(model, np.random.default_rng(6))
    # The plan itself: the tiles cover every row once and every skipped (row, feature) is masked.
    for c in model.components:
        cond = c.conditioner
        allowed = rank_mask(np.asarray(cond.in_rank), np.repeat(np.asarray(cond.out_rank), cond.weight.shape[1]),
                            strict=True)
        assert [t[0] for t in cond.tiles[1:]] == [t[1] for t in cond.tiles[:-1]]
        assert cond.tiles[0][0] == 0 and cond.tiles[-1][1] == len(allowed)
        for a, b, k in cond.tiles:
            assert not allowed[a:b, k:].any()


def test_partial_sampling_draws_the_first_steps_of_the_full_sampler():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(3, 4)),), partition=ar.PerRow())
    model = randomize(ar.compile(spec, jax.random.key(0)), jax.random.key(1))
    key = jax.random.key(2)
    full, part = ar.flat_sample(model, key, 32, None, False), ar.flat_sample(model, key, 32, None, False, 2)
    drawn = np.asarray(spec.steps.step) < 2
    np.testing.assert_array_equal(np.asarray(part)[:, drawn], np.asarray(full)[:, drawn])
    assert not np.asarray(part)[:, ~drawn].any() and np.asarray(full)[:, ~drawn].any()

"""``ar.compile`` of table specs runs the gathered form (``conditioners.table.TablePlan``):
the same densities as the per-variable pass and ``BayesNet``, exact samples, mixed specs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import arprob as ar
from arprob import testing
from arprob.conditioners import table as table_mod
from arprob.interop import BayesNet, random_network
from arprob.model import flat_log_prob_terms


def _per_example(model, x):
    """The per-variable reference: every component's own pass, vmapped over rows."""
    return jax.vmap(model._example_terms)(jnp.asarray(x), None)


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("unroll", [True, False])
def test_gathered_terms_equal_per_variable_pass_and_bayesnet(precision, unroll, monkeypatch):
    if not unroll:  # the transposed path of large networks, on a small one
        monkeypatch.setattr(table_mod, "UNROLL_BELOW", 0)
    with jax.enable_x64(precision == "float64"):
        spec = random_network(12, max_states=3, max_parents=3, seed=5)
        model = testing.randomize(ar.compile(spec), jax.random.key(1))  # unnormalised logits too
        net = BayesNet.from_spec(spec)
        x = np.asarray(net.sample(jax.random.key(0), 33 if unroll else 35))
        flat = x.astype(np.float64 if precision == "float64" else np.float32)
        got = np.asarray(flat_log_prob_terms(model, jnp.asarray(flat)))
        assert got.dtype == np.dtype(precision)
        tol = 1e-12 if precision == "float64" else 1e-5
        np.testing.assert_allclose(got, np.asarray(_per_example(model, flat)), rtol=tol, atol=tol)
        fresh = ar.compile(spec)  # the given CPTs
        np.testing.assert_allclose(np.asarray(fresh.log_prob(flat)), np.asarray(net.log_prob(x)), rtol=tol, atol=tol)


def test_mixed_spec_tables_beside_a_logistic_family():
    spec = ar.Spec(
        variables=(ar.Categorical("a", 3), ar.Binary("b", shape=(3,)), ar.Categorical("c", 2),
                   ar.Binary("d", shape=(2,))),
        conditionals={"a": ar.Table(), "b": ar.Logistic(), "c": ar.Table(parents=("a", "b")),
                      "d": ar.Table(parents="all")},
    )
    model = testing.randomize(ar.compile(spec), jax.random.key(2))
    x = np.asarray(model.sample_flat(jax.random.key(3), 40))
    np.testing.assert_allclose(np.asarray(model.log_prob_terms(x)), np.asarray(_per_example(model, x)), atol=1e-5)
    testing.assert_normalised(model)


def test_all_table_sampler_is_exact_and_chunk_invariant():
    # declared out of topological order: levels, not declaration order, drive the draws
    spec = ar.Spec(
        variables=(ar.Categorical("c", 3), ar.Binary("a"), ar.Categorical("b", 3)),
        conditionals={"a": ar.Table(), "b": ar.Table(parents=("a",)), "c": ar.Table(parents=("a", "b"))},
        ordering=ar.ByVariable(("a", "b", "c")),
    )
    model = testing.randomize(ar.compile(spec), jax.random.key(5))
    testing.assert_samples_match(model, jax.random.key(6))
    whole = np.asarray(model.sample_flat(jax.random.key(7), 50))
    np.testing.assert_array_equal(whole, np.asarray(model.sample_flat(jax.random.key(7), 50, chunk=8)))
    observed = np.array([False, True, False])  # flat layout: c, a, b; keep a
    done = model.sample_conditional(jax.random.key(8), whole, observed, chunk=16)
    np.testing.assert_array_equal(np.asarray(done["a"]), whole[:, 1].astype(np.int32))


@pytest.mark.parametrize("unroll", [True, False])
def test_memory_estimate_bounds_xla(unroll, monkeypatch):
    """The table estimate bounds what XLA asks for scoring and sampling, in both gathered
    forms (the budget sees the gathered program, not a per-variable one)."""
    from arprob import budget

    if not unroll:
        monkeypatch.setattr(table_mod, "UNROLL_BELOW", 0)
    spec = random_network(40, max_states=3, max_parents=2, seed=2 if unroll else 4)
    model = ar.compile(spec)
    est = budget.estimate(spec)
    b = 64

    def xla(compiled) -> int:
        ma = compiled.memory_analysis()
        return ma.temp_size_in_bytes + ma.output_size_in_bytes + ma.argument_size_in_bytes

    lp = xla(ar.flat_log_prob.lower(model, jnp.zeros((b, spec.num_elements)), None).compile())
    smp = xla(ar.flat_sample.lower(model, jax.random.key(0), b, None, False).compile())
    assert lp <= est.peak_bytes(b, "log_prob") <= 12 * lp + 10**5, (lp, est.peak_bytes(b, "log_prob"))
    assert smp <= est.peak_bytes(b, "sample") <= 12 * smp + 10**5, (smp, est.peak_bytes(b, "sample"))

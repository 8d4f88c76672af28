"""One exactness suite, float32 half: every row of ``exactness.CASES`` (the float64 half is
``test_exactness_x64.py``, hypothesis-drawn specs are ``test_exactness_generic.py``), and
the checks that the checkers themselves fail on a leaky or unnormalised model."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import numpy as np
import pytest

import arprob as ar
from arprob.spec.registry import REGISTRY
from exactness import CASES, assert_contract, assert_normalised, check_case, random_model


@pytest.mark.parametrize("name", list(CASES))
def test_case(name):
    """Contract (perturbation + Jacobian zeros), cached == naive (samples and per-step
    parameters), finite gradients, normalisation by enumeration and a G-test where small."""
    check_case(name, "float32")


def test_every_registered_kind_has_a_row():
    """A new conditional family or head of the package (a class in ``arprob`` that registers a
    ``kind``) needs a row in ``exactness.CASES``."""
    covered = set().union(*(case.kinds() for case in CASES.values()))
    for category in ("conditional", "head"):
        ours = {k for k, cls in REGISTRY[category].items() if cls.__module__.startswith("arprob.")}
        missing = sorted(ours - {k for c, k in covered if c == category})
        assert not missing, f"{category} kinds without a row in tests/exactness.py CASES: {missing}"


def test_contract_check_catches_a_leak():
    """The contract checker must fail on a model whose mask lets an element see itself."""
    spec = ar.Spec(variables=(ar.Binary("x", shape=(3,)),))
    model = random_model(spec, 0)
    cond = model.components[0].conditioner
    leaky = jax.tree_util.tree_map(lambda a: a, model)
    # out_rank + 1: every element also reads its own step (itself).
    leaky = eqx.tree_at(lambda m: m.components[0].conditioner.out_rank, leaky, cond.out_rank + 1)
    with pytest.raises(AssertionError):
        assert_contract(leaky, np.random.default_rng(0))


class _LeakyBernoulli(ar.Bernoulli):
    def log_prob(self, params, values):
        return super().log_prob(params, values) + 0.01


def test_normalisation_check_catches_unnormalised_head():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(2,)),))
    model = random_model(spec, 0)
    assert_normalised(model)
    comp = model.components[0]
    broken = eqx.tree_at(lambda m: m.components, model, (dataclasses.replace(comp, head=_LeakyBernoulli()),))
    with pytest.raises(AssertionError):
        assert_normalised(broken)

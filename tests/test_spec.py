"""Orderings, partitions and the step vector; spec validation errors."""

from __future__ import annotations

import numpy as np
import pytest

import arprob as ar
from arprob.spec.layout import compute_steps

IMG = ar.Binary("img", shape=(2, 3))


def perm(ordering, variables=(IMG,)):
    return ordering.permutation(list(variables)).tolist()


def test_orderings_on_a_2x3_image():
    # element index = 3 * row + col
    assert perm(ar.Raster()) == [0, 1, 2, 3, 4, 5]
    assert perm(ar.Reverse()) == [5, 4, 3, 2, 1, 0]
    assert perm(ar.Columns()) == [0, 3, 1, 4, 2, 5]
    assert perm(ar.Snake()) == [0, 1, 2, 5, 4, 3]
    assert perm(ar.Zigzag()) == perm(ar.Snake())
    assert perm(ar.EvenOdd()) == [0, 2, 4, 1, 3, 5]
    assert perm(ar.Explicit((5, 0, 4, 1, 3, 2))) == [5, 0, 4, 1, 3, 2]
    assert sorted(perm(ar.RandomOrder(7))) == list(range(6))
    assert perm(ar.RandomOrder(7)) == perm(ar.RandomOrder(7))


def test_channels_stay_innermost_in_spatial_orderings():
    rgb = ar.Ordinal("rgb", levels=4, shape=(2, 2, 3))
    p = perm(ar.Columns(), (rgb,))
    assert p[:6] == [0, 1, 2, 6, 7, 8]  # pixel (0,0) then (1,0), each with its 3 channels


def test_by_variable_ordering():
    a, b = ar.Binary("a"), ar.Binary("b", shape=(2,))
    assert perm(ar.ByVariable(("b", "a")), (a, b)) == [1, 2, 0]
    assert perm(ar.ByVariable(("b", "a"), within=ar.Reverse()), (a, b)) == [2, 1, 0]
    with pytest.raises(ar.SpecError, match="unknown variable 'c'"):
        perm(ar.ByVariable(("b", "c")), (a, b))
    with pytest.raises(ar.SpecError, match="missing=\\['a'\\]"):
        perm(ar.ByVariable(("b",)), (a, b))


@pytest.mark.parametrize(
    "order, match",
    [((0, 1, 2, 3, 4), "all 6 elements"), ((0, 1, 2, 3, 4, 4), "element 4 twice"), ((0, 1, 2, 3, 4, 9), "index 9 at position 5")],
)
def test_invalid_explicit_orderings_name_the_culprit(order, match):
    with pytest.raises(ar.SpecError, match=match):
        ar.Spec(variables=(IMG,), ordering=ar.Explicit(order))


def test_partitions_and_steps():
    steps = compute_steps([IMG], ar.Raster(), ar.PerRow())
    assert steps.step.tolist() == [0, 0, 0, 1, 1, 1] and steps.num_steps == 2
    steps = compute_steps([IMG], ar.Snake(), ar.FixedSize(4))
    assert steps.step.tolist() == [0, 0, 0, 1, 1, 0]
    steps = compute_steps([IMG], ar.Reverse(), ar.ExplicitBlocks(((5, 4), (3,), (2, 1, 0))))
    assert steps.step.tolist() == [2, 2, 2, 1, 0, 0]
    rgb = ar.Ordinal("rgb", levels=4, shape=(1, 2, 3))
    assert compute_steps([rgb], ar.Raster(), ar.PerPixel()).step.tolist() == [0, 0, 0, 1, 1, 1]
    both = [ar.Binary("a"), IMG]
    assert compute_steps(both, ar.Raster(), ar.PerVariable()).step.tolist() == [0, 1, 1, 1, 1, 1, 1]
    s = compute_steps([IMG], ar.EvenOdd(), ar.Singletons())
    assert s.elements_of_step(1).tolist() == [2]


@pytest.mark.parametrize(
    "ordering, partition, match",
    [
        (ar.Columns(), ar.PerRow(), "split by the ordering"),
        (ar.Raster(), ar.ExplicitBlocks(((0, 2), (1, 3, 4, 5))), "not consecutive"),
        (ar.Raster(), ar.ExplicitBlocks(((0, 1), (1, 2, 3, 4, 5))), "element 1 is in block 0 and block 1"),
        (ar.Raster(), ar.ExplicitBlocks(((0, 1), (2, 3, 4))), "element 5 is in no block"),
        (ar.Raster(), ar.ExplicitBlocks(((0, 1), (2, 3, 4, 5, 6),)), "element 6, outside"),
    ],
)
def test_invalid_partitions_are_rejected(ordering, partition, match):
    with pytest.raises(ar.SpecError, match=match):
        ar.Spec(variables=(IMG,), ordering=ordering, partition=partition)


def test_spec_errors_name_the_culprit():
    with pytest.raises(ar.SpecError, match="'x' is declared 2 times"):
        ar.Spec(variables=(ar.Binary("x"), ar.Real("x")))
    with pytest.raises(ar.SpecError, match="unknown variable 'y'"):
        ar.Spec(variables=(ar.Binary("x"),), conditionals={"y": ar.Table()})
    with pytest.raises(ar.SpecError, match="unknown parent 'z'"):
        ar.Spec(variables=(ar.Binary("x"),), conditionals={"x": ar.Table(parents=["z"])})
    with pytest.raises(ar.SpecError, match="Parent 'b' \\(element 1\\) of variable 'a' is at step 1, not before"):
        ar.Spec(variables=(ar.Binary("a"), ar.Binary("b")), conditionals={"a": ar.Table(parents=["b"])})
    with pytest.raises(ar.SpecError, match="'t': tables need a discrete variable; it is real"):
        ar.Spec(variables=(ar.Real("t"),), conditionals={"t": ar.Table()})
    with pytest.raises(ar.SpecError, match="parent 't', which is real"):
        ar.Spec(variables=(ar.Real("t"), ar.Binary("b")), conditionals={"b": ar.Table(parents=["t"])})
    with pytest.raises(ar.SpecError, match="'t' is real; head Bernoulli"):
        ar.Spec(variables=(ar.Real("t"),), conditionals={"t": ar.Logistic(head=ar.Bernoulli())})
    with pytest.raises(ar.SpecError, match="num_categories: expected an integer >= 2"):
        ar.Categorical("c", 1)
    with pytest.raises(ar.SpecError, match="identifier"):
        ar.Binary("not a name")
    with pytest.raises(ar.SpecError, match="would need"):
        ar.Spec(variables=(ar.Binary("img", shape=(8, 8)),), conditionals={"img": ar.Table(parents="all")})


def test_cpt_checks():
    variables = (ar.Categorical("w", 3), ar.Binary("s"))
    good = ((0.5, 0.5), (0.1, 0.9), (1.0, 0.0))
    spec = ar.Spec(variables=variables, conditionals={"s": ar.Table(parents=["w"], cpt=good)})
    model = ar.compile(spec)
    lp = model.log_prob_by_variable({"w": np.array([0, 1, 2]), "s": np.array([1, 1, 1])})["s"]
    np.testing.assert_allclose(np.exp(lp), [0.5, 0.9, 0.0], atol=1e-7)
    with pytest.raises(ar.SpecError, match=r"parent values \(1,\) sums to 1.1"):
        ar.Spec(variables=variables, conditionals={"s": ar.Table(parents=["w"], cpt=((0.5, 0.5), (0.2, 0.9), (1.0, 0.0)))})
    with pytest.raises(ar.SpecError, match=r"expected a cpt of shape \(3, 2\)"):
        ar.Spec(variables=variables, conditionals={"s": ar.Table(parents=["w"], cpt=((0.5, 0.5),))})
    with pytest.raises(ar.SpecError, match="negative"):
        ar.Spec(variables=variables, conditionals={"s": ar.Table(parents=["w"], cpt=((1.5, -0.5), (0.1, 0.9), (1.0, 0.0)))})
    # A given CPT is kept by fit.
    fitted = ar.fit(model, {"w": np.array([0, 0]), "s": np.array([0, 0])}, num_steps=0).model
    np.testing.assert_array_equal(fitted.components[1].conditioner.log_probs, model.components[1].conditioner.log_probs)


def test_table_neighbours():
    spec = ar.Spec(variables=(IMG,), conditionals={"img": ar.Table(neighbours=((0, -1), (-1, 0)))})
    model = ar.compile(spec)
    strides = np.asarray(model.components[0].conditioner.strides)
    assert np.flatnonzero(strides[4]).tolist() == [1, 3]  # (1,1) sees (0,1) and (1,0)
    assert np.flatnonzero(strides[0]).tolist() == []
    with pytest.raises(ar.SpecError, match="neighbour 'img'\\[0, 1\\]"):
        ar.Spec(variables=(IMG,), conditionals={"img": ar.Table(neighbours=((0, 1),))})

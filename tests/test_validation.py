"""Bad data gets a clear error naming the variable, element, row and value; nothing is clipped."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import arprob as ar

SPEC = ar.Spec(
    variables=(ar.Categorical("w", 3), ar.Binary("s"), ar.Real("t"), ar.Ordinal("img", levels=4, shape=(2, 2))),
    conditionals={"w": ar.Table(), "s": ar.Table(parents=["w"])},
)
MODEL = ar.compile(SPEC)


def good(n=3):
    return {"w": np.zeros(n, int), "s": np.ones(n, int), "t": np.linspace(-1, 1, n), "img": np.full((n, 2, 2), 3)}


def test_mapping_and_flat_layout_agree():
    data = good()
    flat = np.concatenate([data["w"][:, None], data["s"][:, None], data["t"][:, None], data["img"].reshape(3, 4)], 1)
    np.testing.assert_array_equal(MODEL.log_prob(data), MODEL.log_prob(flat))
    back = MODEL.to_dict(MODEL.to_flat(data))
    np.testing.assert_array_equal(back["img"], data["img"])
    assert back["img"].dtype == np.int32


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.__setitem__("w", np.array([0, 3, 0])), r"'w' \(element 0\) in row 1 has value 3.0; variable 'w' \(categorical\) takes integers 0..2"),
        (lambda d: d["img"].__setitem__((2, 1, 0), 4), r"'img'\[1, 0\] \(element 5\) in row 2 has value 4.0"),
        (lambda d: d.__setitem__("s", np.array([0, 0.5, 1])), r"'s' \(element 1\) in row 1 has value 0.5"),
        (lambda d: d.__setitem__("s", np.array([0, -1, 1])), r"value -1.0"),
        (lambda d: d.__setitem__("t", np.array([0, np.nan, 1])), r"'t' \(element 2\) in row 1 is nan"),
        (lambda d: d.__setitem__("t", np.array([np.inf, 0, 1])), r"row 0 is inf"),
        (lambda d: d.__setitem__("img", np.zeros((3, 4))), r"expected shape \(batch, 2, 2\).*got \(3, 4\)"),
        (lambda d: d.__setitem__("t", np.zeros(2)), "batch size 2 differs"),
        (lambda d: d.__setitem__("t", np.array(["a", "b", "c"])), "dtype <U1"),
        (lambda d: d.__setitem__("extra", np.zeros(3)), "unknown variable 'extra'"),
        (lambda d: d.pop("t"), "variable 't' is missing"),
    ],
)
def test_bad_data_is_rejected(change, match):
    data = good()
    change(data)
    with pytest.raises(ar.DataError, match=match):
        MODEL.log_prob(data)


def test_bad_flat_data_and_context():
    with pytest.raises(ar.DataError, match=r"shape \(batch, 7\)"):
        MODEL.log_prob(np.zeros((2, 6)))
    with pytest.raises(ar.DataError, match="context_size=0"):
        MODEL.log_prob(good(), context=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="positive integer"):
        MODEL.sample(jax.random.key(0), 0)


def test_fit_validates_its_data():
    data = good()
    data["img"][0, 0, 0] = 7
    with pytest.raises(ar.DataError, match="'img'\\[0, 0\\]"):
        ar.fit(MODEL, data, num_steps=1)


def test_traced_data_is_accepted_inside_jit():
    flat = MODEL.to_flat(good())
    jitted = jax.jit(lambda x: MODEL.log_prob(x))
    np.testing.assert_allclose(jitted(flat), MODEL.log_prob(flat), rtol=1e-6)


def test_out_of_range_and_non_finite_data_raise_inside_jit_too():
    import equinox as eqx
    import jax.numpy as jnp

    spec = ar.Spec(variables=[ar.Categorical("c", 3), ar.Real("t")])
    model = ar.compile(spec)
    score = eqx.filter_jit(lambda c, t: model.log_prob({"c": c, "t": t}))
    assert np.all(np.isfinite(score(jnp.array([0, 2]), jnp.array([0.5, -1.0]))))
    for c, t, culprit in [([12, 1], [0.0, 0.0], "'c'"), ([-3, 1], [0.0, 0.0], "'c'"), ([1, 1], [np.nan, 0.0], "'t'"),
                          ([0.5, 1], [0.0, 0.0], "'c'")]:
        with pytest.raises(Exception, match=f"data\\[{culprit}\\]: a value is not among"):
            jax.block_until_ready(score(jnp.array(c), jnp.array(t)))

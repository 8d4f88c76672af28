"""``fit_order_agnostic`` takes ``num_updates`` (its old name ``num_steps`` still works)."""

import numpy as np
import pytest

import arprob as ar


def _model():
    spec = ar.Spec(variables=(ar.Binary("x", shape=(4,)),),
                   conditionals={"x": ar.MADE(hidden=(4,), num_orderings=2)})
    return ar.compile(spec)


DATA = {"x": np.random.default_rng(0).integers(0, 2, size=(16, 4)).astype(np.int32)}


@pytest.mark.parametrize("kwargs", [{"num_updates": 2}, {"num_steps": 3}])
def test_counts_optimiser_updates(kwargs):
    result = ar.fit_order_agnostic(_model(), DATA, batch_size=8, seed=0, **kwargs)
    assert len(result.history["member"]) == next(iter(kwargs.values()))


def test_both_names_refused():
    with pytest.raises(ValueError, match="num_updates=2|got 2 and 3"):
        ar.fit_order_agnostic(_model(), DATA, num_updates=2, num_steps=3)

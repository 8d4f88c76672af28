"""Structure learning: Chow–Liu recovers a tree's skeleton, learned tables beat independent
ones on held-out data, count-fitted tables score the same under every topological order,
and the BIC search never scores below its starting tree."""

from __future__ import annotations

import numpy as np
import pytest

import arprob as ar
from arprob import structure

# a tree over five variables: a -> b, a -> c, c -> d, c -> e (strong dependencies)
_EDGES = {"b": "a", "c": "a", "d": "c", "e": "c"}


def _tree_samples(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {"a": rng.integers(0, 3, n)}
    for child in ("b", "c", "d", "e"):
        parent = out[_EDGES[child]]
        flip = rng.random(n) < 0.2
        out[child] = np.where(flip, rng.integers(0, 3, n), parent)
    return out


K = dict.fromkeys("abcde", 3)


def _heldout(spec: ar.Spec, train, test) -> float:
    model = ar.fit(ar.compile(spec), train, num_updates=0).model
    return float(np.mean(model.log_prob(test)))


def test_chow_liu_recovers_the_skeleton_and_beats_independent_tables():
    train, test = _tree_samples(3000, 0), _tree_samples(1000, 1)
    order, parents = structure.chow_liu(train, K, root="a")
    skeleton = {frozenset((c, p[0])) for c, p in parents.items() if p}
    assert skeleton == {frozenset(e) for e in _EDGES.items()}
    assert order[0] == "a" and all(order.index(p[0]) < order.index(c) for c, p in parents.items() if p)
    learned = _heldout(structure.tables_spec(order, parents, K), train, test)
    independent = _heldout(structure.tables_spec(order, {}, K), train, test)
    assert learned > independent + 0.5


def test_count_fitted_tables_score_the_same_under_every_root():
    train, test = _tree_samples(500, 2), _tree_samples(50, 3)
    scores = []
    for root in "abcde":
        order, parents = structure.chow_liu(train, K, root=root)
        model = ar.fit(ar.compile(structure.tables_spec(order, parents, K, prior=0.0)), train, num_updates=0).model
        scores.append(np.asarray(model.log_prob(test), np.float64))
    for s in scores[1:]:
        np.testing.assert_allclose(s, scores[0], atol=1e-4)


def test_missing_codes_use_available_cases_and_bad_codes_are_refused():
    train = _tree_samples(2000, 4)
    holed = {k: np.where(np.random.default_rng(5).random(v.size) < 0.2, -1, v) for k, v in train.items()}
    assert structure.chow_liu(holed, K, root="a")[1] == structure.chow_liu(train, K, root="a")[1]
    with pytest.raises(ar.DataError, match="'b'.*record 3"):
        structure.chow_liu({**train, "b": np.where(np.arange(2000) == 3, 7, train["b"])}, K)


def test_bic_search_improves_on_the_tree_when_a_v_structure_is_there():
    rng = np.random.default_rng(6)
    a, b = rng.integers(0, 2, 4000), rng.integers(0, 2, 4000)
    c = np.where(rng.random(4000) < 0.05, 1 - (a ^ b), a ^ b)  # c = a xor b: needs both parents
    codes, k = {"a": a, "b": b, "c": c}, dict.fromkeys("abc", 2)
    order, parents = structure.bic_search(codes, k)
    assert any(len(p) == 2 for p in parents.values())
    tree = structure.tables_spec(*structure.chow_liu(codes, k), k)
    assert _heldout(structure.tables_spec(order, parents, k), codes, codes) > _heldout(tree, codes, codes) + 0.3

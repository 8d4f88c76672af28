"""AutoDetector: the scikit-learn / PyOD contract, column inference, unseen states, exact
marginals of missing entries, the library model behind the NumPy closed forms, FDR control
of the BH flags, explanations and files."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
from sklearn.base import clone

import arprob as ar
from arprob import structure
from arprob.ood import AutoDetector, benjamini_hochberg, conformal_p_values
from arprob.ood.tabular import Gaussian, Tables, onehot


def _mixed(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    colour = rng.choice(np.array(["red", "green", "blue"], dtype=object), n)
    size = np.where(colour == "red", rng.normal(3.0, 0.5, n), rng.normal(0.0, 1.0, n))
    return {"colour": colour, "flag": rng.random(n) < 0.3, "count": rng.integers(0, 4, n),
            "size": size, "weight": 2.0 * size + rng.normal(0.0, 0.3, n)}


def test_estimator_contract_and_pyod_attributes():
    x = np.random.default_rng(0).normal(size=(200, 3))
    det = AutoDetector(contamination=0.05)
    assert det.fit(x) is det
    assert clone(det).get_params() == det.get_params()
    assert det.set_params(contamination=0.2) is det and det.contamination == 0.2
    assert det.decision_scores_.shape == (200,) and set(np.unique(det.labels_)) <= {0, 1}
    assert abs(det.labels_.mean() - 0.05) < 0.02  # threshold_ from contamination on decision_scores_
    test = np.vstack([x[:5], x[:5] + 10.0])
    np.testing.assert_array_equal(det.predict(test), (det.decision_function(test) > det.threshold_).astype(int))
    assert det.predict(test)[5:].all()
    for method in ("linear", "unify"):
        proba = det.predict_proba(test, method=method)
        assert proba.shape == (10, 2) and np.allclose(proba.sum(1), 1.0) and proba[5:, 1].min() > proba[:5, 1].max()
    assert det.report_["chosen"] == det.chosen_ and {c["name"] for c in det.report_["candidates"]} >= {"gauss(0)"}


def test_column_kinds_unseen_states_and_explanations():
    train = _mixed(300)
    det = AutoDetector().fit(train)
    assert [(c.name, c.kind) for c in det.schema_] == [
        ("colour", "categorical"), ("flag", "categorical"), ("count", "categorical"), ("size", "real"),
        ("weight", "real")]
    test = {k: v[:4].copy() for k, v in train.items()}
    test["colour"][1] = "purple"  # never seen: probability 0, no exception
    test["weight"][2] = test["size"][2] * 2.0 + 5.0  # breaks the linear dependency
    scores = det.decision_function(test)
    assert scores[1] == np.inf and np.isfinite(scores[[0, 2, 3]]).all()
    assert scores[2] > scores[0] + 20
    assert det.flag(test, fdr=0.2)[1] and det.p_values(test)[1] == 1 / (len(det.calibration_) + 1)
    why = det.explain(test)
    assert why.unseen[1] == ("colour",) and why.unseen[0] == ()
    np.testing.assert_allclose(why.values[[0, 2, 3]].sum(1), scores[[0, 2, 3]], rtol=1e-9, atol=1e-9)
    assert why.top(2, 1)[0][0] == "weight"
    kinds = AutoDetector(kinds={"count": "real"}, time_budget=0.2).fit(train).schema_
    assert dict((c.name, c.kind) for c in kinds)["count"] == "real"
    with pytest.raises(ar.DataError, match="'nope'"):
        AutoDetector(kinds={"nope": "real"}).fit(train)


def test_pandas_frames_with_categories_and_missing_values():
    pd = pytest.importorskip("pandas")
    d = _mixed(200, 1)
    frame = pd.DataFrame({**d, "colour": pd.Categorical(d["colour"]), "count": pd.array(d["count"], dtype="Int64")})
    frame.loc[3, "size"] = np.nan
    frame.loc[4, "colour"] = None
    frame.loc[5, "count"] = pd.NA
    det = AutoDetector(time_budget=0.5).fit(frame)
    assert {c.name: c.kind for c in det.schema_}["count"] == "categorical"  # nullable integers, few values
    scores = det.decision_function(frame.iloc[:6])
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("tree", [True, False])
def test_table_marginals_equal_enumeration(tree):
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 3, (400, 4))
    codes[:, 1] = np.where(rng.random(400) < 0.7, codes[:, 0], codes[:, 1])
    parents = [[], [0], [1], [1]] if tree else [[], [0], [0, 1], [2]]
    tables = Tables.fit(codes, np.full(4, 3), [0, 1, 2, 3], parents)
    holed = codes[:50].copy()
    holed[rng.random(holed.shape) < 0.4] = -1
    expected = []
    for rec in holed:
        miss = np.flatnonzero(rec == -1)
        full = np.repeat(rec[None], 3 ** miss.size, 0)
        if miss.size:
            full[:, miss] = np.array(list(itertools.product(range(3), repeat=miss.size)))
        expected.append(np.log(np.exp(tables.terms(full).sum(1)).sum()))
    np.testing.assert_allclose(tables.log_prob(holed), expected, rtol=1e-10)


def test_gaussian_marginal_equals_numerical_integration():
    rng = np.random.default_rng(3)
    reals = rng.normal(size=(500, 3)) @ np.array([[1.0, 0.8, 0.0], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    feats = np.zeros((500, 0))
    g = Gaussian.fit(feats, reals, 0.1, order=np.array([2, 0, 1]))
    rec = reals[:1].copy()
    grid = np.linspace(-12, 12, 4001)
    full = np.repeat(rec, grid.size, 0)
    full[:, 1] = grid
    integral = np.log(np.trapezoid(np.exp(g.log_prob(np.zeros((grid.size, 0)), full)), grid))
    rec[0, 1] = np.nan
    np.testing.assert_allclose(g.log_prob(np.zeros((1, 0)), rec)[0], integral, rtol=1e-6)


@pytest.mark.parametrize("x64", [False, True])
def test_closed_forms_are_the_library_families(x64):
    """The NumPy candidate is the model ``ar.compile`` builds from Tables and LinearGaussian."""
    rng = np.random.default_rng(4)
    codes = rng.integers(0, 3, (300, 3))
    codes[:, 2] = np.where(rng.random(300) < 0.6, codes[:, 0], codes[:, 2])
    reals = rng.normal(size=(300, 2)) + codes[:, :1]
    k = np.full(3, 3)
    named = {f"d{j}": codes[:, j] for j in range(3)}
    order, parents = structure.chow_liu(named, dict.fromkeys(named, 3))
    idx = [int(n[1:]) for n in order]
    tables = Tables.fit(codes, k, idx, [[int(p[1:]) for p in parents[f"d{j}"]] for j in range(3)])
    g = Gaussian.fit(onehot(codes[:, idx], k, tables.frequencies), reals, 0.1)
    numpy_lp = tables.log_prob(codes) + g.log_prob(onehot(codes[:, idx], k, tables.frequencies), reals)
    with jax.enable_x64(x64):
        base = structure.tables_spec(order, parents, dict.fromkeys(named, 3))
        spec = ar.Spec(variables=(*base.variables, ar.Real("r0"), ar.Real("r1")),
                       ordering=ar.ByVariable((*order, "r0", "r1")), partition=ar.PerVariable(),
                       conditionals={**dict(base.conditionals), "r0": ar.LinearGaussian(shrinkage=0.1),
                                     "r1": ar.LinearGaussian(shrinkage=0.1)})
        data = {**named, "r0": reals[:, 0], "r1": reals[:, 1]}
        model = ar.fit(ar.compile(spec), data, num_updates=0).model
        lib_lp = np.asarray(model.log_prob(data), np.float64)
    np.testing.assert_allclose(lib_lp, numpy_lp, rtol=0, atol=1e-8 if x64 else 5e-3)


def test_benjamini_hochberg_controls_the_fdr_over_seeds():
    """Inliers N(0, 1), outliers N(3, 1), exact density score: the realised FDR of BH on
    marginal conformal p-values averages at most q (within sampling error)."""
    q, fdps = 0.1, []
    for seed in range(400):
        rng = np.random.default_rng(seed)
        cal = rng.normal(size=200) ** 2
        inl, out = rng.normal(size=90), rng.normal(3.0, 1.0, 10)
        test = np.r_[inl, out] ** 2
        flags = benjamini_hochberg(conformal_p_values(cal, test), q)
        fdps.append(flags[:90].sum() / max(flags.sum(), 1))
    fdps = np.asarray(fdps)
    assert fdps.mean() <= q + 3 * fdps.std() / np.sqrt(fdps.size)
    assert fdps.mean() > 0.02  # not trivially conservative: BH flags some inliers
    with pytest.raises(ar.DataError, match="FDR level"):
        benjamini_hochberg(np.array([0.5]), 1.5)


def test_flags_end_to_end_find_outliers_and_few_inliers():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 2)) @ np.array([[1.0, 0.9], [0.0, 0.4]])
    det = AutoDetector().fit(x)
    test = np.vstack([rng.normal(size=(180, 2)) @ np.array([[1.0, 0.9], [0.0, 0.4]]),
                      rng.normal(size=(20, 2)) * 3.0])
    flags = det.flag(test, fdr=0.1)
    assert flags[180:].sum() >= 10 and flags[:180].sum() <= 0.2 * max(flags.sum(), 1) + 1


def test_save_and_load_give_the_same_scores(tmp_path):
    train = _mixed(150, 6)
    det = AutoDetector(time_budget=0.5).fit(train)
    path = tmp_path / "auto.arprob"
    det.save(path)
    back = AutoDetector.load(path)
    test = {k: v[:20] for k, v in _mixed(20, 7).items()}
    np.testing.assert_array_equal(back.decision_function(test), det.decision_function(test))
    assert back.threshold_ == det.threshold_ and back.chosen_ == det.chosen_
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ar.ood.auto.CheckpointError, match="sha256"):
        AutoDetector.load(path)

"""BIF reader and writer: hand-written published networks, exact round trips, line-numbered errors."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import jax
import numpy as np
import pytest

import arprob as ar
from arprob.interop import BayesNet, random_network
from arprob.interop.bif import BIFError, format_bif, parse_bif
from arprob.train import fit_tables

DATA = Path(__file__).parent / "data"


def all_assignments(spec: ar.Spec) -> np.ndarray:
    cards = [v.num_values for v in spec.variables]
    return np.array(list(itertools.product(*map(range, cards))))


def marginal(spec: ar.Spec, probs: np.ndarray, name: str, state: str, given: dict | None = None) -> float:
    """``p(name = state | given)`` by enumeration of the full joint ``probs``."""
    x = all_assignments(spec)
    names = [v.name for v in spec.variables]

    def index(n, s):
        return names.index(n), spec.variable(n).states.index(s)

    keep = np.ones(len(x), bool)
    for n, s in (given or {}).items():
        c, j = index(n, s)
        keep &= x[:, c] == j
    c, j = index(name, state)
    return float(probs[keep & (x[:, c] == j)].sum() / probs[keep].sum())


@pytest.fixture(scope="module")
def networks():
    """The three hand-written networks, compiled, and their exact joints by enumeration (in
    float64; test_bayesnet checks the compiled network against the generic Model)."""
    out = {}
    with jax.enable_x64(True):
        for name in ("asia", "sprinkler", "cancer"):
            spec = ar.read_bif(DATA / f"{name}.bif")
            net = BayesNet.from_spec(spec)
            x = all_assignments(spec)
            out[name] = (spec, net, x, np.exp(np.asarray(net.log_prob(x), dtype=np.float64)))
    return out


def test_asia_as_published(networks):
    spec, _, _, probs = networks["asia"]
    assert [v.name for v in spec.variables] == ["asia", "tub", "smoke", "lung", "bronc", "either", "xray", "dysp"]
    assert all(v.states == ("yes", "no") for v in spec.variables)
    assert spec.conditional["dysp"].parents == ("bronc", "either")
    assert spec.conditional["either"].cpt[1][1] == (0.0, 1.0)  # either = lung OR tub
    assert isinstance(spec.ordering, ar.Raster)
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    # Marginals of the chest-clinic network (Lauritzen & Spiegelhalter 1988).
    assert marginal(spec, probs, "lung", "yes") == pytest.approx(0.055, abs=1e-12)
    assert marginal(spec, probs, "tub", "yes") == pytest.approx(0.0104, abs=1e-12)
    assert marginal(spec, probs, "either", "yes") == pytest.approx(0.064828, abs=1e-12)
    assert marginal(spec, probs, "xray", "yes") == pytest.approx(0.11029004, abs=1e-12)
    assert marginal(spec, probs, "dysp", "yes") == pytest.approx(0.43597, abs=1e-5)


def test_sprinkler_as_published(networks):
    spec, _, _, probs = networks["sprinkler"]
    assert spec.conditional["WetGrass"].parents == ("Sprinkler", "Rain")
    # The textbook query: p(wet grass) = 0.6471, p(rain | wet) = 0.7079, p(sprinkler | wet) = 0.4298.
    assert marginal(spec, probs, "WetGrass", "true") == pytest.approx(0.6471, abs=1e-4)
    assert marginal(spec, probs, "Rain", "true", {"WetGrass": "true"}) == pytest.approx(0.7079, abs=1e-4)
    assert marginal(spec, probs, "Sprinkler", "true", {"WetGrass": "true"}) == pytest.approx(0.4298, abs=1e-4)


def test_cancer_declared_out_of_topological_order(networks):
    spec, _, _, probs = networks["cancer"]
    assert [v.name for v in spec.variables] == ["Cancer", "Dyspnoea", "Pollution", "Smoker", "Xray"]
    assert spec.ordering == ar.ByVariable(names=("Pollution", "Smoker", "Cancer", "Dyspnoea", "Xray"))
    # 'table' form: child slowest, last parent fastest.
    cpt = np.asarray(spec.conditional["Cancer"].cpt)
    assert cpt.shape == (2, 2, 2)
    np.testing.assert_array_equal(cpt[:, :, 0], [[0.03, 0.001], [0.05, 0.02]])
    # p(cancer) = 0.9 (0.3 * 0.03 + 0.7 * 0.001) + 0.1 (0.3 * 0.05 + 0.7 * 0.02) = 0.01163
    assert marginal(spec, probs, "Cancer", "True") == pytest.approx(0.01163, abs=1e-12)
    assert marginal(spec, probs, "Xray", "positive") == pytest.approx(0.208141, abs=1e-12)


@pytest.mark.parametrize("name", ["asia", "sprinkler", "cancer"])
def test_round_trip_is_exact(name, tmp_path, networks):
    spec = networks[name][0]
    ar.write_bif(spec, tmp_path / "net.bif")
    again = ar.read_bif(tmp_path / "net.bif")
    assert again == spec
    assert format_bif(again) == (tmp_path / "net.bif").read_text()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_random_networks_round_trip(tmp_path):
    for seed, size in ((0, 60), (1, 80)):
        spec = random_network(size, max_states=6, max_parents=4, seed=seed)
        ar.write_bif(spec, tmp_path / "r.bif", name="random")
        again = ar.read_bif(tmp_path / "r.bif")
        assert again == spec
        for (_, a), (_, b) in zip(spec.conditionals, again.conditionals):
            assert np.asarray(a.cpt).tobytes() == np.asarray(b.cpt).tobytes()  # bit-exact floats


def test_write_fitted_model(tmp_path, networks):
    spec = networks["sprinkler"][0]
    x = np.asarray(BayesNet.from_spec(spec).sample(jax.random.key(0), 2000))
    unfitted = spec.replace(conditionals={n: ar.Table(parents=c.parents, prior=1.0) for n, c in spec.conditionals})
    with pytest.raises(ar.SpecError, match="no cpt"):
        ar.write_bif(unfitted, tmp_path / "bad.bif")
    model = fit_tables(ar.compile(unfitted), x.astype(np.float32))
    ar.write_bif(model, tmp_path / "fitted.bif")
    back = ar.read_bif(tmp_path / "fitted.bif")
    for i, (_, cond) in enumerate(back.conditionals):  # the model's tables, renormalised in float64
        fitted = np.exp(np.asarray(model.components[i].conditioner.log_probs, np.float64))
        np.testing.assert_allclose(np.asarray(cond.cpt).reshape(fitted.shape), fitted, rtol=1e-6)
    # the counts themselves: p(cloudy = true) = (count + 1) / (n + 2)
    expected = ((x[:, 0] == 0).sum() + 1) / (len(x) + 2)
    assert back.conditional["Cloudy"].cpt[0] == pytest.approx(expected, rel=1e-6)


def test_write_rejects_what_bif_cannot_hold(tmp_path):
    spec = ar.Spec(variables=[ar.Binary("a"), ar.Real("b")])
    with pytest.raises(ar.SpecError, match="'a'.*Table"):
        ar.write_bif(spec, tmp_path / "x.bif")
    spec = ar.Spec(variables=[ar.Categorical("a", 2, states=("x y", "z"))],
                   conditionals={"a": ar.Table(parents=(), cpt=(0.5, 0.5))})
    with pytest.raises(ar.SpecError, match="state of 'a'"):
        ar.write_bif(spec, tmp_path / "x.bif")
    assert not (tmp_path / "x.bif").exists()


SPRINKLER = (DATA / "sprinkler.bif").read_text()


def _line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


# (description, edit of the sprinkler file, fragment on the expected line, message pattern)
MALFORMED = [
    ("missing row", ("  (false, true) 0.9, 0.1;\n", ""), "probability ( WetGrass", "no row for \\(false, true\\)"),
    ("row not summing to one", ("(true) 0.1, 0.9;", "(true) 0.1, 0.8;"), "(true) 0.1, 0.8;", "sums to 0.9"),
    ("unknown parent", ("Rain | Cloudy", "Rain | Cloud"), "Rain | Cloud", "unknown parent variable 'Cloud'"),
    ("cycle", ("Cloudy ) {\n  table 0.5, 0.5;", "Cloudy | WetGrass ) {\n  (true) 0.5, 0.5;\n  (false) 0.5, 0.5;"),
     "probability ( Cloudy", "cycle: .*Cloudy"),
    ("duplicate state", ("[ 2 ] { true, false };\n}\nvariable Rain", "[ 2 ] { true, true };\n}\nvariable Rain"),
     "{ true, true }", "duplicate state 'true'"),
    ("state count", ("[ 2 ] { true, false };\n}\nvariable Rain", "[ 3 ] { true, false };\n}\nvariable Rain"),
     "[ 3 ]", "declares \\[3\\] states but lists 2"),
    ("duplicate variable", ("variable Rain {", "variable Cloudy {"), ("variable Cloudy {\n  type discrete [ 2 ] "
     "{ true, false };\n}\nvariable WetGrass"), "declared twice"),
    ("unknown parent state", ("(true, false) 0.9", "(true, maybe) 0.9"), "(true, maybe)", "'maybe' is not a state"),
    ("duplicate row", ("(false, false) 0.0, 1.0;", "(true, true) 0.0, 1.0;"), "(true, true) 0.0, 1.0;",
     "given twice"),
    ("negative", ("table 0.5, 0.5;", "table 1.5, -0.5;"), "table 1.5, -0.5;", "negative"),
    ("not a number", ("(false) 0.5, 0.5;", "(false) 0.5, half;"), "(false) 0.5, half;", "expected a probability"),
    ("wrong row length", ("(false) 0.2, 0.8;", "(false) 0.2, 0.7, 0.1;"), "(false) 0.2, 0.7, 0.1;",
     "3 probabilities; the child has 2"),
    ("missing block", ("probability ( Rain | Cloudy ) {\n  (true) 0.8, 0.2;\n  (false) 0.2, 0.8;\n}\n", ""),
     "variable Rain", "'Rain' has no probability block"),
    ("self parent", ("Sprinkler | Cloudy", "Sprinkler | Sprinkler"), "Sprinkler | Sprinkler", "its own parent"),
    ("bad name", ("variable Rain {", "variable rain-fall {"), "variable rain-fall", "not a Python identifier"),
    ("second block", ("probability ( Rain | Cloudy )", "probability ( Sprinkler | Cloudy )"),
     "probability ( Sprinkler | Cloudy ) {\n  (true) 0.8", "second probability block"),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_files_name_the_line(case, tmp_path):
    _, (old, new), fragment, pattern = case
    assert old in SPRINKLER
    text = SPRINKLER.replace(old, new, 1)
    path = tmp_path / "bad.bif"
    path.write_text(text)
    with pytest.raises(BIFError, match=pattern) as info:
        ar.read_bif(path)
    line = _line_of(text, fragment)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_truncated_file_and_unreadable_path(tmp_path):
    text = SPRINKLER[: SPRINKLER.index("(false, false)")]
    with pytest.raises(BIFError, match="unexpected end of file") as info:
        parse_bif(text, "cut.bif")
    assert info.value.line == text.count("\n") + 1
    with pytest.raises(BIFError, match="cannot read"):
        ar.read_bif(tmp_path / "missing.bif")


def test_default_rows_and_older_syntax():
    text = """network n { }
    variable a { type discrete [ 2 ] { x, y }; }
    variable b { type discrete [ 3 ] { p, q, r }; property "p" ; }
    probability ( a ) { table 0.25 0.75 ; }
    probability ( b a ) { default 0.2, 0.3, 0.5; (y) 1.0, 0.0, 0.0; }
    """
    spec = parse_bif(text)
    cpt = np.asarray(spec.conditional["b"].cpt)
    np.testing.assert_array_equal(cpt, [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    assert spec.conditional["b"].parents == ("a",)




def test_log_likelihood_agrees_with_pgmpy(tmp_path):
    """Per-row log-likelihoods of pgmpy's reading of our file, in float64, to 1e-9."""
    bif = pytest.importorskip("pgmpy.readwrite")
    spec = random_network(50, max_states=4, max_parents=3, seed=3)
    ar.write_bif(spec, tmp_path / "r.bif")
    reference = bif.BIFReader(str(tmp_path / "r.bif")).get_model()
    with jax.enable_x64(True):
        net = BayesNet.from_spec(ar.read_bif(tmp_path / "r.bif"))
        x = np.asarray(net.sample(jax.random.key(0), 40))
        ours = np.asarray(net.log_prob(x))
    names = [v.name for v in spec.variables]
    states = [v.states for v in spec.variables]
    for row, lp in zip(x, ours):
        assignment = {n: states[i][row[i]] for i, n in enumerate(names)}
        theirs = 0.0
        for n in names:
            cpd = reference.get_cpds(n)
            theirs += math.log(cpd.get_value(**{v: assignment[v] for v in cpd.variables}))
        assert abs(theirs - lp) < 1e-9

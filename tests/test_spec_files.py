"""Spec files in TOML, JSON and YAML: one example per registered kind round-trips exactly in
every format (a kind without a case fails the test), file keys and defaults are the Python
constructors' own, errors name the file, the key path and what was expected, and the
generated reference page equals the committed one. Nothing here compiles a model."""

from __future__ import annotations

from pathlib import Path

import pytest

import arprob as ar
from arprob.spec import serialize
from arprob.spec.schema import builtin_registry, field_docs, python_name, schema_markdown, spec_fields

ROOT = Path(__file__).resolve().parents[1]

#: one example instance per registered kind ("category:kind"), with non-default values where it can
CASES = {
    "variable:binary": ar.Binary("a", shape=(2, 2)),
    "variable:categorical": ar.Categorical("c", 3, states=("x", "y", "z")),
    "variable:ordinal": ar.Ordinal("o", levels=5, shape=(2, 2, 3)),
    "variable:real": ar.Real("r", shape=(2,)),
    "ordering:raster": ar.Raster(),
    "ordering:columns": ar.Columns(),
    "ordering:snake": ar.Snake(),
    "ordering:even_odd": ar.EvenOdd(),
    "ordering:reverse": ar.Reverse(of=ar.Columns()),
    "ordering:random": ar.RandomOrder(seed=3),
    "ordering:explicit": ar.Explicit(order=(5, 4, 3, 2, 1, 0)),
    "ordering:by_variable": ar.ByVariable(("r", "a"), within=ar.Snake()),
    "partition:singletons": ar.Singletons(),
    "partition:fixed_size": ar.FixedSize(2),
    "partition:per_pixel": ar.PerPixel(),
    "partition:per_row": ar.PerRow(),
    "partition:per_variable": ar.PerVariable(),
    "partition:explicit_blocks": ar.ExplicitBlocks(((0, 1), (2, 3), (4, 5))),
    "conditional:logistic": ar.Logistic(parents=("a",)),
    "conditional:linear_gaussian": ar.LinearGaussian(parents=("a",), shrinkage=0.1, min_variance=1e-4),
    "conditional:made": ar.MADE(hidden=(8, 4), num_orderings=2, ordering_family=(ar.Columns(),), seed=1,
                                activation="tanh"),
    "conditional:pixelcnn": ar.PixelCNN(channels=4, num_layers=1),
    "conditional:rnn": ar.RNN(hidden=4, cell="lstm"),
    "conditional:table": ar.Table(parents=("a",), prior=0.5),
    "conditional:transformer": ar.Transformer(width=8, num_heads=2, num_layers=1, coordinate_coding="sinusoidal"),
    "conditional:wavenet": ar.WaveNet(channels=4, num_layers=2, dilation_cycle=1),
    "head:bernoulli": ar.Bernoulli(),
    "head:categorical": ar.CategoricalHead(),
    "head:discretized_logistic_mixture": ar.DiscretizedLogisticMixture(2, coupled=True),
    "head:gaussian": ar.Gaussian(),
    "head:gaussian_mixture": ar.GaussianMixture(3),
    "head:logistic_mixture": ar.LogisticMixture(2),
    "head:numpyro": ar.heads.NumPyroHead("StudentT", fixed=(("df", 4.0),)),
}

#: kinds whose class is not exported as ``ar.<ClassName>`` (documented in docs/spec_reference.md)
NOT_TOP_LEVEL = {"head:numpyro": "ar.heads.NumPyroHead"}


def _builtin_kinds() -> set[str]:
    return {f"{c}:{k}" for c, table in builtin_registry().items() for k in table}


def _specs() -> list[ar.Spec]:
    """Valid specs that together use every case."""
    a, r, c, o = CASES["variable:binary"], CASES["variable:real"], CASES["variable:categorical"], CASES["variable:ordinal"]
    specs = [ar.Spec(variables=(a, r), ordering=CASES[k]) for k in CASES if k.startswith("ordering:")]
    specs += [ar.Spec(variables=(a, r), partition=CASES[k]) for k in CASES if k.startswith("partition:")]
    img = ar.Ordinal("img", levels=4, shape=(3, 3, 1))
    for k in CASES:
        if k.startswith("conditional:"):
            target = {"conditional:pixelcnn": img, "conditional:linear_gaussian": r}.get(k, c)
            specs.append(ar.Spec(variables=(a, target), conditionals={target.name: CASES[k]}, context_size=2 * (
                k == "conditional:rnn")))
    heads = {"bernoulli": a, "categorical": c, "discretized_logistic_mixture": o, "gaussian": r,
             "gaussian_mixture": r, "logistic_mixture": r, "numpyro": ar.Real("t")}
    for kind, var in heads.items():
        partition = ar.PerPixel() if kind == "discretized_logistic_mixture" else ar.Singletons()
        specs.append(ar.Spec(variables=(var,), partition=partition,
                             conditionals={var.name: ar.Logistic(head=CASES[f"head:{kind}"])}))
    return specs


SPECS = _specs()


def test_every_registered_kind_has_a_case():
    missing = sorted(_builtin_kinds() - set(CASES))
    assert not missing, f"registered kinds without a case in CASES: {missing}"
    for key, obj in CASES.items():
        category, kind = key.split(":")
        assert type(obj) is builtin_registry()[category][kind], key


def test_the_specs_use_every_case():
    used = {id(x) for s in SPECS for x in (*s.variables, s.ordering, s.partition)}
    used |= {id(x) for s in SPECS for _, cond in s.conditionals for x in (cond, getattr(cond, "head", None))}
    assert not [k for k, v in CASES.items() if id(v) not in used and not k.startswith(("ordering:raster",
                                                                                       "partition:singletons"))]


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml", ".yml"])
def test_save_load_round_trips_exactly(tmp_path, suffix):
    for i, spec in enumerate(SPECS):
        path = tmp_path / f"s{i}{suffix}"
        ar.save_spec(spec, path)
        assert ar.load_spec(path) == spec, (path.read_text(), spec)


def test_formats_are_one_schema(tmp_path):
    """The same spec written in any format loads as the same dict of keys."""
    import json
    import tomllib

    import yaml

    spec = SPECS[0]
    for suffix in (".toml", ".json", ".yaml"):
        ar.save_spec(spec, tmp_path / f"s{suffix}")
    text = {s: (tmp_path / f"s{s}").read_text() for s in (".toml", ".json", ".yaml")}
    assert tomllib.loads(text[".toml"]) == json.loads(text[".json"]) == yaml.safe_load(text[".yaml"])


def test_class_names_are_the_python_api():
    for key, obj in CASES.items():
        cls = type(obj)
        name = python_name(cls)
        assert name == NOT_TOP_LEVEL.get(key, f"ar.{cls.__name__}"), key
        assert eval(name, {"ar": ar}) is cls


def test_file_defaults_are_constructor_defaults():
    """A file table with only ``kind`` (and the constructor's required arguments) builds the
    same object as calling the constructor with those arguments alone."""
    for key, obj in CASES.items():
        cls = type(obj)
        required = {n: getattr(obj, n) for n in serialize._required(cls)}
        table = {"kind": key, **{n: list(v) if isinstance(v, tuple) else v for n, v in required.items()}}
        assert serialize._build(table, "x", None) == cls(**required), key


def test_every_field_is_documented():
    for key, obj in CASES.items():
        docs = field_docs(type(obj))
        missing = [f for f in spec_fields(type(obj)) if not docs.get(f)]
        assert not missing, f"{key}: fields without a description in the class docstring: {missing}"


def test_reference_page_is_generated_from_the_registry():
    page = (ROOT / "docs" / "spec_reference.md").read_text()
    assert page == schema_markdown(), "docs/spec_reference.md is stale: run python -m arprob.spec.schema docs/spec_reference.md"
    for key in CASES:
        assert f"### `{key.split(':')[1]}`" in page


YAML_BASE = "variables:\n  - {kind: binary, name: img, shape: [4, 4]}\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (YAML_BASE + "conditionals:\n  img: {kind: made, hidden: [8, -3]}\n",
         "m.yaml: conditionals.img.hidden[1]: expected a positive integer, got -3"),
        (YAML_BASE + "ordering: {kind: random, seed: 1.5}\n", "m.yaml: ordering.seed: expected an integer >= 0, got 1.5"),
        (YAML_BASE + "conditionals:\n  img: {kind: made, hiden: [8]}\n",
         "m.yaml: conditionals.img: unknown key 'hiden' for 'made'"),
        (YAML_BASE + "conditionals:\n  img: {kind: logistic, head: 1.5}\n",
         "m.yaml: conditionals.img.head: expected a head (a table with a 'kind'), got 1.5"),
        ("variables:\n  - {kind: binary, name: img, shape: [4, 0]}\n",
         "m.yaml: variables[0].shape[1]: expected a positive integer, got 0"),
        ("variables:\n  - {kind: categorical, name: c}\n", "m.yaml: variables[0]: 'categorical' needs the key 'num_categories'"),
        ("variables:\n  - {kind: binary, name: 2024-01-01}\n", "m.yaml: variables[0].name: expected a string, number, "
         "boolean, list or table, got a date/time 2024-01-01"),
        (YAML_BASE + "conditionals:\n  1: {kind: logistic}\n", "m.yaml: conditionals[1]: expected a string key, got int 1"),
        ("variables:\n  - &v {kind: binary, name: img}\n  - *v\n", "m.yaml: line 3, column 5: YAML aliases (*v) are not allowed"),
        ("variables:\n  - {kind: binary, name: [img\n", "m.yaml: malformed YAML at line 3, column 1"),
        (YAML_BASE + "context_size: -1\n", "m.yaml: context_size: expected an integer >= 0, got -1"),
        ("", "m.yaml: the file holds no spec"),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else v,
)
def test_yaml_errors_name_file_key_path_and_expectation(tmp_path, text, message):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ar.SpecError) as err:
        ar.load_spec(path)
    assert str(err.value).startswith(f"{tmp_path}/{message}"), str(err.value)


def test_billion_laughs_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nvariables: *a8\n")
    with pytest.raises(ar.SpecError, match="aliases"):
        ar.load_spec(path)


def test_unknown_suffix_names_the_accepted_ones(tmp_path):
    with pytest.raises(ar.SpecError, match=r"s.txt: unknown spec file suffix '.txt'; expected one of \['.json', "):
        ar.save_spec(SPECS[0], tmp_path / "s.txt")
    (tmp_path / "s.cfg").write_text("x")
    with pytest.raises(ar.SpecError, match="s.cfg: unknown spec file suffix"):
        ar.load_spec(tmp_path / "s.cfg")


def test_python_api_messages_have_the_same_form():
    with pytest.raises(ar.SpecError, match=r"^MADE: hidden\[1\]: expected a positive integer, got -3$"):
        ar.MADE(hidden=(8, -3))
    with pytest.raises(ar.SpecError, match=r"^RandomOrder: seed: expected an integer >= 0, got 1.5$"):
        ar.RandomOrder(1.5)
    with pytest.raises(ar.SpecError, match=r"^RNN: cell: expected one of 'gru', 'lstm', got 'rnn'$"):
        ar.RNN(cell="rnn")

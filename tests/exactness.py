"""The one test-helper module: the exactness case table, spec generators, and the checks of
``arprob.testing`` (re-exported here so test files import from one place).

``CASES`` drives ``tests/test_exactness.py`` (float32) and ``tests/test_exactness_x64.py``
(float64): family x head x ordering x partition x context, every registered conditional
family and head in at least one row (a test fails when a kind has none). Each row runs
``arprob.testing.check_model`` through ``check_case``. The files are split so that the
test workers (one file each at a time) share the load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import equinox as eqx
import jax
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import arprob as ar
from arprob.testing import (  # noqa: F401  (re-exported)
    all_configurations,
    assert_autoregressive,
    assert_cached_equals_naive,
    assert_cached_params_match,
    assert_gradients_finite,
    assert_normalised,
    assert_samples_match,
    check_model,
    random_data,
    randomize,
    block_params_scan,
)

assert_contract = assert_autoregressive  # the name the family tests use


# ------------------------------------------------------------------ the case table
@dataclasses.dataclass(frozen=True)
class Case:
    """One row: variables, their conditionals (name -> family), ordering, partition, context."""

    variables: tuple
    conditionals: Mapping
    ordering: ar.spec.orderings.Ordering = dataclasses.field(default_factory=ar.Raster)
    partition: ar.spec.partitions.Partition = dataclasses.field(default_factory=ar.Singletons)
    context_size: int = 0
    scale: float = 0.7  # std of the random weights

    def spec(self) -> ar.Spec:
        return ar.Spec(variables=self.variables, ordering=self.ordering, partition=self.partition,
                       conditionals=dict(self.conditionals), context_size=self.context_size)

    def kinds(self) -> set[tuple[str, str]]:
        """``("conditional", kind)`` and ``("head", kind)`` of every variable of the row."""
        spec = self.spec()
        out = set()
        for var, (_, cond) in zip(spec.variables, spec.conditionals):
            out |= {("conditional", cond.kind), ("head", cond.bind_head(var).kind)}
        return out


def _all(names, family) -> dict:
    return {name: family for name in names}


_IMG = ar.Binary("img", shape=(2, 2, 2))
_LABEL = ar.Categorical("label", 3)
_MADE = ar.MADE(hidden=(6, 5), degrees="random")

CASES: dict[str, Case] = {
    "table-chain-by-variable-blocks": Case(
        (ar.Categorical("a", 3), ar.Binary("b", shape=(2,)), ar.Ordinal("c", levels=3), ar.Binary("d", shape=(2,))),
        {"a": ar.Table(), "b": ar.Table(parents=("a",)), "c": ar.Table(parents="all"), "d": ar.Table()},
        ordering=ar.ByVariable(("a", "b", "c", "d"), within=ar.Reverse()), partition=ar.PerVariable(),
    ),
    "logistic-mixed-snake-pairs-context": Case(
        (ar.Binary("b", shape=(2, 2)), ar.Categorical("c", 3), ar.Real("r", shape=(2,))), {},
        ordering=ar.Snake(), partition=ar.FixedSize(2), context_size=2,
    ),
    "logistic-numpyro-laplace-reverse": Case(
        (ar.Real("r"), ar.Binary("b", shape=(2,)), ar.Real("s")),
        {"r": ar.Logistic(head=ar.heads.NumPyroHead("Laplace")), "s": ar.Logistic(head=ar.heads.NumPyroHead("Laplace"))},
        ordering=ar.Reverse(),
    ),
    "linear-gaussian-mixed-snake-pairs": Case(
        (ar.Categorical("c", 3), ar.Real("r", shape=(2, 2)), ar.Binary("b")),
        {"r": ar.LinearGaussian(shrinkage=0.1)}, ordering=ar.Snake(), partition=ar.FixedSize(2),
    ),
    "linear-gaussian-parents-by-variable": Case(
        (ar.Real("y", shape=(3,)), ar.Categorical("c", 3), ar.Real("z", shape=(2,))),
        {"y": ar.LinearGaussian(), "z": ar.LinearGaussian(parents=("c",))},
        ordering=ar.ByVariable(("c", "y", "z"), within=ar.Reverse()),
    ),
    "made-evenodd-context": Case(
        (ar.Binary("x", shape=(2, 2)), _LABEL), {"x": _MADE}, ordering=ar.EvenOdd(), context_size=2,
    ),
    "made-gaussian-mixture-reverse": Case(
        (ar.Real("r", shape=(3,)), ar.Binary("b", shape=(2,))),
        {"r": ar.MADE(hidden=(8,), head=ar.GaussianMixture(2))}, ordering=ar.Reverse(),
    ),
    "transformer-zigzag-pairs": Case(
        (ar.Categorical("c", 3, shape=(2,)), ar.Binary("b", shape=(3,))),
        _all(("c", "b"), ar.Transformer(width=8, num_heads=2, num_layers=2)),
        ordering=ar.Zigzag(), partition=ar.FixedSize(2),
    ),
    "transformer-logistic-mixture-random-context": Case(
        (ar.Real("r", shape=(2,)), ar.Binary("b", shape=(2,))),
        {"r": ar.Transformer(width=8, num_heads=2, num_layers=1, coordinate_coding="sinusoidal",
                             head=ar.LogisticMixture(2))},
        ordering=ar.RandomOrder(3), context_size=2,
    ),
    "pixelcnn-dlm-per-pixel": Case(
        (ar.Ordinal("img", levels=2, shape=(2, 2, 2)),),
        {"img": ar.PixelCNN(channels=4, num_layers=2, head=ar.DiscretizedLogisticMixture(2, coupled=True))},
        partition=ar.PerPixel(), scale=0.5,
    ),
    "pixelcnn-channels-reverse-columns-context": Case(
        (_IMG,), {"img": ar.PixelCNN(channels=4, num_layers=2)}, ordering=ar.Reverse(ar.Columns()), context_size=2,
    ),
    "wavenet-snake-pairs-k3": Case(
        (ar.Binary("a", shape=(2, 2)), ar.Categorical("c", 3, shape=(2,))),
        _all(("a", "c"), ar.WaveNet(channels=4, num_layers=3, kernel_size=3)), ordering=ar.Snake(),
        partition=ar.FixedSize(2),
    ),
    "wavenet-gaussian-reverse-context": Case(
        (ar.Real("y", shape=(3,)), ar.Binary("z", shape=(2,))),
        {"y": ar.WaveNet(channels=4, num_layers=2)}, ordering=ar.Reverse(), context_size=2,
    ),
    "rnn-gru-columns": Case(
        (ar.Binary("a", shape=(2, 2)), ar.Categorical("c", 3)), {"a": ar.RNN(hidden=8)}, ordering=ar.Columns(),
    ),
    "rnn-lstm-evenodd-pairs-context": Case(
        (ar.Ordinal("o", levels=3, shape=(2, 2)),), {"o": ar.RNN(hidden=8, cell="lstm")}, ordering=ar.EvenOdd(),
        partition=ar.FixedSize(2), context_size=2,
    ),
}


def random_model(spec: ar.Spec, seed: int = 0, scale: float = 1.0) -> ar.Model:
    """``spec`` compiled with key ``seed``, every weight then redrawn as ``N(0, scale^2)``
    (``randomize``, key ``seed + 1``), in the current float precision."""
    return randomize(ar.compile(spec, jax.random.key(seed)), jax.random.key(seed + 1), scale)


def case_model(case: Case, seed: int = 0) -> ar.Model:
    """The row's model with random weights (``scale``)."""
    return random_model(case.spec(), seed, case.scale)


def check_case(name: str, precision: str) -> None:
    """Contract (perturbation + Jacobian zeros), cached == naive (samples, and per-step
    parameters in float32), finite gradients, normalisation by enumeration and a G-test
    where small, for ``CASES[name]`` built in ``precision``."""
    case = CASES[name]
    with jax.enable_x64(precision == "float64"):
        model = case_model(case)
        leaf = next(x for x in jax.tree_util.tree_leaves(model) if eqx.is_inexact_array(x))
        assert leaf.dtype == np.dtype(precision)
        context = np.linspace(-1.0, 1.0, case.context_size) if case.context_size else None
        check_model(model, jax.random.key(7), context, step_params=precision == "float32")


# ------------------------------------------------------------------ spec generators
ORDERINGS = [ar.Raster(), ar.Reverse(), ar.Columns(), ar.Snake(), ar.EvenOdd(), ar.RandomOrder(3), ar.Reverse(ar.Columns())]

#: small neural families the hypothesis generator draws besides tables and logistic maps
SMALL_NEURAL = {
    "made": lambda: ar.MADE(hidden=(4,)),
    "transformer": lambda: ar.Transformer(width=4, num_heads=1, num_layers=1, mlp_ratio=1),
    "wavenet": lambda: ar.WaveNet(channels=2, num_layers=1),
    "rnn": lambda: ar.RNN(hidden=3),
}


@st.composite
def discrete_specs(draw, max_configs: int = 256, allow_real: bool = False, neural: bool = False):
    """Random small specs: 1-3 variables of every kind, every ordering and partition kind;
    conditionals drawn from Table and Logistic (with ``neural``, the first variable's from the
    small neural families and the others' from all of them)."""
    n_vars = draw(st.integers(1, 3))
    variables, configs = [], 1
    for i in range(n_vars):
        kind = draw(st.sampled_from(["binary", "categorical", "ordinal"] + (["real"] if allow_real else [])))
        shape = draw(st.sampled_from([(), (2,), (2, 2)]))
        if kind == "binary":
            v = ar.Binary(f"v{i}", shape=shape)
        elif kind == "categorical":
            v = ar.Categorical(f"v{i}", draw(st.integers(2, 3)), shape=shape)
        elif kind == "ordinal":
            v = ar.Ordinal(f"v{i}", levels=draw(st.integers(2, 3)), shape=shape)
        else:
            v = ar.Real(f"v{i}", shape=shape)
        configs *= (v.num_values or 1) ** v.size
        variables.append(v)
    if configs > max_configs:
        variables = variables[:1]
        v = variables[0]
        if (v.num_values or 1) ** v.size > max_configs:
            variables = [ar.Binary("v0", shape=(2, 2))]
    ordering = draw(st.sampled_from(ORDERINGS))
    if len(variables) > 1 and draw(st.booleans()):
        names = [v.name for v in variables]
        ordering = ar.ByVariable(tuple(draw(st.permutations(names))), within=draw(st.sampled_from(ORDERINGS[:4])))
    d = sum(v.size for v in variables)
    perm = ordering.permutation(variables)
    kind = draw(st.sampled_from(["singletons", "fixed", "explicit", "per_variable"]))
    if kind == "fixed":
        partition = ar.FixedSize(draw(st.integers(1, 3)))
    elif kind == "explicit":
        cuts = sorted(draw(st.sets(st.integers(1, max(d - 1, 1)), max_size=d)))
        bounds = [0, *[c for c in cuts if c < d], d]
        partition = ar.ExplicitBlocks(tuple(tuple(int(e) for e in perm[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a))
    elif kind == "per_variable" and isinstance(ordering, ar.ByVariable):
        partition = ar.PerVariable()
    else:
        partition = ar.Singletons()
    conditionals = {}
    for i, v in enumerate(variables):
        tables = ["table", "table-all"] if v.is_discrete else []  # no parents; every earlier element
        choices = ["logistic"] + tables + (sorted(SMALL_NEURAL) if neural else [])
        if neural and i == 0:  # at least one neural family per drawn spec
            choices = sorted(SMALL_NEURAL)
        choice = draw(st.sampled_from(choices))
        conditionals[v.name] = (
            ar.Table() if choice == "table" else ar.Table(parents="all") if choice == "table-all"
            else ar.Logistic() if choice == "logistic" else SMALL_NEURAL[choice]()
        )
    try:
        return ar.Spec(variables=tuple(variables), ordering=ordering, partition=partition, conditionals=conditionals)
    except ar.SpecError:  # e.g. a table over every earlier element (parents="all") when one is real
        assume(False)

"""Memory budgets: estimates from the spec alone against exact shapes and XLA's own memory
analysis, refusals before allocation with a suggestion that fits, batch sizes that fit."""

from __future__ import annotations

import math
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import arprob as ar
from arprob import budget, sizes

FAMILIES = {
    "logistic": ar.Spec(variables=(ar.Categorical("w", 3), ar.Binary("img", shape=(6, 6))),
                        conditionals={"w": ar.Table()}),
    "logistic_parents_context": ar.Spec(
        variables=(ar.Categorical("w", 3), ar.Real("t", shape=(5,))),
        conditionals={"w": ar.Table(), "t": ar.Logistic(parents=["w"])}, context_size=2),
    "made": ar.Spec(variables=(ar.Ordinal("img", 4, shape=(6, 6)),), conditionals={"img": ar.MADE(hidden=(40, 30))},
                    context_size=3),
    "made_orderings": ar.Spec(variables=(ar.Binary("img", shape=(6, 6)),),
                              conditionals={"img": ar.MADE(hidden=(40,), num_orderings=3, direct=False)}),
    "table_neighbours": ar.Spec(variables=(ar.Binary("img", shape=(5, 5)),),
                                conditionals={"img": ar.Table(neighbours=((0, -1), (-1, 0)))}),
    "transformer": ar.Spec(variables=(ar.Binary("img", shape=(6, 6)),),
                           conditionals={"img": ar.Transformer(width=16, num_heads=2)}),
    "pixelcnn": ar.Spec(variables=(ar.Ordinal("img", 4, shape=(6, 6, 3)),), conditionals={"img": ar.PixelCNN(channels=8)}),
    "wavenet": ar.Spec(variables=(ar.Real("y", shape=(30,)),), conditionals={"y": ar.WaveNet(channels=8)}),
    "rnn_gru": ar.Spec(variables=(ar.Ordinal("y", 5, shape=(30,)),), conditionals={"y": ar.RNN(hidden=16)}),
    "rnn_lstm": ar.Spec(variables=(ar.Real("y", shape=(12,)),), conditionals={"y": ar.RNN(hidden=8, cell="lstm")}),
}
APPROXIMATE = {"transformer": 0.01}  # dominant terms only (the learned coordinate tables are bounded)


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_parameter_counts_match_eval_shape(name, x64):
    """The formula's parameter count is the exact count of ``eval_shape(compile)``'s float
    leaves (within 1% for the transformer), and stored bytes scale with the float width."""
    spec = FAMILIES[name]
    with jax.enable_x64(x64):
        est = sizes.exact_estimate(spec)
        exact = sizes.exact_num_params(spec)
    for comp in est.components:
        tol = APPROXIMATE.get(name, 0.0) * exact[comp.name]
        assert abs(comp.num_params - exact[comp.name]) <= tol, (comp.name, comp.num_params, exact[comp.name])
    assert est.itemsize == (8 if x64 else 4)
    # every stored array (parameters, index buffers, the encoder) within 25% of the formula's bytes
    formula = est.overhead_bytes + sum(c.param_bytes for c in est.components)
    assert 0.75 * est.exact_param_bytes <= formula <= 1.25 * est.exact_param_bytes, (formula, est.exact_param_bytes)


def _xla_bytes(compiled) -> int:
    ma = compiled.memory_analysis()
    return ma.temp_size_in_bytes + ma.output_size_in_bytes + ma.argument_size_in_bytes


@pytest.mark.parametrize("name", ["logistic"] + [pytest.param(n, marks=pytest.mark.slow) for n in
                                                 ("made", "transformer", "pixelcnn", "wavenet", "rnn_gru")])
def test_peaks_bound_xla_memory_analysis(name):
    """``peak_bytes(B)`` is an upper bound of XLA's own figure (arguments + temporaries +
    outputs of the compiled program) for ``log_prob`` and ``sample``, and not wildly above it
    (the neural families compile for 10-30 s each on 2 cores: slow; one family stays in the
    normal suite)."""
    spec = FAMILIES[name]
    model = ar.compile(spec)
    est = budget.estimate(spec)
    b = 16
    ctx = None if not spec.context_size else jnp.zeros((b, spec.context_size))
    lp = _xla_bytes(jax.jit(ar.flat_log_prob).lower(model, jnp.zeros((b, spec.num_elements)), ctx).compile())
    smp = _xla_bytes(ar.flat_sample.lower(model, jax.random.key(0), b, ctx, False).compile())
    assert lp <= est.peak_bytes(b, "log_prob") <= 12 * lp + 10**5, (lp, est.peak_bytes(b, "log_prob"))
    assert smp <= est.peak_bytes(b, "sample") <= 12 * smp + 10**5, (smp, est.peak_bytes(b, "sample"))


def test_compile_refuses_over_budget_with_a_suggestion_that_fits():
    """A dense Logistic over 1,000 elements (1e6 weights) under a 6 MB budget: refused at
    once, naming the variable, family, count, estimate and budget; the suggested MADE
    then compiles under the same budget."""
    spec = ar.Spec(variables=(ar.Binary("x", shape=(1000,)),), conditionals={"x": ar.Logistic()})
    ar.set_memory_budget("6MB")
    t0 = time.process_time()
    with pytest.raises(ar.SpecError) as err:
        ar.compile(spec)
    assert time.process_time() - t0 < 5.0  # CPU time, a wide margin: refused before building anything
    text = str(err.value)
    for part in ("'x'", "Logistic over 1000 elements", "1001000 parameters", "budget of 6 MB", "set_memory_budget",
                 "ARPROB_MEMORY_BUDGET"):
        assert part in text, text
    assert "A MADE(hidden=(" in text, text
    hidden = int(text.split("A MADE(hidden=(")[1].split(",")[0])
    made = spec.replace(conditionals={"x": ar.MADE(hidden=(hidden,), direct=False)})
    assert budget.estimate(made).compile_bytes <= 6e6
    model = ar.compile(made)  # fits: compiles
    assert model.log_prob({"x": np.zeros((2, 1000), int)}).shape == (2,)
    ar.set_memory_budget(None)
    assert budget.check_budget(spec).num_params == 1001000  # the machine's budget takes it


def test_budget_sources(monkeypatch):
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    assert ar.memory_budget() == budget.machine_budget() > 0  # the machine's stable budget
    from arprob.spec import limits

    monkeypatch.setattr(limits, "_address_space_limit", lambda: 10**9)  # ulimit -v 1 GB
    assert ar.memory_budget() == min(10**9, budget.machine_budget())
    monkeypatch.undo()
    monkeypatch.delenv(budget.ENV_VAR, raising=False)
    monkeypatch.setenv(budget.ENV_VAR, "512MiB")
    assert ar.memory_budget() == 512 * 2**20
    ar.set_memory_budget(2e9)  # explicit wins over the environment
    assert ar.memory_budget() == 2 * 10**9
    ar.set_memory_budget(None)
    assert ar.memory_budget() == 512 * 2**20
    monkeypatch.setenv(budget.ENV_VAR, "lots")
    with pytest.raises(ar.SpecError, match="ARPROB_MEMORY_BUDGET"):
        ar.memory_budget()
    for bad in (0, -1, "8 parsecs", float("nan"), True):
        with pytest.raises(ValueError):
            ar.set_memory_budget(bad)
    assert budget.parse_bytes("1.5GB") == 1_500_000_000 and budget.parse_bytes("1KiB") == 1024


def test_huge_declared_shape_is_refused_before_the_layout():
    t0 = time.process_time()
    with pytest.raises(ar.SpecError, match="10000000000 elements"):
        ar.Spec(variables=(ar.Binary("x", shape=(10**5, 10**5)),))
    assert time.process_time() - t0 < 5.0  # CPU time, a wide margin: nothing of size D is built


def test_evaluate_and_detector_lower_the_batch_to_fit():
    """Under a budget that holds 37 examples, ``evaluate(batch_size=256)`` warns, uses 37,
    and scores exactly what the full batch scores; the detector's scoring does the same."""
    spec = ar.Spec(variables=(ar.Binary("x", shape=(200,)),))
    model = ar.compile(spec)
    data = {"x": np.random.default_rng(0).integers(0, 2, (300, 200))}
    full = ar.evaluate(model, data, batch_size=300, return_log_prob=True)
    est = budget.estimate(spec)
    ar.set_memory_budget(est.peak_bytes(37))
    assert est.batch_size_for() == 37
    with pytest.warns(budget.MemoryBudgetWarning, match="using batch_size=37"):
        small = ar.evaluate(model, data, batch_size=256, return_log_prob=True)
    np.testing.assert_allclose(small.log_prob, full.log_prob, rtol=1e-6)
    assert math.isclose(small.nll, full.nll, rel_tol=1e-6)  # float32 batch sums in another order
    with pytest.warns(budget.MemoryBudgetWarning, match="using batch_size=37"):
        ar.ood.Detector.fit(model, data, fpr=0.1, batch_size=256)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ar.evaluate(model, data, batch_size=37)  # a batch that fits: no warning
    ar.set_memory_budget(est.peak_bytes(1) - 1)
    with pytest.raises(ar.SpecError, match="Not even one example"):
        ar.evaluate(model, data, batch_size=8)


def test_an_accelerator_budgets_by_its_own_free_memory(monkeypatch):
    """Where the device reports its memory (a GPU: ``memory_stats()``), parameters and
    activations are checked against it, compile's host transients against the host; on CPU
    (``memory_stats()`` is None) the host's memory is the one budget."""
    assert budget.device_memory() is None  # CPU here
    spec = ar.Spec(variables=(ar.Binary("x", shape=(1000,)),))  # 1e6 weights: 4 MB stored, 4 MB masked copy
    est = budget.estimate(spec)
    monkeypatch.setattr(budget, "device_memory", lambda: 6 * 10**6)
    with pytest.raises(ar.SpecError, match="budget of 6 MB"):
        budget.check_budget(spec)
    monkeypatch.setattr(budget, "device_memory", lambda: est.peak_bytes(10))
    assert budget.check_budget(spec) is not None
    assert budget.batch_size_for(spec, 64, warn=lambda m: None) == 10
    ar.set_memory_budget("1GB")  # an explicit budget applies to both
    assert budget.device_budget() == 10**9 and budget.batch_size_for(spec, 64) == 64

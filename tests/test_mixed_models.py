"""Mixed models end to end: a categorical root (Table), a real child (Gaussian or logistic mixture
head, Logistic conditioner) and an ordinal image (discretized logistic mixture head) in one spec."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import arprob as ar
from exactness import assert_contract, randomize

LEVELS = 8


def _spec(real_head, image_conditioner) -> ar.Spec:
    return ar.Spec(
        variables=(ar.Categorical("weather", 3), ar.Real("temp"), ar.Ordinal("img", levels=LEVELS, shape=(3, 3, 2))),
        partition=ar.PerPixel(),  # scalars: one element per step; a pixel's two channels together
        conditionals={
            "weather": ar.Table(),
            "temp": ar.Logistic(parents=["weather"], head=real_head),
            "img": image_conditioner,
        },
    )


CASES = {
    "gaussian+coupled_mixture": (ar.Gaussian(), ar.Logistic(head=ar.DiscretizedLogisticMixture(2, coupled=True))),
    "logistic_mixture+mixture": (ar.LogisticMixture(2), ar.Logistic(head=ar.DiscretizedLogisticMixture(3))),
    "gaussian+made_coupled_mixture": (
        ar.Gaussian(),
        ar.MADE(hidden=(32,), head=ar.DiscretizedLogisticMixture(2, coupled=True)),
    ),
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=pytest.mark.slow) if "made" in c else c for c in CASES],  # MADE: ~3x the compile time
)
def test_mixed_model_compiles_fits_and_samples(case):
    spec = _spec(*CASES[case])
    truth = randomize(ar.compile(spec, jax.random.key(1)), jax.random.key(2), scale=0.5)
    if case == "gaussian+coupled_mixture":  # contract of table + logistic conditioners with these heads
        assert_contract(truth, np.random.default_rng(0))
    data = truth.sample(jax.random.key(3), 2000)
    assert data["img"].shape == (2000, 3, 3, 2) and data["img"].dtype == np.int32
    assert int(data["img"].min()) >= 0 and int(data["img"].max()) <= LEVELS - 1
    assert np.isfinite(np.asarray(data["temp"])).all()

    model = ar.compile(spec, jax.random.key(0))
    before = -float(model.log_prob(data).mean())
    result = ar.fit(model, data, num_steps=300, batch_size=200, optimizer=optax.adam(3e-2))
    fitted = result.model
    after = -float(fitted.log_prob(data).mean())
    truth_nll = -float(truth.log_prob(data).mean())
    assert np.isfinite(result.history["loss"]).all()
    assert after < before - 1.0, f"training did not lower the NLL: {before:.3f} -> {after:.3f}"
    assert after < truth_nll + 0.1 * spec.num_elements, f"fitted NLL {after:.3f} vs data-generating {truth_nll:.3f}"
    by_var = fitted.log_prob_by_variable(data)
    np.testing.assert_allclose(sum(by_var.values()), fitted.log_prob(data), rtol=1e-5)

    samples = fitted.sample(jax.random.key(4), 2000)  # same n: the sampler compiled above is reused
    assert set(samples) == {"weather", "temp", "img"}
    assert samples["img"].shape == (2000, 3, 3, 2)
    assert int(samples["img"].min()) >= 0 and int(samples["img"].max()) <= LEVELS - 1
    assert np.isfinite(np.asarray(fitted.log_prob(samples))).all()
    # the fitted table (counted) and the sampler agree on the root's marginal
    table = np.exp(np.asarray(fitted.components[0].conditioner.log_probs[0], np.float64))
    freq = np.bincount(np.asarray(samples["weather"]), minlength=3) / 2000
    np.testing.assert_allclose(freq, table / table.sum(), atol=0.04)
    # and the image's mean level under the model tracks the data's
    assert abs(float(np.mean(samples["img"])) - float(np.mean(data["img"]))) < 0.5


def test_digits_levels_example_runs(tmp_path):
    """Smoke run of examples/digits_levels.py (a few steps) so the documented command keeps working."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "digits_levels.py"
    module_spec = importlib.util.spec_from_file_location("digits_levels", path)
    example = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(example)
    record = example.main(["--head", "mixture", "--steps", "20", "--eval-every", "10", "--out", str(tmp_path)])
    assert np.isfinite(record["test_bits_per_dim"]) and 0.0 < record["test_bits_per_dim"] < 5.0
    assert (tmp_path / "digits_levels_logistic_mixture.json").exists()

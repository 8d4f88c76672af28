"""Binarized digits (8x8, the fixed split of ``arprob.data.load_digits``): test NLL in nats.

Fits FVSBN (``ar.Logistic``), gated PixelCNN, WaveNet and a GRU on the first 1200
training images with Adam, stops early on the last 200 (validation NLL every 100 steps,
patience 4, best model restored), and prints the mean test negative log-likelihood per
image (nats), all from the same script and seed. Every model is exact: the figure is
``-mean(model.log_prob(test))``.

Run: ``python examples/digits_conv.py`` (``--steps``: at most this many gradient steps per
model; ``--models`` picks a subset, e.g. ``--models fvsbn pixelcnn``).

Runtime on the shared, loaded 2-core development machine: 7 s wall for ``--models fvsbn --steps 20``
(``/usr/bin/time``; docs/examples.md).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

import arprob as ar
from arprob.data import load_digits

MODELS = {
    "fvsbn": lambda: ar.Logistic(),
    "pixelcnn": lambda: ar.PixelCNN(channels=32, num_layers=4, kernel_size=3),
    "wavenet": lambda: ar.WaveNet(channels=32, num_layers=6, kernel_size=2),
    "gru": lambda: ar.RNN(hidden=64, cell="gru"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_all, test = load_digits()
    train, val = train_all[:-200], train_all[-200:]
    train_data, test_data = {"img": train}, {"img": test}
    print(f"digits: {len(train)} train / {len(val)} validation / {len(test)} test, 8x8 binary; "
          f"at most {args.steps} Adam steps, batch 128")
    for name in args.models:
        spec = ar.Spec(variables=(ar.Binary("img", shape=(8, 8)),), conditionals={"img": MODELS[name]()})
        model = ar.compile(spec, jax.random.key(args.seed))
        schedule = optax.cosine_decay_schedule(3e-3 if name != "fvsbn" else 1e-2, args.steps)
        start = time.perf_counter()
        result = ar.fit(model, train_data, optimizer=optax.adam(schedule), num_steps=args.steps, batch_size=128,
                        validation={"img": val}, eval_every=min(100, args.steps), patience=4, restore_best=True,
                        seed=args.seed, progress=False)
        fitted, history = result.model, result.history
        steps_run = f"{history['step'][-1]} steps, best at {history.best_step}"
        nll_test = -float(np.mean(np.asarray(fitted.log_prob(test_data))))
        nll_train = -float(np.mean(np.asarray(fitted.log_prob(train_data))))
        print(f"{name:9s} test NLL {nll_test:7.3f} nats  (train {nll_train:7.3f}; {steps_run})  "
              f"[{time.perf_counter() - start:.0f} s]")


if __name__ == "__main__":
    main()

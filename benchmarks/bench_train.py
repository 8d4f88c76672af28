"""Training throughput (examples/s) of ``ar.fit`` on the binarized digits (8x8, 1400 images).

1. For MADE, PixelCNN and the FVSBN (``Logistic``) on one device: examples/s of the whole
   ``fit`` loop (host batching, progress bookkeeping, device step) read from the
   history's log windows (the first window, which compiles, is dropped; median of the
   rest), and of the bare jitted train step alone (``timeit``: warm-up, then the best of
   repeats), in the same run; their ratio is the loop's overhead.
2. The same ``fit`` on 4 virtual CPU devices (``--xla_force_host_platform_device_count=4``,
   batch sharded) against 1 device, in one subprocess, so both see the same machine load.
   Virtual devices share the machine's cores: this checks the sharded path's cost, not a
   speed-up; on a multi-GPU machine use ``devices="all"``.

MADE and PixelCNN are used when importable; otherwise the row says ``unavailable``.

Run: ``python benchmarks/bench_train.py [--steps 300] [--batch-size 128]``
(writes benchmarks/results/train.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import arprob as ar
from arprob.data import load_digits
from arprob.train import trainable_filter

sys.path.insert(0, str(Path(__file__).parent))
from common import timeit, write_results  # noqa: E402


def conditionals() -> dict[str, object]:
    """The conditionals to benchmark; MADE/PixelCNN only when this checkout has them."""
    out: dict[str, object] = {}
    try:
        from arprob.conditioners import MADE

        out["MADE (hidden 500)"] = MADE(hidden=(500,))
    except ImportError:
        out["MADE"] = None
    try:
        from arprob.conditioners import PixelCNN

        out["PixelCNN (32 ch, 4 layers)"] = PixelCNN(channels=32, num_layers=4)
    except ImportError:
        out["PixelCNN"] = None
    out["FVSBN (Logistic)"] = ar.Logistic()
    return out


def loop_rate(history) -> float:
    """Median examples/s over the log windows, the first (compiling) window dropped."""
    rates = history["examples_per_sec"][1:]
    return float(np.median(rates))


def step_rate(model, x: np.ndarray, batch_size: int) -> float:
    """Examples/s of the bare jitted value-grad-adam step on one fixed batch."""
    tx = optax.adam(1e-3)
    params, static = eqx.partition(model, trainable_filter(model))
    state = tx.init(params)

    @eqx.filter_jit
    def step(params, state, xb):
        loss, grads = eqx.filter_value_and_grad(lambda p: -jnp.mean(ar.flat_log_prob(eqx.combine(p, static), xb)))(params)
        updates, state = tx.update(grads, state, params)
        return eqx.apply_updates(params, updates), state, loss

    xb = jnp.asarray(x[:batch_size])
    return batch_size / timeit(step, params, state, xb, repeats=20)


SHARD_SCRIPT = """
import json, sys
import jax, numpy as np, optax
import arprob as ar
from arprob.data import load_digits
steps, batch = int(sys.argv[1]), int(sys.argv[2])
train, _ = load_digits()
model = ar.compile(ar.Spec(variables=(ar.Binary("img", shape=(8, 8)),)))
out = {}
for label, devices in (("1 device", None), ("4 virtual devices", 4), ("1 device (again)", None)):
    h = ar.fit(model, {"img": train}, num_steps=steps, batch_size=batch, optimizer=optax.adam(1e-2),
               devices=devices, log_every=20).history
    out[label] = float(np.median(h["examples_per_sec"][1:]))
    out[label + " final loss"] = float(np.mean(h["loss"][-20:]))
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    train, _ = load_digits()
    img = ar.Binary("img", shape=(8, 8))
    rows = []
    for name, cond in conditionals().items():
        if cond is None:
            rows.append({"model": name, "fit ex/s": "unavailable", "step ex/s": "-", "loop/step": "-", "final loss": "-"})
            print(f"{name}: not importable in this checkout; skipped", flush=True)
            continue
        model = ar.compile(ar.Spec(variables=(img,), conditionals={"img": cond}), jax.random.key(0))
        res = ar.fit(model, {"img": train}, num_steps=args.steps, batch_size=args.batch_size,
                     optimizer=optax.adam(1e-3), log_every=20)
        loop = loop_rate(res.history)
        bare = step_rate(model, ar.compile(model.spec).to_flat({"img": train}), args.batch_size)
        rows.append({"model": name, "fit ex/s": loop, "step ex/s": bare, "loop/step": loop / bare,
                     "final loss": float(np.mean(res.history["loss"][-20:]))})
        print(rows[-1], flush=True)

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SHARD_SCRIPT, str(args.steps), str(args.batch_size)], env=env,
                         capture_output=True, text=True, check=True)
    shard = json.loads(out.stdout.strip().splitlines()[-1])
    print(shard, flush=True)
    one = shard["1 device"]
    for label in ("1 device", "4 virtual devices", "1 device (again)"):
        rows.append({"model": f"FVSBN, CPU, {label}", "fit ex/s": shard[label], "step ex/s": "-",
                     "loop/step": f"{shard[label] / one:.3g} x 1 device", "final loss": shard[label + " final loss"]})
    print(write_results("train", rows, ["model", "fit ex/s", "step ex/s", "loop/step", "final loss"]))


if __name__ == "__main__":
    main()

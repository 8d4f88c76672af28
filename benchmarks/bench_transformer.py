"""Causal transformer benchmark (L=784 binary, CPU): KV-cached vs uncached sampling.

Cached: ``Model.sample_flat`` (one ``lax.scan`` over the 784 steps, each step attends
its new queries to the KV cache). Uncached: the same scan body with ``naive_step`` (one
full masked pass per step); it is timed on ``--naive-steps`` steps and extrapolated
linearly to 784 steps (every step does the same full pass), and the output says so.
Target: cached at least 20x faster. ``log_prob`` (one teacher-forced pass) is reported
for scale.

Run: ``python benchmarks/bench_transformer.py`` (writes
benchmarks/results/transformer.{json,md}).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import arprob as ar

sys.path.insert(0, str(Path(__file__).parent))
from common import median_times, naive_steps_fn, write_results  # noqa: E402

D = 784


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-steps", type=int, default=4)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for coding in ("learned", "sinusoidal"):
        spec = ar.Spec(
            variables=(ar.Binary("img", shape=(28, 28)),),
            conditionals={"img": ar.Transformer(width=args.width, num_heads=4, num_layers=args.layers, coordinate_coding=coding)},
        )
        model = ar.compile(spec, jax.random.key(0))
        x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (args.batch, D)), jnp.float32)
        key = jax.random.key(1)
        sample = lambda: ar.flat_sample(model, key, args.batch, None, False)  # model as an argument, not a constant
        t = median_times({"log_prob": lambda: ar.flat_log_prob(model, x), "cached": sample}, args.repeats)
        naive = naive_steps_fn(model, args.batch, args.naive_steps)
        tn = median_times({"naive": lambda: naive(key)}, 3)
        row = {"coding": coding, "batch": args.batch, "width": args.width, "layers": args.layers}
        for clock in ("", "@cpu"):
            nv = tn["naive" + clock] * D / args.naive_steps
            row.update({
                f"log_prob_ms{clock}": 1e3 * t["log_prob" + clock],
                f"cached_sample_ms{clock}": 1e3 * t["cached" + clock],
                f"uncached_sample_ms(extrap){clock}": 1e3 * nv,
                f"uncached/cached{clock}": nv / t["cached" + clock],
            })
        rows.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    print(write_results("transformer", rows, list(rows[0])))
    print(f"Uncached: {args.naive_steps} steps timed (median of 3), extrapolated linearly to {D} steps.")


if __name__ == "__main__":
    main()

"""WaveNet sampling benchmark (L = 784 binary elements, CPU): queue-cached vs naive.

Both samplers are the model's own (``ar.flat_sample`` with ``num_steps``: the first
``steps`` steps of the real sampler); the naive one calls ``naive_step``,
one full pass over all 784 positions per step. Naive sampling of all 784 steps is too
slow for this shared 2-core machine, so both paths are timed on ``--steps`` steps (same
run, interleaved, median of ``--repeats``) and the naive time is extrapolated linearly
to 784 steps (its per-step work is the same at every step); the cached sampler is also
timed over the full 784 steps with ``model.sample_flat``. The output says which figures
are extrapolated.

Run: ``python benchmarks/bench_wavenet.py`` (writes benchmarks/results/wavenet.{json,md}).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

import arprob as ar

sys.path.insert(0, str(Path(__file__).parent))
from common import median_times, write_results  # noqa: E402


def partial_sample(model: ar.Model, key, n: int, steps: int, naive: bool):
    """The model's own sampler (no context) run for the first ``steps`` steps."""
    return ar.flat_sample(model, key, n, None, naive, steps)


def bench_cached_vs_naive(name: str, model: ar.Model, batch: int, steps: int, repeats: int) -> dict:
    total = model.spec.steps.num_steps
    key = jax.random.key(0)
    t = median_times(
        {
            "cached": lambda: partial_sample(model, key, batch, steps, False),
            "naive": lambda: partial_sample(model, key, batch, steps, True),
        },
        repeats,
    )
    full = median_times({"full": lambda: model.sample_flat(key, batch)}, max(1, repeats // 2))["full"]
    same = partial_sample(model, key, batch, steps, False), partial_sample(model, key, batch, steps, True)
    return {
        "model": name,
        "batch": batch,
        "timed_steps": steps,
        "cached_s_per_step": t["cached"] / steps,
        "naive_s_per_step": t["naive"] / steps,
        "speedup": t["naive"] / t["cached"],
        "cached_full_s": full,
        "naive_full_s_extrapolated": t["naive"] / steps * total,
        "full_ratio_extrapolated": t["naive"] / steps * total / full,
        "same_samples": bool(np.array_equal(np.asarray(same[0]), np.asarray(same[1]))),
    }


COLUMNS = ["model", "batch", "timed_steps", "cached_s_per_step", "naive_s_per_step", "speedup", "cached_full_s",
           "naive_full_s_extrapolated", "full_ratio_extrapolated", "same_samples"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=16, help="steps timed for both samplers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--layers", type=int, default=10)
    args = parser.parse_args()
    spec = ar.Spec(
        variables=(ar.Binary("x", shape=(784,)),),
        conditionals={"x": ar.WaveNet(channels=args.channels, num_layers=args.layers, kernel_size=2)},
    )
    model = ar.compile(spec, jax.random.key(0))
    row = bench_cached_vs_naive(f"WaveNet c={args.channels} L={args.layers} k=2", model, args.batch, args.steps, args.repeats)
    table = write_results("wavenet", [row], COLUMNS)
    print(table)
    print(f"naive_full_s_extrapolated = naive time over {args.steps} steps x 784/{args.steps} (linear); "
          "speedup = same-run ratio over the same timed steps.")


if __name__ == "__main__":
    main()

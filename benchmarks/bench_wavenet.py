"""WaveNet sampling benchmark (L = 784 binary elements, CPU): queue-cached vs naive.

Both samplers are the model's own ``lax.scan`` body (``partial_sample`` below replays
``Model._sample`` over the first ``steps`` steps); the naive one calls ``naive_step``,
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
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import arprob as ar

sys.path.insert(0, str(Path(__file__).parent))
from common import write_results  # noqa: E402


@eqx.filter_jit
def partial_sample(model: ar.Model, key, n: int, steps: int, naive: bool):
    """The sampler of ``Model._sample`` (no context) run for the first ``steps`` steps."""
    d, f = model.spec.num_elements, model.encoder.num_features
    dtype = jnp.result_type(float)
    caches0 = tuple(
        jax.vmap(lambda c, cond=comp.conditioner: cond.init_cache(c), axis_size=n)(jnp.zeros(n))
        for comp in model.components
    )

    def body(carry, s):
        x, feats, caches = carry
        new = []
        for i, comp in enumerate(model.components):
            fn = comp.conditioner.naive_step if naive else comp.conditioner.step
            rows, elems = comp.block_rows[s], comp.block_elements[s]
            params, cache = jax.vmap(fn, in_axes=(0, 0, 0, None, None, None))(caches[i], x, feats, None, s, rows)
            keys = jax.random.split(jax.random.fold_in(key, s * len(model.components) + i), n)
            values = jax.vmap(comp.head.sample)(keys, params)
            x = x.at[:, elems].set(values, mode="drop")
            feats = jax.vmap(model.encoder.write, in_axes=(0, 0, None))(feats, values, elems)
            new.append(cache)
        return (x, feats, tuple(new)), None

    init = (jnp.zeros((n, d), dtype), jnp.zeros((n, f), dtype), caches0)
    (x, _, _), _ = jax.lax.scan(body, init, jnp.arange(steps))
    return x


def median_times(fns: dict, repeats: int) -> dict[str, float]:
    """Median wall time of each zero-argument function, runs interleaved, after a warm-up."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(fn())
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


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

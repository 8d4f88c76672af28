"""Shared benchmark helpers: warm, repeated timing and result files (JSON + markdown)."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import numpy as np

RESULTS = Path(__file__).parent / "results"


def comma_list(options):
    """An argparse ``type``: ``"a,b"`` -> ``["a", "b"]``, each one of ``options`` (else a usage error)."""

    def parse(text: str) -> list[str]:
        items = [item for item in text.split(",") if item]
        unknown = [item for item in items if item not in options]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"{','.join(unknown) or repr(text)} is not among {','.join(options)}")
        return items

    return parse


def timeit(fn, *args, repeats: int = 15) -> float:
    """Best (minimum) wall time (s) of ``fn(*args)`` over ``repeats`` runs, after one warm-up
    call. The minimum is the least noisy estimate on a shared machine."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Best (minimum) wall time of each zero-argument function, with the runs interleaved
    (a, b, a, b, ...) after a warm-up, so that a slow spell of a shared machine hits every
    function alike; noise only adds time, so the minimum is the steadiest estimate."""
    for f in fns.values():
        jax.block_until_ready(f())
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(f())
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def median_times(fns: dict, repeats: int) -> dict[str, float]:
    """Median time of each zero-argument function, runs interleaved, after a warm-up.

    Returns ``{name: wall seconds}`` and ``{name + "@cpu": process CPU seconds}``; the CPU
    clock (all threads of this process) is much less disturbed by other processes on a
    shared machine, so the ratios below are reported on both clocks.
    """
    for f in fns.values():
        jax.block_until_ready(f())
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(f())
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    out = {k: float(np.median(v)) for k, v in wall.items()}
    out.update({k + "@cpu": float(np.median(v)) for k, v in cpu.items()})
    return out


def write_results(name: str, rows: list[dict], columns: list[str]) -> str:
    """Write ``results/<name>.json`` and ``results/<name>.md``; return the markdown table."""
    RESULTS.mkdir(exist_ok=True)
    meta = {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
            "jax": jax.__version__, "machine": platform.machine(), "cpus": __import__("os").cpu_count()}
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in columns) + " |")
    table = "\n".join(lines) + f"\n\n{meta}\n"
    (RESULTS / f"{name}.md").write_text(table)
    return table


def naive_steps_fn(model, batch: int, steps: int):
    """The model's own naive sampler (one full conditioner pass per step) run for the first
    ``steps`` steps, to time and extrapolate linearly when all D steps would take too long."""
    import arprob as ar

    return lambda key: ar.flat_sample(model, key, batch, None, True, steps)

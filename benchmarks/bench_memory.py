"""Peak resident memory of scoring and sampling 28x28 binary images, one subprocess per case.

For each conditioner (transformer, WaveNet, PixelCNN, RNN, Logistic, MADE) a fresh
Python process builds the model (same shapes as bench_reference.py; MADE [500]) and then
either scores ``N`` random images through ``ar.evaluate(model, x)`` with its default batch
size, or draws ``N`` samples with the cached sampler (``model.sample_flat``), or does
nothing more (``baseline``: the interpreter, jax and the built model). The parent reads
the child's maximum resident set size from ``os.wait4`` (the per-child form of
``resource.getrusage(RUSAGE_CHILDREN)``). Target: scoring 4096 images below 2 GB.

Run: ``python benchmarks/bench_memory.py`` or e.g.
``nice timeout 1800 python benchmarks/bench_memory.py --cases transformer --score 256,4096 --sample 256``;
writes benchmarks/results/memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

D, SIDE = 784, 28
CONDITIONERS = {
    "transformer": "ar.Transformer(width=64, num_heads=4, num_layers=2)",
    "wavenet": "ar.WaveNet(channels=32, num_layers=10, kernel_size=2)",
    "pixelcnn": "ar.PixelCNN(channels=32, num_layers=5, kernel_size=3)",
    "rnn": "ar.RNN(hidden=64, cell='gru')",
    "logistic": "ar.Logistic()",
    "made": "ar.MADE(hidden=(500,))",
}


def child(case: str, mode: str, n: int) -> None:
    """Build the model, then score or sample ``n`` images; print one JSON line."""
    import jax
    import numpy as np

    import arprob as ar

    spec = ar.Spec(variables=(ar.Binary("img", shape=(SIDE, SIDE)),), conditionals={"img": eval(CONDITIONERS[case])})
    model = ar.compile(spec, jax.random.key(0))
    start = time.perf_counter()
    out: dict = {}
    if mode == "score":
        x = np.random.default_rng(0).integers(0, 2, (n, D)).astype(np.float32)
        with warnings.catch_warnings(record=True) as caught:  # the memory budget may lower the batch
            warnings.simplefilter("always")
            out["nll"] = ar.evaluate(model, x).nll
        out["note"] = "; ".join(str(w.message) for w in caught if "batch" in str(w.message))[:200]
    elif mode == "sample":
        out["mean"] = float(jax.block_until_ready(model.sample_flat(jax.random.key(1), n)).mean())
    out["seconds"] = time.perf_counter() - start
    print(json.dumps(out), flush=True)


def run_child(case: str, mode: str, n: int, timeout: float) -> dict:
    """Run one child and read its own peak RSS with ``os.wait4`` (kB on Linux)."""
    cmd = [sys.executable, __file__, "--child", case, mode, str(n)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    lines = proc.stdout.readlines()  # the child prints one JSON line at its end
    _, status, usage = os.wait4(proc.pid, 0)  # reaps the child with its own rusage
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    row = {"conditioner": case, "what": mode, "n": n, "peak_rss_MB": usage.ru_maxrss / 1024, "ok": proc.returncode == 0}
    if lines:
        row |= {k: v for k, v in json.loads(lines[-1]).items() if k in ("seconds", "note")}
    return row


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from common import comma_list, write_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("CASE", "MODE", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=comma_list(CONDITIONERS), default=list(CONDITIONERS),
                        help="comma-separated subset of " + ",".join(CONDITIONERS))
    parser.add_argument("--score", default="256,4096", help="image counts to score")
    parser.add_argument("--sample", default="256", help="sample counts ('' for none)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per child")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    rows = []
    for case in args.cases:
        jobs = [("baseline", 0)] + [("score", int(n)) for n in args.score.split(",") if n]
        jobs += [("sample", int(n)) for n in args.sample.split(",") if n]
        for mode, n in jobs:
            row = run_child(case, mode, n, args.timeout)
            row.setdefault("seconds", float("nan"))
            row.setdefault("note", "")
            rows.append(row)
            print(row, flush=True)
    print(write_results("memory", rows, ["conditioner", "what", "n", "peak_rss_MB", "seconds", "ok", "note"]))


if __name__ == "__main__":
    main()

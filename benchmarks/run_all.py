"""Run every benchmark of docs/performance.md with its documented settings; one results table.

Each benchmark runs as its own subprocess (``python benchmarks/<script> <arguments>``,
the same interpreter), one at a time, under a per-benchmark timeout; its output goes to
``benchmarks/results/run_all/<name>.log``. The report, ``benchmarks/results/run_all.md``
(git-ignored), holds one summary table (benchmark, command, status, wall seconds) and,
per benchmark, the last Markdown table the script printed. Nothing here names a device:
on a GPU machine (``pip install -e ".[cuda]"``) the same command runs there unchanged, and
the report records JAX's backend and device.

    python benchmarks/run_all.py                  # documented settings (hours on 2 CPU cores)
    python benchmarks/run_all.py --quick          # reduced settings, under 10 minutes on 2 CPU cores
    python benchmarks/run_all.py --only train_mnist,pixelcnn --quick
    python benchmarks/run_all.py --list           # the benchmarks and their commands
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Bench:
    """A benchmark: its script, the documented arguments, reduced ``--quick`` arguments and
    the timeouts (seconds) of both."""

    script: str
    args: tuple[str, ...]
    quick: tuple[str, ...]
    timeout: float = 3600.0
    quick_timeout: float = 120.0


#: name -> benchmark; ``args`` are the commands of docs/performance.md's table.
BENCHMARKS: dict[str, Bench] = {
    "core": Bench("bench_core.py", (), (), 1800, 120),
    "made": Bench("bench_made.py", ("--repeats", "10"), ("--repeats", "2", "--naive-steps", "4"), 1800, 90),
    "reference": Bench("bench_reference.py", ("--repeats", "3"), ("--repeats", "1", "--batch", "32"), 3600, 120),
    "transformer": Bench(
        "bench_transformer.py",
        ("--repeats", "3", "--naive-steps", "4"),
        ("--repeats", "1", "--naive-steps", "2", "--batch", "32"),
        1800,
        60,
    ),
    "wavenet": Bench(
        "bench_wavenet.py",
        ("--batch", "256", "--steps", "8", "--repeats", "3"),
        ("--batch", "32", "--steps", "4", "--repeats", "1"),
        1800,
        60,
    ),
    "pixelcnn": Bench(
        "bench_pixelcnn.py",
        ("--batch", "256", "--steps", "56"),
        ("--batch", "32", "--steps", "28", "--repeats", "1"),
        1800,
        60,
    ),
    "memory_4096": Bench(
        "bench_memory.py",
        ("--score", "4096", "--sample", "4096"),
        ("--cases", "logistic,made", "--score", "256", "--sample", ""),
        7200,
        60,
    ),
    "memory_256": Bench(
        "bench_memory.py",
        ("--score", "256", "--sample", "256"),
        ("--cases", "pixelcnn", "--score", "256", "--sample", "256"),
        3600,
        60,
    ),
    "train": Bench("bench_train.py", ("--steps", "300"), ("--steps", "40"), 1800, 60),
    "train_mnist": Bench(
        "bench_train_mnist.py", (), ("--steps", "10", "--log-every", "5", "--batch-size", "16"), 3600, 90
    ),
    "ood": Bench("bench_ood.py", (), ("--records", "2048", "--repeats", "2"), 1800, 180),
    "stream": Bench("bench_stream.py", (), ("--quick",), 3600, 60),
    "bayesnet": Bench("bench_bayesnet.py", (), ("--repeats", "2", "--skip-bif", "--pgmpy-rows", "10"), 1800, 60),
    "profile_wavenet": Bench("profile_wavenet.py", (), ("--batch", "32", "--repeats", "1"), 1800, 60),
    "recipe_binarized": Bench("recipes.py", ("binarized",), ("binarized", "--seeds", "0", "--steps", "50"), 3600, 60),
    "recipe_levels": Bench("recipes.py", ("levels",), ("levels", "--seeds", "0", "--steps", "50"), 3600, 60),
}


def command(name: str, quick: bool) -> list[str]:
    b = BENCHMARKS[name]
    return [sys.executable, str(HERE / b.script), *(b.quick if quick else b.args)]


def last_table(text: str) -> str:
    """The last block of consecutive Markdown table lines (``| ...``) in ``text``."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return "\n".join(blocks[-1]) if blocks else ""


def run(name: str, quick: bool, timeout: float | None, logs: Path) -> dict:
    b = BENCHMARKS[name]
    limit = timeout or (b.quick_timeout if quick else b.timeout)
    cmd = command(name, quick)
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=limit, cwd=HERE.parent)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        status = f"timeout ({limit:.0f} s)"
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    wall = time.perf_counter() - start
    (logs / f"{name}.log").write_text(f"$ {' '.join(cmd)}\n\n{out}\n--- stderr ---\n{err}")
    shown = " ".join(["python", f"benchmarks/{b.script}", *(b.quick if quick else b.args)])
    return {
        "name": name,
        "command": shown,
        "status": status,
        "wall": wall,
        "table": last_table(out),
        "tail": (err or out).strip().splitlines()[-1:] if status != "ok" else [],
    }


def device_line() -> str:
    probe = "import jax; d = jax.devices()[0]; print(jax.__version__, jax.default_backend(), d.device_kind, len(jax.devices()))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120
        ).stdout.split()
        return f"JAX {out[0]}, backend {out[1]}, device {' '.join(out[2:-1])} x {out[-1]}, {os.cpu_count()} CPUs"
    except (subprocess.SubprocessError, IndexError):
        return "JAX device unknown"


def report(results: list[dict], quick: bool, total: float) -> str:
    lines = [
        f"# Benchmarks ({'--quick' if quick else 'documented settings'})",
        "",
        f"{device_line()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; total {total:.0f} s wall.",
        "",
        "| benchmark | command | status | wall (s) |",
        "|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['name']} | `{r['command']}` | {r['status']} | {r['wall']:.0f} |")
    for r in results:
        lines += ["", f"## {r['name']}", "", f"`{r['command']}`: {r['status']}", ""]
        if r["table"]:
            lines.append(r["table"])
        if r["tail"]:
            lines.append(f"last line: `{r['tail'][0]}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced settings (under 10 minutes on 2 CPU cores)")
    parser.add_argument("--only", default=None, help="comma-separated benchmark names (see --list)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per benchmark (default: its own)")
    parser.add_argument("--out", type=Path, default=RESULTS / "run_all.md")
    parser.add_argument("--list", action="store_true", help="print the benchmarks and their commands")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only is not None:
        names = [n for n in args.only.split(",") if n]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown or not names:
            parser.error(
                f"--only: unknown benchmark {','.join(unknown) or repr(args.only)}; "
                f"expected some of {','.join(BENCHMARKS)}"
            )
    if args.list:
        for n in names:
            print(f"{n}: {' '.join(command(n, args.quick)[1:])}")
        return 0
    logs = RESULTS / "run_all"
    logs.mkdir(parents=True, exist_ok=True)
    start, results = time.perf_counter(), []
    for n in names:
        results.append(run(n, args.quick, args.timeout, logs))
        r = results[-1]
        print(f"{n}: {r['status']} in {r['wall']:.0f} s", flush=True)
        text = report(results, args.quick, time.perf_counter() - start)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out)  # written after every benchmark: a stopped run keeps what it measured
    print(f"wrote {args.out}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

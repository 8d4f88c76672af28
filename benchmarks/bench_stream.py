"""Data larger than memory: peak resident memory and records/s of scoring and fitting from
memory-mapped ``.npy`` files of 1 GB and 4 GB, against the same records in memory.

Records are digits-sized: 8x8 binary images stored as ``uint8`` (one byte per pixel, what
a user stores for digits, binary or 17-level), 64 bytes each: 1 GB (2**30 bytes) is
16,777,216 records, 4 GB 67,108,864. The files hold the bundled binarized digits training
set repeated. The model is ``Logistic`` (FVSBN) on one ``Binary("img", (8, 8))`` variable;
the data costs here are what is measured, not the network.

Every case runs in a fresh Python process that reports its own peak resident set size
(``VmHWM`` of ``/proc/self/status``: anonymous memory *and* file pages mapped into the
process; not ``ru_maxrss`` from ``os.wait4``, which on Linux also counts the parent's RSS
at the fork). The child also resets the kernel's peak mark after its warm-up
(``/proc/self/clear_refs``) and reports ``phase_rise_MB``: the peak of the measured work
above the RSS it started from (imports and compilation excluded). Cases:

* ``baseline``: jax, arprob, the model and one compiled scoring batch (the floor).
* ``score_mmap``: ``ar.evaluate(model, np.load(path, mmap_mode="r"))`` (what ``arprob score
  FILE.npy`` does), default batch size.
* ``score_memory``: the same records read into memory first (``np.load(path)``), then
  ``ar.evaluate``; only for files up to ``--memory-limit-gb`` (default 1 GB: in memory the
  records are validated once and held as float32, 4 bytes per element).
* ``fit_mmap``: ``ar.fit`` for ``--steps`` (1000) updates of batch 128 from the memory map
  (shuffled: the epoch's order is an int32 per record; the scattered rows of a batch are
  read from the file with ``os.pread``).
* ``fit_stream``: the same from a ``BatchStream`` over the map that yields contiguous
  blocks of 128 records in a per-epoch shuffled block order (its order: one int per block).
* ``fit_memory``: the same from the in-memory array (files up to ``--memory-limit-gb``).

Records/s: scoring counts all records over the wall time of ``evaluate`` after a warm-up
(compiled); fitting counts ``steps * 128`` over the time of the updates after the first
logging window (compilation excluded). The files are written first, so they are in the
page cache (a warm read; ``--cold`` drops them from the cache with ``posix_fadvise`` before
every case, to include the disk).

Run: ``python benchmarks/bench_stream.py`` (1 GB and 4 GB in a temporary folder, deleted
afterwards; about 5.5 GB of free disk) or ``--quick`` (files of 4 MB and 16 MB);
writes benchmarks/results/stream.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RECORD_BYTES = 64  # 8 x 8 uint8
BATCH = 128  # fitting batch


def _model():
    import jax

    import arprob as ar

    spec = ar.Spec(variables=(ar.Binary("img", shape=(8, 8)),), conditionals={"img": ar.Logistic()})
    return ar.compile(spec, jax.random.key(0))


def write_file(path: Path, num_records: int) -> None:
    """A ``.npy`` of ``num_records`` uint8 records: the binarized digits training set repeated."""
    import numpy as np

    from arprob.data import load_digits

    digits = load_digits()[0].reshape(-1, RECORD_BYTES).astype(np.uint8)
    block = np.tile(digits, (750, 1))  # 1,050,000 records (67 MB) per write
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (num_records, 64)})
        left = num_records
        while left:
            part = block[: min(left, len(block))]
            f.write(part.tobytes())
            left -= len(part)


def child(case: str, path: str, steps: int) -> None:
    """Run one case; print one JSON line."""
    import warnings

    import numpy as np

    import arprob as ar

    model = _model()
    warm = np.zeros((2, 64), np.uint8)
    ar.evaluate(model, warm)  # imports and the scoring function's first compile
    out: dict = {}
    phase = _start_phase()
    if case == "baseline":
        x = np.load(path, mmap_mode="r")
        ar.evaluate(model, np.asarray(x[:4096]))  # one default-size batch compiled
        out["records"] = 0
    elif case.startswith("score"):
        x = np.load(path, mmap_mode="r")
        ar.evaluate(model, np.asarray(x[:4096]))  # the default batch, compiled
        if case == "score_memory":
            t = time.perf_counter()
            x = np.load(path)
            out["load_s"] = time.perf_counter() - t
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = ar.evaluate(model, x)
        out["seconds"] = time.perf_counter() - t
        out["records"] = ev.num_examples
        out["nll"] = ev.nll
    else:
        x = np.load(path, mmap_mode="r")
        n = x.shape[0]
        if case == "fit_memory":
            t = time.perf_counter()
            x = np.load(path)
            out["load_s"] = time.perf_counter() - t
            data = x
        elif case == "fit_stream":
            blocks = n // BATCH

            def make_batches(epoch: int):
                for b in np.random.default_rng([0, epoch]).permutation(blocks):
                    yield x[b * BATCH : (b + 1) * BATCH]

            data = ar.BatchStream(make_batches, num_examples=blocks * BATCH)
        else:
            data = x
        window = max(steps // 10, 1)
        t = time.perf_counter()
        res = ar.fit(model, data, num_updates=steps, batch_size=BATCH, log_every=window, progress=False)
        out["seconds"] = time.perf_counter() - t
        h = res.history
        # examples/s of each logging window after the first (which holds the compile)
        elapsed = np.asarray(h["elapsed"])
        logged = np.asarray(h["log_step"])
        span = elapsed[-1] - elapsed[0]
        out["records"] = int((logged[-1] - logged[0]) * BATCH)
        out["update_s"] = float(span)
        out["loss"] = float(h["loss"][-1])
    out |= _end_phase(phase)
    print(json.dumps(out), flush=True)


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start_phase() -> tuple[float, float | None]:
    """The peak RSS so far (``VmHWM``), then reset the kernel's peak mark to the current RSS
    (``/proc/self/clear_refs``, 5): ``(peak so far, RSS now)``, the latter None where the
    reset is not possible."""
    before = _status_mb("VmHWM")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return before, None
    return before, _status_mb("VmRSS")


def _end_phase(start: tuple[float, float | None]) -> dict:
    """The process's peak RSS, and the peak of the case's own work (since ``_start_phase``)
    with its rise above the RSS it started from."""
    before, rss0 = start
    peak = _status_mb("VmHWM")
    if rss0 is None:
        return {"peak_rss_MB": max(before, peak)}
    return {"peak_rss_MB": max(before, peak), "phase_start_MB": rss0, "phase_peak_MB": peak,
            "phase_rise_MB": peak - rss0}


def drop_cache(path: Path) -> None:
    """Drop the file's clean pages from the page cache (no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_child(case: str, path: Path, steps: int, timeout: float) -> dict:
    """One case in a fresh process, killed after ``timeout`` seconds: its JSON line (with its
    own peak RSS) and, for reference, the ``ru_maxrss`` that ``os.wait4`` reports."""
    cmd = [sys.executable, __file__, "--child", case, str(path), str(steps)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    chunks: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, s=s: chunks.__setitem__(k, s.read()))
               for k, s in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for r in readers:
        r.join()
    timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss of a child also counts the parent's RSS at the fork (Linux keeps the larger
    # of the old and new address spaces' peaks across exec): the child's own VmHWM is used.
    row: dict = {"case": case, "ok": proc.returncode == 0, "ru_maxrss_MB": usage.ru_maxrss / 1024,
                 "peak_rss_MB": float("nan")}
    lines = [ln for ln in chunks.get("out", "").splitlines() if ln.startswith("{")]
    if lines:
        row |= json.loads(lines[-1])
    if not row["ok"]:
        tail = chunks.get("err", "").strip().splitlines()
        row["error"] = (tail[-1] if tail and proc.returncode > 0 else f"killed after {timeout:.0f} s")[:200]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("CASE", "PATH", "STEPS"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="files of 4 MB and 16 MB")
    parser.add_argument("--sizes-mb", default=None, help="file sizes in MiB (default 1024,4096; quick 4,16)")
    parser.add_argument("--steps", type=int, default=1000, help="fitting updates per fit case")
    parser.add_argument("--memory-limit-gb", type=float, default=1.0, help="largest file also read into memory")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    parser.add_argument("--cold", action="store_true", help="drop the file from the page cache before each case")
    parser.add_argument("--dir", default=None, help="folder for the files (default: a new temporary folder)")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from common import write_results

    sizes = [float(s) for s in (args.sizes_mb or ("4,16" if args.quick else "1024,4096")).split(",")]
    steps = 60 if args.quick and args.steps == 1000 else args.steps
    root = Path(tempfile.mkdtemp(prefix="bench_stream_", dir=args.dir))
    need = sum(sizes) * (1 << 20)
    free = shutil.disk_usage(root).free
    if free < need * 1.1:
        raise SystemExit(f"{root}: {free / 2**30:.1f} GiB free; the files need {need / 2**30:.1f} GiB.")
    rows = []
    try:
        for mb in sizes:
            n = int(mb * (1 << 20)) // RECORD_BYTES
            path = root / f"records_{n}.npy"
            t = time.perf_counter()
            write_file(path, n)
            print(f"wrote {path} ({n:,} records, {path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f} s",
                  flush=True)
            cases = ["baseline", "score_mmap", "fit_mmap", "fit_stream"]
            if mb <= args.memory_limit_gb * 1024:
                cases[2:2] = ["score_memory"]
                cases.append("fit_memory")
            for case in cases:
                if args.cold:
                    drop_cache(path)
                row = {"file_MB": round(path.stat().st_size / 2**20), "records_in_file": n}
                row |= run_child(case, path, steps, args.timeout)
                if row.get("records") and row.get("update_s", row.get("seconds")):
                    row["records_per_s"] = row["records"] / row.get("update_s", row["seconds"])
                rows.append(row)
                print(row, flush=True)
            path.unlink()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    by = {(r["file_MB"], r["case"]): r for r in rows}
    for r in rows:  # ratios against the same run's baseline and in-memory figures
        base = by.get((r["file_MB"], "baseline"))
        r["rss_over_baseline_MB"] = r["peak_rss_MB"] - base["peak_rss_MB"] if base else float("nan")
        kind = r["case"].split("_")[0] + "_memory"  # same size if measured, else the largest measured
        twin = by.get((r["file_MB"], kind)) or max((v for (_, c), v in by.items() if c == kind),
                                                   key=lambda v: v["file_MB"], default=None)
        rate = r.get("records_per_s")
        r["rate_vs_memory"] = rate / twin["records_per_s"] if rate and twin and twin.get("records_per_s") else float("nan")
        r.setdefault("records_per_s", float("nan"))
    for r in rows:
        r.setdefault("phase_rise_MB", float("nan"))
    columns = ["file_MB", "case", "peak_rss_MB", "rss_over_baseline_MB", "phase_rise_MB", "records_per_s",
               "rate_vs_memory", "ok"]
    print(write_results("stream", rows, columns))
    print(f"load average at the end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()

"""Hostile files (issue 26): every crafted, corrupt or unreadable input is one line on stderr
and exit 2 in the job that reads it, refused before it is read, in bounded memory.

The files are generated at test time (nothing hostile is committed). The rows run in ONE
subprocess (``DRIVER``) with its address space capped (``RLIMIT_AS``) and a small memory
budget (``ARPROB_MEMORY_BUDGET``): per row it calls the console script's ``main`` in
process (as tests/test_cli_misuse.py does) and records the exit status, the first line of
stderr, and the process's peak resident memory. The test asserts exit 2, a one-line
message naming the culprit, and a peak RSS far below what reading the files would take.
Rows starting with ``@detector`` load a detector file through the Python API
(``Detector.load``), which must raise ``CheckpointError``. The pytest process itself never
imports arprob.
"""

from __future__ import annotations

import io
import json
import os
import resource
import shlex
import struct
import subprocess
import sys
import tomllib
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["arprob"]
#: the memory budget of the driver (every hostile size below is far over it)
BUDGET = 256 * 2**20
#: the driver's address-space cap (JAX reserves a few GB of virtual memory at start)
ADDRESS_SPACE = 12 * 2**30
#: the peak resident memory the driver may reach (JAX, XLA's compiled programs, small models)
PEAK_RSS = 1500 * 2**20
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "ARPROB_MEMORY_BUDGET": str(BUDGET)}

SPEC = """
[[variables]]
kind = "binary"
name = "img"
shape = [4, 4]

[conditionals.img]
kind = "logistic"
"""
MADE_SPEC = SPEC.replace('kind = "logistic"', 'kind = "made"\nhidden = [8]')
TABLE_SPEC = """
[[variables]]
kind = "categorical"
name = "colour"
num_categories = 3

[[variables]]
kind = "ordinal"
name = "size"
levels = 4

[conditionals.colour]
kind = "table"

[conditionals.size]
kind = "table"
parents = ["colour"]
"""

#: jobs run first, each must succeed (exit 0): they make the models the crafted files start from
SETUP = [
    "fit {d}/spec.toml {d}/data.npz --out {d}/model.ckpt --steps 2 --batch-size 8",
    "fit {d}/made.toml {d}/data.npz --out {d}/made.ckpt --steps 1 --batch-size 8",
    "fit {d}/table.toml {d}/table.csv --out {d}/table.ckpt",
    "score {d}/table.ckpt {d}/bom.csv",  # a UTF-8 byte-order mark is accepted
    "detect {d}/model.ckpt {d}/data.npz {d}/data.npz --fpr 0.1 --no-plots --out {d}/report",
]

#: (command, what the one line must say); {d} is the folder of the files
HOSTILE = [
    # data files: zip bombs, lies, corruption (score, fit, detect, purify)
    ("score {d}/model.ckpt {d}/bomb.npz", "over the memory budget"),
    ("score {d}/model.ckpt {d}/lying.npz", "corrupt or crafted"),
    ("score {d}/model.ckpt {d}/ratio.npz", "more than deflate can produce"),
    ("score {d}/model.ckpt {d}/empty.npz", "not a readable .npz archive"),
    ("score {d}/model.ckpt {d}/truncated.npz", "not a readable .npz archive"),
    ("score {d}/model.ckpt {d}/garbage.npz", "not a readable .npz archive"),
    ("score {d}/model.ckpt {d}/badcrc.npz", "not a readable .npz archive"),
    ("score {d}/model.ckpt {d}/text_member.npz", "not an .npy array"),
    ("purify {d}/model.ckpt {d}/huge.npy --eps 1 --out {d}/p1.npz", "holds 64 bytes of data"),
    ("purify {d}/model.ckpt {d}/honest_big.npy --eps 1 --out {d}/p4.npz", "over the memory budget"),
    ("score {d}/model.ckpt {d}/object.npy", "only plain numeric arrays"),
    # CSV: field limit, duplicated header names
    ("score {d}/table.ckpt {d}/long_field.csv", "field larger than field limit"),
    ("score {d}/table.ckpt {d}/dup_header.csv", "column 'colour' appears twice"),
    # PNG: size from the header, Pillow's bomb limit, a FIFO in the folder
    ("score {d}/model.ckpt {d}/png_big", "image of shape (9000, 9000)"),
    ("score {d}/model.ckpt {d}/png_bomb", "DecompressionBombError"),
    ("score {d}/model.ckpt {d}/png_fifo", "FIFO"),
    # only regular files: FIFOs and /dev/zero, refused by name
    ("inspect {d}/fifo.toml", "fifo.toml' is a FIFO"),
    ("inspect {d}/zero.toml", "zero.toml' is a character device"),
    ("fit {d}/spec.toml {d}/fifo.npz --out {d}/x2.ckpt", "fifo.npz' is a FIFO"),
    ("score {d}/fifo.ckpt {d}/data.npz", "fifo.ckpt' is a FIFO"),
    # spec files: duplicate keys, huge numbers, crafted sizes
    ("inspect {d}/dup.json", "duplicate key 'conditionals'"),
    ("inspect {d}/dup.yaml", "duplicate key 'variables'"),
    ("inspect {d}/dup.toml", "malformed TOML"),
    ("inspect {d}/bigint.yaml", "bigint.yaml"),
    ("inspect {d}/huge_shape.json", "huge_shape.json"),
    ("inspect {d}/many.json", "many.json"),
    ("inspect {d}/orderings.toml", "orderings.toml"),
    # checkpoints: a history zlib bomb, a huge declared shape, NaN weights, edited MADE degrees
    ("inspect {d}/history_bomb.ckpt", "over the memory budget"),
    ("score {d}/history_honest.ckpt {d}/data.npz", "over the memory budget"),
    ("inspect {d}/shape.ckpt", "shape.ckpt"),
    ("score {d}/nan.ckpt {d}/data.npz", "NaN values"),
    ("score {d}/degrees.ckpt {d}/data.npz", "differs from the one the stored spec derives"),
    ("fit {d}/spec.toml {d}/data.npz --out {d}/state.ckpt --resume", "'rng.epoch' must be an integer"),
    ("fit {d}/spec.toml {d}/data.npz --out {d}/settings.ckpt --resume", "stored setting 'batch_size'"),
    # options beyond what a run can do
    ("fit {d}/spec.toml {d}/data.npz --out {d}/x3.ckpt --seed 1000000000000000000000000000000", "--seed: expected"),
    ("purify {d}/model.ckpt {d}/data.npz --eps 1e308 --out {d}/p2.npz", "--eps: expected a finite number >= 0"),
    ("sample {d}/model.ckpt -n 50000000 --out {d}/s1.npz", "over the memory budget"),
    ("purify {d}/model.ckpt {d}/data.npz --eps 1 --surprisal-threshold nan --out {d}/p3.npz", "a finite number"),
    ("fit {d}/spec.toml {d}/data.npz --out {d}/x4.ckpt --steps 5 --learning-rate 1e308", "--clip-norm"),
    # outputs: existing reports, non-regular paths
    ("detect {d}/model.ckpt {d}/data.npz {d}/data.npz --fpr 0.1 --no-plots --out {d}/report", "exists; pass --force"),
    ("purify {d}/model.ckpt {d}/data.npz --eps 1 --out {d}/existing.npz", "exists; pass --force"),
    ("sample {d}/model.ckpt -n 2 --out {d}/s2.npz --png {d}/fifo.png", "is a FIFO"),
    ("score {d}/model.ckpt {d}/data.npz --out {d}/link.csv", "is a symbolic link"),
    # detector files (Python API): exactly what Detector.fit accepts
    ("@detector {d}/unsorted.arprob", "not sorted"),
    ("@detector {d}/nan_scores.arprob", "non-finite"),
    ("@detector {d}/two_sided_no.arprob", "'two_sided' must be true or false"),
    ("@detector {d}/tiny_fpr.arprob", "needs more calibration records"),
    ("@detector {d}/no_background.arprob", "needs a background"),
]

DRIVER = r"""
import gc, importlib, json, os, resource, sys, tempfile, traceback

rows_path, results_path, entry_point, craft_path = sys.argv[1:5]
module, function = entry_point.split(":")
main = getattr(importlib.import_module(module), function)
phases = json.loads(open(rows_path).read())


def detector_load(path):
    import arprob as ar
    from arprob.checkpoint import CheckpointError
    try:
        ar.ood.Detector.load(path)
    except CheckpointError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 2
    except BaseException as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


def run(argv):
    sys.stdout.flush(); sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
        sys.argv = ["arprob", *argv]
        try:
            if argv[0] == "@detector":
                status = detector_load(argv[1])
            else:
                try:
                    sys.exit(main())
                except SystemExit as e:
                    code = e.code
                    status = 0 if code is None else code if isinstance(code, int) else 1
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os.dup2(saved[0], 1); os.dup2(saved[1], 2)
            os.close(saved[0]); os.close(saved[1])
        out.seek(0); err.seek(0)
        gc.collect()
        with open(results_path + ".progress", "a") as f:  # where a hung run stopped
            f.write(" ".join(argv) + "\n")
        return {"argv": argv, "status": status, "stdout": out.read().decode(), "stderr": err.read().decode(),
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


results = [run(argv) for argv in phases["setup"]]
exec(open(craft_path).read())  # the crafted checkpoints and detector files, from the setup's files
results += [run(argv) for argv in phases["hostile"]]
with open(results_path, "w") as f:
    json.dump(results, f)
"""

#: run inside the driver after the setup rows (numpy, json and hashlib only): crafted
#: checkpoints and detector files, their checksums recomputed (a tamperer can)
CRAFT = r'''
import hashlib, io, json, struct, zlib
import numpy as np
from pathlib import Path

d = Path(phases["folder"])
PREFIX = struct.Struct("<8sIQ32s")


def read(path):
    raw = Path(path).read_bytes()
    magic, version, n, _ = PREFIX.unpack_from(raw)
    body = raw[PREFIX.size:]
    return magic, version, json.loads(body[:n]), body[n:]


def write(path, magic, version, header, payload):
    hb = json.dumps(header).encode()
    Path(path).write_bytes(PREFIX.pack(magic, version, len(hb), hashlib.sha256(hb + payload).digest()) + hb + payload)


def segment_bounds(header, name):
    order = ["model", "opt_state", "best", "history"]
    sizes = header["segments"]
    start = sum(sizes.get(k, 0) for k in order[: order.index(name)])
    return start, start + sizes.get(name, 0)


def with_history(src, dst, length, chunk):
    magic, version, header, payload = read(src)
    a, b = segment_bounds(header, "history")
    header["history"] = {"series": {}, "arrays": [{"key": "loss", "dtype": "float64", "length": length,
                                                    "bytes": len(chunk)}]}
    header["segments"]["history"] = len(chunk)
    write(dst, magic, version, header, payload[:a] + chunk + payload[b:])


def npy_records(segment):
    f = io.BytesIO(segment)
    while f.tell() < len(segment):
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                 else np.lib.format.read_array_header_2_0)(f)
        start = f.tell()
        nbytes = int(np.prod(shape)) * dtype.itemsize
        f.seek(start + nbytes)
        yield start, nbytes, dtype


def edit_model(src, dst, kind, edit):
    magic, version, header, payload = read(src)
    a, b = segment_bounds(header, "model")
    model = bytearray(payload[a:b])
    for start, nbytes, dtype in npy_records(bytes(model)):
        if dtype.kind == kind and nbytes >= dtype.itemsize * 2:
            values = np.frombuffer(bytes(model[start:start + nbytes]), dtype).copy()
            model[start:start + nbytes] = edit(values).astype(dtype).tobytes()
            break
    else:
        raise AssertionError(f"no {kind} array in {src}")
    write(dst, magic, version, header, payload[:a] + bytes(model) + payload[b:])


bomb = zlib.compress(b"\0" * (32 << 20), 9)
with_history(d / "model.ckpt", d / "history_bomb.ckpt", 10**9, bomb)  # declares 8 GB
honest = zlib.compress(np.zeros((8, 4_000_000), np.uint8).tobytes(), 9)  # 4,000,000 float64 zeros, shuffled
with_history(d / "model.ckpt", d / "history_honest.ckpt", 4_000_000, honest)  # 32 MB raw, 160 MB as a list
magic, version, header, payload = read(d / "model.ckpt")
header["spec"]["variables"][0]["shape"] = [8_000_000]
write(d / "shape.ckpt", magic, version, header, payload)
edit_model(d / "model.ckpt", d / "nan.ckpt", "f", lambda v: np.full_like(v, np.nan))
edit_model(d / "made.ckpt", d / "degrees.ckpt", "i", lambda v: v + 1)
magic, version, header, payload = read(d / "model.ckpt")
write(d / "state.ckpt", magic, version, {**header, "rng": {**header["rng"], "epoch": [1]}}, payload)
settings = {**header["state"].get("settings", {}), "batch_size": 1e300}
write(d / "settings.ckpt", magic, version, {**header, "state": {**header["state"], "settings": settings}}, payload)

magic, version, det, payload = read(d / "report" / "detector.arprob")
f = io.BytesIO(payload)
np.lib.format.read_magic(f)
np.lib.format.read_array_header_1_0(f)
head, cal = payload[: f.tell()], np.frombuffer(payload[f.tell():], np.float64)
det["model"]["checkpoint"] = str(d / "model.ckpt")
write(d / "unsorted.arprob", magic, version, det, head + cal[::-1].tobytes())
write(d / "nan_scores.arprob", magic, version, det, head + np.where(np.arange(cal.size) == 3, np.nan, cal).tobytes())
write(d / "two_sided_no.arprob", magic, version, {**det, "two_sided": "no"}, payload)
write(d / "tiny_fpr.arprob", magic, version, {**det, "fpr": 1e-300}, payload)
write(d / "no_background.arprob", magic, version, {**det, "correction": "likelihood_ratio"}, payload)
'''


def _npy_bytes(shape, dtype, data: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def _png(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR declaring ``width x height`` grey pixels, and IEND: no pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(
        b"IEND", b"")


def _make_files(d: Path) -> None:
    rng = np.random.default_rng(0)
    (d / "spec.toml").write_text(SPEC)
    (d / "made.toml").write_text(MADE_SPEC)
    (d / "table.toml").write_text(TABLE_SPEC)
    np.savez(d / "data.npz", img=rng.integers(0, 2, (40, 4, 4)))
    rows = "".join(f"{rng.integers(3)},{rng.integers(4)}\n" for _ in range(30))
    (d / "table.csv").write_text("colour,size\n" + rows)
    (d / "bom.csv").write_bytes(b"\xef\xbb\xbfcolour,size\n" + rows.encode())
    (d / "long_field.csv").write_text("colour,size\n" + "1" * 200_000 + ",1\n")
    (d / "dup_header.csv").write_text("colour,size,colour,size\n1,2,0,1\n")
    # .npz: a zip bomb (honest header, 256 MB of zeros in 250 kB), a member whose header lies, a
    # directory claiming more than deflate can give, empty/truncated/garbage/bad CRC, a text member
    with zipfile.ZipFile(d / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z, z.open("img.npy", "w", force_zip64=True) as f:
        f.write(_npy_bytes((2**24, 4, 4), "<i1", b""))
        for _ in range(16):
            f.write(b"\0" * (16 << 20))
    with zipfile.ZipFile(d / "lying.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("img.npy", _npy_bytes((10**12, 4, 4), "<f8", b"\0" * 64))
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("img.npy", _npy_bytes((40, 4, 4), "<i8", rng.integers(0, 2, (40, 4, 4)).astype("<i8").tobytes()))
    raw = bytearray(good.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as z:
        info = z.getinfo("img.npy")
    ratio = bytearray(raw)
    central = bytes(ratio).rfind(b"PK\x01\x02")  # the central directory's uncompressed size, 10**9
    struct.pack_into("<I", ratio, central + 24, 10**9)
    struct.pack_into("<I", ratio, info.header_offset + 22, 10**9)
    (d / "ratio.npz").write_bytes(bytes(ratio))
    (d / "empty.npz").write_bytes(b"")
    (d / "truncated.npz").write_bytes(bytes(raw[: len(raw) // 2]))
    (d / "garbage.npz").write_bytes(os.urandom(4096))
    badcrc = bytearray(raw)
    badcrc[info.header_offset + 30 + len("img.npy") + info.compress_size // 2] ^= 0xFF
    (d / "badcrc.npz").write_bytes(bytes(badcrc))
    with zipfile.ZipFile(d / "text_member.npz", "w") as z:
        z.writestr("img.npy", _npy_bytes((40, 4, 4), "<i8", np.zeros(640, "<i8").tobytes()))
        z.writestr("readme.txt", "hello")
    (d / "huge.npy").write_bytes(_npy_bytes((10**9, 16), "<f8", b"\0" * 64))
    with open(d / "honest_big.npy", "wb") as f:  # 64 MB of int8 on disk (sparse): 576 MB to read and validate
        f.write(_npy_bytes((2**22, 16), "<i1", b""))
        f.truncate(f.tell() + 2**26)
    (d / "object.npy").write_bytes(_npy_bytes((2, 16), "|O", b"\0" * 16))
    # PNG folders
    for name, (w, h) in {"png_big": (9000, 9000), "png_bomb": (30000, 30000)}.items():
        (d / name).mkdir()
        (d / name / "a.png").write_bytes(_png(w, h))
    (d / "png_fifo").mkdir()
    os.mkfifo(d / "png_fifo" / "a.png")
    # non-regular files
    for name in ("fifo.toml", "fifo.npz", "fifo.ckpt", "fifo.png"):
        os.mkfifo(d / name)
    os.symlink("/dev/zero", d / "zero.toml")
    (d / "existing.npz").write_bytes(b"keep")
    (d / "target.csv").write_text("keep")
    os.symlink(d / "target.csv", d / "link.csv")
    # spec files
    (d / "dup.json").write_text('{"variables": [], "conditionals": {}, "conditionals": {}}')
    (d / "dup.yaml").write_text("variables: []\nvariables: []\n")
    (d / "dup.toml").write_text(SPEC + '\n[conditionals.img]\nkind = "logistic"\n')
    (d / "bigint.yaml").write_text(f"variables:\n  - kind: binary\n    name: img\n    shape: [{'9' * 4000}]\n")
    (d / "huge_shape.json").write_text(json.dumps({"variables": [{"kind": "binary", "name": "x", "shape": [10**30]}],
                                                   "conditionals": {"x": {"kind": "logistic"}}}))
    many = {"variables": [{"kind": "binary", "name": f"v{i}"} for i in range(100_000)],
            "conditionals": {f"v{i}": {"kind": "logistic"} for i in range(100_000)}}
    (d / "many.json").write_text(json.dumps(many))
    (d / "orderings.toml").write_text(MADE_SPEC.replace("hidden = [8]", "hidden = [8]\nnum_orderings = 1000000"))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    _make_files(d)
    (d / "craft.py").write_text(CRAFT)
    phases = {"folder": str(d), "setup": [shlex.split(c.format(d=d)) for c in SETUP],
              "hostile": [shlex.split(c.format(d=d)) for c, _ in HOSTILE]}
    (d / "rows.json").write_text(json.dumps(phases))

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    proc = subprocess.run([sys.executable, "-c", DRIVER, str(d / "rows.json"), str(d / "results.json"), ENTRY_POINT,
                           str(d / "craft.py")], check=False, capture_output=True, text=True, env=ENV, cwd=d,
                          timeout=300, preexec_fn=cap)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((d / "results.json").read_text())
    assert len(out) == len(SETUP) + len(HOSTILE)
    return d, out[: len(SETUP)], out[len(SETUP):]


def test_setup_jobs_succeed(results):
    _, setup, _ = results
    for r in setup:
        assert r["status"] == 0, r


@pytest.mark.parametrize("index", range(len(HOSTILE)), ids=[c[0].split()[0] + ":" + c[0].split()[2 if c[0].startswith(
    "fit") else 1].rsplit("/", 1)[-1] + (":" + c[0].split()[-1] if "--" in c[0] else "") for c in HOSTILE])
def test_hostile_input_is_one_line_and_exit_2(results, index):
    d, _, hostile = results
    _, message = HOSTILE[index]
    r = hostile[index]
    lines = r["stderr"].strip().splitlines()
    assert r["status"] == 2 and len(lines) == 1, r
    assert message.format(d=d) in lines[0], r


def test_peak_memory_stays_bounded(results):
    """Every refusal came before the allocation: the driver's peak RSS after all rows is what
    JAX and a few tiny models take, far below the hundreds of MB to GB the files declare."""
    _, setup, hostile = results
    peak = max(r["peak_rss_kb"] for r in setup + hostile) * 1024
    assert peak < PEAK_RSS, f"peak RSS {peak / 2**20:.0f} MiB"


def test_nothing_was_written_by_a_failed_job(results):
    d, _, _ = results
    failed = ("x2.ckpt", "x3.ckpt", "x4.ckpt", "p1.npz", "p2.npz", "p3.npz", "p4.npz", "s1.npz", "s2.npz")
    assert not [n for n in failed if (d / n).exists()]
    assert (d / "existing.npz").read_bytes() == b"keep" and (d / "target.csv").read_text() == "keep"
    assert not list(d.glob(".*.tmp"))

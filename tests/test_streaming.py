"""Data larger than memory: memory-mapped ``.npy`` files and ``BatchStream`` are read and
validated chunk by chunk, score exactly like the in-memory array, name the file's row of a
bad value, and release the pages reading mapped in (benchmarks/bench_stream.py measures
the peak resident memory at 1 GB and 4 GB)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

import arprob as ar
import arprob.data as data_module
from arprob.data import BatchStream, as_source, split_source

SPEC = ar.Spec(variables=(ar.Binary("img", shape=(8, 8)),), conditionals={"img": ar.Logistic()})  # digits-sized
MODEL = ar.compile(SPEC, jax.random.key(0))
N, BATCH = 3000, 256  # 12 chunks, the last one short
RECORDS = np.random.default_rng(0).integers(0, 2, (N, 64), dtype=np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("streaming")
    paths = {}
    for dtype in ("uint8", "float32"):  # float32: the chunks are views of the map, not copies
        paths[dtype] = root / f"x_{dtype}.npy"
        np.save(paths[dtype], RECORDS.astype(dtype))
    return paths


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_a_memory_mapped_file_scores_like_the_array(files, dtype, x64):
    with jax.enable_x64(x64):
        want = ar.evaluate(MODEL, RECORDS, batch_size=BATCH, return_log_prob=True)
        mapped = np.load(files[dtype], mmap_mode="r")
        assert as_source(SPEC, mapped).lazy and as_source(SPEC, str(files[dtype])).lazy  # the CLI passes the path
        for data in (mapped, str(files[dtype])):
            got = ar.evaluate(MODEL, data, batch_size=BATCH, return_log_prob=True)
            assert got.num_examples == N and got.nll == want.nll
            np.testing.assert_array_equal(got.log_prob, want.log_prob)
        assert want.log_prob.dtype == (np.float64 if x64 else np.float32)
        stream = BatchStream(lambda epoch: (mapped[a : a + 500] for a in range(0, N, 500)), num_examples=N)
        np.testing.assert_allclose(ar.evaluate(MODEL, stream, batch_size=BATCH).nll, want.nll, rtol=1e-6)
        # Shuffled batches read scattered rows from the file (os.pread), also of a view of the map.
        rows = np.random.default_rng(1).permutation(N - 1000)[:300]
        x, _ = as_source(SPEC, mapped[1000:]).take(rows)
        np.testing.assert_array_equal(x, RECORDS[1000:][rows])


def test_a_bad_value_in_a_late_chunk_names_its_record(tmp_path):
    bad = RECORDS.copy()
    bad[2777, 10] = 2  # binary: 0 or 1
    path = tmp_path / "bad.npy"
    np.save(path, bad)
    row = r"'img'\[1, 2\] \(element 10\) in row 2777 has value 2\.0"
    message = r"bad\.npy.*" + row
    with pytest.raises(ar.DataError, match=message):
        ar.evaluate(MODEL, str(path), batch_size=BATCH)  # chunk 10 of 12
    source = as_source(SPEC, path)
    with pytest.raises(ar.DataError, match=message):
        source.take(np.array([5, 2777, 40]))  # a shuffled training batch
    first, second = split_source(source, 0.5, seed=0)
    part = first if 2777 in first._index else second
    with pytest.raises(ar.DataError, match=row):  # a validation split names the file's row too
        for _ in part.sequential(BATCH):
            pass


def _mapped_kib(path: Path) -> int:
    """Resident KiB of this process's mappings of ``path`` (``/proc/self/smaps``)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
            inside = len(head) >= 6 and head[-1] == str(path)
        elif inside and head[:1] == ["Rss:"]:
            total += int(head[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_reading_a_memory_map_releases_its_pages(tmp_path, monkeypatch):
    path = tmp_path / "big.npy"
    np.save(path, np.tile(RECORDS, (14, 1)))  # 42,000 records, 2.6 MiB
    monkeypatch.setattr(data_module, "RELEASE_BYTES", 256 << 10)
    mapped = np.load(path, mmap_mode="r")
    ar.evaluate(MODEL, mapped, batch_size=4096)
    for _ in as_source(SPEC, mapped).epoch(0, 512, seed=0):  # shuffled batches: read with os.pread
        pass
    blocks = np.random.default_rng(0).permutation(len(mapped) // 128)
    stream = BatchStream(lambda epoch: (mapped[b * 128 : (b + 1) * 128] for b in blocks))
    for _ in as_source(SPEC, stream).epoch(0, 128, seed=0):  # blocks of the map all over the file
        pass
    # Without the release the whole file (2,626 KiB) stays mapped in; with it, at most the
    # release limit plus what one batch maps.
    assert _mapped_kib(path) < 1024, _mapped_kib(path)

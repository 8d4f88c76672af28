"""Data sources: arrays, .npy (memory-mapped, validated per batch), .npz, batch streams, shuffling."""

from __future__ import annotations

import numpy as np
import pytest

import arprob as ar
from arprob.data import ArraySource, BatchStream, as_source, load_digits, split_source

SPEC = ar.Spec(variables=(ar.Binary("img", shape=(2, 2)), ar.Categorical("c", 3)), context_size=0)
MODEL = ar.compile(SPEC)
RNG = np.random.default_rng(0)
DATA = {"img": RNG.integers(0, 2, (50, 2, 2)), "c": RNG.integers(0, 3, 50)}
FLAT = np.asarray(MODEL.to_flat(DATA))


def test_digits_loader_is_unchanged():
    train, test = load_digits()
    assert train.shape == (1400, 8, 8) and test.shape == (397, 8, 8) and set(np.unique(train)) == {0, 1}
    raw, _ = load_digits(binarize=False)
    assert raw.max() == 16


def test_epochs_are_seeded_permutations():
    src = ArraySource(SPEC, DATA)
    e0 = list(src.epoch(0, 16, seed=7))
    assert len(e0) == 3  # 50 // 16, the incomplete batch is dropped
    rows0 = np.concatenate([b.rows for b in e0])
    assert len(set(rows0.tolist())) == 48
    np.testing.assert_array_equal(rows0, np.random.default_rng([7, 0]).permutation(50)[:48])
    np.testing.assert_array_equal(e0[1].x, FLAT[e0[1].rows])
    rows1 = np.concatenate([b.rows for b in src.epoch(1, 16, seed=7)])
    assert not np.array_equal(rows0, rows1)  # reshuffled each epoch
    again = np.concatenate([b.rows for b in src.epoch(0, 16, seed=7)])
    np.testing.assert_array_equal(rows0, again)
    # Starting mid-epoch (resume) gives the remaining batches of the same order.
    assert [b.index for b in src.epoch(0, 16, seed=7, start=2)] == [2]


def test_npy_file_is_memory_mapped_and_trains_like_the_array(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, FLAT.astype(np.int8))
    src = as_source(SPEC, path)
    assert src.lazy and src.num_examples == 50
    a = ar.fit(MODEL, FLAT, num_steps=6, batch_size=16, seed=2)
    b = ar.fit(MODEL, str(path), num_steps=6, batch_size=16, seed=2, validation=None)
    assert a.history["loss"] == b.history["loss"]
    # A bad value is found when its batch is read, and named.
    bad = FLAT.copy()
    bad[13, 4] = 5  # element 4 is "c", which takes 0..2
    np.save(path, bad)
    with pytest.raises(ar.DataError, match=r"'c'.*value 5\.0"):
        ar.fit(MODEL, path, num_steps=6, batch_size=25)
    # A validation split of a memory map stays a view (rows indexed, not copied).
    train, val = split_source(as_source(SPEC, tmp_path / "x.npy"), 0.2, seed=0)
    assert train.lazy and val.num_examples == 10 and train.num_examples == 40


def test_npz_mapping_with_context(tmp_path):
    spec = ar.Spec(variables=(ar.Binary("b", shape=(2,)),), context_size=1)
    ctx = RNG.normal(size=(30, 1))
    np.savez(tmp_path / "d.npz", b=RNG.integers(0, 2, (30, 2)), context=ctx)
    src = as_source(spec, tmp_path / "d.npz")
    x, c = src.take(np.array([3, 1]))
    np.testing.assert_allclose(c, ctx[[3, 1]])
    ev = ar.evaluate(ar.compile(spec), tmp_path / "d.npz")
    assert ev.num_examples == 30 and ev.nll == pytest.approx(2 * np.log(2), rel=1e-6)
    # A single unnamed array in an .npz is the flat layout.
    np.savez(tmp_path / "flat.npz", FLAT)
    assert as_source(SPEC, tmp_path / "flat.npz").num_examples == 50


def test_files_never_unpickle_and_bad_paths_are_named(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ar.DataError, match="obj.npy"):
        as_source(SPEC, tmp_path / "obj.npy")
    with pytest.raises(ar.DataError, match="does not exist"):
        as_source(SPEC, tmp_path / "nope.npy")
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(ar.DataError, match=r"\.npy, \.npz or \.csv file or a folder of \.png images"):
        as_source(SPEC, tmp_path / "x.txt")


def test_batch_stream_matches_arrays_and_validates_each_batch():
    order = {e: np.random.default_rng([3, e]).permutation(50) for e in range(5)}

    def batches(epoch):
        for b in range(3):
            rows = order[epoch][b * 16 : (b + 1) * 16]
            yield {"img": DATA["img"][rows], "c": DATA["c"][rows]}

    a = ar.fit(MODEL, DATA, num_steps=8, batch_size=16, seed=3)
    b = ar.fit(MODEL, BatchStream(batches), num_steps=8, seed=3)
    assert a.history["loss"] == b.history["loss"]
    assert len(ar.fit(MODEL, BatchStream(batches), epochs=2).history["loss"]) == 6

    def broken(epoch):
        yield DATA
        yield {"img": DATA["img"], "c": DATA["c"] + 5}

    with pytest.raises(ar.DataError, match=r"epoch 0, batch 1.*'c'"):
        ar.fit(MODEL, BatchStream(broken), num_steps=3)
    with pytest.raises(ar.DataError, match="no batches"):
        ar.fit(MODEL, BatchStream(lambda e: iter(())), num_steps=3)
    with pytest.raises(ar.DataError, match="validation set"):
        ar.fit(MODEL, BatchStream(batches), num_steps=3, validation=0.2)

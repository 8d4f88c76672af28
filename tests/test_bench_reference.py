"""The yardsticks of ``benchmarks/bench_reference.py`` are the model's shape: a reference
with fewer parameters (the bias-free references before 2026-12-04) does fewer FLOPs and
makes the model look slow."""

import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import bench_reference  # noqa: E402


def _size(tree) -> int:
    return sum(np.size(leaf) for leaf in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array)))


@pytest.mark.parametrize(
    "case, extra",
    [
        ("wavenet", 0),
        ("pixelcnn", 0),
        ("logistic", 0),
        ("rnn", 2 * 64),  # torch's GRU cell: a hidden bias for the r and z gates too
    ],
)
def test_reference_has_the_models_parameters(case, extra):
    params, _ = bench_reference.CASES[case][1]()
    assert _size(params) == _size(bench_reference.model_for(case, "raster")) + extra

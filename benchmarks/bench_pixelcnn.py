"""Gated PixelCNN sampling benchmark (28x28 binary image, CPU): row-cached vs naive.

The row cache computes one row of the vertical stack at the start of each image row
and the horizontal stack at one pixel per step; the naive sampler runs the full
network over all 784 pixels at every step. Both are timed on ``--steps`` steps in the
same run (interleaved medians; ``partial_sample`` from bench_wavenet runs the model's
own sampler for the first steps), naive extrapolated linearly to 784 steps, and the cached
sampler is also timed on the full image with ``model.sample_flat``. Because steps
that start a row also compute a vertical row, ``--steps`` should span whole rows
(default 56 = two rows) so the per-step cached figure is representative.

Run: ``python benchmarks/bench_pixelcnn.py`` (writes benchmarks/results/pixelcnn.{json,md}).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax

import arprob as ar

sys.path.insert(0, str(Path(__file__).parent))
from bench_wavenet import COLUMNS, bench_cached_vs_naive  # noqa: E402
from common import write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=56, help="steps timed for both samplers")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--layers", type=int, default=5)
    args = parser.parse_args()
    spec = ar.Spec(
        variables=(ar.Binary("img", shape=(28, 28)),),
        conditionals={"img": ar.PixelCNN(channels=args.channels, num_layers=args.layers, kernel_size=3)},
    )
    model = ar.compile(spec, jax.random.key(0))
    name = f"PixelCNN 28x28 p={args.channels} L={args.layers} k=3"
    row = bench_cached_vs_naive(name, model, args.batch, args.steps, args.repeats)
    table = write_results("pixelcnn", [row], COLUMNS)
    print(table)
    print(f"naive_full_s_extrapolated = naive time over {args.steps} steps x 784/{args.steps} (linear); "
          "speedup = same-run ratio over the same timed steps.")


if __name__ == "__main__":
    main()

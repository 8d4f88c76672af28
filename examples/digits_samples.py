"""An image model on 8x8 digits: fit, test NLL, and a PNG grid of its samples.

Binarized scikit-learn digits (``arprob.data.load_digits()``: pixels ``x >= 8``, fixed split
of 1400 training and 397 test images), one ``Binary("digit", shape=(8, 8))`` variable in
raster order, modelled by a gated PixelCNN (``ar.PixelCNN``, causal masked convolutions) or,
with ``--model made``, by ``ar.MADE``. Adam on the first 1200 training images, early
stopping on the last 200 (best validation NLL restored). Printed: the test NLL in nats per
image and bits per pixel, the mean NLL of the model's own samples (near the test NLL when
the samples are typical), and the path of the PNG grid of ``--num`` ancestral samples,
drawn with the helper ``arprob sample --png`` uses (``arprob.cli.files.write_image_grid``,
written atomically).

    python examples/digits_samples.py --out digits_samples.png              # PixelCNN
    python examples/digits_samples.py --model made --out made_samples.png
    python examples/digits_samples.py --quick --out /tmp/grid.png           # smoke run

Runtime on the shared, loaded 2-core development machine (``/usr/bin/time``; docs/examples.md):
61 s wall in full (PixelCNN, early stopping after 700 steps), 20 s with ``--quick``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

import arprob as ar
from arprob.cli.files import write_image_grid
from arprob.data import load_digits

MODELS = {
    "pixelcnn": lambda: ar.PixelCNN(channels=32, num_layers=4, kernel_size=3),
    "made": lambda: ar.MADE(hidden=(256,)),
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(MODELS), default="pixelcnn")
    parser.add_argument("--steps", type=int, default=3000, help="at most this many Adam steps")
    parser.add_argument("--num", type=int, default=64, help="samples in the grid")
    parser.add_argument("--out", type=Path, default=Path("digits_samples.png"), help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="40 steps, 16 samples (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.num = 40, 16
    train_all, test = load_digits()
    train, val = train_all[:-200], train_all[-200:]
    spec = ar.Spec(variables=[ar.Binary("digit", shape=(8, 8))], conditionals={"digit": MODELS[args.model]()})
    model = ar.compile(spec, jax.random.key(args.seed))
    result = ar.fit(model, {"digit": train}, num_steps=args.steps, batch_size=100, learning_rate=3e-3,
                    seed=args.seed, validation={"digit": val}, eval_every=100, patience=4, progress=False)
    model = result.model
    test_nll = float(-np.mean(np.asarray(model.log_prob({"digit": test}))))
    samples = np.asarray(model.sample(jax.random.key(args.seed + 1), args.num)["digit"])
    sample_nll = float(-np.mean(np.asarray(model.log_prob({"digit": samples}))))
    write_image_grid(args.out, samples, 2, f"{args.num} samples of {args.model} on binarized digits")
    steps = len(result.history["loss"])
    print(f"{args.model}: {steps} Adam steps; test NLL {test_nll:.2f} nats per image "
          f"({test_nll / (64 * np.log(2)):.4f} bits per pixel); mean NLL of its samples {sample_nll:.2f} nats")
    print(f"wrote {args.num} samples to {args.out}")
    return {"test_nll": test_nll, "sample_nll": sample_nll, "steps": steps, "png": str(args.out)}


if __name__ == "__main__":
    main()

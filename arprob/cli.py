"""The ``arprob`` command.

``arprob digits``: the bundled main job. Fits an independent-Bernoulli baseline, a
context-table model and an FVSBN to binarized scikit-learn digits (fixed split) and
prints test NLL in nats and bits/dim.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import jax
import numpy as np
import optax


def _digits(args: argparse.Namespace) -> int:
    import arprob as ar
    from arprob.data import load_digits

    train, test = load_digits(binarize=True, threshold=8)
    image = ar.Binary("img", shape=(8, 8))
    models = {
        "independent Bernoulli (baseline)": ar.Table(parents=(), prior=1.0),
        "context table (4 causal neighbours)": ar.Table(neighbours=((0, -1), (-1, -1), (-1, 0), (-1, 1)), prior=1.0),
        "FVSBN (logistic)": ar.Logistic(),
    }
    print(f"scikit-learn digits, binarized at x >= 8: {len(train)} train / {len(test)} test images, D = 64")
    print(f"{'model':40s} {'test NLL (nats)':>16s} {'bits/dim':>9s} {'fit (s)':>8s}")
    for name, conditional in models.items():
        spec = ar.Spec(variables=(image,), conditionals={"img": conditional})
        start = time.perf_counter()
        model = ar.compile(spec, jax.random.key(args.seed))
        model = ar.fit(
            model, {"img": train}, num_steps=args.steps, batch_size=args.batch_size, seed=args.seed,
            optimizer=optax.adam(args.learning_rate),
        ).model
        nll = -float(model.log_prob({"img": test}).mean())
        print(f"{name:40s} {nll:16.3f} {nll / (64 * math.log(2)):9.4f} {time.perf_counter() - start:8.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arprob", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("digits", help="fit baseline, table and FVSBN models to binarized digits; print test NLL")
    p.add_argument("--steps", type=int, default=3000, help="gradient steps for the FVSBN (default 3000)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_digits)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

"""The ``arprob`` command.

- ``arprob digits``: the bundled main job. Fits an independent-Bernoulli baseline, a
  context-table model and an FVSBN to binarized scikit-learn digits (fixed split) and
  prints test NLL in nats and bits/dim.
- ``arprob fit SPEC DATA --out MODEL``: compile a spec file (TOML/JSON), fit it to a
  ``.npz`` (variable name -> array) or ``.npy`` (flat layout) file, write a checkpoint.
- ``arprob score MODEL DATA``: NLL, bits/dim and per-variable shares of a data file.
- ``arprob sample MODEL -n N --out FILE.npz``: ancestral samples, written atomically.
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


def _fit(args: argparse.Namespace) -> int:
    import arprob as ar

    spec = ar.load_spec(args.spec)
    model = ar.compile(spec, jax.random.key(args.seed))
    result = ar.fit(
        model, args.data, num_steps=args.steps, batch_size=args.batch_size, seed=args.seed,
        learning_rate=args.learning_rate, validation=args.validation, checkpoint=args.out,
        checkpoint_every=args.checkpoint_every, resume=args.out if args.resume else None,
    )
    losses = result.history["loss"]
    how = f"final loss {losses[-1]:.4f} nats/example" if losses else "tables fitted by counting, no gradient steps"
    print(f"fitted {args.spec} on {args.data}: {how}; checkpoint {args.out}")
    return 0


def _score(args: argparse.Namespace) -> int:
    import arprob as ar
    from arprob.checkpoint import load_model
    from arprob.fileio import atomic_write_bytes

    model = load_model(args.model)
    result = ar.evaluate(model, args.data, batch_size=args.batch_size, return_log_prob=args.out is not None)
    print(f"{args.data}: {result.num_examples} examples, NLL {result.nll:.4f} nats, {result.bits_per_dim:.4f} bits/dim")
    print(result.table())
    if args.out is not None:
        import io

        buf = io.BytesIO()
        np.save(buf, np.asarray(result.log_prob))
        atomic_write_bytes(args.out, buf.getvalue())
    return 0


def _sample(args: argparse.Namespace) -> int:
    import io

    from arprob.checkpoint import load_model
    from arprob.fileio import atomic_write_bytes

    model = load_model(args.model)
    samples = model.sample(jax.random.key(args.seed), args.num)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in samples.items()})
    atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.num} samples of {', '.join(samples)} to {args.out}")
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

    p = sub.add_parser("fit", help="fit a spec file to a data file and write a checkpoint")
    p.add_argument("spec", help="spec file (.toml or .json)")
    p.add_argument("data", help=".npz (variable name -> array) or .npy (flat element layout)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--validation", type=float, default=None, help="fraction held out for validation")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_fit)

    p = sub.add_parser("score", help="NLL, bits/dim and per-variable shares of a data file")
    p.add_argument("model", help="checkpoint written by `arprob fit`")
    p.add_argument("data")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--out", default=None, help="write per-example log p(x) (nats) to this .npy file")
    p.set_defaults(run=_score)

    p = sub.add_parser("sample", help="draw ancestral samples into a .npz file")
    p.add_argument("model")
    p.add_argument("-n", "--num", type=int, default=16)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_sample)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as err:  # SpecError, DataError, CheckpointError, bad paths
        print(f"arprob {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

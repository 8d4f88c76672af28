"""The ``arprob`` command.

- ``arprob digits``: the bundled main job. Fits an independent-Bernoulli baseline, a
  context-table model and an FVSBN to binarized scikit-learn digits (fixed split) and
  prints test NLL in nats and bits/dim.
- ``arprob fit SPEC DATA --out MODEL``: compile a spec file (TOML/JSON), fit it to a
  ``.npz`` (variable name -> array) or ``.npy`` (flat layout) file, write a checkpoint.
- ``arprob score MODEL DATA``: NLL, bits/dim and per-variable shares of a data file.
- ``arprob sample MODEL -n N --out FILE.npz``: ancestral samples, written atomically.
- ``arprob detect MODEL CALIBRATION DATA --fpr A --out DIR``: calibrate a detector on
  in-distribution data, then per-record scores, p-values and decisions (CSV, JSON lines),
  the detector file and a PNG report (docs/ood.md).
- ``arprob purify MODEL DATA --eps E --out FILE.npz``: PixelDefend purification.
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
    if args.detection_steps > 0:
        _digits_detection(args)
    return 0


def _digits_detection(args: argparse.Namespace) -> None:
    """17-level digits: a detector on a Logistic + mixture model, a PGD attack on a
    logistic-regression classifier, and PixelDefend purification (docs/ood.md)."""
    import arprob as ar
    from arprob.data import load_digits_labelled

    start = time.perf_counter()
    (train, y_train), (test, y_test) = load_digits_labelled(binarize=False)
    fit_part, cal_part = train[:1100], train[1100:]
    spec = ar.Spec(variables=(ar.Ordinal("img", levels=17, shape=(8, 8)),),
                   conditionals={"img": ar.Logistic(head=ar.DiscretizedLogisticMixture(3))})
    model = ar.fit(ar.compile(spec, jax.random.key(args.seed)), {"img": fit_part}, num_steps=args.detection_steps,
                   batch_size=args.batch_size, seed=args.seed, optimizer=optax.adam(args.learning_rate)).model
    det = ar.ood.Detector.fit(model, {"img": cal_part}, fpr=0.05)
    clf = ar.ood.attacks.train_classifier(train, y_train, kind="logreg", levels=17, seed=args.seed)
    attacked = ar.ood.attacks.pgd(clf, test, y_test, eps=2, levels=17, seed=args.seed)
    noise = ar.ood.shifts.uniform_noise(len(test), (8, 8), 17, seed=args.seed)
    purified = np.asarray(ar.ood.purify(model, {"img": attacked}, 2)["img"])
    s_test = det.score({"img": test})
    nll_test = float(s_test.mean())
    print(f"\ndetection (17 levels, Logistic + DiscretizedLogisticMixture(3), {args.detection_steps} steps; "
          f"test NLL {nll_test:.2f} nats; calibrated on {det.num_calibration} held-out training images, fpr 0.05)")
    print(f"{'test set':40s} {'AUROC':>8s} {'flagged':>8s}")
    print(f"{'clean test digits':40s} {'-':>8s} {det.decide(scores=s_test).mean():8.1%}")
    for name, x in {"uniform noise": noise, "PGD +-2 levels on logistic regression": attacked}.items():
        s = det.score({"img": x})
        print(f"{name:40s} {ar.ood.auroc(s_test, s):8.3f} {det.decide(scores=s).mean():8.1%}")
    print(f"logistic-regression accuracy: clean {clf.accuracy(test, y_test):.3f}, attacked "
          f"{clf.accuracy(attacked, y_test):.3f}, purified (eps 2) {clf.accuracy(purified, y_test):.3f} "
          f"[{time.perf_counter() - start:.1f} s]")


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


def _data_file(path: str) -> dict[str, np.ndarray] | np.ndarray:
    from arprob.data import load_array

    return load_array(path, mmap=False)


def _detect(args: argparse.Namespace) -> int:
    import csv
    import io
    import json
    from pathlib import Path

    import arprob as ar
    from arprob.checkpoint import load_model
    from arprob.fileio import atomic_write_bytes

    model = load_model(args.model)
    correction = None if args.correction == "none" else args.correction
    background = None
    if correction == "likelihood_ratio":
        if args.background is None:
            raise ValueError("--correction likelihood_ratio needs --background BACKGROUND.ckpt")
        background = load_model(args.background)
    det = ar.ood.Detector.fit(
        model, args.calibration, fpr=args.fpr, two_sided=args.two_sided, correction=correction, background=background,
        batch_size=args.batch_size, model_path=Path(args.model).resolve(),
        background_path=None if args.background is None else Path(args.background).resolve(),
    )
    result = det.detect(args.data)
    out = Path(args.out)
    rows = result.rows()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "scores.csv", buf.getvalue().encode())
    atomic_write_bytes(out / "scores.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    det.save(out / "detector.arprob")
    summary = {
        "model": str(args.model), "calibration": str(args.calibration), "data": str(args.data),
        "correction": args.correction, "two_sided": args.two_sided, "fpr": args.fpr, "threshold": det.threshold,
        "num_calibration": det.num_calibration, "num_records": len(rows), "num_flagged": int(result.flagged.sum()),
    }
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())
    pictures = _detect_pictures(model, det, result, args.data, out) if not args.no_plots else []
    print(
        f"{args.data}: {summary['num_flagged']} of {len(rows)} records flagged at fpr={args.fpr} "
        f"(calibrated on {det.num_calibration} records of {args.calibration}; threshold {det.threshold:.4g}, "
        f"score = {args.correction}); wrote {out}/scores.csv, scores.jsonl, summary.json, detector.arprob"
        + "".join(f", {p}" for p in pictures)
    )
    return 0


def _detect_pictures(model, det, result, data, out) -> list[str]:
    """Score histogram and, for image variables, surprisal maps of the most anomalous records."""
    import arprob as ar

    try:
        ar.ood.plots.plot_score_histograms(det.calibration, {"data": result.scores}, out / "scores.png",
                                           threshold=det.threshold, title="calibration vs data scores")
    except ImportError as err:
        print(f"arprob detect: no PNG report ({err})", file=sys.stderr)
        return []
    names = ["scores.png"]
    worst = np.argsort(-result.scores)[:8]
    x = np.asarray(model.to_flat(_data_file(data) if isinstance(data, str) else data))[worst]
    surprisal = ar.ood.surprisal(model, x)
    for var in model.spec.variables:
        if len(var.shape) in (2, 3):
            name = f"surprisal_{var.name}.png"
            ar.ood.plots.plot_surprisal_maps(surprisal.maps[var.name], out / name,
                                             images=model.to_dict(x)[var.name] if len(var.shape) == 2 else None,
                                             title=f"{var.name}: bits per element, most anomalous records")
            names.append(name)
    return names


def _purify(args: argparse.Namespace) -> int:
    import io

    import arprob as ar
    from arprob.checkpoint import load_model
    from arprob.fileio import atomic_write_bytes

    model = load_model(args.model)
    data = _data_file(args.data)
    context = None
    if isinstance(data, dict) and "context" in data and "context" not in {v.name for v in model.spec.variables}:
        data = dict(data)
        context = data.pop("context")
    eps = float(args.eps) if args.eps != int(args.eps) else int(args.eps)
    purified = ar.ood.purify(
        model, data, eps, context, surprisal_threshold_bits=args.surprisal_threshold, temperature=args.temperature,
        key=jax.random.key(args.seed), batch_size=args.batch_size,
    )
    before = np.asarray(model.log_prob(data, context))
    after = np.asarray(model.log_prob(purified, context))
    changed = int((np.asarray(model.to_flat(purified)) != np.asarray(model.to_flat(data))).sum())
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in purified.items()})
    atomic_write_bytes(args.out, buf.getvalue())
    print(
        f"purified {len(before)} records of {args.data} within eps={args.eps}: {changed} elements changed; "
        f"mean NLL {-before.mean():.4f} -> {-after.mean():.4f} nats; wrote {args.out}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arprob", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("digits", help="fit baseline, table and FVSBN models to binarized digits; print test NLL")
    p.add_argument("--steps", type=int, default=3000, help="gradient steps for the FVSBN (default 3000)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detection-steps", type=int, default=1500,
                   help="gradient steps of the 17-level model of the detection section (0 skips it)")
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

    p = sub.add_parser("detect", help="calibrate a detector, then score, p-value and flag every record of a data file")
    p.add_argument("model", help="checkpoint written by `arprob fit`")
    p.add_argument("calibration", help="in-distribution records held out from training (.npz/.npy)")
    p.add_argument("data", help="records to test (.npz/.npy)")
    p.add_argument("--fpr", type=float, default=0.05, help="target false-positive rate (default 0.05)")
    p.add_argument("--correction", choices=("none", "likelihood_ratio", "complexity"), default="none")
    p.add_argument("--background", default=None, help="background checkpoint (likelihood_ratio)")
    p.add_argument("--two-sided", action="store_true", help="also flag records that are too likely")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG report")
    p.add_argument("--out", required=True, help="report folder")
    p.set_defaults(run=_detect)

    p = sub.add_parser("purify", help="PixelDefend purification inside an eps-ball, into a .npz file")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--eps", type=float, required=True, help="radius in levels")
    p.add_argument("--surprisal-threshold", type=float, default=None, help="purify only elements costing more bits")
    p.add_argument("--temperature", type=float, default=None, help="sample in the box at this temperature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", required=True)
    p.set_defaults(run=_purify)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError) as err:  # SpecError, DataError, CheckpointError, bad paths
        print(f"arprob {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``arprob detect`` and ``arprob purify`` (docs/ood.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

import arprob as ar

from ..errors import DataError
from .files import load_checkpoint_model, load_data, write_bytes, write_npz, write_rows


def _labels(path: str, n: int) -> np.ndarray:
    """0/1 per record (1 = anomalous) from a ``.npy`` or a one-column ``.csv`` (header optional)."""
    from ..data import load_array
    from ..fileio import read_regular_bytes

    if path.endswith(".npy"):
        y = np.asarray(load_array(path, mmap=False)).reshape(-1)
    elif path.endswith(".csv"):
        from ..budget import memory_budget

        lines = read_regular_bytes(path, max(1, memory_budget() // 64), "--labels", DataError).decode(
            "utf-8-sig", errors="replace").split()
        if lines and not lines[0].strip().lstrip("-").replace(".", "", 1).isdigit():
            lines = lines[1:]  # a header
        try:
            y = np.array([float(t) for t in lines])
        except ValueError as err:
            raise DataError(f"--labels {path!r}: {err}") from None
    else:
        raise DataError(f"--labels {path!r}: expected a .npy or .csv file.")
    if y.shape != (n,) or not np.isin(y, (0, 1)).all():
        raise DataError(f"--labels {path!r}: expected {n} values, each 0 (normal) or 1 (anomalous); got {y.size} "
                        f"values{'' if np.isin(y, (0, 1)).all() else ' with others than 0 and 1'}.")
    return y.astype(bool)


def detect(args: argparse.Namespace) -> int:
    """Calibrate on ``args.calibration``, then score, p-value and flag ``args.data``; the
    report folder is built beside ``--out`` and renamed into place (all or nothing)."""
    from ..fileio import atomic_folder, check_output_path

    out = Path(args.out)
    check_output_path(out, "--out", folder=True, force=args.force)  # before any work
    model = load_checkpoint_model(args.model)
    correction = None if args.correction == "none" else args.correction
    background = None
    if correction == "likelihood_ratio" and args.background is None:
        raise ValueError("--correction likelihood_ratio needs --background BACKGROUND.ckpt")
    if correction in ("likelihood_ratio", "fused") and args.background is not None:
        background = load_checkpoint_model(args.background)
    det = ar.ood.Detector.fit(
        model, args.calibration, fpr=args.fpr, two_sided=args.two_sided, correction=correction, background=background,
        batch_size=args.batch_size, model_path=Path(args.model).resolve(),
        background_path=None if args.background is None else Path(args.background).resolve(),
    )
    result = det.detect(args.data)
    rows = result.rows()
    labels = None if args.labels is None else _labels(args.labels, len(rows))
    summary = {
        "model": str(args.model), "calibration": str(args.calibration), "data": str(args.data),
        "correction": args.correction, "two_sided": args.two_sided, "fpr": args.fpr, "threshold": det.threshold,
        "num_calibration": det.num_calibration, "num_records": len(rows), "num_flagged": int(result.flagged.sum()),
    }
    if args.two_sided:
        summary["lower_threshold"] = _lower_threshold(det)
    if labels is not None and labels.any() and (~labels).any():
        summary["auroc"] = float(ar.ood.auroc(result.scores[~labels], result.scores[labels]))
    with atomic_folder(out, force=args.force) as tmp:
        write_rows(tmp / "scores.csv", rows)
        write_rows(tmp / "scores.jsonl", rows)
        det.save(tmp / "detector.arprob")
        write_bytes(tmp / "summary.json", json.dumps(summary, indent=2).encode())
        pictures = _detect_pictures(model, det, result, args.data, tmp, labels, summary) if not args.no_plots else []
    auroc = f"; AUROC {summary['auroc']:.3f} against --labels" if "auroc" in summary else ""
    print(
        f"{args.data}: {summary['num_flagged']} of {len(rows)} records flagged at fpr={args.fpr} "
        f"(calibrated on {det.num_calibration} records of {args.calibration}; threshold {det.threshold:.4g}, "
        f"score = {args.correction}{auroc}); wrote {out}/scores.csv, scores.jsonl, summary.json, detector.arprob"
        + "".join(f", {p}" for p in pictures)
    )
    return 0


def _lower_threshold(det) -> float:
    """The lower threshold of a two-sided test: the ``k``-th smallest calibration score,
    ``k = floor(fpr / 2 (N + 1))`` (mirror of ``Detector.threshold``)."""
    cal = np.sort(np.asarray(det.calibration, np.float64))
    k = max(1, int(np.floor(det.fpr / 2 * (cal.size + 1))))
    return float(cal[min(k, cal.size) - 1])


def _detect_pictures(model, det, result, data, out, labels, summary) -> list[str]:
    """Score histogram (AUROC only with labels; both thresholds when two-sided) and, for
    image variables, surprisal maps (nats, as scores.csv) of the most anomalous records,
    ranked and labelled by the detector's score."""
    thresholds = (summary["lower_threshold"], det.threshold) if det.two_sided else det.threshold
    if labels is None:
        sets = {"data (unlabelled)": result.scores}
    else:
        sets = {"data labelled normal": result.scores[~labels], "data labelled anomalous": result.scores[labels]}
    title = "calibration vs data scores" + (f" (AUROC {summary['auroc']:.3f} from --labels)" if "auroc" in summary else "")
    try:
        ar.ood.plots.plot_score_histograms(det.calibration, sets, out / "scores.png", threshold=thresholds,
                                           title=title, show_auroc=False, in_label="calibration")
    except ImportError as err:
        print(f"arprob detect: no PNG report ({err})", file=sys.stderr)
        return []
    names = ["scores.png"]
    worst = np.argsort(-result.scores, kind="stable")[:8]
    x = np.asarray(model.to_flat(load_data(model.spec, data)[0]))[worst]
    surprisal = ar.ood.surprisal(model, x)
    for var in model.spec.variables:
        if len(var.shape) in (2, 3):
            name = f"surprisal_{var.name}.png"
            ar.ood.plots.plot_surprisal_maps(
                surprisal.maps[var.name], out / name, images=model.to_dict(x)[var.name], levels=var.num_values,
                titles=[f"record {i}, score {result.scores[i]:.4g}" for i in worst], unit="nats",
                title=f"{var.name}: nats per element of the records with the highest scores")
            names.append(name)
    return names


def purify(args: argparse.Namespace) -> int:
    """PixelDefend purification of ``args.data`` into ``args.out`` (.npz)."""
    if not str(args.out).endswith(".npz"):
        raise ValueError(f"--out {args.out}: expected a .npz file name.")
    from ..fileio import check_output_path

    check_output_path(args.out, "--out", force=args.force)
    model = load_checkpoint_model(args.model)
    data, context = load_data(model.spec, args.data)
    eps = float(args.eps) if args.eps != int(args.eps) else int(args.eps)
    purified = ar.ood.purify(
        model, data, eps, context, surprisal_threshold_bits=args.surprisal_threshold, temperature=args.temperature,
        key=jax.random.key(args.seed), batch_size=args.batch_size,
    )
    before = np.asarray(model.log_prob(data, context))
    after = np.asarray(model.log_prob(purified, context))
    changed = int((np.asarray(model.to_flat(purified)) != np.asarray(model.to_flat(data))).sum())
    write_npz(args.out, purified)
    print(
        f"purified {len(before)} records of {args.data} within eps={args.eps}: {changed} elements changed; "
        f"mean NLL {-before.mean():.4f} -> {-after.mean():.4f} nats; wrote {args.out}"
    )
    return 0

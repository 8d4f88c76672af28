"""``arprob detect`` and ``arprob purify`` (docs/ood.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

import arprob as ar

from .files import load_checkpoint_model, load_data, write_bytes, write_npz, write_rows


def detect(args: argparse.Namespace) -> int:
    """Calibrate on ``args.calibration``, then score, p-value and flag ``args.data``."""
    model = load_checkpoint_model(args.model)
    correction = None if args.correction == "none" else args.correction
    background = None
    if correction == "likelihood_ratio":
        if args.background is None:
            raise ValueError("--correction likelihood_ratio needs --background BACKGROUND.ckpt")
        background = load_checkpoint_model(args.background)
    det = ar.ood.Detector.fit(
        model, args.calibration, fpr=args.fpr, two_sided=args.two_sided, correction=correction, background=background,
        batch_size=args.batch_size, model_path=Path(args.model).resolve(),
        background_path=None if args.background is None else Path(args.background).resolve(),
    )
    result = det.detect(args.data)
    out = Path(args.out)
    rows = result.rows()
    write_rows(out / "scores.csv", rows)
    write_rows(out / "scores.jsonl", rows)
    det.save(out / "detector.arprob")
    summary = {
        "model": str(args.model), "calibration": str(args.calibration), "data": str(args.data),
        "correction": args.correction, "two_sided": args.two_sided, "fpr": args.fpr, "threshold": det.threshold,
        "num_calibration": det.num_calibration, "num_records": len(rows), "num_flagged": int(result.flagged.sum()),
    }
    write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())
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
    try:
        ar.ood.plots.plot_score_histograms(det.calibration, {"data": result.scores}, out / "scores.png",
                                           threshold=det.threshold, title="calibration vs data scores")
    except ImportError as err:
        print(f"arprob detect: no PNG report ({err})", file=sys.stderr)
        return []
    names = ["scores.png"]
    worst = np.argsort(-result.scores)[:8]
    x = np.asarray(model.to_flat(load_data(model.spec, data)[0]))[worst]
    surprisal = ar.ood.surprisal(model, x)
    for var in model.spec.variables:
        if len(var.shape) in (2, 3):
            name = f"surprisal_{var.name}.png"
            ar.ood.plots.plot_surprisal_maps(surprisal.maps[var.name], out / name,
                                             images=model.to_dict(x)[var.name] if len(var.shape) == 2 else None,
                                             title=f"{var.name}: bits per element, most anomalous records")
            names.append(name)
    return names


def purify(args: argparse.Namespace) -> int:
    """PixelDefend purification of ``args.data`` into ``args.out`` (.npz)."""
    if not str(args.out).endswith(".npz"):
        raise ValueError(f"--out {args.out}: expected a .npz file name.")
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

"""``arprob auto``: fit an ``ar.ood.AutoDetector`` to records, or reuse a saved one, and write
a report folder (docs/cli.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..fileio import atomic_folder
from ..ood import AutoDetector, benjamini_hochberg
from ..records import read_records
from .files import write_bytes, write_rows


def parse_kinds(text: str | None) -> dict[str, str] | None:
    """``"age=real,zip=categorical"`` -> ``{"age": "real", "zip": "categorical"}``."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, sep, kind = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected COLUMN=KIND pairs, got {item!r}")
        out[name.strip()] = kind.strip()
    return out


def run(args: argparse.Namespace) -> int:
    """Fit (or load) the detector, score TEST, write scores, p-values, BH flags and explanations."""
    if args.detector is None:
        if len(args.files) != 2:
            raise ValueError("expected TRAIN TEST (or --detector FILE TEST)")
        train, test = args.files
        det = AutoDetector(contamination=args.contamination, time_budget=args.time_budget, kinds=args.kinds,
                           random_state=args.seed).fit(read_records(train))
    else:
        if len(args.files) != 1:
            raise ValueError("with --detector, expected one data file: TEST")
        train, test = None, args.files[0]
        det = AutoDetector.load(args.detector)
    data = read_records(test)
    scores = det.decision_function(data)
    p = det.p_values(data)
    flags = benjamini_hochberg(p, args.fdr)
    why = det.explain(data)
    rows = []
    for i, (s, pv, f) in enumerate(zip(scores, p, flags)):
        row = {"index": i, "score_nats": float(s), "p_value": float(pv), "flagged": bool(f),
               "unseen": ";".join(why.unseen[i])}
        for rank, (column, nats) in enumerate(why.top(i, 3), start=1):
            row[f"column_{rank}"], row[f"nats_{rank}"] = column, float(nats)
        rows.append(row)
    summary = {
        "train": train, "detector": args.detector, "data": test, "fdr": args.fdr, "num_records": len(rows),
        "num_flagged": int(flags.sum()), "threshold": det.threshold_, "chosen": det.chosen_,
        "columns": {c.name: c.kind for c in det.schema_}, "candidates": det.report_["candidates"],
        "num_calibration": int(det.calibration_.size),
    }
    with atomic_folder(args.out, force=args.force) as tmp:
        write_rows(tmp / "scores.csv", rows)
        write_rows(tmp / "scores.jsonl", rows)
        write_bytes(tmp / "summary.json", json.dumps(summary, indent=2, default=float).encode())
        det.save(tmp / "detector.arprob")
    if train is not None:
        print("columns: " + ", ".join(f"{c.name} ({c.kind})" for c in det.schema_))
        print(det.report_table())
    print(f"chosen model: {det.chosen_}; calibration: {det.calibration_.size} out-of-fold training scores")
    top = np.argsort(-scores, kind="mergesort")[: min(5, int(flags.sum()))]
    for i in top:
        cols = ", ".join(f"{c} {v:.1f}" for c, v in why.top(int(i), 3))
        print(f"  record {i}: score {scores[i]:.2f} nats, p = {p[i]:.4f}, top columns: {cols}")
    print(f"{test}: {int(flags.sum())} of {len(rows)} records flagged at FDR {args.fdr} (Benjamini-Hochberg); "
          f"wrote {Path(args.out)}/scores.csv, scores.jsonl, summary.json, detector.arprob")
    return 0

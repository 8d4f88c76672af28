"""arprob: fit, score, sample, inspect and check autoregressive models from the shell.

    arprob digits                                      the bundled main job
    arprob fit SPEC DATA --out MODEL                   compile a spec file, fit it, write a checkpoint
    arprob score MODEL DATA [--out FILE]               NLL, bits/dim, per-variable shares (.npy/.csv/.jsonl)
    arprob sample MODEL -n N --out FILE [--png GRID]   ancestral samples (.npz or .csv), a PNG grid of images
    arprob inspect SPEC|MODEL                          variables, ordering, partition, step maps, parameters
    arprob detect MODEL CALIBRATION DATA --out DIR     scores, p-values, decisions and a PNG report
    arprob purify MODEL DATA --eps E --out FILE        PixelDefend purification
    arprob auto TRAIN TEST --out DIR [--fdr Q]         automatic detector: chooses its model, flags at an FDR

Exit status: 0 on success, 2 on bad usage or bad input (one line on stderr; ``--debug``
shows the traceback), 130/143 when ``fit`` was stopped by Ctrl-C/SIGTERM (its checkpoint
is written first).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Sequence

EXAMPLES = {
    "digits": "arprob digits --steps 3000",
    "fit": "arprob fit model.toml train.npz --out model.ckpt --steps 2000 --validation 0.1 --patience 5",
    "score": "arprob score model.ckpt test.npz --out per_record.csv",
    "sample": "arprob sample model.ckpt -n 16 --out samples.npz --png samples.png",
    "inspect": "arprob inspect model.toml",
    "detect": "arprob detect model.ckpt calibration.npz test.npz --fpr 0.05 --correction complexity --out report/",
    "purify": "arprob purify model.ckpt attacked.npz --eps 2 --out purified.npz",
    "auto": "arprob auto train.csv test.csv --fdr 0.1 --out report/ ; arprob auto --detector report/detector.arprob "
            "new.csv --out report2/",
}


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit 2 (not argparse's usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(convert, ok, expected: str):
    """An argparse type: ``convert(text)``, refused unless ``ok(value)`` (NaN and inf never are)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not (ok(value) and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_fraction = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")
_non_negative_float = _number(float, lambda v: v >= 0, "a finite number >= 0")


def _command(sub, name: str, run: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help, epilog=f"example: {EXAMPLES[name]}",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.set_defaults(run=run)
    return p


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from ..train import DEFAULT_LEARNING_RATE

    parser = _Parser(prog="arprob", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="\n".join(line for line in __doc__.split("\n\n")[1].splitlines()))
    parser.add_argument("--version", action="version", version=f"arprob {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = _command(sub, "digits", "digits:run", "fit baseline, table and FVSBN models to binarized digits, then detect")
    p.add_argument("--steps", type=_positive_int, default=3000, help="gradient updates of the FVSBN")
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--learning-rate", type=_positive_float, default=DEFAULT_LEARNING_RATE,
                   help="Adam step size (default: %(default)s, arprob.fit's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detection-steps", type=_non_negative_int, default=1500,
                   help="gradient updates of the 17-level model of the detection section (0 skips it)")

    p = _command(sub, "fit", "model_jobs:fit", "fit a spec file to a data file and write a checkpoint")
    p.add_argument("spec", help="spec file (.toml or .json)")
    p.add_argument("data", help=".npz (variable name -> array) or .npy (flat element layout)")
    p.add_argument("--out", required=True, help="checkpoint file to write")
    p.add_argument("--steps", type=_positive_int, default=1000, help="gradient updates (ignored with --epochs)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="passes over the data instead of --steps")
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--learning-rate", type=_positive_float, default=DEFAULT_LEARNING_RATE,
                   help="Adam step size (default: %(default)s, arprob.fit's)")
    p.add_argument("--weight-decay", type=_non_negative_float, default=None,
                   help="decoupled weight decay (AdamW) on weight matrices; dropout is declared in the spec")
    p.add_argument("--validation", type=_fraction, default=None, help="fraction held out for validation")
    p.add_argument("--patience", type=_positive_int, default=None, help="early stopping (needs --validation)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=500)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    group.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--seed", type=int, default=0)

    p = _command(sub, "score", "model_jobs:score", "NLL, bits/dim and per-variable shares of a data file")
    p.add_argument("model", help="checkpoint written by `arprob fit`")
    p.add_argument("data")
    p.add_argument("--batch-size", type=_positive_int, default=1024)
    p.add_argument("--out", default=None,
                   help="per-record results: .npy (log p(x)), .csv or .jsonl (log p, bits/dim, nats per variable)")

    p = _command(sub, "sample", "model_jobs:sample", "draw ancestral samples")
    p.add_argument("model")
    p.add_argument("-n", "--num", type=_positive_int, default=16)
    p.add_argument("--out", required=True, help=".npz, or .csv for models of scalar variables")
    p.add_argument("--png", default=None, help="also draw the first image variable's samples as a PNG grid")
    p.add_argument("--seed", type=int, default=0)

    p = _command(sub, "inspect", "model_jobs:inspect", "describe a spec file or a checkpoint")
    p.add_argument("path", help="spec file (.toml/.json) or checkpoint")

    p = _command(sub, "detect", "detection:detect",
                 "calibrate a detector, then score, p-value and flag every record of a data file")
    p.add_argument("model", help="checkpoint written by `arprob fit`")
    p.add_argument("calibration", help="in-distribution records held out from training (.npz/.npy)")
    p.add_argument("data", help="records to test (.npz/.npy)")
    p.add_argument("--fpr", type=_fraction, default=0.05, help="target false-positive rate")
    p.add_argument("--correction", choices=("none", "likelihood_ratio", "complexity"), default="none")
    p.add_argument("--background", default=None, help="background checkpoint (likelihood_ratio)")
    p.add_argument("--two-sided", action="store_true", help="also flag records that are too likely")
    p.add_argument("--batch-size", type=_positive_int, default=1024)
    p.add_argument("--no-plots", action="store_true", help="skip the PNG report")
    p.add_argument("--out", required=True, help="report folder")

    p = _command(sub, "purify", "detection:purify", "PixelDefend purification inside an eps-ball, into a .npz file")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--eps", type=_non_negative_float, required=True, help="radius in levels")
    p.add_argument("--surprisal-threshold", type=float, default=None, help="purify only elements costing more bits")
    p.add_argument("--temperature", type=_positive_float, default=None, help="sample in the box at this temperature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--out", required=True)

    from .auto_detect import parse_kinds

    p = _command(sub, "auto", "auto_detect:run",
                 "fit an automatic detector to TRAIN (or load one), then score, p-value, flag and explain TEST")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="TRAIN TEST, or TEST with --detector: a .csv with a header (column kinds inferred), "
                        ".npy, .npz or a folder of .png images")
    p.add_argument("--detector", default=None, help="reuse a detector saved by an earlier run (its detector.arprob)")
    p.add_argument("--fdr", type=_fraction, default=0.1, help="false discovery rate of the flags (Benjamini-Hochberg)")
    p.add_argument("--contamination", type=_number(float, lambda v: 0 < v <= 0.5, "a number in (0, 0.5]"),
                   default=0.1, help="expected outlier fraction in TRAIN (PyOD's threshold_, in summary.json)")
    p.add_argument("--time-budget", type=_positive_float, default=None,
                   help="seconds for choosing the model (default: 1 s + 1 s per 10,000 cells, at most 8 s)")
    p.add_argument("--kinds", type=parse_kinds, default=None,
                   help="override inferred column kinds: COLUMN=real|categorical|ordinal,...")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and orderings")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--out", required=True, help="report folder (required; written whole or not at all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module, function = args.run.split(":")
    try:
        run = getattr(importlib.import_module(f"{__name__}.{module}"), function)
        return run(args)
    except (ValueError, OSError, ImportError) as err:  # SpecError, DataError, CheckpointError, bad paths
        if args.debug:
            raise
        message = " ".join(str(err).split())  # one line
        print(f"arprob {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"arprob {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

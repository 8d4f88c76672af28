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
shows the traceback), 130 on Ctrl-C (any job, even while JAX imports; ``fit`` writes its
checkpoint first, and 143 on SIGTERM), 1 for a bug in arprob (one line; please report it).
Data files: .npz, .npy, .csv or a folder of .png images; spec files: .toml, .json, .yaml.
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


def _number(convert, ok, expected: str, hint: str = ""):
    """An argparse type: ``convert(text)``, refused unless ``ok(value)`` (NaN and inf never are)."""

    def parse(text: str):
        large = False
        try:
            value = convert(text)
            large = value > 0
            good = ok(value) and math.isfinite(value)
        except (ValueError, OverflowError):  # OverflowError: an integer too large for a float
            good = False
        if not good:
            raise argparse.ArgumentTypeError(
                f"expected {expected}, got {text[:40]!r}{'...' if len(text) > 40 else ''}{hint if large else ''}")
        return value

    return parse


#: the largest count an option takes (updates, records, batch sizes): beyond it no run ends
MAX_COUNT = 2**40
#: seeds are the 64-bit integers JAX's ``random.key`` and NumPy's generators both take
MAX_SEED = 2**63 - 1

_positive_int = _number(int, lambda v: 1 <= v <= MAX_COUNT, "a positive integer", " (at most 2**40)")
_non_negative_int = _number(int, lambda v: 0 <= v <= MAX_COUNT, "an integer >= 0", " (at most 2**40)")
_seed = _number(int, lambda v: 0 <= v <= MAX_SEED, "an integer in 0..2**63-1")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_fraction = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")
_non_negative_float = _number(float, lambda v: v >= 0, "a finite number >= 0")
_finite_float = _number(float, lambda v: True, "a finite number")
_radius = _number(float, lambda v: 0 <= v <= 2**31, "a finite number >= 0", " (at most 2**31 levels)")

#: what a data argument accepts
DATA_FORMATS = ".npz (variable name -> array), .npy (flat (N, D) element layout), .csv (header row of variable names) " \
               "or a folder of .png images"


class _HelpFormatter(argparse.HelpFormatter):
    """Every option shows ``(required)`` or its default (``ArgumentDefaultsHelpFormatter``
    shows ``(default: None)`` for required options and none for options without help)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "(default:" in text or not action.option_strings:
            return text
        if action.required:
            return f"{text} (required)".strip()
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._VersionAction,
                               argparse._HelpAction)):
            return text
        return f"{text} (default: %(default)s)".strip()


def _command(sub, name: str, run: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help, epilog=f"example: {EXAMPLES[name]}",
                       formatter_class=_HelpFormatter)
    p.set_defaults(run=run)
    return p


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from ..train import DEFAULT_LEARNING_RATE
    from .model_jobs import FIT_DEFAULTS

    parser = _Parser(prog="arprob", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="\n".join(line for line in __doc__.split("\n\n")[1].splitlines()))
    parser.add_argument("--version", action="version", version=f"arprob {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = _command(sub, "digits", "digits:run", "fit baseline, table and FVSBN models to binarized digits, then detect")
    p.add_argument("--steps", type=_positive_int, default=3000, help="gradient updates of the FVSBN")
    p.add_argument("--batch-size", type=_positive_int, default=128, help="records per gradient update")
    p.add_argument("--learning-rate", type=_positive_float, default=DEFAULT_LEARNING_RATE,
                   help="Adam step size (default: %(default)s, arprob.fit's)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of initialisation and batch order")
    p.add_argument("--detection-steps", type=_non_negative_int, default=1500,
                   help="gradient updates of the 17-level model of the detection section (0 skips it)")

    p = _command(sub, "fit", "model_jobs:fit", "fit a spec file to a data file and write a checkpoint")
    p.add_argument("spec", help="spec file (.toml, .json, .yaml or .yml)")
    p.add_argument("data", help=DATA_FORMATS)
    p.add_argument("--out", required=True, help="checkpoint file to write")
    # Training settings default to None: `--resume` continues with the checkpoint's own
    # settings unless one is given explicitly (the defaults shown are those of a new run).
    p.add_argument("--steps", type=_positive_int, default=None,
                   help=f"gradient updates (ignored with --epochs) (default: {FIT_DEFAULTS['steps']})")
    p.add_argument("--epochs", type=_positive_int, default=None, help="passes over the data instead of --steps")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"records per update (default: {FIT_DEFAULTS['batch_size']})")
    p.add_argument("--learning-rate", type=_positive_float, default=None,
                   help=f"Adam step size (default: {DEFAULT_LEARNING_RATE}, arprob.fit's)")
    p.add_argument("--clip-norm", type=_positive_float, default=None,
                   help="clip gradients to this global norm (a remedy for a diverging fit)")
    p.add_argument("--weight-decay", type=_non_negative_float, default=None,
                   help="decoupled weight decay (AdamW) on weight matrices; dropout is declared in the spec")
    p.add_argument("--validation", type=_fraction, default=None, help="fraction held out for validation")
    p.add_argument("--patience", type=_positive_int, default=None, help="early stopping (needs --validation)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=None,
                   help=f"updates between checkpoints (default: {FIT_DEFAULTS['checkpoint_every']})")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the run stored in --out with its own settings (options given override them)")
    group.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--seed", type=_seed, default=None,
                   help=f"seed of initialisation, batch order and validation split (default: {FIT_DEFAULTS['seed']})")

    p = _command(sub, "score", "model_jobs:score", "NLL, bits/dim and per-variable shares of a data file")
    p.add_argument("model", help="checkpoint written by `arprob fit`")
    p.add_argument("data", help=DATA_FORMATS)
    p.add_argument("--batch-size", type=_positive_int, default=1024, help="records per compiled call")
    p.add_argument("--out", default=None,
                   help="per-record results: .npy (log p(x)), .csv or .jsonl (log p, bits/dim, nats per variable)")

    p = _command(sub, "sample", "model_jobs:sample", "draw ancestral samples")
    p.add_argument("model", help="checkpoint written by `arprob fit`")
    p.add_argument("-n", "--num", type=_positive_int, default=16, help="number of samples")
    p.add_argument("--out", required=True, help=".npz, or .csv for models of scalar variables")
    p.add_argument("--png", default=None, help="also draw the first image variable's samples as a PNG grid")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the samples")

    p = _command(sub, "inspect", "model_jobs:inspect", "describe a spec file or a checkpoint")
    p.add_argument("path", help="spec file (.toml, .json, .yaml, .yml) or checkpoint")

    p = _command(sub, "detect", "detection:detect",
                 "calibrate a detector, then score, p-value and flag every record of a data file")
    p.add_argument("model", help="checkpoint written by `arprob fit`")
    p.add_argument("calibration", help=f"in-distribution records held out from training: {DATA_FORMATS}")
    p.add_argument("data", help=f"records to test: {DATA_FORMATS}")
    p.add_argument("--fpr", type=_fraction, default=0.05, help="target false-positive rate")
    p.add_argument("--correction", choices=("none", "likelihood_ratio", "complexity", "fused"), default="none",
                   help="score correction (fused: NLL, complexity and, with --background, the likelihood ratio; "
                        "docs/ood.md)")
    p.add_argument("--background", default=None,
                   help="background checkpoint (needed by likelihood_ratio, optional for fused)")
    p.add_argument("--two-sided", action="store_true", help="also flag records that are too likely")
    p.add_argument("--labels", default=None,
                   help=".npy or .csv of 0/1 per record of DATA (1 = anomalous): the report then shows the AUROC")
    p.add_argument("--batch-size", type=_positive_int, default=1024, help="records per compiled call")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG report")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--out", required=True, help="report folder (written whole or not at all)")

    p = _command(sub, "purify", "detection:purify", "PixelDefend purification inside an eps-ball, into a .npz file")
    p.add_argument("model", help="checkpoint written by `arprob fit`")
    p.add_argument("data", help=DATA_FORMATS)
    p.add_argument("--eps", type=_radius, required=True,
                   help="radius in levels (ordered variables only; Categorical elements are kept)")
    p.add_argument("--surprisal-threshold", type=_finite_float, default=None,
                   help="purify only elements costing more bits than this")
    p.add_argument("--temperature", type=_positive_float, default=None,
                   help="sample in the box at this temperature instead of taking the most likely level")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the temperature sampling")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="records per compiled call")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--out", required=True, help=".npz file to write")

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
                   help="seconds for choosing the model (default: 1 s + 1 s per 10,000 cells, at most 6 s)")
    p.add_argument("--kinds", type=parse_kinds, default=None,
                   help="override inferred column kinds: COLUMN=real|categorical|ordinal,...")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and orderings")
    p.add_argument("--force", action="store_true", help="replace an existing --out folder")
    p.add_argument("--out", required=True, help="report folder (written whole or not at all)")
    return parser


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _message(err: BaseException) -> str | None:
    """The one-line message of an error caused by the input or the machine (exit 2), or None
    for anything else (a bug: exit 1)."""
    from ..errors import ArprobError

    name = type(err).__name__
    if name == "NonFiniteLossError":  # arprob.train, without importing it here
        return (f"{_one_line(err)} From the shell: a smaller --learning-rate, or --clip-norm 1.0 "
                "(gradients clipped to global norm 1).")
    if isinstance(err, (ArprobError, ValueError, OSError, ImportError, OverflowError)):
        return _one_line(err)
    if isinstance(err, MemoryError):
        return (f"out of memory ({_one_line(err)}); lower --batch-size or set ARPROB_MEMORY_BUDGET to what this "
                "machine can give")
    if "RESOURCE_EXHAUSTED" in str(err)[:2000]:  # XLA could not allocate
        return (f"the device ran out of memory ({_one_line(err)[:300]}); lower --batch-size or -n, or set "
                "ARPROB_MEMORY_BUDGET")
    if isinstance(err, RecursionError):
        return f"input nested too deeply ({_one_line(err)})"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one job; returns the exit status (0, 2 bad input, 130 Ctrl-C, 1 a bug: one line each)."""
    from .._interrupt import restore

    restore()  # Ctrl-C is a KeyboardInterrupt again (during the imports it exited at once)
    args = None
    try:
        args = build_parser().parse_args(argv)  # imports arprob (and JAX): Ctrl-C here is one line too
        module, function = args.run.split(":")
        run = getattr(importlib.import_module(f"{__name__}.{module}"), function)
        return run(args)
    except KeyboardInterrupt:
        if args is not None and args.debug:
            raise
        print(f"arprob{'' if args is None else ' ' + args.command}: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except Exception as err:  # every error is one line; --debug shows the traceback
        if args is None or args.debug:
            raise
        message = _message(err)
        if message is None:
            print(f"arprob {args.command}: internal error ({type(err).__name__}: {_one_line(err)[:500]}); "
                  "rerun with --debug for the traceback and report it", file=sys.stderr)
            return 1
        print(f"arprob {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``arprob fit``, ``score``, ``sample`` and ``inspect``."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import warnings
from pathlib import Path

import jax
import numpy as np

import arprob as ar

from ..data import as_source
from ..model import flat_log_prob_terms
from .files import (
    SPEC_SUFFIXES,
    check_spec_path,
    is_checkpoint,
    load_checkpoint_model,
    write_image_grid,
    write_npy,
    write_npz,
    write_rows,
)

#: exit codes of an interrupted ``fit`` (128 + signal number, as shells report them)
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


class _StopOnSignal:
    """A ``fit`` callback: the first Ctrl-C or SIGTERM asks ``fit`` to stop after the current
    step (it then writes its checkpoint); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous = {}

    def __enter__(self) -> "_StopOnSignal":
        for sig in EXIT_INTERRUPTED:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __call__(self, info) -> bool:
        return self.received is not None


#: the settings of a new ``fit`` run (``--resume`` takes the checkpoint's instead)
FIT_DEFAULTS = {"steps": 1000, "epochs": None, "batch_size": 128, "learning_rate": None, "clip_norm": None,
                "weight_decay": None, "validation": None, "patience": None, "checkpoint_every": 500, "seed": 0}
#: option name -> key of the checkpoint's ``state.settings`` (``arprob.train.run_settings``)
_STORED = {"steps": "num_steps", "epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate",
           "clip_norm": "clip_norm", "weight_decay": "weight_decay", "validation": "validation",
           "patience": "patience", "checkpoint_every": "checkpoint_every", "seed": "seed"}


def _settings(args: argparse.Namespace, out: Path) -> dict:
    """The run's settings: each option given explicitly, else (with ``--resume``) the
    checkpoint's stored setting, else the new-run default."""
    stored: dict = {}
    if args.resume and out.exists():
        from ..checkpoint import CheckpointError, read_header

        state = read_header(out).get("state", {})
        stored = state.get("settings", {}) if isinstance(state, dict) else {}
        if not isinstance(stored, dict):
            raise CheckpointError(f"Checkpoint {str(out)!r}: header 'state.settings' must be a table.")
    if stored.get("optimizer") == "custom":
        raise ValueError(f"{out} was written by a run with a custom optimizer (Python API); resume it with "
                         "arprob.fit(..., optimizer=..., resume=...).")
    chosen = {}
    for option, default in FIT_DEFAULTS.items():
        given = getattr(args, option)
        value = stored.get(_STORED[option], default) if given is None else given
        if value == "custom":
            raise ValueError(f"{out} was written by a run with a custom {option.replace('_', '-')} (Python API); "
                             f"give --{option.replace('_', '-')} explicitly to resume it from the shell.")
        if given is None and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0 or value > 2**63 - 1):
            from ..checkpoint import CheckpointError

            raise CheckpointError(f"Checkpoint {str(out)!r}: stored setting {_STORED[option]!r} is {value!r:.60}; "
                                  f"give --{option.replace('_', '-')} explicitly.")
        chosen[option] = value
    if args.epochs is None and args.steps is not None:
        chosen["epochs"] = None  # an explicit --steps replaces a stored --epochs
    if args.steps is None and args.epochs is not None:
        chosen["steps"] = None
    for option in ("steps", "epochs", "batch_size", "patience", "checkpoint_every", "seed"):
        if chosen[option] is not None:
            chosen[option] = int(chosen[option])
    return chosen


def _continue_command(args: argparse.Namespace, out: Path, settings: dict) -> str:
    """The shell command that continues this run (its settings spelled out)."""
    import shlex

    parts = ["arprob", "fit", args.spec, args.data, "--out", str(out), "--resume"]
    for option, value in settings.items():
        if value is not None and value != FIT_DEFAULTS[option]:
            parts += [f"--{option.replace('_', '-')}", str(value)]
    return " ".join(shlex.quote(str(p)) for p in parts)


def fit(args: argparse.Namespace) -> int:
    """Compile a spec file, fit it to a data file, write a checkpoint."""
    from ..checkpoint import lock_checkpoint
    from ..fileio import check_output_path

    out = Path(args.out)
    check_output_path(out, "--out", force=True)  # a symlink, FIFO or folder is never written through
    check_spec_path(args.spec)
    # The first Ctrl-C/SIGTERM from here on stops fit after its next update, which writes the
    # checkpoint; the lock is taken before the existence check: two runs cannot both pass it.
    with _StopOnSignal() as stop, lock_checkpoint(out), warnings.catch_warnings(record=True) as caught:
        if out.exists() and not (args.resume or args.force):
            raise ValueError(f"{out} exists; pass --resume to continue it or --force to overwrite it.")
        settings = _settings(args, out)
        spec = ar.load_spec(args.spec)
        model = ar.compile(spec, jax.random.key(settings["seed"]))
        warnings.simplefilter("always")
        result = ar.fit(
            model, args.data, num_updates=None if settings["epochs"] else settings["steps"],
            epochs=settings["epochs"], batch_size=settings["batch_size"], seed=settings["seed"],
            learning_rate=settings["learning_rate"], clip_norm=settings["clip_norm"],
            weight_decay=settings["weight_decay"], validation=settings["validation"],
            patience=settings["patience"], checkpoint=out, checkpoint_every=settings["checkpoint_every"],
            resume=out if args.resume and out.exists() else None, callbacks=[stop],
        )
    for w in caught:  # one line each, not Python's "file:line: UserWarning:" block
        print(f"arprob fit: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    history = result.history
    losses = history["loss"]
    parts = [f"{len(losses)} updates, final loss {losses[-1]:.4f} nats/example" if losses else
             "tables fitted by counting (no conditioner needs gradient updates)"]
    if history.get("val_nll"):
        parts.append(f"validation NLL {history['val_nll'][-1]:.4f} nats")
    print(f"fitted {args.spec} on {args.data}: {'; '.join(parts)}; checkpoint {out}")
    if stop.received is not None:
        name = signal.Signals(stop.received).name
        print(f"interrupted by {name}: stopped after the current update and wrote {out}; "
              f"continue with: {_continue_command(args, out, settings)}")
        return EXIT_INTERRUPTED[stop.received]
    return 0


#: host and device bytes per sampled element: uniforms (up to 2) and the sample in float64,
#: the int32/int64 copies of the result and the bytes of the written file
SAMPLE_BYTES_PER_ELEMENT = 48


def _matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError(f"{err}; PNG output needs matplotlib: pip install 'arprob[plot]'") from None


def _per_record(model, data, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``log p(x)`` ``(N,)`` and each variable's share ``(N, V)`` in nats, in padded chunks."""
    source = as_source(model.spec, data)
    offsets = model.spec.layout.offsets
    total, by_var = [], []
    b = max(1, min(batch_size, source.num_examples or batch_size))
    for x, c, valid in source.sequential(b):
        if valid < b:
            x = np.concatenate([x, np.repeat(x[:1], b - valid, axis=0)])
            c = None if c is None else np.concatenate([c, np.repeat(c[:1], b - valid, axis=0)])
        terms = np.asarray(flat_log_prob_terms(model, x, c), np.float64)[:valid]
        parts = np.stack([terms[:, offsets[i] : offsets[i + 1]].sum(1) for i in range(len(offsets) - 1)], 1)
        by_var.append(parts)
        total.append(parts.sum(1))
    return np.concatenate(total), np.concatenate(by_var)


def score(args: argparse.Namespace) -> int:
    """NLL, bits/dim and per-variable shares; per-record results to .npy, .csv or .jsonl."""
    if args.out is not None and Path(args.out).suffix not in (".npy", ".csv", ".jsonl"):
        raise ValueError(f"--out {args.out}: expected a .npy, .csv or .jsonl file name.")
    if args.out is not None:
        from ..fileio import check_output_path

        check_output_path(args.out, "--out")
    model = load_checkpoint_model(args.model)
    result = ar.evaluate(model, args.data, batch_size=args.batch_size)
    print(f"{args.data}: {result.num_examples} examples, NLL {result.nll:.4f} nats, {result.bits_per_dim:.4f} bits/dim")
    print(result.table())
    if args.out is None:
        return 0
    log_p, by_var = _per_record(model, args.data, args.batch_size)
    if str(args.out).endswith(".npy"):
        write_npy(args.out, log_p)
    else:
        d = model.spec.num_elements
        names = [v.name for v in model.spec.variables]
        rows = [
            {"index": i, "log_prob": float(lp), "bits_per_dim": float(-lp / (d * math.log(2))),
             **{f"nats_{n}": float(-s) for n, s in zip(names, shares)}}
            for i, (lp, shares) in enumerate(zip(log_p, by_var))
        ]
        write_rows(args.out, rows)
    print(f"wrote per-record log p(x) of {len(log_p)} records to {args.out}")
    return 0


def sample(args: argparse.Namespace) -> int:
    """Ancestral samples to .npz (or .csv for models of scalar variables), optionally a PNG grid."""
    out = str(args.out)
    if not out.endswith((".csv", ".npz")):
        raise ValueError(f"--out {out}: expected a .npz or .csv file name.")
    from ..budget import format_bytes, how_to_raise, memory_budget
    from ..fileio import check_output_path

    check_output_path(out, "--out")
    if args.png is not None:
        check_output_path(args.png, "--png")
        _matplotlib()  # before anything is drawn or written: a job that fails writes nothing
    model = load_checkpoint_model(args.model)
    need = args.num * model.spec.num_elements * SAMPLE_BYTES_PER_ELEMENT
    if need > memory_budget():
        raise ValueError(f"-n {args.num}: {args.num} samples of {model.spec.num_elements} elements need about "
                         f"{format_bytes(need)} (uniforms, samples, the written file), over the memory budget of "
                         f"{format_bytes(memory_budget())}; draw fewer per call (and {how_to_raise()}).")
    wide = [v.name for v in model.spec.variables if v.shape]
    if out.endswith(".csv") and wide:
        raise ValueError(f"--out {out}: CSV holds scalar variables only; {wide[0]!r} has shape "
                         f"{model.spec.variable(wide[0]).shape}. Write .npz instead.")
    images = [v for v in model.spec.variables if v.is_discrete and len(v.shape) in (2, 3)]
    if args.png is not None and not images:
        raise ValueError("--png: the model has no image variable (discrete, of shape (H, W) or (H, W, C)).")
    samples = {k: np.asarray(v) for k, v in model.sample(jax.random.key(args.seed), args.num).items()}
    written = [out]
    if args.png is not None:  # drawn first: an error leaves no .npz behind
        var = images[0]
        write_image_grid(args.png, samples[var.name], var.num_values, f"{args.num} samples of {var.name!r}")
        written.append(args.png)
    if out.endswith(".csv"):
        write_rows(out, [{k: v[i].item() for k, v in samples.items()} for i in range(args.num)])
    else:
        write_npz(out, samples)
    print(f"wrote {args.num} samples of {', '.join(samples)} to {' and '.join(written)}")
    return 0


def _step_map(steps: np.ndarray, shape: tuple[int, ...]) -> str:
    """The step of each element of an image variable as a text grid (first channel)."""
    grid = steps.reshape(shape)
    if len(shape) == 3:
        grid = grid[..., 0]
    width = len(str(int(grid.max())))
    return "\n".join("    " + " ".join(f"{int(s):>{width}d}" for s in row) for row in grid)


def inspect(args: argparse.Namespace) -> int:
    """Print what a spec or checkpoint declares: variables, ordering, partition, step maps,
    dependencies, parameter count and mask density."""
    path = Path(args.path)
    if path.suffix not in SPEC_SUFFIXES and path.is_file() and not is_checkpoint(path):
        raise ValueError(f"{str(path)!r} is neither a spec file ({', '.join(SPEC_SUFFIXES)}) nor an arprob checkpoint.")
    model = load_checkpoint_model(path) if path.suffix not in SPEC_SUFFIXES else None
    spec = model.spec if model is not None else ar.load_spec(path)
    if model is None:
        model = ar.compile(spec)
    layout, steps = spec.layout, spec.steps
    d = layout.num_elements
    print(f"{path}: {len(spec.variables)} variables, D = {d} elements, {steps.num_steps} autoregressive steps")
    print(f"ordering: {type(spec.ordering).__name__}; partition: {type(spec.partition).__name__}")
    for i, (var, (name, cond)) in enumerate(zip(spec.variables, spec.conditionals)):
        elements = layout.elements_of(name)
        head = cond.bind_head(var)
        parents = "every earlier element" if cond.parent_names is None else (", ".join(cond.parent_names) or "none")
        if getattr(cond, "neighbours", None):
            parents += f" and its own neighbours at {list(cond.neighbours)}"
        print(f"- {name}: {var.kind}, shape {tuple(var.shape)}, {type(cond).__name__} + {type(head).__name__}; "
              f"reads {parents}; steps {int(steps.step[elements].min())}..{int(steps.step[elements].max())}")
        if len(var.shape) in (2, 3) and var.size <= 1024:
            print(_step_map(steps.step[elements], tuple(var.shape)))
    allowed = 0
    for var, (name, cond) in zip(spec.variables, spec.conditionals):
        readable = steps.step[None, :] < steps.step[layout.elements_of(name)][:, None]
        if cond.parent_names is not None:
            parents = np.zeros(d, bool)
            for p in cond.parent_names:
                parents[layout.elements_of(p)] = True
            readable &= parents[None, :]
        allowed += int(readable.sum())
    params = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(model) if hasattr(leaf, "dtype")
                 and np.issubdtype(leaf.dtype, np.floating))
    print(f"parameters: {params:,} (float arrays of the compiled model)")
    full = d * (d - 1) // 2
    print(f"mask density: {allowed:,} element pairs (e reads j) of the {full:,} that the ordering allows "
          f"({allowed / max(full, 1):.1%}; the rest are cut by declared parents)")
    return 0

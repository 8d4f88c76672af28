"""``arprob fit``, ``score``, ``sample`` and ``inspect``."""

from __future__ import annotations

import argparse
import math
import signal
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


def fit(args: argparse.Namespace) -> int:
    """Compile a spec file, fit it to a data file, write a checkpoint."""
    out = Path(args.out)
    if out.exists() and not (args.resume or args.force):
        raise ValueError(f"{out} exists; pass --resume to continue it or --force to overwrite it.")
    check_spec_path(args.spec)
    spec = ar.load_spec(args.spec)
    model = ar.compile(spec, jax.random.key(args.seed))
    with _StopOnSignal() as stop:
        result = ar.fit(
            model, args.data, num_updates=None if args.epochs else args.steps, epochs=args.epochs,
            batch_size=args.batch_size, seed=args.seed, learning_rate=args.learning_rate, weight_decay=args.weight_decay,
            validation=args.validation,
            patience=args.patience, checkpoint=out, checkpoint_every=args.checkpoint_every,
            resume=out if args.resume and out.exists() else None, callbacks=[stop],
        )
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
              f"continue with: arprob fit {args.spec} {args.data} --out {out} --resume")
        return EXIT_INTERRUPTED[stop.received]
    return 0


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
    model = load_checkpoint_model(args.model)
    wide = [v.name for v in model.spec.variables if v.shape]
    if out.endswith(".csv") and wide:
        raise ValueError(f"--out {out}: CSV holds scalar variables only; {wide[0]!r} has shape "
                         f"{model.spec.variable(wide[0]).shape}. Write .npz instead.")
    images = [v for v in model.spec.variables if v.is_discrete and len(v.shape) in (2, 3)]
    if args.png is not None and not images:
        raise ValueError("--png: the model has no image variable (discrete, of shape (H, W) or (H, W, C)).")
    samples = {k: np.asarray(v) for k, v in model.sample(jax.random.key(args.seed), args.num).items()}
    if out.endswith(".csv"):
        write_rows(out, [{k: v[i].item() for k, v in samples.items()} for i in range(args.num)])
    else:
        write_npz(out, samples)
    written = [out]
    if args.png is not None:
        var = images[0]
        write_image_grid(args.png, samples[var.name], var.num_values, f"{args.num} samples of {var.name!r}")
        written.append(args.png)
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

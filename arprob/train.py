"""Maximum-likelihood fitting: closed-form counting for tables, optax for the rest.

The loss is the mean negative log-likelihood per example (nats), teacher-forced, so
every conditional trains in parallel from one batched pass:

    L(theta) = -(1/B) sum_{i in batch} sum_e log p_theta(x_ie | x_i,<e)

One ``eqx.filter_jit`` step (value, gradient, optax update) is compiled once and reused;
with ``devices=`` the batch is sharded over a device mesh (``arprob.sharding``). Around
it: epochs or steps, a validation set with early stopping, a progress bar, a history,
callbacks, atomic checkpoints with exact resume, and a stop on a non-finite loss.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .checkpoint import load_checkpoint, save_checkpoint
from .conditioners.table import TableConditioner
from .data import ArraySource, as_source, split_source
from .errors import DataError
from .evaluate import _evaluate
from .model import Model, flat_log_prob
from .sharding import Devices, Mesh, check_batch_size, is_main_process, make_mesh, num_devices, replicate, shard_batch


class History(dict):
    """Every logged figure, as lists (a ``dict``, JSON-serialisable).

    Per step: ``step``, ``loss`` (nats/example), ``grad_norm``, ``lr`` (when known).
    Per evaluation: ``eval_step``, ``val_nll`` (nats/example), ``val_bpd`` (bits/dim).
    Per log window: ``log_step``, ``examples_per_sec``, ``elapsed`` (seconds).
    Attributes: ``best_step``, ``best_val_nll`` (early stopping), ``stop_reason``
    (``"steps"``, ``"epochs"``, ``"early_stopping"``, ``"callback"``).
    """

    KEYS = ("step", "loss", "grad_norm", "lr", "eval_step", "val_nll", "val_bpd", "log_step", "examples_per_sec", "elapsed")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for k in ("step", "loss"):
            self.setdefault(k, [])
        self.best_step: int | None = None
        self.best_val_nll: float | None = None
        self.stop_reason: str | None = None

    def add(self, key: str, value: float) -> None:
        self.setdefault(key, []).append(value)

    def to_json(self) -> dict[str, Any]:
        return {"series": dict(self), "best_step": self.best_step, "best_val_nll": self.best_val_nll}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "History":
        h = cls({k: list(v) for k, v in d.get("series", {}).items()})
        h.best_step, h.best_val_nll = d.get("best_step"), d.get("best_val_nll")
        return h


class FitResult(NamedTuple):
    """``model``: the fitted model; ``history``: a ``History`` (``history["loss"]`` per step)."""

    model: Model
    history: History


class NonFiniteLossError(FloatingPointError):
    """The loss or gradient became NaN/Inf; ``step``, ``epoch``, ``batch`` and ``rows`` say where."""

    def __init__(self, message: str, step: int, epoch: int, batch: int, rows: np.ndarray | None) -> None:
        super().__init__(message)
        self.step, self.epoch, self.batch, self.rows = step, epoch, batch, rows


@dataclass
class StepInfo:
    """What a callback sees after each step (``loss`` and ``model`` are computed on access)."""

    step: int  # index of the step just taken (0-based)
    epoch: int
    batch: int
    history: History
    _loss: Any
    _model: Callable[[], Model]

    @property
    def loss(self) -> float:
        return float(self._loss)

    @property
    def model(self) -> Model:
        return self._model()


Callback = Callable[[StepInfo], bool | None]


# ------------------------------------------------------------------------ tables
def _count_tables(model: Model, chunks: Iterable[np.ndarray]) -> Model:
    idx = [
        i
        for i, c in enumerate(model.components)
        if isinstance(c.conditioner, TableConditioner) and not c.conditioner.fixed
    ]
    if not idx:
        return model
    counts: dict[int, Any] = {}
    for x in chunks:
        xb = jnp.asarray(x)
        for i in idx:
            c = model.components[i].conditioner.counts(xb)
            counts[i] = c if i not in counts else counts[i] + c
    for i in idx:
        cond = model.components[i].conditioner
        model = eqx.tree_at(lambda m, i=i: m.components[i].conditioner, model, cond.with_counts(counts[i]))
    return model


def fit_tables(model: Model, x: np.ndarray, *, chunk: int = 4096) -> Model:
    """Refit every table by counting over flat data ``x`` (Dirichlet-prior posterior mean)."""
    return _count_tables(model, (x[j : j + chunk] for j in range(0, len(x), chunk)))


def trainable_filter(model: Model):
    """Pytree of bools: floating-point leaves of conditioners trained by gradient (not tables)."""
    spec = jax.tree_util.tree_map(lambda _: False, model)
    for i, comp in enumerate(model.components):
        if type(comp.conditioner).trainable:
            sub = jax.tree_util.tree_map(eqx.is_inexact_array, comp.conditioner)
            spec = eqx.tree_at(lambda m, i=i: m.components[i].conditioner, spec, sub)
    return spec


def _has_trainable(model: Model) -> bool:
    leaves = jax.tree_util.tree_leaves(eqx.filter(model, trainable_filter(model)))
    return any(eqx.is_inexact_array(leaf) for leaf in leaves)


# ----------------------------------------------------------------------- options
def _make_optimizer(optimizer, learning_rate, clip_norm) -> optax.GradientTransformation:
    if optimizer is None:
        optimizer = optax.adam(1e-2 if learning_rate is None else learning_rate)
    elif isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                "Got both an optax optimizer and learning_rate; put the rate (or schedule) inside the optimizer, "
                "or pass optimizer=optax.adam (the factory) together with learning_rate=."
            )
    elif callable(optimizer):  # a factory such as optax.adamw: called with the rate or schedule
        optimizer = optimizer(1e-2 if learning_rate is None else learning_rate)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"Expected an optax.GradientTransformation (e.g. optax.adam(1e-3)); got {optimizer!r}.")
    if clip_norm is not None:
        if not clip_norm > 0:
            raise ValueError(f"Expected clip_norm > 0; got {clip_norm!r}.")
        optimizer = optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)
    return optimizer


def _known_rate(learning_rate, optimizer):
    """The rate or schedule ``fit`` builds the optimizer with (None inside a given optimizer)."""
    if isinstance(optimizer, optax.GradientTransformation):
        return None
    return 1e-2 if learning_rate is None else learning_rate


def _all_finite(tree) -> bool:
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if eqx.is_inexact_array(x)]
    return bool(all(bool(jnp.all(jnp.isfinite(x))) for x in leaves))


def _to_host_default_device(tree):
    arrays, static = eqx.partition(tree, eqx.is_array)
    arrays = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)), arrays)
    return eqx.combine(arrays, static)


# --------------------------------------------------------------------------- fit
def fit(
    model: Model,
    data,
    *,
    context=None,
    optimizer: optax.GradientTransformation | Callable[..., optax.GradientTransformation] | None = None,
    learning_rate: float | optax.Schedule | None = None,
    num_steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    validation=None,
    validation_context=None,
    eval_every: int | None = None,
    eval_batch_size: int = 1024,
    patience: int | None = None,
    min_delta: float = 0.0,
    restore_best: bool = True,
    clip_norm: float | None = None,
    progress: bool | None = None,
    log_every: int = 10,
    callbacks: Sequence[Callback] = (),
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1000,
    resume: str | os.PathLike | bool | None = None,
    plot: str | os.PathLike | None = None,
    devices: Devices = None,
) -> FitResult:
    """Fit ``model`` to ``data`` by maximum likelihood.

    Tables are fitted by counting (no gradient steps); every other conditioner by
    minibatch gradient descent on the mean NLL per example.

    **Arguments:**
        model: a compiled model.
        data: mapping ``name -> (N, *shape)``, flat ``(N, D)`` array, ``.npy``/``.npz``
            path, or ``arprob.data.BatchStream`` (validated).
        context: optional ``(N, context_size)`` conditioning vectors.
        optimizer: an optax transformation (default ``optax.adam(learning_rate)``), or an
            optax factory (``optax.adamw``) called with ``learning_rate``.
        learning_rate: a number or an optax schedule ``step -> rate`` (default ``1e-2``).
        num_steps: gradient steps (default 1000 unless ``epochs`` is given; 0 fits tables only).
        epochs: train for this many passes over the data instead of ``num_steps``.
        batch_size: minibatch size; batches are reshuffled every epoch (order from ``(seed, epoch)``).
        seed: seed of the data order and of the validation split.
        validation: a fraction of the data to hold out (e.g. ``0.1``) or a validation set.
        validation_context: the context of a validation set.
        eval_every: steps between validation scores (default: once per epoch).
        eval_batch_size: batch size of validation scoring.
        patience: stop after this many evaluations without an improvement of ``min_delta``
            nats in validation NLL (early stopping).
        restore_best: with validation data, return the parameters of the best validation
            NLL (with or without early stopping); ``False`` returns the last parameters.
        clip_norm: clip gradients to this global norm.
        progress: show a tqdm bar (``None``: only when stderr is a terminal).
        log_every: steps between progress updates (losses are fetched from the device then).
        callbacks: functions ``StepInfo -> bool | None`` called after every step; ``True`` stops.
        checkpoint: a checkpoint file, written atomically every ``checkpoint_every`` steps,
            on Ctrl-C, and at the end.
        resume: a checkpoint to continue from (``True``: ``checkpoint`` if it exists).
        plot: write the training curve (PNG) here at every evaluation and at the end.
        devices: ``None`` (one device), ``"all"``, a count, devices or a ``Mesh``: the batch is
            split over them (``batch_size`` must be divisible by their number).

    **Returns:** ``FitResult(model, history)``.

    **Raises:** ``NonFiniteLossError`` (with the step and batch) when the loss or gradient
    becomes NaN/Inf; the last good checkpoint is kept.
    """
    spec = model.spec
    mesh = devices if isinstance(devices, Mesh) else make_mesh(devices)
    k = num_devices(mesh)
    main = is_main_process()
    source = as_source(spec, data, context)
    val_source = None
    if isinstance(validation, float) and not isinstance(validation, bool):
        source, val_source = split_source(source, validation, seed)
    elif validation is not None:
        val_source = as_source(spec, validation, validation_context, what="validation data")
    if patience is not None and val_source is None:
        raise ValueError("patience (early stopping) needs validation data: pass validation=0.1 or a validation set.")
    if num_steps is not None and epochs is not None:
        raise ValueError(f"Pass num_steps or epochs, not both; got num_steps={num_steps}, epochs={epochs}.")
    if batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1; got {batch_size}.")

    resume_path = _resume_path(resume, checkpoint)
    history = History()
    if resume_path is None:
        model = _count_tables(model, (x for x, _, _ in source.sequential(4096)))
    trainable = _has_trainable(model)
    total_steps = 1000 if (num_steps is None and epochs is None) else num_steps
    if (total_steps is not None and total_steps <= 0) or not trainable:
        if val_source is not None:
            ev = _evaluate(model, val_source, eval_batch_size, mesh)
            history.add("eval_step", 0)
            history.add("val_nll", ev.nll)
            history.add("val_bpd", ev.bits_per_dim)
        history.stop_reason = "nothing_to_train" if not trainable else "steps"
        if checkpoint is not None and is_main_process():
            save_checkpoint(checkpoint, model=model, step=0, history=history.to_json())
        return FitResult(model, history)

    # Batch size and the number of steps.
    steps_per_epoch = None
    if isinstance(source, ArraySource):
        n = source.num_examples
        if batch_size > n:
            batch_size = n - n % k
            if batch_size == 0:
                raise DataError(f"data: {n} examples cannot fill one batch on {k} devices.")
        check_batch_size(batch_size, mesh)
        steps_per_epoch = source.steps_per_epoch(batch_size)
        if epochs is not None:
            total_steps = epochs * steps_per_epoch
    if eval_every is None and val_source is not None:
        eval_every = steps_per_epoch or 1000
    if patience is not None and patience < 1:
        raise ValueError(f"Expected patience >= 1; got {patience}.")

    tx = _make_optimizer(optimizer, learning_rate, clip_norm)
    rate_or_schedule = _known_rate(learning_rate, optimizer)
    keep_best = restore_best and val_source is not None
    params, static = eqx.partition(model, trainable_filter(model))
    opt_state = tx.init(params)

    # Trainer state (all of it goes into a checkpoint).
    step, epoch, batch0 = 0, 0, 0
    best_params, best_val, bad_evals, elapsed0 = None, math.inf, 0, 0.0
    if resume_path is not None:
        ck = load_checkpoint(resume_path, model, opt_state_like=opt_state, best_like=params)
        params, static = eqx.partition(ck.model, trainable_filter(ck.model))
        opt_state, best_params = ck.opt_state, ck.best
        st, rng = ck.header["state"], ck.header["rng"]
        step, epoch, batch0 = ck.step, int(rng.get("epoch", 0)), int(rng.get("batch", 0))
        best_val = st.get("best_val_nll") if st.get("best_val_nll") is not None else math.inf
        bad_evals, elapsed0 = int(st.get("bad_evals", 0)), float(st.get("elapsed", 0.0))
        history = History.from_json(ck.header["history"])
        for key, now in (("seed", seed), ("batch_size", batch_size), ("num_examples", source.num_examples)):
            if rng.get(key, st.get(key)) != now:
                warnings.warn(
                    f"Resuming {str(resume_path)!r} with {key}={now}; the checkpoint was written with "
                    f"{key}={rng.get(key, st.get(key))}: the run will not repeat the uninterrupted one exactly.",
                    stacklevel=2,
                )

    params, static, opt_state = replicate(params, mesh), replicate(static, mesh), replicate(opt_state, mesh)
    if best_params is not None:
        best_params = replicate(best_params, mesh)

    # Plain jax.jit over array pytrees (cheaper per call than filter_jit); the non-array
    # parts of the model are closed over, so the step compiles once.
    static_arrays, static_rest = eqx.partition(static, eqx.is_array)

    def _train_step(params, static_arrays, opt_state, xb, cb):
        frozen = eqx.combine(static_arrays, static_rest)

        def loss_fn(p):
            return -jnp.mean(flat_log_prob(eqx.combine(p, frozen), xb, cb))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss, optax.tree.norm(grads)

    train_step = jax.jit(_train_step)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=total_steps,
        initial=step,
        disable=(not main) or (None if progress is None else not progress),
        desc=f"fit ({k} device{'s' if k > 1 else ''})",
        unit="step",
        dynamic_ncols=True,
        file=sys.stderr,
    )
    pending: list[tuple] = []
    last_saved: dict[str, Any] = {"step": None}
    t_start = time.perf_counter()
    window = {"t": t_start, "examples": 0}
    postfix: dict[str, str] = {}

    def flush() -> None:
        if not pending:
            return
        values = jax.device_get([(p[4], p[5]) for p in pending])
        for (s, e, b, rows, _, _), (loss, gnorm) in zip(pending, values):
            loss, gnorm = float(loss), float(gnorm)
            if not (math.isfinite(loss) and math.isfinite(gnorm)):
                pending.clear()
                what = "loss" if not math.isfinite(loss) else "gradient norm"
                where = f"step {s} (epoch {e}, batch {b}" + (
                    f", data rows {np.sort(rows)[:8].tolist()}{'...' if len(rows) > 8 else ''})" if rows is not None else ")"
                )
                kept = (
                    f"; the last good checkpoint (step {last_saved['step']}) is kept at {os.fspath(checkpoint)!r}"
                    if last_saved["step"] is not None
                    else ""
                )
                raise NonFiniteLossError(
                    f"Training stopped: the {what} is {loss if what == 'loss' else gnorm} at {where}{kept}. "
                    "Lower the learning rate, clip gradients (clip_norm=) or check the data.",
                    s,
                    e,
                    b,
                    rows,
                )
            history.add("step", s)
            history.add("loss", loss)
            history.add("grad_norm", gnorm)
            if rate_or_schedule is not None:
                history.add("lr", float(rate_or_schedule(s)) if callable(rate_or_schedule) else float(rate_or_schedule))
        now = time.perf_counter()
        rate = window["examples"] / max(now - window["t"], 1e-9)
        history.add("log_step", pending[-1][0])
        history.add("examples_per_sec", rate)
        history.add("elapsed", elapsed0 + now - t_start)
        postfix["loss"] = f"{history['loss'][-1]:.4g}"
        postfix["ex/s"] = f"{rate:.3g}"
        bar.set_postfix(postfix, refresh=False)
        window["t"], window["examples"] = now, 0
        pending.clear()

    def current_model() -> Model:
        return eqx.combine(params, static)

    def save(next_epoch: int, next_batch: int) -> None:
        flush()
        if not _all_finite(params):
            raise NonFiniteLossError(
                f"Training stopped: the parameters are not finite after step {step - 1}; the last good checkpoint "
                f"(step {last_saved['step']}) is kept.",
                step - 1,
                next_epoch,
                next_batch - 1,
                None,
            )
        if main:
            save_checkpoint(
                checkpoint,
                model=current_model(),
                step=step,
                opt_state=opt_state,
                best=best_params,
                rng={"seed": seed, "epoch": next_epoch, "batch": next_batch, "batch_size": batch_size,
                     "num_examples": source.num_examples},
                state={"best_val_nll": None if math.isinf(best_val) else best_val, "bad_evals": bad_evals,
                       "elapsed": elapsed0 + time.perf_counter() - t_start},
                history=history.to_json(),
            )
        last_saved["step"] = step

    def write_plot() -> None:
        if plot is not None and main:
            from .plotting import plot_history

            plot_history(history, plot)

    def run_eval() -> bool:
        """Score the validation set; True when early stopping says stop."""
        nonlocal best_val, best_params, bad_evals
        flush()
        now = current_model()
        ev = _evaluate(now, val_source, eval_batch_size, mesh, placed_model=now)
        history.add("eval_step", step - 1)
        history.add("val_nll", ev.nll)
        history.add("val_bpd", ev.bits_per_dim)
        postfix["val bpd"] = f"{ev.bits_per_dim:.4f}"
        bar.set_postfix(postfix, refresh=False)
        if ev.nll < best_val - min_delta:
            best_val, bad_evals = ev.nll, 0
            best_params = params if keep_best else None
            history.best_step, history.best_val_nll = step - 1, ev.nll
        else:
            bad_evals += 1
        write_plot()
        return patience is not None and bad_evals >= patience

    stop_reason = None
    last_eval_step = history["eval_step"][-1] + 1 if history.get("eval_step") else None
    next_pos = (epoch, batch0)
    try:
        while stop_reason is None:
            if total_steps is not None and step >= total_steps:
                stop_reason = "epochs" if epochs is not None else "steps"
                break
            if epochs is not None and epoch >= epochs:
                stop_reason = "epochs"
                break
            drew = False
            for batch in source.epoch(epoch, batch_size, seed, start=batch0):
                drew = True
                if mesh is not None and batch.x.shape[0] % k:
                    raise ValueError(
                        f"Batch {batch.index} of epoch {epoch} has {batch.x.shape[0]} rows, not divisible by the "
                        f"{k} devices of the data mesh."
                    )
                params, opt_state, loss, gnorm = train_step(
                    params, static_arrays, opt_state, shard_batch(batch.x, mesh), shard_batch(batch.context, mesh)
                )
                pending.append((step, epoch, batch.index, batch.rows, loss, gnorm))
                window["examples"] += batch.x.shape[0]
                step += 1
                next_pos = (epoch, batch.index + 1)
                bar.update(1)
                if len(pending) >= log_every:
                    flush()
                if val_source is not None and eval_every and step % eval_every == 0:
                    last_eval_step = step
                    if run_eval():
                        stop_reason = "early_stopping"
                if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
                    save(*next_pos)
                if callbacks:
                    info = StepInfo(step - 1, epoch, batch.index, history, loss, current_model)
                    if any([bool(cb(info)) for cb in callbacks]):
                        stop_reason = stop_reason or "callback"
                if stop_reason is not None or (total_steps is not None and step >= total_steps):
                    break
            else:
                if not drew and batch0 == 0:
                    raise DataError(f"data: epoch {epoch} produced no batches.")
                epoch, batch0 = epoch + 1, 0
                continue
            epoch, batch0 = next_pos
        flush()
        if val_source is not None and last_eval_step != step:
            last_eval_step = step
            run_eval()
        if checkpoint is not None and last_saved["step"] != step:
            save(*next_pos)
    except KeyboardInterrupt:
        if checkpoint is not None and step > 0 and last_saved["step"] != step:
            save(*next_pos)
        raise
    finally:
        bar.close()
    history.stop_reason = stop_reason
    write_plot()
    final = best_params if best_params is not None else params
    out = eqx.combine(final, static)
    return FitResult(_to_host_default_device(out) if mesh is not None else out, history)


def _resume_path(resume, checkpoint) -> Path | None:
    if resume is None or resume is False:
        return None
    if resume is True:
        if checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path>.")
        return Path(checkpoint) if Path(checkpoint).exists() else None
    return Path(resume)

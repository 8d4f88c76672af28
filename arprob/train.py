"""Maximum-likelihood fitting: closed form where a conditioner offers it, optax for the rest.

The loss is the mean negative log-likelihood per example (nats), teacher-forced, so
every conditional trains in parallel from one batched pass:

    L(theta) = -(1/B) sum_{i in batch} sum_e log p_theta(x_ie | x_i,<e)

``fit`` is assembled from named parts:

- ``FitOptions``: the checked arguments (steps or epochs, batch size, patience, ...);
- ``fit_closed_form``: conditioners that offer a closed-form fit (``Conditioner.has_closed_form``:
  tables, by counting) get it from one pass over the data before any gradient step;
- ``Objective`` and ``make_train_step``: the loss and one jitted step (value, gradient,
  optax update), compiled once; ``devices=`` shards the batch over a mesh
  (``arprob.sharding``); an objective may draw per-step randomness (``OrderAgnostic`` in
  ``arprob.ensembles`` draws an ensemble member per minibatch);
- ``_Validation``: scores on held-out data, early stopping, the best parameters;
- ``_Checkpoints``: atomic checkpoints and exact resume;
- ``_Log``: the history, the progress bar and the stop on a non-finite loss.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .checkpoint import load_checkpoint, lock_checkpoint, save_checkpoint
from .data import ArraySource, as_source, split_source
from .errors import DataError
from .evaluate import _evaluate, fitting_batch_size
from .model import Model, flat_log_prob, flat_train_log_prob
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


# ------------------------------------------------------------------ closed form
def fit_closed_form(model: Model, chunks: Iterable[np.ndarray]) -> Model:
    """Fit every conditioner that offers a closed form (``Conditioner.has_closed_form``, e.g.
    tables by counting) from its summed sufficient statistics over the data ``chunks``;
    the data is not read when no conditioner offers one."""
    idx = [i for i, c in enumerate(model.components) if c.conditioner.has_closed_form()]
    if not idx:
        return model
    stats: dict[int, Any] = {}
    for x in chunks:
        xb = jnp.asarray(x)
        for i in idx:
            s = model.components[i].conditioner.closed_form_stats(xb)
            stats[i] = s if i not in stats else jax.tree_util.tree_map(jnp.add, stats[i], s)
    for i in idx:
        if i in stats:
            cond = model.components[i].conditioner.with_closed_form(stats[i])
            model = eqx.tree_at(lambda m, i=i: m.components[i].conditioner, model, cond)
    return model


def fit_tables(model: Model, x: np.ndarray, *, chunk: int = 4096) -> Model:
    """Closed-form fit over flat data ``x`` (tables: Dirichlet-prior posterior mean of the counts)."""
    return fit_closed_form(model, (x[j : j + chunk] for j in range(0, len(x), chunk)))



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
DEFAULT_LEARNING_RATE = 1e-2
"""Adam's step size when none is given, in ``fit``, ``fit_order_agnostic`` and on the command line."""


def _decay_mask(params):
    """Weight decay applies to weight matrices and tensors (ndim >= 2), not to biases and scales."""
    return jax.tree_util.tree_map(lambda p: getattr(p, "ndim", 0) >= 2, params)


def _make_optimizer(optimizer, learning_rate, clip_norm, weight_decay=None) -> optax.GradientTransformation:
    if weight_decay is not None:
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
            raise ValueError(f"Expected weight_decay >= 0; got {weight_decay!r}.")
        if optimizer is not None:
            raise ValueError(
                "weight_decay applies to fit's default optimizer (AdamW); with your own optimizer put the decay "
                "inside it (e.g. optax.adamw(1e-3, weight_decay=1e-4))."
            )
    rate = DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate
    if optimizer is None:
        optimizer = optax.adam(rate) if not weight_decay else optax.adamw(rate, weight_decay=weight_decay, mask=_decay_mask)
    elif isinstance(optimizer, optax.GradientTransformation):
        if learning_rate is not None:
            raise ValueError(
                "Got both an optax optimizer and learning_rate; put the rate (or schedule) inside the optimizer, "
                "or pass optimizer=optax.adam (the factory) together with learning_rate=."
            )
    elif callable(optimizer):  # a factory such as optax.adamw: called with the rate or schedule
        optimizer = optimizer(rate)
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
    return DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate


def _all_finite(tree) -> bool:
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if eqx.is_inexact_array(x)]
    return bool(all(bool(jnp.all(jnp.isfinite(x))) for x in leaves))


def _to_host_default_device(tree):
    arrays, static = eqx.partition(tree, eqx.is_array)
    arrays = jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)), arrays)
    return eqx.combine(arrays, static)


@dataclass
class FitOptions:
    """The checked loop arguments of ``fit`` (see its docstring)."""

    num_steps: int | None
    epochs: int | None
    batch_size: int
    seed: int
    eval_every: int | None
    eval_batch_size: int
    patience: int | None
    min_delta: float
    restore_best: bool
    log_every: int
    checkpoint_every: int

    def check(self, has_validation: bool) -> None:
        if self.patience is not None and not has_validation:
            raise ValueError("patience (early stopping) needs validation data: pass validation=0.1 or a validation set.")
        if self.num_steps is not None and self.epochs is not None:
            raise ValueError(f"Pass num_steps or epochs, not both; got num_steps={self.num_steps}, epochs={self.epochs}.")
        if self.batch_size < 1:
            raise ValueError(f"Expected batch_size >= 1; got {self.batch_size}.")

    @property
    def total_steps(self) -> int | None:
        return 1000 if (self.num_steps is None and self.epochs is None) else self.num_steps

    def fit_batches(self, source, mesh, k: int) -> tuple[int | None, int | None]:
        """Adjust the batch size to an in-memory source; ``(steps_per_epoch, total_steps)``."""
        steps_per_epoch, total = None, self.total_steps
        if isinstance(source, ArraySource):
            n = source.num_examples
            if self.batch_size > n:
                self.batch_size = n - n % k
                if self.batch_size == 0:
                    raise DataError(f"data: {n} examples cannot fill one batch on {k} devices.")
            check_batch_size(self.batch_size, mesh)
            steps_per_epoch = source.steps_per_epoch(self.batch_size)
            if self.epochs is not None:
                total = self.epochs * steps_per_epoch
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"Expected patience >= 1; got {self.patience}.")
        return steps_per_epoch, total


# ---------------------------------------------------------------- the jitted step
class Objective:
    """What ``fit`` minimises: by default the mean NLL per example (maximum likelihood).

    ``loss(model, x, context, key) -> (loss, aux)``: ``aux`` a dict of scalars logged into
    the history every step; ``key`` is ``fold_in(key(seed), step)`` when ``uses_key`` or the
    model has dropout (``Model.uses_dropout``), else None. ``validation_nll(model, source, batch_size, mesh) -> (nll, bits/dim)`` or None
    for the model's own density (``arprob.evaluate``).
    """

    uses_key: bool = False

    def loss(self, model: Model, x, context, key) -> tuple[Any, dict[str, Any]]:
        if key is None:
            return -jnp.mean(flat_log_prob(model, x, context)), {}
        return -jnp.mean(flat_train_log_prob(model, x, context, key)), {}

    def validation_nll(self, model: Model, source, batch_size: int, mesh) -> tuple[float, float] | None:
        return None

    def finish(self, model: Model) -> Model:
        """The model ``fit`` returns, from the fitted one."""
        return model


def make_train_step(tx: optax.GradientTransformation, static: Model, objective: Objective, uses_key: bool = False):
    """``step(params, static_arrays, opt_state, x, context[, key, step]) -> (params, opt_state,
    loss, grad_norm, aux)`` under plain ``jax.jit`` (cheaper per call than filter_jit); the
    non-array parts of the model are closed over, so the step compiles once. With
    ``uses_key`` the step takes a base key and the step number and passes the loss
    ``fold_in(key, step)`` (dropout, an objective's draws)."""
    static_arrays, static_rest = eqx.partition(static, eqx.is_array)

    def core(params, static_arrays, opt_state, xb, cb, key):
        frozen = eqx.combine(static_arrays, static_rest)

        def loss_fn(p):
            return objective.loss(eqx.combine(p, frozen), xb, cb, key)

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss, optax.tree.norm(grads), aux

    if uses_key:
        def with_key(params, static_arrays, opt_state, xb, cb, base_key, step):
            return core(params, static_arrays, opt_state, xb, cb, jax.random.fold_in(base_key, step))

        return jax.jit(with_key), static_arrays
    return jax.jit(lambda params, static_arrays, opt_state, xb, cb: core(params, static_arrays, opt_state, xb, cb, None)), static_arrays


# ------------------------------------------------------------------------ logging
class _Log:
    """History, progress bar, throughput; losses are fetched from the device every
    ``log_every`` steps (``flush``), which is also where a non-finite loss stops training."""

    def __init__(self, history: History, total_steps, step: int, k: int, show: bool | None, main: bool,
                 rate_or_schedule, elapsed0: float, checkpoints: "_Checkpoints") -> None:
        from tqdm.auto import tqdm

        self.history, self.rate_or_schedule, self.elapsed0 = history, rate_or_schedule, elapsed0
        self.checkpoints = checkpoints
        self.bar = tqdm(
            total=total_steps,
            initial=step,
            disable=(not main) or (None if show is None else not show),
            desc=f"fit ({k} device{'s' if k > 1 else ''})",
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        self.pending: list[tuple] = []
        self.t_start = time.perf_counter()
        self.window = {"t": self.t_start, "examples": 0}
        self.postfix: dict[str, str] = {}

    def record(self, step: int, epoch: int, batch: int, rows, loss, gnorm, aux, examples: int) -> None:
        self.pending.append((step, epoch, batch, rows, loss, gnorm, aux))
        self.window["examples"] += examples
        self.bar.update(1)

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t_start

    def show(self, key: str, value: str) -> None:
        self.postfix[key] = value
        self.bar.set_postfix(self.postfix, refresh=False)

    def flush(self) -> None:
        if not self.pending:
            return
        history = self.history
        values = jax.device_get([(p[4], p[5], p[6]) for p in self.pending])
        for (s, e, b, rows, _, _, _), (loss, gnorm, aux) in zip(self.pending, values):
            loss, gnorm = float(loss), float(gnorm)
            if not (math.isfinite(loss) and math.isfinite(gnorm)):
                self.pending.clear()
                what = "loss" if not math.isfinite(loss) else "gradient norm"
                where = f"step {s} (epoch {e}, batch {b}" + (
                    f", data rows {np.sort(rows)[:8].tolist()}{'...' if len(rows) > 8 else ''})" if rows is not None else ")"
                )
                last = self.checkpoints.last_saved
                kept = (
                    f"; the last good checkpoint (step {last}) is kept at {os.fspath(self.checkpoints.path)!r}"
                    if last is not None
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
            for key, value in aux.items():
                history.add(key, value.item())
            rate = self.rate_or_schedule
            if rate is not None:
                history.add("lr", float(rate(s)) if callable(rate) else float(rate))
        now = time.perf_counter()
        throughput = self.window["examples"] / max(now - self.window["t"], 1e-9)
        history.add("log_step", self.pending[-1][0])
        history.add("examples_per_sec", throughput)
        history.add("elapsed", self.elapsed0 + now - self.t_start)
        self.postfix["loss"] = f"{history['loss'][-1]:.4g}"
        self.postfix["ex/s"] = f"{throughput:.3g}"
        self.bar.set_postfix(self.postfix, refresh=False)
        self.window["t"], self.window["examples"] = now, 0
        self.pending.clear()


# ------------------------------------------------------- validation, early stopping
@dataclass
class _Validation:
    """Scores the held-out data; tracks the best NLL, the best parameters and patience."""

    source: Any
    objective: Objective
    batch_size: int
    mesh: Any
    patience: int | None
    min_delta: float
    keep_best: bool
    best_val: float = math.inf
    best_params: Any = None
    bad_evals: int = 0

    def score(self, model: Model, placed: bool = True) -> tuple[float, float]:
        """``(nll, bits/dim)``; ``placed``: the model is already on the mesh."""
        own = self.objective.validation_nll(model, self.source, self.batch_size, self.mesh)
        if own is not None:
            return own
        ev = _evaluate(model, self.source, self.batch_size, self.mesh, placed_model=model if placed else None)
        return ev.nll, ev.bits_per_dim

    def run(self, model: Model, params, step: int, history: History) -> bool:
        """Score after ``step`` steps; True when early stopping says stop."""
        nll, bpd = self.score(model)
        history.add("eval_step", step - 1)
        history.add("val_nll", nll)
        history.add("val_bpd", bpd)
        if nll < self.best_val - self.min_delta:
            self.best_val, self.bad_evals = nll, 0
            self.best_params = params if self.keep_best else None
            history.best_step, history.best_val_nll = step - 1, nll
        else:
            self.bad_evals += 1
        return self.patience is not None and self.bad_evals >= self.patience


# ------------------------------------------------------------ checkpoint, resume
@dataclass
class _Checkpoints:
    """Atomic checkpoints every ``every`` steps (``path`` None: none) and the resume state."""

    path: str | os.PathLike | None
    every: int
    main: bool
    last_saved: int | None = None
    settings: dict | None = None  # the run's settings (``fit --resume`` continues with them)

    def due(self, step: int) -> bool:
        return self.path is not None and bool(self.every) and step % self.every == 0

    def save(self, model: Model, params, opt_state, step: int, rng: dict, validation: _Validation | None,
             elapsed: float, history: History) -> None:
        if not _all_finite(params):
            raise NonFiniteLossError(
                f"Training stopped: the parameters are not finite after step {step - 1}; the last good checkpoint "
                f"(step {self.last_saved}) is kept.",
                step - 1,
                rng["epoch"],
                rng["batch"] - 1,
                None,
            )
        if self.main:
            best_val = math.inf if validation is None else validation.best_val
            save_checkpoint(
                self.path,
                model=model,
                step=step,
                opt_state=opt_state,
                best=None if validation is None else validation.best_params,
                rng=rng,
                state={"best_val_nll": None if math.isinf(best_val) else best_val,
                       "bad_evals": 0 if validation is None else validation.bad_evals, "elapsed": elapsed,
                       "settings": self.settings or {}},
                history=history.to_json(),
            )
        self.last_saved = step


@dataclass
class _Resumed:
    params: Any
    static: Any
    opt_state: Any
    best_params: Any = None
    step: int = 0
    epoch: int = 0
    batch: int = 0
    best_val: float = math.inf
    bad_evals: int = 0
    elapsed: float = 0.0
    history: History = field(default_factory=History)


def _resume(path: Path, model: Model, params, opt_state, opts: FitOptions, num_examples) -> _Resumed:
    ck = load_checkpoint(path, model, opt_state_like=opt_state, best_like=params)
    params, static = eqx.partition(ck.model, trainable_filter(ck.model))
    st, rng = ck.header["state"], ck.header["rng"]
    for key, now in (("seed", opts.seed), ("batch_size", opts.batch_size), ("num_examples", num_examples)):
        if rng.get(key, st.get(key)) != now:
            warnings.warn(
                f"Resuming {str(path)!r} with {key}={now}; the checkpoint was written with "
                f"{key}={rng.get(key, st.get(key))}: the run will not repeat the uninterrupted one exactly.",
                stacklevel=3,
            )
    return _Resumed(
        params=params,
        static=static,
        opt_state=ck.opt_state,
        best_params=ck.best,
        step=ck.step,
        epoch=int(rng.get("epoch", 0)),
        batch=int(rng.get("batch", 0)),
        best_val=st.get("best_val_nll") if st.get("best_val_nll") is not None else math.inf,
        bad_evals=int(st.get("bad_evals", 0)),
        elapsed=float(st.get("elapsed", 0.0)),
        history=History.from_json(ck.header["history"]),
    )


def run_settings(**given: Any) -> dict[str, Any]:
    """The JSON-able settings of a ``fit`` call stored in its checkpoints (``state.settings``):
    numbers and None as given; a custom optimizer, a learning-rate schedule or validation
    data (not a fraction) are recorded by kind only (``"custom"``), so a resume knows it
    must be given them again."""
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key == "optimizer":
            out[key] = None if value is None else "custom"
        elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out[key] = value
        else:
            out[key] = "custom"
    return out


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
    weight_decay: float | None = None,
    progress: bool | None = None,
    log_every: int = 10,
    callbacks: Sequence[Callback] = (),
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1000,
    resume: str | os.PathLike | bool | None = None,
    plot: str | os.PathLike | None = None,
    devices: Devices = None,
    objective: Objective | None = None,
    num_updates: int | None = None,
) -> FitResult:
    """Fit ``model`` to ``data`` by maximum likelihood.

    Conditioners with a closed form (tables: counting) are fitted first, from one pass over
    the data; every other conditioner by minibatch gradient descent on the mean NLL per
    example.

    **Arguments:**
        model: a compiled model.
        data: mapping ``name -> (N, *shape)``, flat ``(N, D)`` array, ``.npy``/``.npz``
            path, or ``arprob.data.BatchStream`` (validated).
        context: optional ``(N, context_size)`` conditioning vectors.
        optimizer: an optax transformation (default ``optax.adam(learning_rate)``), or an
            optax factory (``optax.adamw``) called with ``learning_rate``.
        learning_rate: a number or an optax schedule ``step -> rate`` (default
            ``DEFAULT_LEARNING_RATE`` = ``1e-2``).
        weight_decay: decoupled weight decay of the default optimizer (AdamW, Loshchilov &
            Hutter 2019: ``w <- w - rate * (adam_update + weight_decay * w)``) on weight
            matrices only (not biases or scales). Dropout is declared per conditioner
            (``MADE(dropout=0.2)``) and is on only here, in training.
        num_updates: optimiser updates (default 1000 unless ``epochs`` is given; 0 fits tables
            only). ``num_steps`` is its older name (an autoregressive *step* is a block of the
            partition; ``history["step"]`` counts updates).
        epochs: train for this many passes over the data instead of ``num_steps``.
        batch_size: minibatch size; batches are reshuffled every epoch (order from ``(seed, epoch)``).
        seed: seed of the data order, of the validation split and of an objective's draws.
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
        objective: what to minimise (default ``Objective()``, the mean NLL);
            ``arprob.ensembles.OrderAgnostic`` trains a MADE ensemble.

    **Returns:** ``FitResult(model, history)``.

    **Raises:** ``NonFiniteLossError`` (with the step and batch) when the loss or gradient
    becomes NaN/Inf; the last good checkpoint is kept.
    """
    spec = model.spec
    if num_updates is not None:
        if num_steps is not None:
            raise ValueError(f"Pass num_updates or its old name num_steps, not both; got {num_updates} and {num_steps}.")
        num_steps = num_updates
    objective = Objective() if objective is None else objective
    opts = FitOptions(num_steps, epochs, batch_size, seed, eval_every, eval_batch_size, patience, min_delta,
                      restore_best, log_every, checkpoint_every)
    mesh = devices if isinstance(devices, Mesh) else make_mesh(devices)
    k = num_devices(mesh)
    main = is_main_process()
    source = as_source(spec, data, context)
    val_source = None
    if isinstance(validation, float) and not isinstance(validation, bool):
        source, val_source = split_source(source, validation, seed)
    elif validation is not None:
        val_source = as_source(spec, validation, validation_context, what="validation data")
    opts.check(val_source is not None)

    resume_path = _resume_path(resume, checkpoint)
    settings = run_settings(num_steps=num_steps, epochs=epochs, batch_size=batch_size, seed=seed,
                            learning_rate=learning_rate, optimizer=optimizer, clip_norm=clip_norm,
                            weight_decay=weight_decay, validation=validation, patience=patience,
                            checkpoint_every=checkpoint_every)
    lock = lock_checkpoint(checkpoint) if checkpoint is not None and main else None  # noqa: F841 (held by fit)
    history = History()
    if resume_path is None:
        model = fit_closed_form(model, (x for x, _, _ in source.sequential(4096)))
    trainable = _has_trainable(model)
    total_steps = opts.total_steps
    validation_part = None if val_source is None else _Validation(
        val_source, objective, eval_batch_size, mesh, patience, min_delta, restore_best)
    if (total_steps is not None and total_steps <= 0) or not trainable:
        if validation_part is not None:
            nll, bpd = validation_part.score(model, placed=False)
            history.add("eval_step", 0)
            history.add("val_nll", nll)
            history.add("val_bpd", bpd)
        history.stop_reason = "nothing_to_train" if not trainable else "steps"
        if checkpoint is not None and is_main_process():
            save_checkpoint(checkpoint, model=model, step=0, history=history.to_json(), state={"settings": settings})
        return FitResult(objective.finish(model), history)

    if isinstance(source, ArraySource):  # lowered, with a MemoryBudgetWarning, to fit the memory budget
        opts.batch_size = fitting_batch_size(model, opts.batch_size, k, what="fit")
    steps_per_epoch, total_steps = opts.fit_batches(source, mesh, k)
    batch_size = opts.batch_size
    if opts.eval_every is None and val_source is not None:
        opts.eval_every = steps_per_epoch or 1000
    eval_every = opts.eval_every

    tx = _make_optimizer(optimizer, learning_rate, clip_norm, weight_decay)
    params, static = eqx.partition(model, trainable_filter(model))
    opt_state = tx.init(params)

    # Trainer state (all of it goes into a checkpoint).
    step, epoch, batch0, elapsed0 = 0, 0, 0, 0.0
    if resume_path is not None:
        r = _resume(resume_path, model, params, opt_state, opts, source.num_examples)
        params, static, opt_state, history = r.params, r.static, r.opt_state, r.history
        step, epoch, batch0, elapsed0 = r.step, r.epoch, r.batch, r.elapsed
        if validation_part is not None:
            validation_part.best_val, validation_part.bad_evals = r.best_val, r.bad_evals
            validation_part.best_params = r.best_params
    if validation_part is not None and validation_part.best_params is not None:
        validation_part.best_params = replicate(validation_part.best_params, mesh)
    params, static, opt_state = replicate(params, mesh), replicate(static, mesh), replicate(opt_state, mesh)
    uses_key = objective.uses_key or model.uses_dropout
    train_step, static_arrays = make_train_step(tx, static, objective, uses_key)
    base_key = jax.random.key(seed) if uses_key else None

    checkpoints = _Checkpoints(checkpoint, checkpoint_every, main, settings=settings)
    log = _Log(history, total_steps, step, k, progress, main, _known_rate(learning_rate, optimizer), elapsed0,
               checkpoints)

    def current_model() -> Model:
        return eqx.combine(params, static)

    def save(next_epoch: int, next_batch: int) -> None:
        log.flush()
        rng = {"seed": seed, "epoch": next_epoch, "batch": next_batch, "batch_size": batch_size,
               "num_examples": source.num_examples}
        checkpoints.save(current_model(), params, opt_state, step, rng, validation_part, log.elapsed(), history)

    def write_plot() -> None:
        if plot is not None and main:
            from .plotting import plot_history

            plot_history(history, plot)

    def run_eval() -> bool:
        log.flush()
        stop = validation_part.run(current_model(), params, step, history)
        log.show("val bpd", f"{history['val_bpd'][-1]:.4f}")
        write_plot()
        return stop

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
                args = (params, static_arrays, opt_state, shard_batch(batch.x, mesh), shard_batch(batch.context, mesh))
                if base_key is not None:
                    args += (base_key, step)
                params, opt_state, loss, gnorm, aux = train_step(*args)
                log.record(step, epoch, batch.index, batch.rows, loss, gnorm, aux, batch.x.shape[0])
                step += 1
                next_pos = (epoch, batch.index + 1)
                if len(log.pending) >= log_every:
                    log.flush()
                if val_source is not None and eval_every and step % eval_every == 0:
                    last_eval_step = step
                    if run_eval():
                        stop_reason = "early_stopping"
                if checkpoints.due(step):
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
        log.flush()
        if val_source is not None and last_eval_step != step:
            last_eval_step = step
            run_eval()
        if checkpoint is not None and checkpoints.last_saved != step:
            save(*next_pos)
    except KeyboardInterrupt:
        if checkpoint is not None and step > 0 and checkpoints.last_saved != step:
            save(*next_pos)
        raise
    finally:
        log.bar.close()
    history.stop_reason = stop_reason
    write_plot()
    best = None if validation_part is None else validation_part.best_params
    final = best if best is not None else params
    out = eqx.combine(final, static)
    return FitResult(objective.finish(_to_host_default_device(out) if mesh is not None else out), history)


def _resume_path(resume, checkpoint) -> Path | None:
    if resume is None or resume is False:
        return None
    if resume is True:
        if checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path>.")
        return Path(checkpoint) if Path(checkpoint).exists() else None
    return Path(resume)

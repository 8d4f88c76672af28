"""Likelihood-based detection of inputs that do not belong (PixelDefend's rank test).

A ``Detector`` scores records with a compiled model (higher = more anomalous) and
compares each score with the scores of ``N`` in-distribution calibration records:

    p(x) = (1 + #{i : s_i >= s(x)}) / (N + 1)                 (one-sided, never 0)
    p2(x) = min(1, 2 min(p(x), (1 + #{i : s_i <= s(x)}) / (N + 1)))   (two-sided)

For exchangeable in-distribution data ``P(p(x) <= a) <= a``, so flagging ``p <= fpr``
has a false-positive rate of at most ``fpr`` (conformal guarantee); it needs
``N + 1 >= 1 / fpr`` (one-sided; ``2 / fpr`` two-sided) or nothing can ever be flagged.
The two-sided test also flags records that are *too likely* (Nalisnick et al. 2019:
generative models often give out-of-distribution images higher likelihood).

Scores (``correction``):

- ``None``: negative log-likelihood ``-log p(x)`` in nats.
- ``"likelihood_ratio"`` (Ren et al. 2019): ``log p_background(x) - log p(x)``, the
  background model being the same spec fitted to perturbed inputs (``perturb``,
  ``fit_background``); it cancels what both models find easy (background statistics).
- ``"complexity"`` (Serra et al. 2020): ``-log2 p(x) - L(x)`` bits, ``L`` the length of
  ``x`` under a lossless compressor (``complexity_bits``); it cancels the plain
  "simple inputs are likely" effect.
- ``"fused"`` (the a-priori default for images): each of the scores above (NLL,
  complexity, and the likelihood ratio when a background is given) is turned into its rank
  p-value ``p_j`` against its own calibration scores (a calibration record against the
  other ``N - 1``, leave-one-out), and the record's score is ``max_j -log p_j`` (the
  Bonferroni / min-p combination; ties beyond the calibration range broken by the largest
  robust z-score ``(s_j - median_j) / IQR_j``). That fused score is then calibrated like
  any other, so ``p <= fpr`` keeps its false-positive rate (up to the leave-one-out
  approximation, ``O(1/N)``). No score is chosen per shift: each catches what the others
  miss (NLL: noise; complexity: simple images; likelihood ratio: background statistics).

Several detectors over one model (``score_detectors``) or several corrections
(``raw_scores_many``) compute ``log p(x)`` once per model and the compressed lengths once.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..checkpoint import CheckpointError, load_model, read_npy, read_verified, tree_digest, write_verified
from ..data import as_source
from ..errors import DataError
from ..evaluate import fitting_batch_size
from ..model import Model, flat_log_prob
from ..model import compile as compile_spec
from ..train import FitResult, fit
from ..validation import as_flat
from .complexity import complexity_bits

CORRECTIONS = (None, "likelihood_ratio", "complexity", "fused")
FORMAT = "arprob.detector/1"
_SEGMENTS = ("calibration",)


def _log_prob(model: Model, data, context, batch_size: int, *, complexity: bool = False):
    """``log p(x)`` of every record (and, with ``complexity``, its compressed length in bits):
    validated once, scored in padded chunks of ``batch_size`` by the jitted ``flat_log_prob``
    (one compiled shape; memory bounded by a chunk for memory-mapped files and streams)."""
    if batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1; got {batch_size}.")
    source = as_source(model.spec, data, context)
    if source.num_examples is not None:
        batch_size = max(1, min(batch_size, source.num_examples))
    batch_size = fitting_batch_size(model, batch_size)  # lowered (with a warning) to fit the memory budget
    out, bits = [], []
    for x, c, valid in source.sequential(batch_size):
        ctx = None if c is None else jnp.asarray(_pad(c, batch_size))
        lp = flat_log_prob(model, jnp.asarray(_pad(x, batch_size)), ctx)
        out.append(np.asarray(lp, np.float64)[:valid])
        if complexity:
            bits.append(complexity_bits(model.spec, np.asarray(x)[:valid]))
    if not out:
        raise DataError("The data hold no records.")
    return (np.concatenate(out), np.concatenate(bits)) if complexity else np.concatenate(out)


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    return a if a.shape[0] == size else np.concatenate([a, np.repeat(a[:1], size - a.shape[0], axis=0)])


def raw_scores(
    model: Model,
    data,
    context=None,
    *,
    correction: str | None = None,
    background: Model | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """Anomaly scores (higher = more anomalous) of ``data``; see the module docstring
    (``"fused"`` needs calibration scores: use ``Detector.fit(...).score``)."""
    return _scores(model, data, context, correction, background, batch_size)[0]


def raw_scores_many(
    model: Model,
    data,
    context=None,
    *,
    corrections=(None, "complexity", "likelihood_ratio"),
    background: Model | None = None,
    batch_size: int = 1024,
) -> dict[str | None, np.ndarray]:
    """Raw scores of several corrections (``"fused"`` excepted: it needs calibration scores)
    from one pass of ``log p(x)``, one of the background, and one compression."""
    return _component_scores(model, data, context, tuple(corrections), background, batch_size)[0]


def _component_scores(model, data, context, corrections, background, batch_size):
    """``({correction: scores}, log p(x))`` with each model evaluated once."""
    for c in corrections:
        if c == "fused":
            raise ValueError("raw_scores_many: 'fused' scores need calibration scores; use a fitted Detector.")
        _check_correction(c, background)
    if "complexity" in corrections:
        log_p, bits = _log_prob(model, data, context, batch_size, complexity=True)
    else:
        log_p, bits = _log_prob(model, data, context, batch_size), None
    bg = _log_prob(background, data, context, batch_size) if "likelihood_ratio" in corrections else None
    return {c: _from_parts(c, log_p, bits, bg) for c in corrections}, log_p


def _from_parts(correction, log_p, bits, background_log_p) -> np.ndarray:
    """A raw score from ``log p`` (nats), compressed bits and the background's ``log p``."""
    if correction is None:
        return -log_p
    if correction == "complexity":
        return -log_p / np.log(2.0) - bits
    return background_log_p - log_p


def score_detectors(detectors, data, context=None) -> dict[Any, np.ndarray]:
    """Scores of several detectors (a mapping ``name -> Detector``) on the same ``data``,
    each distinct model (and background) evaluated once, compression done once: three
    corrections over one model cost one pass of ``log p``, not three.

    Equal to ``{name: det.score(data, context)}``; the batch size is the smallest of theirs."""
    dets = dict(detectors)
    if not dets:
        return {}
    batch_size = min(d.batch_size for d in dets.values())
    needs = {}  # id(model) -> [model, complexity needed]
    for d in dets.values():
        names = fused_components(d.background) if d.correction == "fused" else (d.correction,)
        entry = needs.setdefault(id(d.model), [d.model, False])
        entry[1] |= "complexity" in names
        if "likelihood_ratio" in names:
            needs.setdefault(id(d.background), [d.background, False])
    log_p, bits = {}, {}
    for key, (model, complexity) in needs.items():
        if complexity:
            log_p[key], bits[key] = _log_prob(model, data, context, batch_size, complexity=True)
        else:
            log_p[key] = _log_prob(model, data, context, batch_size)
    out = {}
    for name, d in dets.items():
        lp, b = log_p[id(d.model)], bits.get(id(d.model))
        bg = None if d.background is None else log_p.get(id(d.background))
        if d.correction == "fused":
            parts = np.stack([_from_parts(c, lp, b, bg) for c in fused_components(d.background)])
            out[name] = fuse_scores(d.components, parts)
        else:
            out[name] = _from_parts(d.correction, lp, b, bg)
    return out


def fused_components(background: Model | None) -> tuple[str | None, ...]:
    """The scores the ``"fused"`` correction combines: NLL, complexity, and the likelihood ratio
    when a background model is given."""
    return (None, "complexity") if background is None else (None, "complexity", "likelihood_ratio")


def _robust_z(cal: np.ndarray, s: np.ndarray) -> np.ndarray:
    q1, med, q3 = np.percentile(cal, [25, 50, 75])
    return (s - med) / max(q3 - q1, 1e-12)


def fuse_scores(calibration: np.ndarray, scores: np.ndarray, *, leave_one_out: bool = False) -> np.ndarray:
    """Fused score ``max_j -log p_j + tie-break`` of component scores ``scores`` (K, n)
    against component calibration scores ``calibration`` (K, N) (higher = more anomalous).

    ``p_j = (1 + #{calibration_j >= s_j}) / (N + 1)``; with ``leave_one_out`` the records are
    the calibration records themselves and each is ranked against the other ``N - 1``:
    ``p_j = (1 + #{k != i: c_jk >= c_ji}) / N``. The tie-break ``0.5 log((N+1)/N) sigmoid(max_j z_j)``
    (robust z-scores) is smaller than any gap between distinct ``-log p`` values, so it
    only orders records whose ``max_j -log p_j`` are equal (e.g. beyond every calibration score)."""
    cal = np.asarray(calibration, np.float64)
    s = np.asarray(scores, np.float64)
    if cal.ndim != 2 or s.ndim != 2 or cal.shape[0] != s.shape[0]:
        raise ValueError(f"fuse_scores: expected (K, N) and (K, n) arrays; got {cal.shape} and {s.shape}.")
    n_cal = cal.shape[1]
    neg_log_p, z = [], []
    for c, v in zip(cal, s):
        if leave_one_out:
            p = (np.clip(rank_p_values(c, v) * (n_cal + 1) - 1, 1, None)) / n_cal  # drop the record itself
        else:
            p = rank_p_values(c, v)
        neg_log_p.append(-np.log(p))
        z.append(_robust_z(c, v))
    gap = 0.5 * np.log((n_cal + 1) / max(n_cal, 1))
    return np.max(neg_log_p, axis=0) + gap / (1 + np.exp(-np.max(z, axis=0)))


def _scores(model, data, context, correction, background, batch_size, components=None):
    """``(scores, log p(x))``; ``components``: the component calibration scores of ``"fused"``."""
    _check_correction(correction, background)
    if correction == "fused":
        if components is None:
            raise ValueError("correction='fused' needs the detector's component calibration scores (Detector.fit).")
        names = fused_components(background)
        parts, log_p = _component_scores(model, data, context, names, background, batch_size)
        return fuse_scores(components, np.stack([parts[c] for c in names])), log_p
    if correction == "complexity":
        log_p, bits = _log_prob(model, data, context, batch_size, complexity=True)
        return -log_p / np.log(2.0) - bits, log_p
    log_p = _log_prob(model, data, context, batch_size)
    if correction is None:
        return -log_p, log_p
    return _log_prob(background, data, context, batch_size) - log_p, log_p


def _check_correction(correction, background) -> None:
    if correction not in CORRECTIONS:
        raise ValueError(f"Unknown correction {correction!r}; expected one of {CORRECTIONS}.")
    if correction == "likelihood_ratio" and background is None:
        raise ValueError("correction='likelihood_ratio' needs a background model (see arprob.ood.fit_background).")


def rank_p_values(calibration: np.ndarray, scores: np.ndarray, two_sided: bool = False) -> np.ndarray:
    """``(1 + #{calibration >= score}) / (N + 1)``; two-sided: twice the smaller tail, capped at 1."""
    cal = np.sort(np.asarray(calibration, np.float64))
    s = np.asarray(scores, np.float64)
    n = cal.size
    upper = (1 + n - np.searchsorted(cal, s, side="left")) / (n + 1)
    if not two_sided:
        return upper
    lower = (1 + np.searchsorted(cal, s, side="right")) / (n + 1)
    return np.minimum(1.0, 2.0 * np.minimum(upper, lower))


def _check_fpr(fpr: float, n: int, two_sided: bool) -> None:
    if not (isinstance(fpr, (int, float)) and 0 < fpr < 1):
        raise ValueError(f"Expected a false-positive rate in (0, 1); got {fpr!r}.")
    need = int(np.ceil((2.0 if two_sided else 1.0) / fpr - 1 - 1e-9))
    if n < need:
        raise DataError(
            f"The calibration set has {n} records; a {'two' if two_sided else 'one'}-sided test at fpr={fpr} needs "
            f"at least {need} (p-values are multiples of 1/(N+1), the smallest is 1/(N+1))."
        )


@dataclass(frozen=True)
class Detection:
    """Per-record results: scores, bits/dim of the plain likelihood, p-values, decisions."""

    scores: np.ndarray
    nll: np.ndarray
    bits_per_dim: np.ndarray
    p_values: np.ndarray
    flagged: np.ndarray

    def rows(self) -> list[dict[str, Any]]:
        """One dict per record (for CSV / JSON lines)."""
        columns = zip(self.scores, self.nll, self.bits_per_dim, self.p_values, self.flagged)
        return [
            {"index": i, "score": float(s), "nll_nats": float(n), "bits_per_dim": float(b), "p_value": float(p),
             "flagged": bool(f)}
            for i, (s, n, b, p, f) in enumerate(columns)
        ]


@dataclass(frozen=True)
class Detector:
    """A calibrated detector. Build it with ``Detector.fit``; see the module docstring.

    Attributes:
        model: the density model.
        calibration: the ``N`` calibration scores, sorted.
        fpr: target false-positive rate of ``decide`` (flag ``p <= fpr``).
        two_sided: flag also records that are too likely.
        correction: ``None``, ``"likelihood_ratio"``, ``"complexity"`` or ``"fused"``.
        background: the background model (likelihood ratio; optional for ``"fused"``).
        batch_size: records per compiled scoring call.
        model_path, background_path: the checkpoints the models came from (saved with the
            detector; ``load`` re-reads them and checks their weights' digest).
        components: ``"fused"`` only: the component calibration scores ``(K, N)``, one row
            per score of ``fused_components(background)``, in calibration-record order.
    """

    model: Model
    calibration: np.ndarray
    fpr: float = 0.05
    two_sided: bool = False
    correction: str | None = None
    background: Model | None = None
    batch_size: int = 1024
    model_path: str | None = None
    background_path: str | None = None
    components: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        model: Model,
        calibration_data,
        context=None,
        *,
        fpr: float = 0.05,
        two_sided: bool = False,
        correction: str | None = None,
        background: Model | None = None,
        batch_size: int = 1024,
        model_path: str | os.PathLike | None = None,
        background_path: str | os.PathLike | None = None,
    ) -> "Detector":
        """Score the in-distribution ``calibration_data`` (held out from training) and keep the scores."""
        components = None
        if correction == "fused":
            names = fused_components(background)
            parts = raw_scores_many(model, calibration_data, context, corrections=names, background=background,
                                    batch_size=batch_size)
            components = np.stack([parts[c] for c in names])
            if components.shape[1] < 2:
                raise DataError("correction='fused' needs at least 2 calibration records.")
            finite = np.all(np.isfinite(components), axis=0)
            scores = fuse_scores(components, components, leave_one_out=True) if finite.all() else np.where(
                finite, 0.0, np.nan)
        else:
            scores = raw_scores(model, calibration_data, context, correction=correction, background=background,
                                batch_size=batch_size)
        if not np.all(np.isfinite(scores)):
            bad = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise DataError(f"calibration record {bad} has a non-finite score {scores[bad]}.")
        _check_fpr(fpr, scores.size, two_sided)
        return cls(
            model=model, calibration=np.sort(scores), fpr=float(fpr), two_sided=bool(two_sided), correction=correction,
            background=background, batch_size=int(batch_size),
            model_path=None if model_path is None else str(model_path),
            background_path=None if background_path is None else str(background_path), components=components,
        )

    # ----------------------------------------------------------------- scoring
    @property
    def num_calibration(self) -> int:
        return int(self.calibration.size)

    def score(self, data, context=None) -> np.ndarray:
        """Anomaly score of each record (higher = more anomalous): nats, or bits for ``complexity``."""
        return _scores(self.model, data, context, self.correction, self.background, self.batch_size,
                       self.components)[0]

    def p_values(self, data=None, context=None, *, scores: np.ndarray | None = None) -> np.ndarray:
        """Rank p-values against the calibration scores (of ``data``, or of given ``scores``)."""
        s = self.score(data, context) if scores is None else scores
        return rank_p_values(self.calibration, s, self.two_sided)

    def with_fpr(self, fpr: float) -> "Detector":
        """The same detector deciding at another false-positive rate."""
        _check_fpr(fpr, self.num_calibration, self.two_sided)
        return replace(self, fpr=float(fpr))

    @property
    def threshold(self) -> float:
        """Scores above it are flagged by the one-sided test: the ``k``-th largest calibration
        score with ``k = floor(fpr (N + 1))``. (Two-sided: the upper threshold at ``fpr / 2``.)"""
        a = self.fpr / 2 if self.two_sided else self.fpr
        k = int(np.floor(a * (self.num_calibration + 1) + 1e-9))
        return float(self.calibration[self.num_calibration - k])

    def decide(self, data=None, context=None, *, scores: np.ndarray | None = None) -> np.ndarray:
        """``True`` where a record is flagged (``p <= fpr``)."""
        return self.p_values(data, context, scores=scores) <= self.fpr

    def detect(self, data, context=None) -> Detection:
        """Scores, plain-likelihood NLL and bits/dim, p-values and decisions, in one pass per model."""
        scores, log_p = _scores(self.model, data, context, self.correction, self.background, self.batch_size,
                                self.components)
        p = rank_p_values(self.calibration, scores, self.two_sided)
        d = self.model.spec.num_elements
        return Detection(scores=scores, nll=-log_p, bits_per_dim=-log_p / (d * np.log(2.0)), p_values=p,
                         flagged=p <= self.fpr)

    # ------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the detector atomically in the checkpoint container (sha256-verified): the
        calibration scores, settings, and the models' checkpoint paths and weight digests."""
        buf = io.BytesIO()
        stored = self.calibration if self.components is None else self.components  # fused: (K, N), recomputed on load
        np.save(buf, np.asarray(stored, np.float64), allow_pickle=False)
        segment = buf.getvalue()
        header = {
            "format": FORMAT,
            "fpr": self.fpr,
            "two_sided": self.two_sided,
            "correction": self.correction,
            "batch_size": self.batch_size,
            "num_calibration": self.num_calibration,
            "threshold": self.threshold,
            "model": {"checkpoint": self.model_path, "digest": tree_digest(self.model)},
            "background": None if self.background is None else {
                "checkpoint": self.background_path, "digest": tree_digest(self.background)},
            "segments": {"calibration": len(segment)},
        }
        write_verified(path, header, [segment])

    @classmethod
    def load(cls, path: str | os.PathLike, model: Model | None = None, background: Model | None = None) -> "Detector":
        """Read a detector file; models not given are loaded from the stored checkpoint paths.
        Raises ``CheckpointError`` for a damaged file or a model whose weights differ from
        those the detector was calibrated with."""
        header, payload = read_verified(path, FORMAT, _SEGMENTS)
        where = f"Detector file {str(path)!r}"
        try:
            cal = read_npy(io.BytesIO(payload), where)  # its header checked before any allocation
            correction, fpr, two_sided = header["correction"], float(header["fpr"]), bool(header["two_sided"])
            model_info, background_info = header["model"], header["background"]
            batch_size, num_calibration = int(header["batch_size"]), int(header.get("num_calibration", -1))
            if not (isinstance(model_info, dict) and isinstance(background_info, (dict, type(None)))
                    and batch_size >= 1 and 0 < fpr < 1):
                raise ValueError("expected tables 'model'/'background', batch_size >= 1 and 0 < fpr < 1")
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            raise CheckpointError(f"{where}: malformed header or calibration segment ({err!r}).") from err
        fused = correction == "fused"
        expected = ((2 if background_info is None else 3), num_calibration) if fused else (num_calibration,)
        if cal.dtype != np.float64 or cal.shape != expected:
            raise CheckpointError(f"{where}: calibration scores of dtype {cal.dtype}, shape {cal.shape} do not match "
                                  f"num_calibration={header.get('num_calibration')!r}.")
        if correction not in CORRECTIONS:
            raise CheckpointError(f"{where}: unknown correction {correction!r}.")
        _check_loaded(where, header, cal, fused)  # exactly what Detector.fit accepts
        model = _model_for(path, "model", model_info, model)
        background = None if background_info is None else _model_for(path, "background", background_info, background)
        try:
            _check_correction(correction, background)
        except ValueError as err:
            raise CheckpointError(f"{where}: {err}") from None
        components = None
        if fused:
            components, cal = cal, np.sort(fuse_scores(cal, cal, leave_one_out=True))
        return cls(model=model, calibration=cal, components=components, fpr=fpr, two_sided=two_sided, correction=correction,
                   background=background, batch_size=batch_size, model_path=model_info.get("checkpoint"),
                   background_path=None if background_info is None else background_info.get("checkpoint"))


def _check_loaded(where: str, header: dict, cal: np.ndarray, fused: bool) -> None:
    """A detector file holds what ``Detector.fit`` makes: ``two_sided`` a boolean, ``fpr`` a
    float in (0, 1) that the calibration size supports, finite calibration scores, sorted
    (the fused components: finite)."""
    if not isinstance(header.get("two_sided"), bool):
        raise CheckpointError(f"{where}: 'two_sided' must be true or false; got {header.get('two_sided')!r:.60}.")
    fpr = header.get("fpr")
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)):
        raise CheckpointError(f"{where}: 'fpr' must be a number; got {fpr!r:.60}.")
    if not np.all(np.isfinite(cal)):
        raise CheckpointError(f"{where}: the calibration scores hold non-finite values (NaN or inf).")
    if not fused and cal.size > 1 and np.any(np.diff(cal) < 0):
        raise CheckpointError(f"{where}: the calibration scores are not sorted (Detector.fit stores them sorted).")
    sides = 2 if header["two_sided"] else 1
    if not 0 < fpr < 1 or sides / fpr - 1 > cal.shape[-1] + 1:
        raise CheckpointError(f"{where}: 'fpr' {fpr!r} needs more calibration records than the {cal.shape[-1]} stored "
                              "(Detector.fit refuses it).")
    try:
        _check_fpr(float(fpr), cal.shape[-1], bool(header["two_sided"]))
    except (ValueError, OverflowError) as err:
        raise CheckpointError(f"{where}: {err}") from None


def _model_for(detector_path, role: str, info: dict, model: Model | None) -> Model:
    """The given model, or the one in the recorded checkpoint (a relative path is also tried
    beside the detector file), checked against the recorded weights' digest."""
    where = f"Detector file {str(detector_path)!r}"
    if model is None:
        ckpt = info.get("checkpoint")
        if not ckpt or not isinstance(ckpt, str):
            raise CheckpointError(f"{where}: no {role} checkpoint was recorded; pass the {role} to Detector.load.")
        path = Path(ckpt)
        if not path.is_absolute() and not os.path.exists(path):  # False (not OSError) for an impossible name
            path = Path(detector_path).parent / path
        model = load_model(path)
    if tree_digest(model) != info.get("digest"):
        raise CheckpointError(f"{where}: the {role}'s weights differ from those the detector was calibrated with.")
    return model


# ------------------------------------------------------------- background model
def perturb(key: jax.Array, model_or_spec, data, mu: float, *, noise_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Ren et al.'s perturbation: each element is selected with probability ``mu``; a
    selected discrete element is replaced by a uniform level ``0..L-1``, a selected real
    element gets ``N(0, noise_scale^2)`` noise added. Returns data by variable name."""
    if not (isinstance(mu, (int, float)) and 0 <= mu <= 1):
        raise ValueError(f"perturb: expected mu in [0, 1]; got {mu!r}.")
    spec = model_or_spec.spec if isinstance(model_or_spec, Model) else model_or_spec
    x = np.asarray(as_flat(spec, data), np.float64)
    k_sel, k_lvl, k_noise = jax.random.split(key, 3)
    selected = np.asarray(jax.random.bernoulli(k_sel, mu, x.shape))
    levels = np.concatenate([np.full(v.size, 0 if v.kind == "real" else v.num_values) for v in spec.variables])
    uniform_levels = np.floor(np.asarray(jax.random.uniform(k_lvl, x.shape)) * np.maximum(levels, 1))
    noisy = x + noise_scale * np.asarray(jax.random.normal(k_noise, x.shape))
    out = np.where(selected, np.where(levels > 0, uniform_levels, noisy), x)
    offsets, result = spec.layout.offsets, {}
    for i, v in enumerate(spec.variables):
        part = out[:, offsets[i] : offsets[i + 1]].reshape((-1, *v.shape))
        result[v.name] = part if v.kind == "real" else part.astype(np.int64)
    return result


def fit_background(model: Model, data, *, mu: float = 0.2, key: jax.Array | None = None, **fit_kwargs) -> FitResult:
    """The likelihood-ratio background model: ``model``'s spec, freshly initialised and fitted
    (``arprob.fit``, same keyword arguments) to ``perturb(key, spec, data, mu)``; returns what
    ``fit`` returns (``FitResult``: ``.model`` and ``.history``). Ren et al. also add L2 weight
    decay to it (pass ``optimizer=optax.adamw(...)``)."""
    key = jax.random.key(0) if key is None else key
    k_data, k_init = jax.random.split(key)
    fresh = compile_spec(model.spec, k_init)
    return fit(fresh, perturb(k_data, model.spec, data, mu), **fit_kwargs)

"""Detection metrics: AUROC, AUPR, FPR at a TPR, detection rate at an FPR, the ROC curve.

Convention throughout: a **higher score is more anomalous**, and out-of-distribution
records are the **positive** class. Every figure is computed exactly from the two score
samples (rank formulas, no binning, no interpolation), in NumPy, and agrees with
``sklearn.metrics`` (``roc_auc_score``, ``average_precision_score``, ``roc_curve``) on the
labels ``[0] * len(in_scores) + [1] * len(out_scores)``.
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import ArrayLike

__all__ = ["aupr", "auroc", "detection_rate", "fpr_at_tpr", "roc_curve"]


def _scores(values: ArrayLike, name: str) -> np.ndarray:
    """A non-empty 1-D float64 array of numbers or ``+inf`` (a record of probability 0: the
    most anomalous), or a ValueError naming ``name`` and the index of a NaN or ``-inf``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of scores; got shape {np.shape(values)}.")
    if arr.size == 0:
        raise ValueError(f"{name}: expected at least one score; got an empty array.")
    bad = np.flatnonzero(np.isnan(arr) | (arr == -np.inf))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] = {float(arr[bad[0]])}; scores must be numbers or +inf (probability 0).")
    return arr


def _fraction(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got {value!r}.")
    return value


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, ties given the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def auroc(in_scores: ArrayLike, out_scores: ArrayLike) -> float:
    r"""Area under the ROC curve, ``P(s_out > s_in) + P(s_out = s_in) / 2``.

    The Mann-Whitney form: with ``R`` the sum of the average ranks of the ``n_1`` outlier
    scores in the pooled sample of ``n_0 + n_1``,
    :math:`\mathrm{AUROC} = (R - n_1 (n_1 + 1) / 2) / (n_0 n_1)`; ties count one half.
    """
    s_in, s_out = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    ranks = _average_ranks(np.concatenate([s_in, s_out]))
    n0, n1 = s_in.size, s_out.size
    return float((ranks[n0:].sum() - n1 * (n1 + 1) / 2.0) / (n0 * n1))


def roc_curve(in_scores: ArrayLike, out_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` of the rule "anomalous when ``score >= t``".

    One point per distinct score, thresholds decreasing, starting at ``(0, 0)`` with
    ``t = +inf`` and ending at ``(1, 1)``: the curve of ``sklearn.metrics.roc_curve`` with
    ``drop_intermediate=False``.
    """
    s_in, s_out = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    scores = np.concatenate([s_in, s_out])
    labels = np.concatenate([np.zeros(s_in.size), np.ones(s_out.size)])
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), scores.size - 1]  # last index of each distinct score
    tp = np.cumsum(labels)[last]
    fp = (last + 1) - tp
    fpr = np.r_[0.0, fp / s_in.size]
    tpr = np.r_[0.0, tp / s_out.size]
    return fpr, tpr, np.r_[np.inf, scores[last]]


def aupr(in_scores: ArrayLike, out_scores: ArrayLike) -> float:
    r"""Area under the precision-recall curve, outliers positive (average precision).

    :math:`\mathrm{AP} = \sum_k (R_k - R_{k-1}) P_k` over the distinct thresholds, highest
    first, with :math:`P_k, R_k` the precision and recall of "anomalous when
    ``score >= t_k``": the step sum of ``sklearn.metrics.average_precision_score``, without
    the trapezoidal interpolation that overstates the area. Chance level is the outlier
    fraction ``n_1 / (n_0 + n_1)``.
    """
    fpr, tpr, _ = roc_curve(in_scores, out_scores)
    n0, n1 = np.size(in_scores), np.size(out_scores)
    tp, fp = tpr[1:] * n1, fpr[1:] * n0
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(tpr) * precision))


def fpr_at_tpr(in_scores: ArrayLike, out_scores: ArrayLike, tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold that catches at least ``tpr`` of the outliers.

    With the outlier scores sorted in decreasing order and ``k = ceil(tpr * n_1)``, the
    threshold is the ``k``-th of them and the rule is "anomalous when ``score >= t``"; the
    result is the fraction of in-distribution scores ``>= t`` (``FPR95`` for ``tpr=0.95``).
    Lower is better; 0 when ``tpr = 0``.
    """
    s_in, s_out = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    tpr = _fraction(tpr, "tpr")
    k = math.ceil(tpr * s_out.size - 1e-9)
    if k == 0:
        return 0.0
    threshold = np.sort(s_out)[::-1][k - 1]
    return float(np.mean(s_in >= threshold))


def detection_rate(in_scores: ArrayLike, out_scores: ArrayLike, fpr: float = 0.05) -> float:
    """Fraction of outliers flagged by the lowest threshold whose false-positive rate is ``<= fpr``.

    The rule is "anomalous when ``score > t``" with ``t`` the ``(floor(fpr * n_0) + 1)``-th
    largest in-distribution score, so at most ``fpr * n_0`` in-distribution records are
    flagged (fewer when scores tie at ``t``); the result is ``#{s_out > t} / n_1`` (the
    TPR at that FPR).
    """
    s_in, s_out = _scores(in_scores, "in_scores"), _scores(out_scores, "out_scores")
    fpr = _fraction(fpr, "fpr")
    k = math.floor(fpr * s_in.size + 1e-9)
    if k >= s_in.size:
        threshold = -np.inf
    else:
        threshold = np.sort(s_in)[::-1][k]
    return float(np.mean(s_out > threshold))

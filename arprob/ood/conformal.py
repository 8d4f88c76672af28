"""Conformal p-values and the Benjamini–Hochberg procedure (Bates et al. 2023, "Testing for
outliers with conformal p-values").

With calibration scores ``s_1..s_N`` of in-distribution records (never seen by the model
that scored them), the marginal conformal p-value of a test score ``s`` is

    p(s) = (1 + #{i : s_i >= s}) / (N + 1),

``P(p <= a) <= a`` for an exchangeable inlier. Marginal conformal p-values of a batch are
positively dependent (PRDS, Bates et al. Theorem 2), so Benjamini–Hochberg at level ``q``
controls the false discovery rate of the flagged set at ``q`` (in expectation over the
calibration set and the batch). A score of ``+inf`` (probability 0) gets the smallest
p-value ``1 / (N + 1)``.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .detector import rank_p_values


def conformal_p_values(calibration: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(1 + #{calibration >= score}) / (N + 1)`` for each score (higher score = more anomalous)."""
    cal = np.sort(np.asarray(calibration, np.float64))
    s = np.asarray(scores, np.float64)
    if cal.size == 0 or np.any(np.isnan(cal)) or np.any(np.isnan(s)):
        raise DataError("conformal p-values need a non-empty calibration set and scores that are not NaN.")
    return rank_p_values(cal, s)


def benjamini_hochberg(p_values: np.ndarray, fdr: float) -> np.ndarray:
    """Flags of the BH step-up procedure at level ``fdr``: reject the ``k`` smallest p-values,
    ``k = max{i : p_(i) <= i q / m}``."""
    if not (isinstance(fdr, (int, float)) and 0 < fdr < 1):
        raise DataError(f"Expected an FDR level in (0, 1); got {fdr!r}.")
    p = np.asarray(p_values, np.float64)
    m = p.size
    if m == 0:
        return np.zeros(0, bool)
    order = np.argsort(p, kind="mergesort")
    below = p[order] <= fdr * np.arange(1, m + 1) / m
    k = int(np.flatnonzero(below)[-1]) + 1 if below.any() else 0
    flags = np.zeros(m, bool)
    flags[order[:k]] = True
    return flags

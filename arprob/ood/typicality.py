"""Typicality test for batches (Nalisnick, Matsukawa, Teh and Lakshminarayanan 2019).

A batch of ``M`` records is flagged when its mean negative log-likelihood is far from
the model's entropy estimate ``H = mean NLL of in-distribution data``:

    T(batch) = | (1/M) sum_m -log p(x_m) - H |,   flag if T > eps,

with ``eps`` the ``(1 - fpr)`` quantile of ``T`` over ``num_bootstrap`` batches of ``M``
records resampled with replacement from held-out in-distribution data. It catches
batches that are *too likely* as well as too unlikely (typical sets), and it is a test
of batches: with ``M = 1`` it is a two-sided likelihood threshold and weak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..model import Model
from .detector import raw_scores


@dataclass(frozen=True)
class TypicalityTest:
    """``H`` (nats), ``eps`` (nats), the batch size ``M`` and the target ``fpr``."""

    model: Model
    entropy: float
    eps: float
    batch_size: int
    fpr: float

    @classmethod
    def fit(
        cls,
        model: Model,
        heldout,
        *,
        batch_size: int,
        fpr: float = 0.05,
        reference=None,
        num_bootstrap: int = 1000,
        seed: int = 0,
        context=None,
    ) -> "TypicalityTest":
        """``H`` from ``reference`` (e.g. the training data; default ``heldout``), ``eps``
        by bootstrap over ``heldout`` batches of ``batch_size`` records."""
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ValueError(f"TypicalityTest: expected batch_size >= 1; got {batch_size!r}.")
        if not 0 < fpr < 1:
            raise ValueError(f"TypicalityTest: expected fpr in (0, 1); got {fpr!r}.")
        held = raw_scores(model, heldout, context)
        if held.size < 2:
            raise DataError(f"TypicalityTest: need at least 2 held-out records; got {held.size}.")
        entropy = float(np.mean(held if reference is None else raw_scores(model, reference)))
        rng = np.random.default_rng(seed)
        means = held[rng.integers(0, held.size, (num_bootstrap, batch_size))].mean(axis=1)
        eps = float(np.quantile(np.abs(means - entropy), 1 - fpr))
        return cls(model=model, entropy=entropy, eps=eps, batch_size=batch_size, fpr=float(fpr))

    def statistic(self, batch, context=None) -> float:
        """``T`` of one batch (any size; ``eps`` is calibrated for ``batch_size``)."""
        return float(abs(np.mean(raw_scores(self.model, batch, context)) - self.entropy))

    def test(self, batch, context=None) -> bool:
        """``True`` if the batch is flagged as not typical."""
        return self.statistic(batch, context) > self.eps

    def test_batches(self, data, context=None) -> np.ndarray:
        """Flag each consecutive batch of ``batch_size`` records of ``data`` (a last partial batch is dropped)."""
        scores = raw_scores(self.model, data, context)
        k = scores.size // self.batch_size
        if k == 0:
            raise DataError(f"TypicalityTest: {scores.size} records make no batch of {self.batch_size}.")
        means = scores[: k * self.batch_size].reshape(k, self.batch_size).mean(axis=1)
        return np.abs(means - self.entropy) > self.eps

"""``AutoDetector``: an outlier detector that builds its own density model from the data.

scikit-learn estimator, PyOD detector interface (``fit``, ``decision_function``,
``predict``, ``predict_proba``, ``decision_scores_``, ``threshold_``, ``labels_``,
``contamination``), plus conformal p-values, Benjamini–Hochberg flags at a target FDR and
per-column explanations. See docs/ood.md, "Automatic detector".

``fit``:

1. infer each column's kind (``arprob.ood.columns``) and encode the records;
2. split the records into ``K`` folds (5 below 2,000 records, else 3) and, on each,
   fit every candidate on the other folds and score the held-out one (closed forms,
   ``arprob.ood.tabular``): discrete structures (independent tables, Chow–Liu tree,
   BIC search), the linear-Gaussian reals at several shrinkages, and ensembles
   (log-mean-exp) over orderings of the reals and over the best structures;
3. keep the candidate with the best mean held-out log-likelihood, refit it on all records;
4. the out-of-fold scores of the chosen candidate are the calibration scores of the
   conformal p-values (cross-conformal: every record calibrates, none is scored by a
   model that saw it) and PyOD's ``decision_scores_``.

The score of a record is its negative log-likelihood in nats over its observed entries
(missing entries marginalised, ``arprob.ood.tabular``); a state never seen in training has
probability 0 and score ``+inf``.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin

from ..checkpoint import CheckpointError, read_npy, read_verified, write_verified
from ..errors import DataError
from ..structure import bic_search, chow_liu
from .columns import Column, as_columns, encode, infer_schema
from .conformal import benjamini_hochberg, conformal_p_values
from .tabular import Gaussian, Kernel, Tables, logsumexp, onehot

FORMAT = "arprob.auto_detector/1"
PRIORITY_SHRINKAGES = (0.01, 0.1, 0.0, 1.0)
MIXTURES = (2, 3, 5)
KERNEL_BANDWIDTHS = (0.5, 0.25, 1.0, 0.1)
MADE_SIZES = (64, 256)
MADE_SECONDS = 6.0  # a MADE candidate starts only when this much of the budget is left
MAX_KERNEL_RECORDS = 5000
MIXTURE_SHRINKAGE = 0.1
EM_ITERATIONS = 20
NUM_ORDERINGS = 4


@dataclass
class Member:
    """One closed-form density: discrete ``tables`` (or None) and ``gaussian`` reals (or None),
    with its mixture weight ``log_weight`` (0 for a single model)."""

    tables: Tables | None
    gaussian: Gaussian | None
    log_weight: float = 0.0
    shift: np.ndarray | None = None
    kernel: Kernel | None = None
    model: Any = None  # an ar.Model (MADE candidates), scored with its exact log_prob

    def log_prob(self, codes: np.ndarray, reals: np.ndarray, freqs: list[np.ndarray], k: np.ndarray) -> np.ndarray:
        if self.kernel is not None:
            return self.kernel.log_prob(codes, reals)
        if self.model is not None:
            return _made_log_prob(self.model, codes, reals)
        out = np.zeros(codes.shape[0])
        if self.tables is not None:
            out += self.tables.log_prob(codes)
        if self.gaussian is not None:
            y, log_jacobian = log_transform(reals, self.shift)
            out += self.gaussian.log_prob(onehot(codes, k, freqs), y) + log_jacobian
        return out


def log_transform(reals: np.ndarray, shift: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``y_j = log(x_j + shift_j)`` where ``shift_j`` is a number (NaN: ``y_j = x_j``), and
    ``log |dy/dx|`` summed over the observed entries of each record (change of variables:
    ``log p_x(x) = log p_y(y) + log |dy/dx|``). ``x_j + shift_j <= 0`` is outside the
    support: ``y = -inf``, probability 0."""
    if shift is None or not np.any(~np.isnan(shift)):
        return reals, np.zeros(reals.shape[0])
    cols = ~np.isnan(shift)
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = reals[:, cols] + shift[cols]
        logs = np.where(moved > 0, np.log(np.where(moved > 0, moved, 1.0)), -np.inf)
        logs = np.where(np.isnan(moved), np.nan, logs)
    y = reals.copy()
    y[:, cols] = logs
    jac = -np.nansum(np.where(np.isinf(logs), 0.0, logs), 1)
    jac[np.any(np.isneginf(logs), 1)] = -np.inf
    return y, jac


def log_shifts(reals: np.ndarray) -> np.ndarray | None:
    """Columns that get ``log(x + shift)``: non-negative in training and right-skewed
    (skewness > 1); ``shift`` = the column's median, or a thousandth of its maximum when
    the median is 0. None when no column qualifies."""
    shift = np.full(reals.shape[1], np.nan)
    for j, col in enumerate(reals.T):
        v = col[~np.isnan(col)]
        if v.size < 3 or v.min() < 0 or v.std() == 0:
            continue
        if np.mean(((v - v.mean()) / v.std()) ** 3) > 1.0:
            med = float(np.median(v))
            shift[j] = med if med > 0 else max(float(v.max()) / 1000.0, 1e-12)
    return shift if np.any(~np.isnan(shift)) else None


@dataclass(frozen=True)
class Explanation:
    """Per-column contributions (nats) to each record's score: ``values[i, j]`` is
    ``-log p(x_j | x_<j)`` in the model's column order (0 for a missing entry); each row
    sums to the record's score. ``unseen[i]`` names the columns whose value was never seen
    in training (probability 0)."""

    columns: tuple[str, ...]
    values: np.ndarray
    unseen: tuple[tuple[str, ...], ...]

    def top(self, i: int, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` columns that cost record ``i`` the most."""
        order = np.argsort(-self.values[i], kind="mergesort")[:k]
        return [(self.columns[j], float(self.values[i, j])) for j in order]


class AutoDetector(OutlierMixin, BaseEstimator):
    """Outlier detector over an exact density model chosen by held-out likelihood.

    Arguments:
        contamination: expected fraction of outliers in the training data; sets
            ``threshold_`` (PyOD's convention) for ``predict``.
        time_budget: seconds for the structure search and candidates (``None``: 1 s plus
            1 s per 10,000 table cells, at most 6 s); candidates not reached, or stopped
            between folds when it ran out, are listed as skipped in ``report_``.
        kinds: column name -> ``"real"``, ``"categorical"`` or ``"ordinal"``, overriding the
            inferred kinds (``arprob.ood.columns``).
        max_categories: integer columns with at most this many distinct values are
            categorical.
        prior: Dirichlet smoothing of the count tables.
        random_state: seed of the folds and of the orderings of the ensembles.
        verbose: print the candidates table after ``fit``.
    """

    def __init__(
        self,
        contamination: float = 0.1,
        time_budget: float | None = None,
        kinds: dict[str, str] | None = None,
        max_categories: int = 20,
        prior: float = 1.0,
        random_state: int = 0,
        verbose: bool = False,
    ) -> None:
        self.contamination = contamination
        self.time_budget = time_budget
        self.kinds = kinds
        self.max_categories = max_categories
        self.prior = prior
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> "AutoDetector":
        """Infer the columns, choose and fit the density model, calibrate. Returns ``self``."""
        if not (isinstance(self.contamination, (int, float)) and 0 < self.contamination <= 0.5):
            raise DataError(f"contamination must lie in (0, 0.5]; got {self.contamination!r}.")
        start = time.perf_counter()
        columns = as_columns(X)
        self.schema_ = infer_schema(columns, self.kinds, self.max_categories)
        codes, reals = encode(self.schema_, columns)
        n = codes.shape[0]
        if n < 4:
            raise DataError(f"AutoDetector.fit needs at least 4 records; got {n}.")
        self.num_values_ = self._num_values()
        self.is_image_ = any(c.kind == "ordinal" and len(c.shape) >= 2 for c in self.schema_)
        self.log_shifts_ = log_shifts(reals)
        cells = n * (codes.shape[1] + reals.shape[1])
        budget = self.time_budget if self.time_budget is not None else min(6.0, 1.0 + cells / 1e4)
        deadline = start + float(budget)
        folds = _folds(n, 5 if n < 2000 else 3, self.random_state)
        heldout, report = self._select(codes, reals, folds, deadline)
        best = max(heldout, key=lambda name: np.mean(heldout[name]) if np.all(np.isfinite(heldout[name])) else -np.inf)
        if self.made_ is not None and _mean_ll(self.made_[2]) > _mean_ll(heldout[best][self.made_[3]]):
            best, member, ll, rows = self.made_
            heldout = {best: np.full(n, np.nan), **heldout}
            heldout[best][rows] = ll
            self.members_ = [member]
        else:
            self.members_ = self._fit_candidate(best, codes, reals, deadline=None)
        self.chosen_ = best
        self.background_, self.fusion_ = None, None
        scores = -heldout[best][~np.isnan(heldout[best])]
        if self.is_image_:
            # images: the a-priori fused score of NLL, complexity and the likelihood ratio against
            # independent pixels (arprob.ood.detector.fuse_scores), never chosen by looking at anomalies
            if "independent" not in heldout:
                heldout["independent"] = self._heldout("independent", codes, reals, folds, None, [{} for _ in folds])
            self.background_ = self._fit_candidate("independent", codes, reals, None)
            self.fusion_ = self._components(columns, -heldout[best], -heldout["independent"])
            scores = self._fuse(self.fusion_, leave_one_out=True)
        self.calibration_ = np.sort(scores)
        self.decision_scores_ = scores
        self.threshold_ = float(np.percentile(self.decision_scores_, 100.0 * (1.0 - self.contamination)))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        self.report_ = {"chosen": best, "folds": len(folds), "time_budget": float(budget),
                        "seconds": time.perf_counter() - start, "candidates": report}
        if self.verbose:
            print(self.report_table())
        return self

    def _num_values(self) -> np.ndarray:
        k = []
        for c in self.schema_:
            if c.kind == "categorical":
                k.append(max(1, len(c.states)))
            elif c.kind == "ordinal":
                k.extend([max(1, c.levels)] * c.size)
        return np.asarray(k, np.int64)

    def _freqs(self, codes: np.ndarray) -> list[np.ndarray]:
        out = []
        for j, kj in enumerate(self.num_values_):
            c = np.bincount(codes[codes[:, j] >= 0, j], minlength=kj).astype(float) + self.prior
            out.append(c / c.sum())
        return out

    def _candidates(self, num_discrete: int, num_real: int, n: int) -> list[str]:
        """Candidate names, most promising first (the time budget may stop the list):
        each shrinkage (0.01 first) with each structure (Chow–Liu first), the log-scale
        reals beside the plain ones, a mixture after every second round."""
        structures = (["chow-liu", "bic"] if num_discrete >= 2 else []) + ["independent"] if num_discrete else [""]
        rounds = []
        for shrinkage in PRIORITY_SHRINKAGES if num_real else [None]:
            kinds = ["gauss"] + (["log-gauss"] if num_real and self.log_shifts_ is not None else [])
            gauss = [f"{k}({shrinkage:g})" for k in kinds] if shrinkage is not None else [""]
            rounds.append(["+".join(p for p in (s, g) if p) for g in gauss for s in structures])
        mixtures = [f"mixture({k})" for k in MIXTURES if n >= 30 * k]
        kernels = [f"kernel({h:g})" for h in KERNEL_BANDWIDTHS] if n <= MAX_KERNEL_RECORDS else []
        extra = kernels[:2] + mixtures[:1] + kernels[2:] + mixtures[1:]
        names = []
        for r in rounds:
            names += r + extra[:2]
            extra = extra[2:]
        return names + extra + [f"made({h})" for h in MADE_SIZES]

    def _fit_candidate(self, name: str, codes: np.ndarray, reals: np.ndarray, deadline: float | None,
                       cache: dict | None = None) -> list[Member]:
        """The members of candidate ``name`` fitted on these records."""
        if name == "ensemble":
            members = [m for sub in self.ensemble_members_ for m in self._fit_candidate(sub, codes, reals, deadline, cache)]
            return [Member(m.tables, m.gaussian, -math.log(len(members)), m.shift, m.kernel) for m in members]
        if name.startswith("mixture("):
            return self._fit_mixture(int(name[8:-1]), codes, reals)
        if name.startswith("kernel("):
            ordinal = np.concatenate([[c.kind == "ordinal"] * c.size for c in self.schema_ if c.kind != "real"] or [[]])
            return [Member(None, None, kernel=Kernel.fit(codes, reals, self.num_values_, ordinal.astype(bool),
                                                         float(name[7:-1])))]
        parts = dict(_parse(name))
        cache = {} if cache is None else cache
        tables = None
        if codes.shape[1]:
            key = ("tables", parts.get("structure", "independent"))
            if key not in cache:
                order, parents = self._structure(parts.get("structure", "independent"), codes, deadline)
                cache[key] = Tables.fit(codes, self.num_values_, order, parents, self.prior)
            tables = cache[key]
        gaussian = None
        if reals.shape[1]:
            shift = self.log_shifts_ if parts.get("log") else None
            key = ("gauss", parts["shrinkage"], parts.get("order"), bool(parts.get("log")))
            if key not in cache:
                order = _ordering(reals.shape[1], parts.get("order", 0), self.random_state)
                feats = onehot(codes, self.num_values_, self._freqs(codes))
                cache[key] = Gaussian.fit(feats, log_transform(reals, shift)[0], parts["shrinkage"], order)
            gaussian = cache[key]
            return [Member(tables, gaussian, 0.0, shift)]
        return [Member(tables, gaussian)]

    def _fit_mixture(self, k: int, codes: np.ndarray, reals: np.ndarray) -> list[Member]:
        """``k`` components by EM (``EM_ITERATIONS``), each independent tables for the discrete
        columns (a latent class model) and a linear-Gaussian for the reals (shrinkage
        ``MIXTURE_SHRINKAGE``); started from a hard assignment to ``k`` random records by
        distance on standardised, one-hot features."""
        n, d = codes.shape
        freqs = self._freqs(codes)
        feats = onehot(codes, self.num_values_, freqs)
        z = np.concatenate([feats, np.nan_to_num((reals - np.nanmean(reals, 0)) / (np.nanstd(reals, 0) + 1e-12))], 1)
        rng = np.random.default_rng([self.random_state, k])
        centres = z[rng.choice(n, k, replace=False)]
        resp = np.eye(k)[np.argmin(((z[:, None] - centres[None]) ** 2).sum(-1), 1)]
        members: list[Member] = []
        for _ in range(EM_ITERATIONS):
            weight = resp.sum(0) + 1e-9
            members = [Member(Tables.fit(codes, self.num_values_, list(range(d)), [[] for _ in range(d)], self.prior,
                                         weights=resp[:, c]) if d else None,
                              Gaussian.fit(feats, reals, MIXTURE_SHRINKAGE, weights=resp[:, c] + 1e-9, em_steps=1)
                              if reals.shape[1] else None,
                              math.log(weight[c] / weight.sum())) for c in range(k)]
            joint = np.stack([m.log_prob(codes, reals, freqs, self.num_values_) + m.log_weight for m in members], 1)
            norm = logsumexp(joint, 1)
            resp = np.exp(joint - np.where(np.isfinite(norm), norm, 0.0)[:, None])
        return members

    def _structure(self, kind: str, codes: np.ndarray, deadline: float | None) -> tuple[list[int], list[list[int]]]:
        d = codes.shape[1]
        if kind == "independent" or d < 2:
            return list(range(d)), [[] for _ in range(d)]
        named = {str(j): codes[:, j] for j in range(d)}
        k = {str(j): int(self.num_values_[j]) for j in range(d)}
        if kind == "chow-liu":
            order, parents = chow_liu(named, k)
        else:
            left = 1.0 if deadline is None else max(0.05, (deadline - time.perf_counter()) / 6)
            order, parents = bic_search(named, k, time_budget=left)
        return [int(o) for o in order], [[int(p) for p in parents[str(j)]] for j in range(d)]

    def _select(self, codes, reals, folds, deadline) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
        n = codes.shape[0]
        names = self._candidates(codes.shape[1], reals.shape[1], n)
        heldout, report, caches = {}, [], [dict() for _ in folds]
        self.made_ = None
        for name in names:
            if name.startswith("made("):
                if not _made_applies(codes, reals, self.schema_):
                    report.append({"name": name, "heldout_nll": None, "seconds": 0.0,
                                   "skipped": "needs complete records of one kind"})
                elif deadline - time.perf_counter() < MADE_SECONDS:
                    report.append({"name": name, "heldout_nll": None, "seconds": 0.0, "skipped": "time budget"})
                else:
                    self._made_candidate(name, codes, reals, folds, heldout, report)
                continue
            if time.perf_counter() > deadline and heldout:
                report.append({"name": name, "heldout_nll": None, "seconds": 0.0, "skipped": "time budget"})
                continue
            t = time.perf_counter()
            result = self._heldout(name, codes, reals, folds, deadline if heldout else None, caches)
            if result is None:
                report.append({"name": name, "heldout_nll": None, "seconds": time.perf_counter() - t,
                               "skipped": "time budget (stopped between folds)"})
                continue
            heldout[name] = result
            report.append({"name": name, "heldout_nll": _mean_nll(heldout[name]), "seconds": time.perf_counter() - t})
        # ensembles: orderings of the reals at the best shrinkage, over the two best structures
        ranked = sorted((c for c in heldout if not c.startswith(("mixture(", "kernel("))), key=lambda c: -_mean_ll(heldout[c]))
        members = []
        best_structures = list(dict.fromkeys(dict(_parse(c)).get("structure") for c in ranked))[:2]
        best_gauss = next((p for c in ranked for p in c.partition("@")[0].split("+") if "gauss(" in p), None)
        orders = range(NUM_ORDERINGS) if reals.shape[1] >= 2 else range(1)
        for s in best_structures:
            for o in orders:
                parts = [p for p in (s, best_gauss) if p]
                members.append("+".join(parts) + (f"@{o}" if o else ""))
        if len(members) >= 2 and time.perf_counter() < deadline:
            t = time.perf_counter()
            for m in members:
                if m not in heldout:
                    heldout[m] = self._heldout(m, codes, reals, folds, None, caches)
            stacked = np.stack([heldout[m] for m in members])
            heldout["ensemble"] = logsumexp(stacked, 0) - math.log(len(members))
            self.ensemble_members_ = members
            report.append({"name": f"ensemble of {len(members)}", "heldout_nll": _mean_nll(heldout["ensemble"]),
                           "seconds": time.perf_counter() - t, "members": members})
        # an ensemble across families: the best of each (structures, mixtures, kernels), when it beats them
        families = {}
        for c in heldout:
            family = c.split("(")[0] if c.startswith(("mixture(", "kernel(")) else "closed"
            if c != "ensemble" and (family not in families or _mean_ll(heldout[c]) > _mean_ll(heldout[families[family]])):
                families[family] = c
        tops = [families[f] for f in sorted(families)]
        if len(tops) >= 2:
            mixed = logsumexp(np.stack([heldout[c] for c in tops]), 0) - math.log(len(tops))
            if "ensemble" not in heldout or _mean_ll(mixed) > _mean_ll(heldout["ensemble"]):
                heldout["ensemble"], self.ensemble_members_ = mixed, tops
                report.append({"name": f"ensemble of {len(tops)} families", "heldout_nll": _mean_nll(mixed),
                               "seconds": 0.0, "members": tops})
        for m in members:
            if m not in names and m in heldout:
                del heldout[m]
        assert all(v.shape == (n,) for v in heldout.values())
        return heldout, report

    def _made_candidate(self, name, codes, reals, folds, heldout, report) -> None:
        """A MADE trained by Adam (``ar.fit``, dropout 0.1, weight decay 1e-4, early stopping)
        on all folds but the first, scored on the first. It wins only if its mean NLL there
        beats every candidate's on the same records; then it is the final model as trained
        and the first fold is its (split-conformal) calibration set."""
        t = time.perf_counter()
        test = folds[0]
        train = np.setdiff1d(np.arange(codes.shape[0]), test)
        model = _fit_made(int(name[5:-1]), codes[train], reals[train], self.num_values_, self.random_state)
        ll = _made_log_prob(model, codes[test], reals[test])
        best_other = max(_mean_ll(v[test]) for v in heldout.values())
        report.append({"name": name, "heldout_nll": _mean_nll(ll), "seconds": time.perf_counter() - t,
                       "note": "first fold only"})
        if _mean_ll(ll) > best_other and (self.made_ is None or _mean_ll(ll) > _mean_ll(self.made_[2])):
            self.made_ = (name, Member(None, None, model=model), ll, test)

    def _heldout(self, name, codes, reals, folds, deadline, caches) -> np.ndarray | None:
        """Out-of-fold log-likelihood of every record under candidate ``name``; None when the
        ``deadline`` passes between two folds (the candidate is dropped, not half-scored)."""
        out = np.empty(codes.shape[0])
        for f, test in enumerate(folds):
            if f and deadline is not None and time.perf_counter() > deadline:
                return None
            train = np.setdiff1d(np.arange(codes.shape[0]), test)
            members = self._fit_candidate(name, codes[train], reals[train], deadline, caches[f])
            freqs = self._freqs(codes[train])
            out[test] = self._member_log_prob(members, codes[test], reals[test], freqs)
        return out

    def _member_log_prob(self, members, codes, reals, freqs=None) -> np.ndarray:
        freqs = self.frequencies_ if freqs is None else freqs
        lps = np.stack([m.log_prob(codes, reals, freqs, self.num_values_) + m.log_weight for m in members])
        return logsumexp(lps, 0) if len(members) > 1 else lps[0]

    @property
    def frequencies_(self) -> list[np.ndarray]:
        tables = self.members_[0].tables
        return tables.frequencies if tables is not None else []

    # ------------------------------------------------------------------ scoring
    def _encode(self, X) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "members_"):
            raise DataError("This AutoDetector is not fitted yet; call fit(X) first.")
        return encode(self.schema_, as_columns(X))

    def score_samples(self, X: Any) -> np.ndarray:
        """``log p(observed entries)`` of each record, nats (scikit-learn's convention: higher = more normal)."""
        codes, reals = self._encode(X)
        return self._member_log_prob(self.members_, codes, reals)

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score (PyOD's convention: higher = more anomalous): the negative
        log-likelihood in nats of the observed entries, ``+inf`` where the probability is 0;
        for images the fused score (``fusion_``: NLL, complexity, likelihood ratio)."""
        if not hasattr(self, "members_"):
            raise DataError("This AutoDetector is not fitted yet; call fit(X) first.")
        columns = as_columns(X)
        codes, reals = encode(self.schema_, columns)
        nll = -self._member_log_prob(self.members_, codes, reals)
        if self.fusion_ is None:
            return nll
        background = -self._member_log_prob(self.background_, codes, reals)
        return self._fuse(self._components(columns, nll, background))

    def _components(self, columns: dict[str, np.ndarray], nll: np.ndarray, background_nll: np.ndarray) -> np.ndarray:
        """``(3, n)``: NLL (nats), complexity (``NLL / ln 2 - PNG bits``), likelihood ratio
        against the independent-pixel model (``NLL - NLL_background``)."""
        from .complexity import png_bits

        bits = np.zeros(nll.shape[0])
        for c in self.schema_:
            if c.kind == "ordinal" and len(c.shape) >= 2:
                bits += [png_bits(np.clip(im, 0, c.levels - 1).astype(np.int64), c.levels) for im in columns[c.name]]
        with np.errstate(invalid="ignore"):  # inf - inf: a record of probability 0 under both models
            return np.stack([nll, nll / math.log(2.0) - bits, nll - background_nll])

    def _fuse(self, components: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        from .detector import fuse_scores

        finite = np.isfinite(components).all(0)
        out = np.full(components.shape[1], np.inf)
        cal = self.fusion_[:, np.isfinite(self.fusion_).all(0)]
        if finite.any():
            out[finite] = fuse_scores(cal, components[:, finite], leave_one_out=leave_one_out)
        return out

    def predict(self, X: Any) -> np.ndarray:
        """1 for an outlier (score above ``threshold_``), 0 for an inlier (PyOD's labels)."""
        return (self.decision_function(X) > self.threshold_).astype(int)

    def predict_proba(self, X: Any, method: str = "linear") -> np.ndarray:
        """``(n, 2)`` inlier / outlier probabilities from the training scores, as PyOD does:
        ``"linear"`` min-max scaling, ``"unify"`` the Gaussian-CDF unification of Kriegel et al."""
        s = self.decision_function(X)
        train = self.decision_scores_[np.isfinite(self.decision_scores_)]
        if method == "linear":
            lo, hi = train.min(), train.max()
            with np.errstate(invalid="ignore"):
                p = np.clip((s - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
        elif method == "unify":
            from math import erf, sqrt

            mu, sd = train.mean(), train.std() or 1.0
            p = np.array([1.0 if math.isinf(v) else max(0.0, erf((v - mu) / (sd * sqrt(2.0)))) for v in s])
        else:
            raise DataError(f"predict_proba: method must be 'linear' or 'unify'; got {method!r}.")
        return np.stack([1.0 - p, p], 1)

    def p_values(self, X: Any) -> np.ndarray:
        """Conformal p-values against the out-of-fold training scores (``arprob.ood.conformal``)."""
        return conformal_p_values(self.calibration_, self.decision_function(X))

    def flag(self, X: Any, fdr: float = 0.1) -> np.ndarray:
        """Records flagged by Benjamini–Hochberg at false discovery rate ``fdr`` on the conformal p-values."""
        return benjamini_hochberg(self.p_values(X), fdr)

    def explain(self, X: Any) -> Explanation:
        """Per-column contributions by the chain rule over columns in model order:
        ``-log p(x_j | x_<j)``, each term a difference of marginals (missing entries and the
        later columns marginalised), so a row sums to the record's score exactly."""
        codes, reals = self._encode(X)
        discrete_cols = [c for c in self.schema_ if c.kind != "real"]
        real_cols = [c for c in self.schema_ if c.kind == "real"]
        gaussian = self.members_[0].gaussian
        real_order = list(gaussian.order) if gaussian is not None else []
        spans, j = [], 0
        for c in discrete_cols:
            spans.append((c.name, "d", np.arange(j, j + c.size)))
            j += c.size
        spans += [(real_cols[r].name, "r", np.array([r])) for r in real_order]
        hidden_codes = np.full_like(codes, -1)
        hidden_reals = np.full_like(reals, np.nan)
        previous = np.zeros(codes.shape[0])
        values = np.zeros((codes.shape[0], len(spans)))
        for i, (_, part, idx) in enumerate(spans):
            if part == "d":
                hidden_codes[:, idx] = codes[:, idx]
            else:
                hidden_reals[:, idx] = reals[:, idx]
            current = self._member_log_prob(self.members_, hidden_codes, hidden_reals)
            with np.errstate(invalid="ignore"):
                values[:, i] = np.where(np.isneginf(previous), 0.0, previous - current)
            previous = current
        unseen = tuple(tuple(name for name, part, idx in spans if part == "d" and np.any(codes[r, idx] == -2))
                       for r in range(codes.shape[0]))
        return Explanation(columns=tuple(name for name, _, _ in spans), values=values, unseen=unseen)

    # ------------------------------------------------------------------ report
    def report_table(self) -> str:
        """The candidates as a Markdown table (held-out NLL per record, seconds)."""
        rows = ["| candidate | held-out NLL (nats) | seconds |", "|---|---|---|"]
        for c in self.report_["candidates"]:
            nll = "skipped (" + c["skipped"] + ")" if c.get("skipped") else f"{c['heldout_nll']:.4f}"
            chosen = c["name"] == self.chosen_ or (self.chosen_ == "ensemble" and c.get("members") == getattr(self, "ensemble_members_", None))
            mark = " **chosen**" if chosen else ""
            rows.append(f"| {c['name']}{mark} | {nll} | {c['seconds']:.2f} |")
        return "\n".join(rows)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted detector atomically in arprob's verified container (no pickle):
        settings, columns and report in the JSON header, arrays as ``.npy`` records."""
        arrays: dict[str, np.ndarray] = {"calibration": self.calibration_, "decision_scores": self.decision_scores_}
        if self.fusion_ is not None:
            arrays["fusion"] = self.fusion_
        if any(m.model is not None for m in self.members_):
            raise DataError("AutoDetector.save: a detector whose chosen model is a MADE cannot be saved yet "
                            "(the closed-form, kernel and mixture candidates can); keep the Python object.")
        members = _pack_members("m", self.members_, arrays)
        background = _pack_members("b", self.background_, arrays) if self.background_ else None
        buf = io.BytesIO()
        for a in arrays.values():
            np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
        segment = buf.getvalue()
        header = {
            "format": FORMAT, "params": self.get_params(), "columns": [c.to_json() for c in self.schema_],
            "num_values": self.num_values_.tolist(), "chosen": self.chosen_, "threshold": self.threshold_,
            "report": self.report_, "members": members, "background": background, "arrays": list(arrays),
            "segments": {"arrays": len(segment)},
        }
        write_verified(path, header, [segment])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AutoDetector":
        """Read a file written by ``save`` (``CheckpointError`` naming the file and key if damaged)."""
        header, payload = read_verified(path, FORMAT, ("arrays",))
        where = f"AutoDetector file {str(path)!r}"
        try:
            det = cls(**header["params"])
            det.schema_ = tuple(Column.from_json(c) for c in header["columns"])
            det.num_values_ = np.asarray(header["num_values"], np.int64)
            det.chosen_, det.threshold_, det.report_ = str(header["chosen"]), float(header["threshold"]), header["report"]
            f = io.BytesIO(payload)
            arrays = {name: read_npy(f, f"{where}, array {name!r}") for name in header["arrays"]}
            det.calibration_ = np.asarray(arrays["calibration"], np.float64)
            det.decision_scores_ = np.asarray(arrays["decision_scores"], np.float64)
            det.fusion_ = arrays.get("fusion")
            det.labels_ = (det.decision_scores_ > det.threshold_).astype(int)
            d = len(det.num_values_)
            det.members_ = _unpack_members("m", header["members"], arrays, det.num_values_, d)
            det.background_ = (_unpack_members("b", header["background"], arrays, det.num_values_, d)
                               if header.get("background") else None)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise CheckpointError(f"{where}: malformed header or arrays ({err!r}).") from err
        if np.any(np.isnan(det.calibration_)) or np.any(np.diff(det.calibration_) < 0):
            raise CheckpointError(f"{where}: calibration scores must be sorted numbers.")
        return det


_KERNEL_ARRAYS = ("centres_codes", "centres_reals", "num_values", "ordinal", "code_scale", "scale", "real_mean",
                  "real_std")
_GAUSSIAN_ARRAYS = ("order", "weight_real", "weight_feat", "bias", "var")


def _pack_members(prefix: str, members: list[Member], arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Header entries of ``members``; their arrays go into ``arrays`` under ``{prefix}{i}.*``."""
    entries = []
    for i, m in enumerate(members):
        key = f"{prefix}{i}"
        entry: dict[str, Any] = {"log_weight": m.log_weight}
        if m.shift is not None:
            arrays[f"{key}.shift"] = m.shift
        if m.kernel is not None:
            entry["kernel"] = {"bandwidth": m.kernel.bandwidth}
            arrays.update({f"{key}.k.{f}": np.asarray(getattr(m.kernel, f)) for f in _KERNEL_ARRAYS})
            arrays.update({f"{key}.k.lf{j}": lf for j, lf in enumerate(m.kernel.log_freqs)})
        if m.tables is not None:
            entry["tables"] = {"order": m.tables.order, "parents": m.tables.parents}
            arrays.update({f"{key}.t{j}": t for j, t in enumerate(m.tables.log_tables)})
            arrays.update({f"{key}.f{j}": fr for j, fr in enumerate(m.tables.frequencies)})
        if m.gaussian is not None:
            entry["gaussian"] = True
            arrays.update({f"{key}.{f}": np.asarray(getattr(m.gaussian, f)) for f in _GAUSSIAN_ARRAYS})
        entries.append(entry)
    return entries


def _unpack_members(prefix: str, entries: list[dict[str, Any]], arrays: dict[str, np.ndarray], num_values: np.ndarray,
                    d: int) -> list[Member]:
    members = []
    for i, entry in enumerate(entries):
        key = f"{prefix}{i}"
        tables = gaussian = kernel = None
        if "tables" in entry:
            tables = Tables(num_values=num_values, parents=[[int(p) for p in ps] for ps in entry["tables"]["parents"]],
                            order=[int(o) for o in entry["tables"]["order"]],
                            log_tables=[arrays[f"{key}.t{j}"] for j in range(d)],
                            frequencies=[arrays[f"{key}.f{j}"] for j in range(d)])
        if entry.get("gaussian"):
            gaussian = Gaussian(**{f: arrays[f"{key}.{f}"] for f in _GAUSSIAN_ARRAYS})
        if "kernel" in entry:
            kernel = Kernel(**{f: arrays[f"{key}.k.{f}"] for f in _KERNEL_ARRAYS},
                            bandwidth=float(entry["kernel"]["bandwidth"]),
                            log_freqs=[arrays[f"{key}.k.lf{j}"] for j in range(d)])
        members.append(Member(tables, gaussian, float(entry["log_weight"]), arrays.get(f"{key}.shift"), kernel))
    return members


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(perm, k)]


def _ordering(r: int, index: int, seed: int) -> np.ndarray:
    return np.arange(r) if index == 0 else np.random.default_rng([seed, index]).permutation(r)


def _parse(name: str):
    """``"chow-liu+gauss(0.1)@2"`` -> structure, shrinkage, order."""
    base, _, order = name.partition("@")
    if order:
        yield "order", int(order)
    for part in base.split("+"):
        if part.startswith("log-gauss("):
            yield "log", True
            yield "shrinkage", float(part[10:-1])
        elif part.startswith("gauss("):
            yield "shrinkage", float(part[6:-1])
        elif part:
            yield "structure", part


def _mean_ll(ll: np.ndarray) -> float:
    return float(np.mean(ll)) if np.all(np.isfinite(ll)) else -np.inf


def _mean_nll(ll: np.ndarray) -> float:
    return -_mean_ll(ll)


def _made_applies(codes: np.ndarray, reals: np.ndarray, schema) -> bool:
    """MADE candidates model complete records of one kind: all reals, or all discrete."""
    if np.isnan(reals).any() or (codes < 0).any():
        return False
    return (reals.shape[1] >= 2 and codes.shape[1] == 0) or (codes.shape[1] >= 2 and reals.shape[1] == 0)


def _made_spec(codes: np.ndarray, reals: np.ndarray, num_values: np.ndarray, hidden: int):
    import arprob as ar

    made = {"hidden": (hidden,), "dropout": 0.1}
    if reals.shape[1]:
        return ar.Spec(variables=(ar.Real("x", shape=(reals.shape[1],)),),
                       conditionals={"x": ar.MADE(**made, head=ar.GaussianMixture(3))})
    return ar.Spec(variables=tuple(ar.Categorical(f"c{j}", int(max(k, 2))) for j, k in enumerate(num_values)),
                   conditionals={f"c{j}": ar.MADE(**made) for j in range(len(num_values))})


def _made_data(codes: np.ndarray, reals: np.ndarray) -> dict[str, np.ndarray]:
    if reals.shape[1]:
        return {"x": reals}
    return {f"c{j}": codes[:, j] for j in range(codes.shape[1])}


def _fit_made(hidden: int, codes: np.ndarray, reals: np.ndarray, num_values: np.ndarray, seed: int):
    """``(model, mean, std)``: MADE(hidden) with a GaussianMixture(3) head on the standardised
    reals, or softmax heads on the discrete columns, trained by Adam with early stopping."""
    import jax

    import arprob as ar

    spec = _made_spec(codes, reals, num_values, hidden)
    model = ar.compile(spec, jax.random.key(seed))
    n = codes.shape[0]
    mean = reals.mean(0) if reals.shape[1] else np.zeros(0)
    std = np.where(reals.std(0) > 0, reals.std(0), 1.0) if reals.shape[1] else np.ones(0)
    fitted = ar.fit(model, _made_data(codes, (reals - mean) / std), num_updates=max(200, min(2000, 20 * n // 64)),
                    batch_size=64, learning_rate=3e-3, weight_decay=1e-4, validation=0.1, patience=3, eval_every=50,
                    seed=seed, progress=False).model
    return fitted, mean, std


def _made_log_prob(made, codes: np.ndarray, reals: np.ndarray) -> np.ndarray:
    """``log p`` of the raw records: the model scores standardised reals ``z = (x - m) / s``,
    so ``log p(x) = log p(z) - sum log s`` (change of variables)."""
    model, mean, std = made
    unseen = (codes == -2).any(1)
    out = np.asarray(model.log_prob(_made_data(np.maximum(codes, 0), (reals - mean) / std)), np.float64)
    out -= float(np.sum(np.log(std)))
    out[unseen] = -np.inf
    return out

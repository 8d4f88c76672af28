"""The closed-form record models of the automatic detector, evaluated in NumPy.

A record is ``(d, r)``: discrete codes ``d`` (``-1`` missing, ``-2`` a state never seen:
probability 0) and reals ``r`` (NaN missing). The model is the chain rule with the
discrete elements first:

    log p(d, r) = sum_j log T_j(d_j | d_pa(j)) + log N(r; mu(d), Sigma)

- ``Tables``: count tables ``T_j`` with Dirichlet(``prior``) smoothing over a learned
  structure (``arprob.structure``), the math of ``ar.Table``.
- ``Gaussian``: each real element regresses on the one-hot discrete features and the
  earlier reals with one variance per element, the math of ``ar.LinearGaussian``
  (ridge ``shrinkage`` relative to each feature's variance): ``mu(d) = (I - B)^-1 (b + W onehot(d))``,
  ``Sigma = (I - B)^-1 D (I - B)^-T``.

Both are what ``AutoDetector`` compiles with ``ar.compile`` once chosen
(``tests/test_auto_detector.py`` checks the library model gives the same log-likelihood);
NumPy here serves the k-fold selection (sufficient statistics, no compilation per fold)
and the marginals over missing entries.

Missing entries are marginalised, never imputed:

- discrete, tree structure (at most one parent each): exact, by sum-product from the
  leaves to the root;
- discrete, other structures: exact by enumerating the missing entries' completions when
  there are at most ``MAX_COMPLETIONS``; otherwise each family with a missing parent uses
  its table averaged over that parent's training frequencies (an approximation);
- reals: exact (the Gaussian marginal of the observed entries);
- a real's dependence on a missing discrete entry uses that entry's expected one-hot
  (its training frequencies): an approximation, exact when no real reads the entry.

Training data with missing entries: tables count the records where a family is observed;
the Gaussian is fitted by EM (the expected Gram matrix given the observed reals).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

MAX_COMPLETIONS = 4096
_LOG_2PI = math.log(2.0 * math.pi)


def logsumexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


# ----------------------------------------------------------------------------- tables
@dataclass
class Tables:
    """Count tables ``log T_j[row(parents), value]`` over ``parents[j]`` (indices)."""

    num_values: np.ndarray
    parents: list[list[int]]
    order: list[int]
    log_tables: list[np.ndarray]
    frequencies: list[np.ndarray]

    @classmethod
    def fit(cls, codes: np.ndarray, num_values: np.ndarray, order: list[int], parents: list[list[int]],
            prior: float = 1.0, weights: np.ndarray | None = None) -> "Tables":
        """Counts (weighted by ``weights``, e.g. a mixture component's responsibilities) of
        the records where each family is observed, smoothed by ``prior``."""
        k = np.asarray(num_values, np.int64)
        w = np.ones(codes.shape[0]) if weights is None else np.asarray(weights, np.float64)
        tables, freqs = [], []
        for j in range(codes.shape[1]):
            ps = parents[j]
            ok = np.all(codes[:, [*ps, j]] >= 0, axis=1)
            row = _rows(codes[ok], ps, k)
            rows = math.prod(int(k[p]) for p in ps)
            counts = np.bincount(row * k[j] + codes[ok, j], weights=w[ok], minlength=rows * k[j]).reshape(rows, k[j])
            total = counts.sum(1, keepdims=True) + k[j] * prior
            probs = np.where(total > 0, (counts + prior) / np.where(total > 0, total, 1.0), 1.0 / k[j])
            with np.errstate(divide="ignore"):
                tables.append(np.log(probs))
            seen = codes[:, j] >= 0
            own = np.bincount(codes[seen, j], weights=w[seen], minlength=k[j]) + prior
            freqs.append(own / own.sum() if own.sum() > 0 else np.full(k[j], 1.0 / k[j]))
        return cls(num_values=k, parents=[list(p) for p in parents], order=list(order), log_tables=tables,
                   frequencies=freqs)

    @property
    def is_tree(self) -> bool:
        return all(len(p) <= 1 for p in self.parents)

    def terms(self, codes: np.ndarray) -> np.ndarray:
        """``(n, D)`` conditional log-probabilities of complete records (``-inf`` where a
        code is unseen, ``-2``); rows with missing codes are not meaningful here."""
        out = np.zeros(codes.shape, np.float64)
        for j, table in enumerate(self.log_tables):
            c = np.maximum(codes, 0)
            out[:, j] = table[_rows(c, self.parents[j], self.num_values), c[:, j]]
        out[codes == -2] = -np.inf
        if np.any(codes == -2):  # a family whose parent is unseen has probability 0 too
            for j, ps in enumerate(self.parents):
                if ps:
                    out[np.any(codes[:, ps] == -2, axis=1), j] = -np.inf
        return out

    def log_prob(self, codes: np.ndarray) -> np.ndarray:
        """``log p(observed codes)`` of each record, marginalising missing codes (``-1``)."""
        out = np.empty(codes.shape[0])
        missing = np.any(codes == -1, axis=1)
        out[~missing] = self.terms(codes[~missing]).sum(1)
        if missing.any():
            out[missing] = self._marginal(codes[missing])
        return out

    def _marginal(self, codes: np.ndarray) -> np.ndarray:
        if self.is_tree:
            return self._sum_product(codes)
        out = np.empty(codes.shape[0])
        for i, rec in enumerate(codes):
            miss = np.flatnonzero(rec == -1)
            if math.prod(int(self.num_values[m]) for m in miss) <= MAX_COMPLETIONS:
                grid = np.array(list(itertools.product(*[range(int(self.num_values[m])) for m in miss])))
                full = np.repeat(rec[None], len(grid), 0)
                full[:, miss] = grid
                out[i] = logsumexp(self.terms(full).sum(1), 0)
            else:
                out[i] = self._parent_averaged(rec)
        return out

    def _parent_averaged(self, rec: np.ndarray) -> float:
        """Approximation: observed children only, each family's table averaged over its
        missing parents' training frequencies."""
        total = 0.0
        for j, ps in enumerate(self.parents):
            if rec[j] == -1:
                continue
            if rec[j] == -2 or any(rec[p] == -2 for p in ps):
                return -np.inf
            probs = np.exp(self.log_tables[j]).reshape(*[int(self.num_values[p]) for p in ps], -1)
            for axis, p in reversed(list(enumerate(ps))):
                if rec[p] == -1:
                    probs = np.tensordot(probs, self.frequencies[p], axes=([axis], [0]))
                else:
                    probs = np.take(probs, rec[p], axis=axis)
            with np.errstate(divide="ignore"):
                total += float(np.log(probs[rec[j]]))
        return total

    def _sum_product(self, codes: np.ndarray) -> np.ndarray:
        """Exact ``log p(observed)`` on a tree (forest): messages from the leaves up."""
        n = codes.shape[0]
        k = self.num_values
        # evidence: 1 on the observed value (0 if unseen), all ones where missing
        msg = [np.ones((n, int(k[j]))) for j in range(codes.shape[1])]  # product of children's messages
        scale = np.zeros(n)
        for j in reversed(self.order):
            ev = np.ones((n, int(k[j])))
            obs = codes[:, j] >= 0
            ev[obs] = 0.0
            ev[obs, codes[obs, j]] = 1.0
            ev[codes[:, j] == -2] = 0.0
            belief = ev * msg[j]  # (n, k_j)
            table = np.exp(self.log_tables[j])  # (rows, k_j)
            if self.parents[j]:
                p = self.parents[j][0]
                up = belief @ table.T  # (n, k_p): sum_x T(x | parent) belief(x)
                mx = up.max(1, keepdims=True)
                mx = np.where(mx > 0, mx, 1.0)
                msg[p] *= up / mx
                scale += np.log(mx[:, 0])
            else:
                with np.errstate(divide="ignore"):
                    scale += np.log(belief @ table[0])
        return scale


def _rows(codes: np.ndarray, parents: list[int], k: np.ndarray) -> np.ndarray:
    row = np.zeros(codes.shape[0], np.int64)
    for p in parents:
        row = row * k[p] + codes[:, p]
    return row


# ----------------------------------------------------------------------------- Gaussian
def onehot(codes: np.ndarray, num_values: np.ndarray, frequencies: list[np.ndarray]) -> np.ndarray:
    """One-hot features of the discrete codes (the library's encoding of categorical
    elements); a missing or unseen code gets its column's training frequencies."""
    blocks = []
    for j in range(codes.shape[1]):
        block = np.zeros((codes.shape[0], int(num_values[j])))
        ok = codes[:, j] >= 0
        block[ok, codes[ok, j]] = 1.0
        block[~ok] = frequencies[j]
        blocks.append(block)
    return np.concatenate(blocks, 1) if blocks else np.zeros((codes.shape[0], 0))


@dataclass
class Gaussian:
    """Reals given one-hot discrete features ``f``: ``r = B r + b + W f + e``, ``e ~ N(0, diag(var))``."""

    order: np.ndarray  # real columns in autoregressive order
    weight_real: np.ndarray  # (R, R) B, strictly lower triangular in ``order``
    weight_feat: np.ndarray  # (R, F) W
    bias: np.ndarray  # (R,)
    var: np.ndarray  # (R,)

    @classmethod
    def fit(cls, feats: np.ndarray, reals: np.ndarray, shrinkage: float, order: np.ndarray | None = None,
            min_variance: float = 1e-6, em_steps: int = 10, weights: np.ndarray | None = None) -> "Gaussian":
        """The ridge fit on the (``weights``-weighted) Gram matrix; with missing reals, EM
        from a mean-filled start (``em_steps`` expected-Gram updates)."""
        n, r = reals.shape
        w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
        order = np.arange(r) if order is None else np.asarray(order)
        missing = np.isnan(reals)
        with np.errstate(invalid="ignore"):
            start = np.nansum(np.where(missing, 0.0, reals) * w[:, None], 0) / np.maximum((~missing * w[:, None]).sum(0), 1e-12)
        filled = np.where(missing, start, reals)
        model = cls._solve(_gram(feats, filled, w), feats.shape[1], order, shrinkage, min_variance)
        for _ in range(em_steps if missing.any() else 0):
            model = cls._solve(model._expected_gram(feats, reals, w), feats.shape[1], order, shrinkage, min_variance)
        return model

    @classmethod
    def _solve(cls, gram: np.ndarray, f: int, order: np.ndarray, shrinkage: float, min_variance: float) -> "Gaussian":
        """The per-element ridge of ``ar.LinearGaussian.with_closed_form`` on the Gram matrix
        of ``[1, f, r]``; element ``order[i]`` reads ``f`` and ``r[order[:i]]``."""
        count = max(gram[0, 0], 1.0)
        mean = gram[0, 1:] / count
        cov = gram[1:, 1:] / count - np.outer(mean, mean)
        r = gram.shape[0] - 1 - f
        big_b, w_f, bias, var = np.zeros((r, r)), np.zeros((r, f)), np.zeros(r), np.zeros(r)
        for i, e in enumerate(order):
            reads = np.r_[np.arange(f), f + order[:i]]
            c_aa = cov[np.ix_(reads, reads)]
            c_ae = cov[reads, f + e]
            a = c_aa + np.diag(shrinkage * np.diag(c_aa))
            w = np.linalg.lstsq(a, c_ae, rcond=None)[0] if reads.size else np.zeros(0)
            v = cov[f + e, f + e] - 2.0 * w @ c_ae + w @ c_aa @ w
            w_f[e], big_b[e, order[:i]] = w[:f], w[f:]
            bias[e] = mean[f + e] - w @ mean[reads]
            var[e] = max(v, min_variance)
        return cls(order=order, weight_real=big_b, weight_feat=w_f, bias=bias, var=var)

    def moments(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean (n, R), cov (R, R))`` of the reals given the features."""
        inv = np.linalg.inv(np.eye(self.bias.size) - self.weight_real)
        return (self.bias + feats @ self.weight_feat.T) @ inv.T, inv @ np.diag(self.var) @ inv.T

    def _expected_gram(self, feats: np.ndarray, reals: np.ndarray, w: np.ndarray) -> np.ndarray:
        """E-step: the Gram matrix of ``[1, f, r]`` with missing reals at their conditional
        mean given the observed ones, plus their conditional covariance (batched over records)."""
        mean, cov = self.moments(feats)
        missing = np.isnan(reals)
        inv = _observed_inverse(cov, missing)  # (n, R, R): C_oo^-1 on the observed block, 0 elsewhere
        z = np.where(missing, 0.0, reals - mean)
        filled = mean + (inv @ z[:, :, None])[:, :, 0] @ cov.T  # observed entries come back unchanged
        cond = cov[None] - cov[None] @ inv @ cov[None]  # cov of the missing given the observed
        both = missing[:, :, None] & missing[:, None, :]
        extra = np.einsum("n,nij->ij", w, np.where(both, cond, 0.0))
        gram = _gram(feats, filled, w)
        f = feats.shape[1]
        gram[1 + f :, 1 + f :] += extra
        return gram

    def terms(self, feats: np.ndarray, reals: np.ndarray) -> np.ndarray:
        """``(n, R)`` conditional log-densities of complete reals (the chain-rule terms)."""
        mean = self.bias + feats @ self.weight_feat.T + reals @ self.weight_real.T
        z = reals - mean
        return -0.5 * (z * z / self.var + np.log(self.var) + _LOG_2PI)

    def log_prob(self, feats: np.ndarray, reals: np.ndarray) -> np.ndarray:
        """``log N(observed reals; mu, Sigma)`` marginal of each record (NaN = missing)."""
        missing = np.isnan(reals)
        out = np.zeros(reals.shape[0])
        full = ~missing.any(1)
        out[full] = self.terms(feats[full], reals[full]).sum(1)
        if (~full).any():
            mean, cov = self.moments(feats[~full])
            miss = missing[~full]
            inv = _observed_inverse(cov, miss)
            z = np.where(miss, 0.0, reals[~full] - mean)
            quad = np.sum(z * (inv @ z[:, :, None])[:, :, 0], 1)
            _, logdet = np.linalg.slogdet(np.where(miss[:, :, None] | miss[:, None, :], np.eye(cov.shape[0]), cov))
            out[~full] = -0.5 * (quad + logdet + (~miss).sum(1) * _LOG_2PI)
        return out


def _gram(feats: np.ndarray, reals: np.ndarray, w: np.ndarray) -> np.ndarray:
    z = np.concatenate([np.ones((reals.shape[0], 1)), feats, reals], 1)
    return z.T @ (z * w[:, None])


def _observed_inverse(cov: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``(n, R, R)``: the inverse of each record's observed block ``C_oo`` in place, zeros in
    the rows and columns of its missing entries (batched: the missing block set to the
    identity, inverted, then zeroed)."""
    both = missing[:, :, None] | missing[:, None, :]
    eye = np.eye(cov.shape[0])
    inv = np.linalg.inv(np.where(both, eye, cov[None]))
    return np.where(both, 0.0, inv)


# ----------------------------------------------------------------------------- kernels
@dataclass
class Kernel:
    """A kernel density over the training records (a mixture with one component per record,
    weights ``1/N``), each component a product of per-column kernels that sum (integrate)
    to one, so the likelihood is exact and a missing entry is marginalised by dropping its
    factor:

    - ordinal columns (``levels >= 3``): the discretised Gaussian
      ``K(v | c) = Phi((v + 1/2 - c) / b) - Phi((v - 1/2 - c) / b)``, the end levels taking the
      tails, ``b = h * max(std, 1/2)`` in levels (``std`` the column's training spread);
    - categorical and two-level columns: ``K(v | c) = 1 - eps`` for ``v = c``, ``eps / (k - 1)``
      otherwise, ``eps = min(h / 4, (k - 1) / k)``;
    - real columns: Gaussian, bandwidth ``h * std`` of the column.

    ``h`` (the bandwidth, in levels or standard deviations) is a candidate parameter, chosen
    by held-out likelihood like every other.
    """

    centres_codes: np.ndarray
    centres_reals: np.ndarray
    num_values: np.ndarray
    ordinal: np.ndarray  # bool per discrete column
    code_scale: np.ndarray  # bandwidth per discrete column (ordinal ones), in levels
    scale: np.ndarray  # bandwidth per real column
    bandwidth: float
    log_freqs: list[np.ndarray]  # a missing centre entry: the column's training frequencies ...
    real_mean: np.ndarray  # ... or its training Gaussian (a proper factor either way)
    real_std: np.ndarray

    @classmethod
    def fit(cls, codes: np.ndarray, reals: np.ndarray, num_values: np.ndarray, ordinal: np.ndarray,
            bandwidth: float) -> "Kernel":
        std = np.nanstd(reals, 0) if reals.shape[1] else np.zeros(0)
        std = np.where(std > 0, std, 1.0)
        mean = np.nanmean(reals, 0) if reals.shape[1] else np.zeros(0)
        log_freqs = [np.log((np.bincount(codes[codes[:, j] >= 0, j], minlength=int(k)) + 1.0)
                            / ((codes[:, j] >= 0).sum() + k)) for j, k in enumerate(num_values)]
        spread = np.array([np.std(c[c >= 0]) if np.any(c >= 0) else 0.0 for c in codes.T]) if codes.shape[1] else np.zeros(0)
        return cls(codes.copy(), reals.copy(), np.asarray(num_values), np.asarray(ordinal, bool),
                   bandwidth * np.maximum(spread, 0.5), bandwidth * std, bandwidth, log_freqs, mean, std)

    def _tables(self) -> list[np.ndarray]:
        """``log K_j[v, c]`` for each discrete column (``(k, k)``)."""
        from math import erf, sqrt

        out = []
        for k, ordered, b in zip(self.num_values, self.ordinal, self.code_scale):
            k = int(k)
            if ordered and k >= 3:
                edges = np.r_[-np.inf, np.arange(k - 1) + 0.5, np.inf]
                cdf = np.vectorize(lambda t: 0.5 * (1.0 + erf(t / sqrt(2.0))))
                table = cdf((edges[1:, None] - np.arange(k)[None]) / b) - cdf((edges[:-1, None] - np.arange(k)[None]) / b)
            else:
                eps = min(self.bandwidth / 4.0, (k - 1) / k) if k > 1 else 0.0
                table = np.full((k, k), eps / max(k - 1, 1))
                np.fill_diagonal(table, 1.0 - eps)
            with np.errstate(divide="ignore"):
                out.append(np.log(np.maximum(table, 1e-300)))
        return out

    def log_prob(self, codes: np.ndarray, reals: np.ndarray, chunk: int = 64) -> np.ndarray:
        tables = self._tables()
        n_train = self.centres_codes.shape[0]
        out = np.empty(codes.shape[0])
        for s in range(0, codes.shape[0], chunk):
            c, r = codes[s : s + chunk], reals[s : s + chunk]
            total = np.zeros((c.shape[0], n_train))
            for j, table in enumerate(tables):
                ok = c[:, j] >= 0
                centres = self.centres_codes[:, j]
                factor = table[c[ok, j]][:, np.maximum(centres, 0)]
                total[ok] += np.where(centres[None] < 0, self.log_freqs[j][c[ok, j]][:, None], factor)
                total[c[:, j] == -2] = -np.inf
            for j in range(r.shape[1]):
                ok = ~np.isnan(r[:, j])
                z = (r[ok, j][:, None] - self.centres_reals[None, :, j]) / self.scale[j]
                term = -0.5 * z * z - math.log(self.scale[j]) - 0.5 * _LOG_2PI
                z0 = (r[ok, j] - self.real_mean[j]) / self.real_std[j]
                marginal = -0.5 * z0 * z0 - math.log(self.real_std[j]) - 0.5 * _LOG_2PI
                total[ok] += np.where(np.isnan(term), marginal[:, None], term)
            out[s : s + chunk] = logsumexp(total, 1) - math.log(n_train)
        return out

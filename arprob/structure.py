"""Dependency structure of discrete columns learned from data (numpy only).

- ``chow_liu``: the maximum-likelihood tree (Chow & Liu 1968): the maximum spanning tree
  of the pairwise empirical mutual information
  ``I(a; b) = sum_ij p(a=i, b=j) log(p(a=i, b=j) / (p(a=i) p(b=j)))``, oriented away from
  a root. Among all tree-structured Bayesian networks it maximises the training
  log-likelihood.
- ``bic_search``: greedy hill climbing over parent sets (at most ``max_parents`` each,
  parents earlier in the Chow–Liu order, so the graph stays acyclic) scored by
  ``BIC = log-likelihood - (log N / 2) * free parameters``, started from the tree.
- ``tables_spec``: the result as an ``ar.Spec`` of ``Categorical`` variables with
  count-fitted ``Table`` conditionals in a topological order.

Codes are integers ``0..k-1``; ``-1`` marks a missing entry, and every statistic is then
computed from the records where the variables it involves are observed (available cases).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

import numpy as np

from .conditioners.table import Table
from .errors import DataError
from .spec.orderings import ByVariable
from .spec.partitions import PerVariable
from .spec.spec import Spec
from .spec.variables import Categorical


def _codes(codes: Mapping[str, np.ndarray], num_values: Mapping[str, int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = list(codes)
    x = np.stack([np.asarray(codes[n]).reshape(-1) for n in names], 1).astype(np.int64)
    k = np.asarray([int(num_values[n]) for n in names])
    bad = (x < -1) | (x >= k)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"column {names[c]!r}: code {x[r, c]} at record {r} is outside 0..{k[c] - 1} (-1 = missing).")
    return names, x, k


def mutual_information(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``(d, d)`` empirical mutual information (nats) of every pair of columns of codes
    ``x`` (``-1`` = missing: pairwise-complete records)."""
    d = x.shape[1]
    mi = np.zeros((d, d))
    for a in range(d):
        for b in range(a + 1, d):
            ok = (x[:, a] >= 0) & (x[:, b] >= 0)
            if not ok.any():
                continue
            joint = np.bincount(x[ok, a] * k[b] + x[ok, b], minlength=k[a] * k[b]).reshape(k[a], k[b])
            p = joint / joint.sum()
            pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
            nz = p > 0
            mi[a, b] = mi[b, a] = float(np.sum(p[nz] * np.log(p[nz] / (pa @ pb)[nz])))
    return mi


def chow_liu(
    codes: Mapping[str, np.ndarray], num_values: Mapping[str, int], *, root: str | None = None
) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Chow–Liu tree: ``(order, parents)``, ``order`` topological (the root first), each
    variable with at most one parent. Prim's algorithm on the mutual information."""
    names, x, k = _codes(codes, num_values)
    if not names:
        return [], {}
    mi = mutual_information(x, k)
    start = 0 if root is None else names.index(root)
    order, parents = [start], {names[start]: ()}
    best, via = mi[start].copy(), np.full(len(names), start)
    best[start] = -np.inf
    in_tree = np.zeros(len(names), bool)
    in_tree[start] = True
    while len(order) < len(names):
        j = int(np.argmax(np.where(in_tree, -np.inf, best)))
        in_tree[j] = True
        order.append(j)
        parents[names[j]] = (names[via[j]],)
        closer = ~in_tree & (mi[j] > best)
        best[closer], via[closer] = mi[j][closer], j
    return [names[i] for i in order], parents


def _family_loglik(x: np.ndarray, k: np.ndarray, child: int, parents: Sequence[int]) -> tuple[float, int]:
    """Maximised log-likelihood of ``child | parents`` on the records where all are observed,
    and the number of free parameters."""
    cols = [*parents, child]
    ok = np.all(x[:, cols] >= 0, axis=1)
    row = np.zeros(int(ok.sum()), np.int64)
    for p in parents:
        row = row * k[p] + x[ok, p]
    rows = math.prod(int(k[p]) for p in parents)
    counts = np.bincount(row * k[child] + x[ok, child], minlength=rows * k[child]).reshape(rows, k[child])
    totals = counts.sum(1, keepdims=True)
    nz = counts > 0
    ll = float(np.sum(counts[nz] * np.log((counts / np.maximum(totals, 1))[nz])))
    return ll, rows * (int(k[child]) - 1)


def bic_search(
    codes: Mapping[str, np.ndarray],
    num_values: Mapping[str, int],
    *,
    max_parents: int = 2,
    max_cells: int = 4096,
    time_budget: float = 5.0,
) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Greedy BIC hill climbing from the Chow–Liu tree. Parents stay earlier in the tree's
    order (acyclic by construction); each move adds or removes one parent of one variable,
    the best improvement first, until none improves or ``time_budget`` seconds pass.
    Families over more than ``max_cells`` table cells are not considered."""
    names, x, k = _codes(codes, num_values)
    order, tree = chow_liu(codes, num_values)
    index = {n: i for i, n in enumerate(names)}
    pos = {index[n]: r for r, n in enumerate(order)}
    n = x.shape[0]
    penalty = 0.5 * math.log(max(n, 2))
    parents = {index[c]: [index[p] for p in tree[c]] for c in order}

    def score(child, ps):
        ll, free = _family_loglik(x, k, child, ps)
        return ll - penalty * free

    current = {c: score(c, ps) for c, ps in parents.items()}
    deadline = time.perf_counter() + time_budget

    def best_move(c):
        """The best single change of ``c``'s parents: (gain, new parents)."""
        ps = parents[c]
        moves = [[q for q in ps if q != r] for r in ps]
        if len(ps) < max_parents:
            moves += [ps + [q] for q in pos if pos[q] < pos[c] and q not in ps
                      and math.prod(int(k[j]) for j in ps + [q]) * k[c] <= max_cells]
        gains = [(score(c, new) - current[c], new) for new in moves]
        return max(gains, key=lambda g: g[0], default=(0.0, ps))

    # a move changes one family only: keep each child's best move, recompute the changed one
    best = {}
    for c in parents:
        if time.perf_counter() >= deadline:
            break
        best[c] = best_move(c)
    while best and time.perf_counter() < deadline:
        c = max(best, key=lambda j: best[j][0])
        gain, new = best[c]
        if gain <= 1e-9:
            break
        parents[c], current[c] = new, current[c] + gain
        best[c] = best_move(c)
    return order, {names[c]: tuple(names[q] for q in sorted(ps, key=pos.get)) for c, ps in parents.items()}


def tables_spec(
    order: Sequence[str], parents: Mapping[str, Sequence[str]], num_values: Mapping[str, int], *, prior: float = 1.0
) -> Spec:
    """A spec of ``Categorical`` variables in ``order`` (one step each), each with a
    count-fitted ``Table(parents=..., prior=prior)``."""
    variables = tuple(Categorical(n, int(num_values[n])) for n in order)
    return Spec(
        variables=variables,
        ordering=ByVariable(tuple(order)),
        partition=PerVariable(),
        conditionals={n: Table(parents=tuple(parents.get(n, ())), prior=prior) for n in order},
    )

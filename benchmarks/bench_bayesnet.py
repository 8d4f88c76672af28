"""Bayesian-network benchmark: a compiled ``BayesNet`` on a generated 37-variable network (the
size of ALARM) and a generated 1,000-variable one (up to 20 states and 6 parents), 10,000
assignments each, in the same run:

1. compile time: ``BayesNet.from_tables`` plus XLA compilation of ``log_prob`` and the sampler
   (target: 1,000 variables in under 5 s); also building the ``Spec`` and reading its BIF file.
2. ``log_prob`` of 10,000 assignments against a hand-written vectorised gather (all parents
   padded to one ``(n, V, r)`` gather) in NumPy and in jitted JAX (target: within 1.2x of JAX).
3. forward sampling of 10,000 assignments against a per-column JAX sampler (a ``fori_loop``
   over variables in topological order, one inverse-CDF draw per column; target within 2x).
4. pgmpy (where installed): its per-row log-likelihood (``TabularCPD.get_value`` for each
   variable of each row) and ``simulate``, timed on a subset and scaled to 10,000 rows.

5. ``ar.compile`` of the ALARM (37 variables) and MUNIN (1,041) networks that pgmpy ships
   (``pgmpy/utils/example_models/*.bif.gz``, read with ``ar.read_bif``): time of
   ``ar.compile`` plus XLA compilation, ``log_prob`` of 10,000 records against a jitted
   per-variable gather written by hand (static parent columns, one table lookup per variable;
   target within 1.2x) and against ``BayesNet``, sampling 10,000 records against ``BayesNet``
   (target within 1.2x); rows ``compiled-alarm`` / ``compiled-munin`` of
   benchmarks/results/bayesnet_compiled.{json,md}.

Run: ``python benchmarks/bench_bayesnet.py [--repeats 7] [--pgmpy-rows 50]`` (writes
benchmarks/results/bayesnet.{json,md}); ``--compiled-only`` runs part 5 alone.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import arprob as ar
from arprob.interop import BayesNet, random_tables
from arprob.interop.bayesnet import bn_log_prob, bn_sample

sys.path.insert(0, str(Path(__file__).parent))
from common import median_times, write_results

N = 10_000
NETWORKS = {
    "generated-37": {"num_variables": 37, "max_states": 4, "max_parents": 4, "max_cells": 1024, "seed": 37},
    "generated-1000": {"num_variables": 1000, "max_states": 20, "max_parents": 6, "max_cells": 8192, "seed": 1},
}


def padded(tables):
    """Parents ``(V, r)`` padded with column ``V`` (all zeros), mixed-radix strides, table bases."""
    names = [v.name for v, _, _ in tables]
    v, r = len(tables), max(1, max(len(p) for _, p, _ in tables))
    parents, strides = np.full((v, r), v), np.zeros((v, r), np.int64)
    card = np.array([c.shape[-1] for _, _, c in tables])
    for i, (_, ps, _) in enumerate(tables):
        idx = [names.index(p) for p in ps]
        parents[i, : len(idx)] = idx
        pc = card[idx]
        strides[i, : len(idx)] = np.concatenate([np.cumprod(pc[::-1])[::-1][1:], [1]]) if idx else []
    sizes = np.array([c.size for _, _, c in tables])
    base = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat = np.concatenate([c.reshape(-1) for _, _, c in tables])
    return parents, strides, card, base, flat


def numpy_log_prob(x, parents, strides, card, base, log_table):
    xp = np.concatenate([x, np.zeros((len(x), 1), x.dtype)], axis=1)
    idx = base + (xp[:, parents] * strides).sum(-1) * card + x
    return log_table[idx].sum(-1)


@jax.jit
def jax_log_prob(x, parents, strides, card, base, log_table):
    xp = jnp.concatenate([x, jnp.zeros((x.shape[0], 1), x.dtype)], axis=1)
    idx = base + (xp[:, parents] * strides).sum(-1) * card + x
    return log_table[idx].sum(-1)


def per_column_sampler(order, parents, strides, card, base, cdf_table, max_card: int):
    """Jitted ``(key, n) -> (n, V)``: one variable per ``fori_loop`` step, in topological order."""
    v = len(order)
    kk = jnp.arange(max_card)

    @jax.jit
    def sample(key, x0):
        n = x0.shape[0]
        u = jax.random.uniform(key, (v, n), cdf_table.dtype)

        def body(t, x):
            i = order[t]
            row = jnp.sum(x[:, parents[i]] * strides[i], axis=-1)
            start = base[i] + row * card[i]
            cdf = jnp.take(cdf_table, start[:, None] + kk, mode="clip")
            inside = kk[None, :] < card[i] - 1
            draw = jnp.sum((cdf <= u[i][:, None]) & inside, axis=-1)
            return x.at[:, i].set(draw.astype(x.dtype))

        return jax.lax.fori_loop(0, v, body, x0)[:, :v]

    return lambda key: sample(key, jnp.zeros((N, v + 1), jnp.int32))


def pgmpy_network(tables):
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    names = [v.name for v, _, _ in tables]
    net = DiscreteBayesianNetwork([(p, v.name) for v, ps, _ in tables for p in ps])
    net.add_nodes_from(names)
    cpds = []
    for v, ps, cpt in tables:
        k = cpt.shape[-1]
        cards = [tables[names.index(p)][2].shape[-1] for p in ps]
        cpds.append(TabularCPD(v.name, k, cpt.reshape(-1, k).T, evidence=list(ps) or None,
                               evidence_card=cards or None))
    net.add_cpds(*cpds)
    return net


def pgmpy_times(tables, x, rows: int) -> tuple[float, float]:
    """Seconds for 10,000 rows: per-row log-likelihood and simulate, from ``rows`` rows."""
    net = pgmpy_network(tables)
    names = [v.name for v, _, _ in tables]
    cpds = [net.get_cpds(n) for n in names]
    start = time.perf_counter()
    for row in x[:rows]:
        assignment = dict(zip(names, row.tolist()))
        sum(math.log(c.get_value(**{q: assignment[q] for q in c.variables})) for c in cpds)
    loglik = (time.perf_counter() - start) / rows * N
    sim_rows = max(rows * 10, 500)
    start = time.perf_counter()
    net.simulate(n_samples=sim_rows, show_progress=False, seed=0)
    simulate = (time.perf_counter() - start) / sim_rows * N
    return loglik, simulate


def bench_network(name: str, kwargs: dict, args, have_pgmpy: bool) -> dict:
    tables = random_tables(**kwargs)
    v = len(tables)
    start, cpu = time.perf_counter(), time.process_time()
    net = BayesNet.from_tables(tables)
    built = time.perf_counter() - start
    x = jnp.zeros((N, v), jnp.int32)
    lp_c = bn_log_prob.lower(net, x).compile()
    sample_c = bn_sample.lower(net, jax.random.key(0), N).compile()
    compile_s, compile_cpu = time.perf_counter() - start, time.process_time() - cpu
    draws = sample_c(net, jax.random.key(1))
    x_np = np.asarray(draws)
    parents, strides, card, base, flat = padded(tables)
    with np.errstate(divide="ignore"):
        log_table = np.log(flat)
    j_args = [jnp.asarray(a) for a in (parents, strides, card, base)] + [jnp.asarray(log_table, jnp.float32)]
    np.testing.assert_allclose(np.asarray(lp_c(net, draws)), numpy_log_prob(x_np, parents, strides, card, base,
                                                                           log_table), rtol=1e-4)
    order = jnp.asarray(np.arange(v))  # generated declaration order is topological
    column = per_column_sampler(order, jnp.asarray(np.vstack([parents, np.full((1, parents.shape[1]), v)])),
                                jnp.asarray(np.vstack([strides, np.zeros((1, strides.shape[1]), int)])),
                                jnp.asarray(np.append(card, 1)), jnp.asarray(np.append(base, 0)), net.cdf_table,
                                net.max_card)
    np.testing.assert_array_equal(np.asarray(column(jax.random.key(2))),
                                  np.asarray(sample_c(net, jax.random.key(2))))  # same uniforms, same draws
    times = median_times({
        "arprob_log_prob": lambda: lp_c(net, draws),
        "jax_gather": lambda: jax_log_prob(draws, *j_args),
        "numpy_gather": lambda: numpy_log_prob(x_np, parents, strides, card, base, log_table),
        "arprob_sample": lambda: sample_c(net, jax.random.key(3)),
        "per_column_sample": lambda: column(jax.random.key(3)),
    }, args.repeats)
    row = {
        "network": name, "variables": v, "cells": int(flat.size),
        "max_parents": int(max(len(p) for _, p, _ in tables)), "max_states": int(card.max()),
        "build_s": built, "compile_s": compile_s, "compile_cpu_s": compile_cpu,
        "log_prob_ms": 1e3 * times["arprob_log_prob"], "jax_gather_ms": 1e3 * times["jax_gather"],
        "numpy_gather_ms": 1e3 * times["numpy_gather"],
        "log_prob_vs_jax": times["arprob_log_prob"] / times["jax_gather"],
        "log_prob_vs_jax@cpu": times["arprob_log_prob@cpu"] / times["jax_gather@cpu"],
        "sample_ms": 1e3 * times["arprob_sample"], "per_column_ms": 1e3 * times["per_column_sample"],
        "sample_vs_per_column": times["arprob_sample"] / times["per_column_sample"],
        "sample_vs_per_column@cpu": times["arprob_sample@cpu"] / times["per_column_sample@cpu"],
    }
    if not args.skip_bif:
        start = time.perf_counter()
        spec = ar.Spec(variables=[t[0] for t in tables],
                       conditionals={t[0].name: ar.Table(parents=t[1], cpt=t[2]) for t in tables})
        row["spec_s"] = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            ar.write_bif(spec, Path(tmp) / "net.bif")
            row["write_bif_s"] = time.perf_counter() - start
            start = time.perf_counter()
            ar.read_bif(Path(tmp) / "net.bif")
            row["read_bif_s"] = time.perf_counter() - start
    if have_pgmpy:
        loglik, simulate = pgmpy_times(tables, x_np, args.pgmpy_rows)
        row["pgmpy_loglik_s"] = loglik
        row["pgmpy_simulate_s"] = simulate
        row["pgmpy_loglik_vs_arprob"] = loglik / times["arprob_log_prob"]
        row["pgmpy_simulate_vs_arprob"] = simulate / times["arprob_sample"]
    print({k: (round(val, 4) if isinstance(val, float) else val) for k, val in row.items()}, flush=True)
    return row


def shipped_bif(name: str) -> Path | None:
    """pgmpy's bundled ``name.bif.gz``, or None when pgmpy (or the file) is absent."""
    try:
        import pgmpy
    except ImportError:
        return None
    path = Path(pgmpy.__file__).parent / "utils" / "example_models" / f"{name}.bif.gz"
    return path if path.is_file() else None


def hand_written_log_prob(tables):
    """Jitted ``(log_tables, x) -> (n,)``: for each variable its parent columns (static
    indices), its mixed-radix row and one lookup in its own flat log table."""
    names = [v.name for v, _, _ in tables]
    plan = []
    for i, (_, ps, cpt) in enumerate(tables):
        idx = [names.index(p) for p in ps]
        cards = list(cpt.shape[:-1])
        radix = [int(r) for r in np.concatenate([np.cumprod(cards[::-1])[::-1][1:], [1]])] if idx else []
        plan.append((i, idx, radix, int(cpt.shape[-1])))
    with np.errstate(divide="ignore"):
        logs = [jnp.asarray(np.log(c.reshape(-1)), jnp.result_type(float)) for _, _, c in tables]

    @jax.jit
    def log_prob(logs, x):
        total = 0.0
        for (i, idx, radix, k), table in zip(plan, logs):
            row = 0
            for p, r in zip(idx, radix):
                row = row + x[:, p] * r
            total = total + jnp.take(table, row * k + x[:, i])
        return total

    return lambda x: log_prob(logs, x)


def bench_compiled(name: str, args) -> dict | None:
    """``ar.compile`` of a shipped BIF network against a hand-written gather and ``BayesNet``."""
    import gzip

    from arprob.interop.bayesnet import network_tables
    from arprob.model import flat_log_prob, flat_sample

    path = shipped_bif(name)
    if path is None:
        print(f"{name}: pgmpy's {name}.bif.gz is not installed; skipped", flush=True)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        bif = Path(tmp) / f"{name}.bif"
        bif.write_bytes(gzip.decompress(path.read_bytes()))
        start = time.perf_counter()
        spec = ar.read_bif(bif)
        read_s = time.perf_counter() - start
    start = time.perf_counter()
    model = ar.compile(spec)
    compile_s = time.perf_counter() - start
    v = len(spec.variables)
    net = BayesNet.from_spec(spec)
    draws = bn_sample(net, jax.random.key(1), N)
    x = draws.astype(jnp.result_type(float))  # the model's flat layout
    start = time.perf_counter()
    lp_c = flat_log_prob.lower(model, x).compile()
    sample_c = flat_sample.lower(model, jax.random.key(0), N, None, False).compile()
    xla_s = time.perf_counter() - start
    hand = hand_written_log_prob(network_tables(spec))
    lp_bn = bn_log_prob.lower(net, draws).compile()
    sample_bn = bn_sample.lower(net, jax.random.key(0), N).compile()
    reference = np.asarray(hand(draws))
    np.testing.assert_allclose(np.asarray(lp_c(model, x)), reference, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(lp_bn(net, draws)), reference, rtol=1e-4, atol=1e-3)
    times = median_times({
        "compiled_log_prob": lambda: lp_c(model, x),
        "hand_gather": lambda: hand(draws),
        "bayesnet_log_prob": lambda: lp_bn(net, draws),
        "compiled_sample": lambda: sample_c(model, jax.random.key(3), None),
        "bayesnet_sample": lambda: sample_bn(net, jax.random.key(3)),
    }, args.repeats)
    row = {
        "network": f"compiled-{name}", "variables": v, "read_bif_s": read_s, "ar_compile_s": compile_s,
        "xla_compile_s": xla_s,
        "log_prob_ms": 1e3 * times["compiled_log_prob"], "hand_gather_ms": 1e3 * times["hand_gather"],
        "bayesnet_log_prob_ms": 1e3 * times["bayesnet_log_prob"],
        "log_prob_vs_hand": times["compiled_log_prob"] / times["hand_gather"],
        "log_prob_vs_hand@cpu": times["compiled_log_prob@cpu"] / times["hand_gather@cpu"],
        "log_prob_vs_bayesnet": times["compiled_log_prob"] / times["bayesnet_log_prob"],
        "sample_ms": 1e3 * times["compiled_sample"], "bayesnet_sample_ms": 1e3 * times["bayesnet_sample"],
        "sample_vs_bayesnet": times["compiled_sample"] / times["bayesnet_sample"],
        "sample_vs_bayesnet@cpu": times["compiled_sample@cpu"] / times["bayesnet_sample@cpu"],
    }
    print({k: (round(val, 4) if isinstance(val, float) else val) for k, val in row.items()}, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--pgmpy-rows", type=int, default=50)
    parser.add_argument("--skip-bif", action="store_true", help="do not time Spec building and BIF reading")
    parser.add_argument("--compiled-only", action="store_true", help="only ar.compile of ALARM and MUNIN (part 5)")
    args = parser.parse_args()
    compiled = [r for r in (bench_compiled(n, args) for n in ("alarm", "munin")) if r is not None]
    if compiled:
        print(write_results("bayesnet_compiled", compiled, [c for c in compiled[0] if all(c in r for r in compiled)]))
    if args.compiled_only:
        return
    try:
        import pgmpy  # noqa: F401
        have_pgmpy = True
    except ImportError:
        have_pgmpy = False
    rows = [bench_network(name, kwargs, args, have_pgmpy) for name, kwargs in NETWORKS.items()]
    columns = [c for c in rows[0] if all(c in r for r in rows)]
    print(write_results("bayesnet", rows, columns))


if __name__ == "__main__":
    main()

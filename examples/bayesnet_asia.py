"""Bayesian networks in and out through BIF: read the Asia network, query it, learn it back
from samples, write it out.

Run: ``python examples/bayesnet_asia.py [--bif tests/data/asia.bif] [--samples 20000]``

A classic Bayesian network with tables (``Table`` conditionals read from BIF).
Runtime on the shared, loaded 2-core development machine: 16 s wall (``/usr/bin/time``; docs/examples.md).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import jax
import numpy as np

import arprob as ar
from arprob.interop import BayesNet, likelihood_weighting
from arprob.train import fit_tables

DEFAULT = Path(__file__).parent.parent / "tests" / "data" / "asia.bif"


def main(bif: Path = DEFAULT, samples: int = 20000) -> None:
    spec = ar.read_bif(bif)  # a Spec: Categorical variables with state names, Table conditionals
    net = BayesNet.from_spec(spec)  # the compiled network: vectorised gathers, no per-variable code
    names = list(net.names)
    print("variables:", ", ".join(f"{v.name}{list(v.states)}" for v in spec.variables))

    # 1. Exact: the joint log-probability of full assignments (state names or indices).
    patient = {"asia": ["no"], "tub": ["no"], "smoke": ["yes"], "lung": ["yes"], "bronc": ["yes"],
               "either": ["yes"], "xray": ["yes"], "dysp": ["yes"]}
    print(f"log p(patient) = {float(net.log_prob(patient)[0]):.4f} nats")

    # 2. Exact forward samples, and exact conditional samples given evidence on ancestors.
    draws = np.asarray(net.sample(jax.random.key(0), samples))
    print(f"p(lung = yes) from {samples} forward samples: {np.mean(draws[:, names.index('lung')] == 0):.4f}")
    evidence = np.zeros((samples, len(names)), np.int32)
    evidence[:, names.index("smoke")] = 0  # a smoker
    observed = {"smoke": True}
    assert net.is_ancestral(observed)  # smoke is a root: the conditional draws are exact
    given = np.asarray(net.sample_conditional(jax.random.key(1), evidence, observed))
    print(f"p(dysp = yes | smoke = yes) from conditional samples: {np.mean(given[:, names.index('dysp')] == 0):.4f}")

    # 3. Estimates for evidence anywhere: likelihood weighting, with its effective sample size.
    lw = likelihood_weighting(net, jax.random.key(2), {"xray": "yes", "dysp": "yes"}, samples)
    lung = float(lw.marginal(names.index("lung"), 2)[0])
    # exact answer by enumeration of the 256 assignments (fine for a network this small)
    x = np.array(list(itertools.product(range(2), repeat=len(names))))
    p = np.exp(np.asarray(net.log_prob(x), np.float64))
    wet = (x[:, names.index("xray")] == 0) & (x[:, names.index("dysp")] == 0)
    exact = p[wet & (x[:, names.index("lung")] == 0)].sum() / p[wet].sum()
    print(f"p(lung = yes | xray = yes, dysp = yes): estimate {lung:.4f} (ESS {float(lw.ess):.0f} of {samples}), "
          f"exact {exact:.4f}; p(evidence) estimate {float(np.exp(lw.log_evidence)):.4f}, exact {p[wet].sum():.4f}")

    # 4. Learn the tables back from the samples (closed-form counting) and write a BIF file.
    blank = spec.replace(conditionals={n: ar.Table(parents=c.parents, prior=1.0) for n, c in spec.conditionals})
    fitted = fit_tables(ar.compile(blank), draws.astype(np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "asia_fitted.bif"
        ar.write_bif(fitted, out, name="asia_fitted")
        back = BayesNet.from_spec(ar.read_bif(out))
        gap = float(np.mean(np.asarray(net.log_prob(draws[:2000])) - np.asarray(back.log_prob(draws[:2000]))))
        print(f"wrote {out.name} ({out.stat().st_size} bytes); mean log-likelihood gap to the truth: {gap:.4f} nats")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bif", type=Path, default=DEFAULT)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--quick", action="store_true", help="fewer samples (for tests)")
    a = parser.parse_args()
    main(a.bif, 4000 if a.quick else a.samples)

"""Cost of the in-jit data checks (``equinox.error_if`` per variable, ``arprob.validation``).

``jax.jit(model.log_prob)`` (traced data: range, integrality and finiteness checked on
the device) against ``ar.flat_log_prob`` (no checks) on the same batch, interleaved in
one run (``common.best_times``). Cases: FVSBN over one 28x28 binary variable (the check
is a few elementwise ops against one masked product) and a model of 20 small variables
(one check per variable).

Run: ``python benchmarks/bench_validation.py`` (writes benchmarks/results/validation.{json,md}).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import arprob as ar

sys.path.insert(0, str(Path(__file__).parent))
from common import best_times, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    cases = {
        "FVSBN, one 28x28 binary variable": ar.Spec(variables=[ar.Binary("img", shape=(28, 28))],
                                                   conditionals={"img": ar.Logistic()}),
        "Logistic, 20 categorical variables of 5 values": ar.Spec(
            variables=[ar.Categorical(f"c{i}", 5) for i in range(20)],
            conditionals={f"c{i}": ar.Logistic() for i in range(20)}),
    }
    rows = []
    for name, spec in cases.items():
        model = ar.compile(spec, jax.random.key(0))
        x = jnp.asarray(model.to_flat(model.sample(jax.random.key(1), args.batch)))
        checked = jax.jit(lambda m, x: m.log_prob(x))
        np.testing.assert_allclose(checked(model, x), ar.flat_log_prob(model, x), rtol=1e-6)
        t = best_times({"checked": lambda: checked(model, x), "flat": lambda: ar.flat_log_prob(model, x)}, args.repeats)
        rows.append({"case": f"{name}, batch {args.batch}", "checked_s": t["checked"], "flat_s": t["flat"],
                     "ratio": t["checked"] / t["flat"]})
    print(write_results("validation", rows, ["case", "checked_s", "flat_s", "ratio"]))


if __name__ == "__main__":
    main()

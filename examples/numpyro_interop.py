"""NumPyro both ways: an arprob model observed inside a NumPyro model and learned with SVI, an
arprob prior in NUTS, and a NumPyro distribution (negative binomial) as an arprob head.

Run: ``python examples/numpyro_interop.py [--quick]``

Runtime on the shared, loaded 2-core development machine: 20 s wall with ``--quick``
(``/usr/bin/time``; docs/examples.md).
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.module import eqx_module
from numpyro.infer import MCMC, NUTS, SVI, Trace_ELBO

import arprob as ar


def random_weights(model: ar.Model, key, scale: float) -> ar.Model:
    leaves, treedef = jax.tree_util.tree_flatten(model)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(treedef, [
        scale * jax.random.normal(k, a.shape, a.dtype) if eqx.is_inexact_array(a) else a
        for k, a in zip(keys, leaves)])


def observe_and_learn(steps: int) -> tuple[float, float, float]:
    """1. ``numpyro.sample("x", as_distribution(net), obs=data)``; the network's arrays are
    NumPyro params through ``eqx_module``, so SVI with an empty guide is maximum likelihood."""
    spec = ar.Spec(variables=[ar.Binary("pixels", shape=(6,))])
    truth = random_weights(ar.compile(spec), jax.random.key(0), 1.0)
    data = truth.sample_flat(jax.random.key(1), 2000)

    def model(data):
        net = eqx_module("fvsbn", ar.compile(spec))
        with numpyro.plate("rows", data.shape[0]):
            numpyro.sample("x", ar.numpyro.as_distribution(net), obs=data)

    svi = SVI(model, lambda data: None, numpyro.optim.Adam(0.1), Trace_ELBO())
    result = svi.run(jax.random.key(2), steps, data, progress_bar=False)
    first, last = float(result.losses[0]) / len(data), float(result.losses[-1]) / len(data)
    true_nll = -float(truth.log_prob(data).mean())
    print(f"SVI: NLL {first:.4f} -> {last:.4f} nats/row (the generating model: {true_nll:.4f})")
    return first, last, true_nll


def nuts_prior(samples: int):
    """2. A linear-Gaussian autoregressive prior over a real vector, a Gaussian likelihood, NUTS."""
    spec = ar.Spec(variables=[ar.Real("z", shape=(3,))])
    prior = random_weights(ar.compile(spec), jax.random.key(3), 0.5)
    prior = eqx.tree_at(lambda m: m.components[0].conditioner.weight, prior,
                        prior.components[0].conditioner.weight.at[:, 1, :].set(0.0))  # constant scales

    def model(y):
        z = numpyro.sample("z", ar.numpyro.as_distribution(prior))  # support: reals, so NUTS runs unconstrained
        numpyro.sample("y", dist.Normal(z.sum(), 0.3), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=samples // 2, num_samples=samples, progress_bar=False)
    mcmc.run(jax.random.key(4), 2.0)
    z = mcmc.get_samples()["z"]
    print(f"NUTS: posterior mean of z {np.round(np.asarray(z.mean(0)), 3)}, of sum(z) {float(z.sum(-1).mean()):.3f} "
          f"(observed 2.0)")
    return prior, z, 2.0, 0.3


def count_head(steps: int, draw: bool = True):
    """3. Over-dispersed counts whose mean depends on a binary covariate: a NegativeBinomial2
    head (mean and concentration through NumPyro's biject_to) with a linear conditioner."""
    rng = np.random.default_rng(5)
    group = rng.integers(0, 2, 3000)
    mean = np.where(group == 1, 12.0, 3.0)
    counts = rng.negative_binomial(2.0, 2.0 / (2.0 + mean))
    spec = ar.Spec(
        variables=[ar.Binary("group"), ar.Real("count")],
        conditionals={"count": ar.Logistic(head=ar.heads.NumPyroHead("NegativeBinomial2"))},
    )
    data = {"group": group, "count": counts.astype(np.float32)}
    model, _ = ar.fit(ar.compile(spec), data, num_steps=steps, learning_rate=0.05, progress=False)
    head = model.components[1].head
    params = model.conditional_params({"group": np.array([0, 1]), "count": np.zeros(2, np.float32)})["count"][:, 0]
    fitted = head.constrained(params)
    print(f"negative binomial head ({head.sampler} sampler): fitted means {np.round(np.asarray(fitted['mean']), 2)} "
          f"(true 3, 12), concentrations {np.round(np.asarray(fitted['concentration']), 2)} (true 2)")
    if not draw:
        return fitted, None, counts
    draws = model.sample(jax.random.key(6), 2000)
    print(f"sampled counts: mean {float(jnp.mean(draws['count'])):.2f} (data {counts.mean():.2f})")
    return fitted, draws, counts


def main(quick: bool = False) -> dict:
    return {
        "svi": observe_and_learn(100 if quick else 300),
        "nuts": nuts_prior(200 if quick else 1000),
        "count": count_head(300 if quick else 1500, draw=not quick),  # the tests sample heads on their own
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few steps (for tests)")
    main(parser.parse_args().quick)

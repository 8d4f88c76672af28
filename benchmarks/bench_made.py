"""MADE benchmarks (D=784 binary, batch 256, CPU), all ratios measured in the same run.

1. masked ``log_prob`` vs the same-shape unmasked MLP + Bernoulli log-likelihood
   (target <= 1.05);
2. cached sampling vs naive sampling (one full pass per step inside the same jitted
   ``lax.scan``; target >= 50x) and sample time / log_prob time (target <= 8);
3. (hidden [800] and [800, 800], since NumPyro's ``AutoregressiveNN`` refuses hidden
   widths < D) the same network against NumPyro's ``InverseAutoregressiveTransform._inverse`` and
   flowjax's ``MaskedAutoregressive.inverse`` (their autoregressive sampling paths: one
   full network pass per dimension), reported as their time / our cached sampling time.

Timings: compile first, ``jax.block_until_ready``, best (minimum) of ``--repeats`` runs,
interleaved so that drift on a shared machine hits every case alike (``common.best_times``). Slow paths (naive,
NumPyro, flowjax) are timed on ``--naive-steps`` steps and extrapolated linearly to D
steps (the per-step work is identical at every step); the output says so.

Run: ``python benchmarks/bench_made.py`` (writes benchmarks/results/made.{json,md}).
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
from common import best_times, naive_steps_fn, write_results  # noqa: E402

D, BATCH = 784, 256


def made_model(hidden, direct):
    spec = ar.Spec(variables=(ar.Binary("img", shape=(28, 28)),), conditionals={"img": ar.MADE(hidden=hidden, direct=direct)})
    return ar.compile(spec, jax.random.key(0))


def plain_mlp(cond, masked: bool):
    """The same-shape unmasked MLP on the MADE's weights (``masked=True``: weights pre-masked
    once, outside the timed function, to check that it computes the same density)."""
    masks = cond.masks(0)  # storage order == natural order for the raster ordering used here
    pick = lambda w, name: jnp.where(masks[name], w, 0.0) if masked else w
    ws = [pick(w, f"hidden{l}") for l, w in enumerate(cond.weights)]
    bs = cond.biases
    w_out = pick(cond.out_weight[:, 0, :], "output") if cond.weights else None
    b_out = cond.out_bias[:, 0]
    w_dir = None if cond.direct_weight is None else pick(cond.direct_weight[:, 0, :], "direct")

    @jax.jit
    def log_prob(ws, bs, w_out, b_out, w_dir, x):
        h = x
        for w, b in zip(ws, bs):
            h = jax.nn.relu(h @ w.T + b)
        logits = h @ w_out.T + b_out
        if w_dir is not None:
            logits = logits + x @ w_dir.T
        return jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)

    return lambda x: log_prob(ws, bs, w_out, b_out, w_dir, x)


def peer_paths(hidden, steps: int):
    """NumPyro IAF inverse and flowjax MAF inverse of a same-size network, ``steps`` steps each."""
    out = {}
    from numpyro.distributions.flows import InverseAutoregressiveTransform
    from numpyro.nn import AutoregressiveNN

    init_fn, apply_fn = AutoregressiveNN(D, list(hidden), param_dims=[1, 1])
    _, params = init_fn(jax.random.key(0), (BATCH, D))
    arn = lambda x: apply_fn(params, x)

    class _Partial(InverseAutoregressiveTransform):
        def _inverse(self, y):  # NumPyro's own loop body, `steps` iterations instead of D
            def _update_x(i, x):
                mean, log_scale = self.arn(x)
                return (y - mean) * jnp.exp(-jnp.clip(log_scale, self.log_scale_min_clip, self.log_scale_max_clip))

            return jax.lax.fori_loop(0, steps, _update_x, jnp.zeros(jnp.shape(y)))

    iaf = _Partial(arn)
    y = jax.random.normal(jax.random.key(1), (BATCH, D))
    f = jax.jit(lambda y: iaf._inverse(y))
    out["numpyro"] = lambda: f(y)

    import equinox as eqx

    try:
        import paramax
        from flowjax.bijections import Affine, MaskedAutoregressive
    except ImportError:
        print("flowjax not installed (pip install -e '.[bench]'): its column is skipped", flush=True)
        return out

    maf = MaskedAutoregressive(jax.random.key(2), transformer=Affine(), dim=D, nn_width=hidden[0], nn_depth=len(hidden))

    @eqx.filter_jit
    def flowjax_inverse(maf, y):
        maf = paramax.unwrap(maf)  # applies the masks, as flowjax's distributions do per call

        def one(yi):
            fn = lambda carry, _: maf.inv_scan_fn(carry, _, None)
            (x, _), _ = jax.lax.scan(fn, (yi, 0), None, length=steps)  # flowjax's own step, `steps` times
            return x

        return jax.vmap(one)(y)

    out["flowjax"] = lambda: flowjax_inverse(maf, y)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--naive-steps", type=int, default=16)
    args = parser.parse_args()
    rows = []
    configs = [((500,), False), ((500,), True), ((500, 500), False), ((500, 500), True), ((800,), False), ((800, 800), False)]
    for hidden, direct in configs:
        model = made_model(hidden, direct)
        cond = model.components[0].conditioner
        x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (BATCH, D)), jnp.float32)
        plain = plain_mlp(cond, masked=False)
        np.testing.assert_allclose(ar.flat_log_prob(model, x), plain_mlp(cond, masked=True)(x), rtol=1e-4, atol=1e-2)
        key = jax.random.key(1)
        # the model is an argument of the jitted functions: closed over, its masks would be folded as constants
        t = best_times({"masked": lambda: ar.flat_log_prob(model, x), "plain": lambda: plain(x)}, args.repeats)
        t |= best_times({"sample": lambda: ar.flat_sample(model, key, BATCH, None, False)}, args.repeats)
        naive = naive_steps_fn(model, BATCH, args.naive_steps)
        tn = best_times({"naive": lambda: naive(key)}, max(3, args.repeats // 3))
        scale = D / args.naive_steps
        lp, mlp, smp, nv = t["masked"], t["plain"], t["sample"], tn["naive"] * scale
        row = {
            "hidden": str(list(hidden)), "direct": direct, "log_prob_ms": 1e3 * lp, "mlp_ms": 1e3 * mlp,
            "masked/mlp": lp / mlp, "sample_ms": 1e3 * smp, "naive/cached": nv / smp, "sample/log_prob": smp / lp,
        }
        if hidden[0] >= D:  # NumPyro's AutoregressiveNN refuses hidden < D
            peers = peer_paths(hidden, args.naive_steps)
            tp = best_times(peers, max(3, args.repeats // 3))
            for name in peers:
                row[f"{name}/ours"] = tp[name] * scale / smp
        rows.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    cols = sorted({k for r in rows for k in r}, key=lambda k: list(rows[-1]).index(k) if k in rows[-1] else 99)
    for r in rows:
        for c in cols:
            r.setdefault(c, "-")
    table = write_results("made", rows, cols)
    print(table)
    print(
        f"Naive, NumPyro and flowjax times: {args.naive_steps} steps timed (best), extrapolated linearly to {D} steps."
    )


if __name__ == "__main__":
    main()

"""What each form of WaveNet's teacher-forced pass costs: variants of the pass.

Times ``flat_log_prob`` of the ``bench_reference`` WaveNet (32 ch, 10 layers, k = 2, one
28x28 binary variable, weights drawn at scale 0.2) with ``WaveNetConditioner.__call__``
replaced by each variant, against the same plain-JAX reference (with the model's biases),
in one run:

- ``shipped``: the library's pass (the gates by ``lax.conv_general_dilated``, which XLA does
  not fuse with its input, so the residual stream is stored once per layer);
- ``tap concatenation``: the gates as one product of the concatenated taps
  ``[h_{s-d}, h_s]`` (the pass before 2026-12-04: XLA fused the residual stream into each
  later layer's concatenation, re-adding all earlier residual products);
- ``no biases``: the tap-concatenation pass without any bias (another model: what a
  reference without biases computes);
- ``shifted products``: the gates as ``k`` products of ``h``, shifted and summed.

Prints the times and the largest change of a per-image log-likelihood against ``shipped``.
Run: ``python benchmarks/profile_wavenet.py [--batch 256] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import arprob as ar
from arprob.conditioners import wavenet
from arprob.testing import randomize

sys.path.insert(0, str(Path(__file__).parent))
import bench_reference  # noqa: E402
from common import best_times  # noqa: E402


def _taps(h, w, k: int, d: int):
    """One product of the concatenated taps ``[h_{s-(k-1)d}, ..., h_s]``."""
    return wavenet.causal_taps(h, k, d) @ w


def _shifted_products(h, w, k: int, d: int):
    """``causal_taps(h, k, d) @ w`` as ``sum_i shift(h @ W_i, (k - 1 - i) d)``."""
    c, n = h.shape[-1], h.shape[0]
    out = h @ w[(k - 1) * c :]
    for i in range(k - 1):
        part = h @ w[i * c : (i + 1) * c]
        s = min((k - 1 - i) * d, n)
        out = out + jnp.concatenate([jnp.zeros((s, part.shape[1]), part.dtype), part[: n - s]], axis=0)
    return out


def _variant(gates, biases: bool = True):
    def call(self, x, feats, context, key=None):
        k = self.kernel_size
        bias = (lambda b: b) if biases else (lambda b: 0.0)
        h = wavenet.causal_taps(self.inputs.all(feats), k, 1) @ self.in_conv + bias(self.in_bias)
        skip = jnp.zeros_like(h)
        for layer in self.layers:
            pre = gates(h, layer.conv, k, layer.dilation) + bias(layer.conv_bias)
            c = pre.shape[-1] // 2
            z = jnp.tanh(pre[..., :c]) * jax.nn.sigmoid(pre[..., c:])
            h = h + z @ layer.res + bias(layer.res_bias)
            skip = skip + z @ layer.skip + bias(layer.skip_bias)
        out = jax.nn.relu(jax.nn.relu(skip) @ self.out1 + bias(self.out1_bias)) @ self.out2 + bias(self.out2_bias)
        return out.reshape(-1, self.num_params)[self.out_index]

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (args.batch, bench_reference.D)), jnp.float32)
    ref_params, reference = bench_reference.wavenet_reference()
    model = randomize(bench_reference.model_for("wavenet", "raster"), jax.random.key(3), scale=0.2)
    shipped = wavenet.WaveNetConditioner.__call__
    variants = {
        "shipped": shipped,
        "tap concatenation": _variant(_taps),
        "no biases": _variant(_taps, biases=False),
        "shifted products": _variant(_shifted_products),
    }
    fns, values = {"reference": lambda: reference(ref_params, x)}, {}
    try:
        for name, call in variants.items():
            wavenet.WaveNetConditioner.__call__ = call
            jax.clear_caches()  # flat_log_prob's trace cache does not see the patched method
            compiled = jax.jit(ar.flat_log_prob).lower(model, x).compile()
            values[name] = np.asarray(compiled(model, x))
            fns[name] = lambda compiled=compiled: compiled(model, x)
    finally:
        wavenet.WaveNetConditioner.__call__ = shipped
    times = best_times(fns, args.repeats)
    for name, t in times.items():
        change = "" if name == "reference" else f"  max |change of log p| {np.abs(values[name] - values['shipped']).max():.2g}"
        print(f"{name:18s} {1e3 * t:7.1f} ms  ({t / times['reference']:.2f}x the reference){change}")


if __name__ == "__main__":
    main()

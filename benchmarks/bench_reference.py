"""Teacher-forced ``log_prob`` of each conditioner against a plain-JAX network of the same shape.

For one 28x28 binary variable (D = 784) and ``--batch`` images (default 256), each case
times ``ar.flat_log_prob(model, x)`` and a hand-written JAX network with the same layer
shapes and FLOPs (every weight, bias and layer-norm gain the model has: the biases start
at zero and the gains at one, as the model's do), written the obvious way, in the same run, interleaved
(``common.best_times``: best of ``--repeats`` after a warm-up). Target: ours / reference
<= 1.2. Cases:

- ``transformer`` (width 64, 4 heads, 2 layers): token embedding of the input shifted by
  one + a position table, pre-LN blocks, ``jax.nn.dot_product_attention(is_causal=True)``,
  GELU MLP 4x, Bernoulli read-out;
- ``wavenet`` (32 channels, 10 layers, kernel 2): the shifted input and 4
  coordinate channels, ``lax.conv_general_dilated`` causal convolutions, gated residual
  layers with skips, ReLU output MLP;
- ``pixelcnn`` (32 channels, 5 layers, kernel 3): gated PixelCNN with vertical and
  horizontal stacks as shifted ``lax.conv_general_dilated`` convolutions;
- ``rnn`` (GRU, 64 hidden): a ``lax.scan`` over positions of a GRU cell on the whole
  batch and the ReLU output MLP (emitting the hidden states and reading them out after
  the scan, or hoisting the input products out of it, measured slower: 1.4x, 2.5x);
- ``logistic`` (FVSBN): one ``D x D`` product (strictly lower-triangular weights) + Bernoulli.

Each ``*_reference()`` returns ``(params, log_prob)``. WaveNet, PixelCNN and Logistic hold
exactly the model's number of trainable floats, the GRU 2 x 64 more (torch's hidden biases
of the r and z gates) (``tests/test_bench_reference.py``); the transformer has a 784 x 64
position table where the model sums 28 + 28 + 1 + 1 learned coordinate rows (a lookup
either way, no FLOPs).

Every case runs in raster order and, with ``--orders``, in other orderings (the
reference is the same raster network: it is what the ordering's masked computation is
held against). The reference weights are random, not the model's: the timing, not the
value, is compared (``--check`` compares ours in float32 with the same model's
log-likelihood at a fixed key before/after a change).

Run: ``python benchmarks/bench_reference.py`` (all cases, batch 256) or e.g.
``nice timeout 900 python benchmarks/bench_reference.py --cases transformer --batch 64 --repeats 3``;
writes benchmarks/results/reference.{json,md}.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import arprob as ar

sys.path.insert(0, str(Path(__file__).parent))
from common import best_times, comma_list, write_results  # noqa: E402

D, SIDE = 784, 28
ORDERS = {"raster": ar.Raster, "zigzag": ar.Zigzag, "columns": ar.Columns, "random": lambda: ar.RandomOrder(0)}


def _normal(key, shape, std=None):
    std = 1.0 / math.sqrt(shape[0]) if std is None else std
    return jax.random.normal(key, shape) * std


def _bernoulli(logits, x):
    return jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)


def _ln_params(width):
    return {"scale": jnp.ones(width), "bias": jnp.zeros(width)}


def _ln(h, p):
    mean = jnp.mean(h, axis=-1, keepdims=True)
    y = (h - mean) * jax.lax.rsqrt(jnp.mean(jnp.square(h - mean), axis=-1, keepdims=True) + 1e-5)
    return y * p["scale"] + p["bias"]


# ------------------------------------------------------------------ references
def transformer_reference(width: int = 64, heads: int = 4, layers: int = 2, mlp: int = 4):
    keys = iter(jax.random.split(jax.random.key(0), 4 + 6 * layers))
    p = {
        "embed": _normal(next(keys), (2, width), 1.0), "bos": _normal(next(keys), (width,), 1.0),
        "pos": _normal(next(keys), (D, width), 0.1), "out": _normal(next(keys), (width, 1)), "out_b": jnp.zeros(1),
        "ln_out": _ln_params(width),
        "blocks": [
            {**{n: _normal(next(keys), s) for n, s in
                [("wq", (width, width)), ("wk", (width, width)), ("wv", (width, width)), ("wo", (width, width)),
                 ("w1", (width, mlp * width)), ("w2", (mlp * width, width))]},
             "bo": jnp.zeros(width), "b1": jnp.zeros(mlp * width), "b2": jnp.zeros(width),
             "ln1": _ln_params(width), "ln2": _ln_params(width)}
            for _ in range(layers)
        ],
    }

    @jax.jit
    def log_prob(p, x):
        b = x.shape[0]
        tok = p["embed"][x.astype(jnp.int32)]  # (b, D, w)
        h = jnp.concatenate([jnp.broadcast_to(p["bos"], (b, 1, width)), tok[:, :-1]], axis=1) + p["pos"]
        for blk in p["blocks"]:
            y = _ln(h, blk["ln1"])
            q, k, v = ((y @ blk[n]).reshape(b, D, heads, width // heads) for n in ("wq", "wk", "wv"))
            h = h + jax.nn.dot_product_attention(q, k, v, is_causal=True).reshape(b, D, width) @ blk["wo"] + blk["bo"]
            h = h + jax.nn.gelu(_ln(h, blk["ln2"]) @ blk["w1"] + blk["b1"]) @ blk["w2"] + blk["b2"]
        return _bernoulli((_ln(h, p["ln_out"]) @ p["out"] + p["out_b"])[..., 0], x)

    return p, log_prob


def _sequence_inputs(x):
    """``(b, D, 5)``: the previous element (0 before the first) and 4 coordinate channels (as
    many as the sequence models read here: flag, row, column, channel)."""
    r, c = np.divmod(np.arange(D), SIDE)
    coords = np.stack([np.ones(D), 2 * r / (SIDE - 1) - 1, 2 * c / (SIDE - 1) - 1, -np.ones(D)], 1)
    prev = jnp.concatenate([jnp.zeros((x.shape[0], 1)), x[:, :-1]], axis=1)[..., None]
    return jnp.concatenate([prev, jnp.broadcast_to(jnp.asarray(coords, jnp.float32), (x.shape[0], D, 4))], axis=-1)


def _causal_conv(h, w, dilation):
    """``h (b, n, c_in)``, ``w (k, c_in, c_out)``: output ``t`` reads ``h_{t - i d}``, ``i < k``."""
    k = w.shape[0]
    return jax.lax.conv_general_dilated(h, w, (1,), [((k - 1) * dilation, 0)], rhs_dilation=(dilation,),
                                        dimension_numbers=("NWC", "WIO", "NWC"))


def wavenet_reference(channels: int = 32, layers: int = 10, kernel: int = 2):
    keys = iter(jax.random.split(jax.random.key(0), 4 + 3 * layers))
    c = channels
    p = {
        "in": _normal(next(keys), (kernel, 5, c)), "out1": _normal(next(keys), (c, c)), "out2": _normal(next(keys), (c, 1)),
        "in_b": jnp.zeros(c), "out1_b": jnp.zeros(c), "out2_b": jnp.zeros(1),
        "layers": [{"conv": _normal(next(keys), (kernel, c, 2 * c)), "res": _normal(next(keys), (c, c)),
                    "skip": _normal(next(keys), (c, c)), "conv_b": jnp.zeros(2 * c), "res_b": jnp.zeros(c),
                    "skip_b": jnp.zeros(c)} for _ in range(layers)],
    }

    @jax.jit
    def log_prob(p, x):
        h = _causal_conv(_sequence_inputs(x), p["in"], 1) + p["in_b"]
        skip = 0.0
        for i, lay in enumerate(p["layers"]):
            pre = _causal_conv(h, lay["conv"], 2 ** i) + lay["conv_b"]
            z = jnp.tanh(pre[..., :c]) * jax.nn.sigmoid(pre[..., c:])
            h = h + z @ lay["res"] + lay["res_b"]
            skip = skip + z @ lay["skip"] + lay["skip_b"]
        logits = (jax.nn.relu(jax.nn.relu(skip) @ p["out1"] + p["out1_b"]) @ p["out2"] + p["out2_b"])[..., 0]
        return _bernoulli(logits, x)

    return p, log_prob


def _conv2d(h, w, pad):
    """``h (b, H, W, c)``, ``w (kh, kw, c_in, c_out)``, ``pad = ((top, bottom), (left, right))``."""
    return jax.lax.conv_general_dilated(h, w, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def pixelcnn_reference(channels: int = 32, layers: int = 5, kernel: int = 3):
    """Gated PixelCNN (van den Oord et al. 2016b), the layer shapes of ``ar.PixelCNN``: the
    vertical stack is a ``(k//2 + 1) x k`` conv over rows ``i - k//2 .. i``, linked into the
    horizontal stack shifted down one row; the horizontal stack is a ``1 x (k//2 + 1)`` conv
    over columns ``j - k//2 .. j`` (centre tap zeroed in the first layer), gated, with a 1x1
    residual map; the input is the image and a ones channel."""
    keys = iter(jax.random.split(jax.random.key(0), 4 + 5 * layers))
    c, a = channels, kernel // 2
    first_h = _normal(next(keys), (1, a + 1, 2, 2 * c), 0.3).at[0, a].set(0.0)  # mask A: columns < j only
    p = {
        "out1": _normal(next(keys), (c, c)), "out2": _normal(next(keys), (c, 1)),
        "out1_b": jnp.zeros(c), "out2_b": jnp.zeros(1),
        "layers": [{"v": _normal(next(keys), (a + 1, kernel, 2 if l == 0 else c, 2 * c), 0.1),
                    "h": first_h if l == 0 else _normal(next(keys), (1, a + 1, c, 2 * c), 0.1),
                    "link": _normal(next(keys), (2 * c, 2 * c)), "res": _normal(next(keys), (c, c)),
                    "v_b": jnp.zeros(2 * c), "h_b": jnp.zeros(2 * c), "res_b": jnp.zeros(c)}
                   for l in range(layers)],
    }

    def gate(y):
        return jnp.tanh(y[..., :c]) * jax.nn.sigmoid(y[..., c:])

    @jax.jit
    def log_prob(p, x):
        img = x.reshape(-1, SIDE, SIDE, 1)
        v_in = h_in = jnp.concatenate([img, jnp.ones_like(img)], axis=-1)
        h = None
        for lay in p["layers"]:
            v_pre = _conv2d(v_in, lay["v"], ((a, 0), (a, a))) + lay["v_b"]
            link = jnp.pad(v_pre @ lay["link"], ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]  # down one row
            r = gate(_conv2d(h_in, lay["h"], ((0, 0), (a, 0))) + lay["h_b"] + link) @ lay["res"] + lay["res_b"]
            h = r if h is None else h + r
            v_in, h_in = gate(v_pre), h
        logits = (jax.nn.relu(jax.nn.relu(h) @ p["out1"] + p["out1_b"]) @ p["out2"] + p["out2_b"]).reshape(-1, D)
        return _bernoulli(logits, x)

    return p, log_prob


def rnn_reference(hidden: int = 64):
    keys = iter(jax.random.split(jax.random.key(0), 6))
    hs = hidden
    p = {"wi": _normal(next(keys), (5, 3 * hs)), "wh": _normal(next(keys), (hs, 3 * hs)), "bi": jnp.zeros(3 * hs),
         "bh": jnp.zeros(3 * hs), "out1": _normal(next(keys), (hs, hs)), "out2": _normal(next(keys), (hs, 1)),
         "out1_b": jnp.zeros(hs), "out2_b": jnp.zeros(1)}

    @jax.jit
    def log_prob(p, x):
        b = x.shape[0]
        u = jnp.swapaxes(_sequence_inputs(x), 0, 1)  # (D, b, 5): time first

        def cell(h, u):  # a GRU cell as torch.nn.GRUCell writes it, then the read-out
            gi, gh = u @ p["wi"] + p["bi"], h @ p["wh"] + p["bh"]
            rz = jax.nn.sigmoid(gi[:, : 2 * hs] + gh[:, : 2 * hs])
            n = jnp.tanh(gi[:, 2 * hs :] + rz[:, :hs] * gh[:, 2 * hs :])
            h = (1 - rz[:, hs:]) * n + rz[:, hs:] * h
            return h, (jax.nn.relu(h @ p["out1"] + p["out1_b"]) @ p["out2"] + p["out2_b"])[:, 0]

        _, logits = jax.lax.scan(cell, jnp.zeros((b, hs)), u)
        return _bernoulli(logits.T, x)

    return p, log_prob


def logistic_reference():
    p = {"w": jnp.tril(_normal(jax.random.key(0), (D, D)), -1), "b": jnp.zeros(D)}
    return p, jax.jit(lambda p, x: _bernoulli(x @ p["w"].T + p["b"], x))


CASES = {
    "transformer": (lambda: ar.Transformer(width=64, num_heads=4, num_layers=2), transformer_reference),
    "wavenet": (lambda: ar.WaveNet(channels=32, num_layers=10, kernel_size=2), wavenet_reference),
    "pixelcnn": (lambda: ar.PixelCNN(channels=32, num_layers=5, kernel_size=3), pixelcnn_reference),
    "rnn": (lambda: ar.RNN(hidden=64, cell="gru"), rnn_reference),
    "logistic": (lambda: ar.Logistic(), logistic_reference),
}


def model_for(case: str, order: str) -> ar.Model:
    spec = ar.Spec(variables=(ar.Binary("img", shape=(SIDE, SIDE)),), ordering=ORDERS[order](),
                   conditionals={"img": CASES[case][0]()})
    return ar.compile(spec, jax.random.key(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", type=comma_list(CASES), default=list(CASES),
                        help="comma-separated subset of " + ",".join(CASES))
    parser.add_argument("--orders", type=comma_list(ORDERS), default=["raster", "zigzag"],
                        help="comma-separated subset of " + ",".join(ORDERS))
    args = parser.parse_args()
    x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (args.batch, D)), jnp.float32)
    rows = []
    for case in args.cases:
        params, reference = CASES[case][1]()
        fns = {"reference": lambda params=params, reference=reference: reference(params, x)}
        for order in args.orders:
            if case == "pixelcnn" and order != "raster":
                continue  # PixelCNN's convolutions need raster order (it refuses others)
            model = model_for(case, order)
            fns[order] = lambda model=model: ar.flat_log_prob(model, x)  # the model as an argument
        start = time.perf_counter()
        t = best_times(fns, args.repeats)
        for order in (o for o in fns if o != "reference"):
            row = {"case": case, "order": order, "batch": args.batch, "ours_ms": 1e3 * t[order],
                   "reference_ms": 1e3 * t["reference"], "ours/reference": t[order] / t["reference"]}
            rows.append(row)
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()},
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(write_results("reference", rows, list(rows[0])))


if __name__ == "__main__":
    main()

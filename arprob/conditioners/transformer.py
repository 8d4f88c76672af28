"""Causal transformer conditioner: attention masked by the step vector, with a KV cache.

Tokens are the D elements of the spec (all variables: a variable's conditioner may
read every earlier element). Two kinds of vectors enter the first layer:

- the *content token* of element ``j``: ``E_var(j) feats_j + code(j)``, which carries the
  value ``x_j``;
- the *query stream* of element ``e``: ``code(e) + q0 (+ C context)``, which carries only
  where ``e`` is (``code`` is the coordinate coding of (row, column, channel, variable),
  learned or sinusoidal), never its value.

Layer 1 is cross-attention from the query stream to the content tokens with
``allowed[e, j] = step[j] < step[e]`` plus one learned *start* token (``s0 + C' context``)
that every query may attend, so the first step, which may attend to no element, still
has a well-defined softmax and sees no data. After layer 1, ``h_e`` depends only on
elements of steps ``< step[e]``. Layers ``2..L`` are self-attention over the query stream
with ``allowed[e, j] = step[j] <= step[e]``: ``h_j`` itself only depends on steps
``< step[j] <= step[e]``, so the contract holds for any ordering and partition (zigzag,
random, blocks). Pre-LayerNorm blocks (attention + MLP), then a shared linear read-out
``LN(h_e) W + b`` gives the head parameters of ``e``.

**KV cache.** At sampling step ``s`` the conditioner (i) writes the layer-1 keys/values
of the elements drawn at step ``s - 1`` (now known), (ii) runs the query stream of the
elements of step ``s`` through every layer, writing their layer-``l >= 2`` keys/values
(which depend only on earlier steps) into the cache before attending, and (iii) reads
out the rows of this conditioner. Every key/value is computed once; a step costs
``O(D * width)`` attention instead of a full ``O(D^2 * width)`` pass.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..errors import SpecError
from ..heads import Head
from ..spec import fields
from ..spec.layout import ElementLayout, Steps, may_read, schedule_table
from ..spec.variables import Variable
from .base import Conditioner, ConditionalSpec, ConditionerContext, check_dropout, dropout
from .sequence import normal_std

_NEG = -1e30


@dataclasses.dataclass(frozen=True)
class Transformer(ConditionalSpec):
    """Causal transformer over the elements, masked by the step vector.

    Attributes:
        width: model width (must be divisible by ``num_heads``).
        num_heads: attention heads.
        num_layers: transformer blocks (the first attends to the data, see module docs).
        mlp_ratio: hidden width of each MLP as a multiple of ``width``.
        coordinate_coding: ``"learned"`` (sum of learned row, column, channel and
            variable embeddings) or ``"sinusoidal"`` (fixed sin/cos features of the same
            four coordinates).
        head: the head; ``None`` picks Bernoulli / Categorical / Gaussian from the variable.
        dropout: rate of inverted dropout while training (``fit``) on the data tokens and on
            the normalised read-out input; scoring and sampling never drop.
    """

    width: int = 64
    num_heads: int = 4
    num_layers: int = 2
    mlp_ratio: int = 4
    coordinate_coding: str = "learned"
    head: Head | None = None
    dropout: float = 0.0
    kind: ClassVar[str] = "transformer"

    @classmethod
    def smaller_alternatives(cls, variable, num_elements: int) -> list[tuple[str, "Transformer"]]:
        """The budget's suggestion for models of up to 4,096 elements (``MADE.smaller_alternatives``)."""
        return [("Transformer()", cls())] if num_elements <= 4096 else []

    def __post_init__(self) -> None:
        for name in ("width", "num_heads", "num_layers", "mlp_ratio"):
            fields.positive_int("Transformer", name, getattr(self, name))
        if self.width % self.num_heads:
            raise SpecError(
                f"Transformer width={self.width} is not divisible by num_heads={self.num_heads}; each head needs "
                f"width / num_heads channels (e.g. width={self.num_heads * max(1, round(self.width / self.num_heads))})."
            )
        fields.one_of("Transformer", "coordinate_coding", self.coordinate_coding, ("learned", "sinusoidal"))
        check_dropout("Transformer", self.dropout)

    def validate(self, variable: Variable, layout: ElementLayout, steps: Steps, context_size: int) -> None:
        self.bind_head(variable)

    def build(self, ctx: ConditionerContext, *, key: PRNGKeyArray) -> "TransformerConditioner":
        return build_transformer(self, ctx, key)


# ------------------------------------------------------------------ modules
class _LayerNorm(eqx.Module):
    scale: Float[Array, " w"]
    bias: Float[Array, " w"]

    def __call__(self, x):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + 1e-5) * self.scale + self.bias


class _Block(eqx.Module):
    ln_q: _LayerNorm
    ln_mlp: _LayerNorm
    wq: Float[Array, "w w"]
    wk: Float[Array, "w w"]
    wv: Float[Array, "w w"]
    wo: Float[Array, "w w"]
    bo: Float[Array, " w"]
    w1: Float[Array, "w m"]
    b1: Float[Array, " m"]
    w2: Float[Array, "m w"]
    b2: Float[Array, " w"]

    def mlp(self, h):
        return h + jax.nn.gelu(self.ln_mlp(h) @ self.w1 + self.b1) @ self.w2 + self.b2


def _split(x, heads: int):
    return x.reshape(*x.shape[:-1], heads, x.shape[-1] // heads)


def _attend(q, k, v, valid):
    """``q (Q, H, dh)``, ``k, v (K, H, dh)``, ``valid (Q, K)`` -> ``(Q, H * dh)``.

    Dense: holds the ``(H, Q, K)`` scores. Used by the KV-cached step (``Q`` = one block)
    and as the reference of :func:`blocked_attend`."""
    scores = jnp.einsum("qhd,khd->hqk", q, k) / math.sqrt(q.shape[-1])
    weights = jax.nn.softmax(jnp.where(valid[None], scores, _NEG), axis=-1)
    out = jnp.einsum("hqk,khd->qhd", weights, v)
    return out.reshape(out.shape[0], -1)


_PAD_STEP = 2**30  # step of padding rows: no real element reads them; they read every real one


#: rows per tile of the full pass's blocked attention (the conditioner's ``attention_tile``
#: default; the memory estimate reads the same constant)
ATTENTION_TILE = 128


def attention_tiles(n: int, tile: int) -> tuple[int, int]:
    """``(T, B)``: ``n`` rows cut into ``T = ceil(n / tile)`` tiles of ``B`` rows (a multiple of
    8, ``T B >= n``; e.g. 784 rows, tile 128 -> 7 tiles of 112)."""
    t = max(1, -(-n // tile))
    return t, 8 * (-(-n // (8 * t)))


def blocked_attend(q, k, v, q_step, k_step, *, same_step: bool, start=None, tile: int = ATTENTION_TILE, rows=None, finish=None):
    """Attention under the step rule in ``B x B`` tiles with an online softmax (flash-style).

    ``q (N, H, dh)``, ``k, v (N, H, dh)``, ``q_step, k_step (N,)`` int -> ``(N, H * dh)``:
    query ``i`` attends key ``j`` iff ``may_read(q_step, k_step, same_step)[i, j]``, plus the
    always-visible ``start = (k0, v0)`` (each ``(H, dh)``) when given; equal to :func:`_attend`
    up to float rounding. Per query tile it keeps the running max ``m``, normaliser ``l`` and
    numerator ``a`` and, for each key tile ``t`` with scores ``s_t``,

        m' = max(m, max_j s_tj),   l' = l e^(m - m') + sum_j e^(s_tj - m'),
        a' = a e^(m - m') + sum_j e^(s_tj - m') v_j,        out = a / l,

    so at most ``H B^2`` scores exist at a time (not ``H N^2``). With ``finish``, each query
    tile's output is ``finish(out_tile, rows_tile)`` instead (``rows (N, ...)``: per-row
    inputs of a row-wise epilogue such as the residual and MLP, which then never exist for
    all rows at once). A key tile no query of the
    tile may read (``may_read`` of the tile's largest query step and smallest key step is
    False) is skipped by ``lax.cond``: with rows sorted by step (as the transformer sorts
    them) that is every tile above the diagonal, half of the work. Every query must read at
    least one key (itself with ``same_step``, or ``start``)."""
    n, heads, dh = q.shape
    nt, b = attention_tiles(n, tile)
    pad = nt * b - n
    dtype = q.dtype
    if pad:
        zeros = jnp.zeros((pad, heads, dh), dtype)
        q, k, v = (jnp.concatenate([a, zeros]) for a in (q, k, v))
        fill = jnp.full((pad,), _PAD_STEP, q_step.dtype)
        q_step, k_step = jnp.concatenate([q_step, fill]), jnp.concatenate([k_step, fill.astype(k_step.dtype)])
        if rows is not None:
            rows = jnp.concatenate([rows, jnp.zeros((pad, *rows.shape[1:]), rows.dtype)])
    tiles = lambda a: a.reshape(nt, b, *a.shape[1:])
    qt, kt, vt, qst, kst = map(tiles, (q, k, v, q_step, k_step))
    rt = qst if rows is None else tiles(rows)
    visible = may_read(jnp.max(qst, axis=1), jnp.min(kst, axis=1), same_step=same_step)  # (T, T) tiles
    root = math.sqrt(dh)
    if start is None:
        init = (jnp.full((heads, b), _NEG, dtype), jnp.zeros((heads, b), dtype), jnp.zeros((heads, b, dh), dtype))
    else:
        k0, v0 = start

    def query_tile(_, xs):
        qi, qsi, vis, ri = xs
        if start is not None:
            s0 = jnp.einsum("qhd,hd->hq", qi, k0) / root
            state = (s0, jnp.ones_like(s0), jnp.broadcast_to(v0[:, None, :], (heads, b, dh)).astype(dtype))
        else:
            state = init

        def key_tile(state, ys):
            kj, vj, ksj, vis_j = ys

            def update(state):
                m, l, a = state
                s = jnp.einsum("qhd,khd->hqk", qi, kj) / root
                ok = may_read(qsi, ksj, same_step=same_step)[None]
                m_new = jnp.maximum(m, jnp.max(jnp.where(ok, s, _NEG), axis=-1))
                p = jnp.where(ok, jnp.exp(s - m_new[..., None]), 0.0)
                corr = jnp.exp(m - m_new)
                return m_new, l * corr + p.sum(-1), a * corr[..., None] + jnp.einsum("hqk,khd->hqd", p, vj)

            return jax.lax.cond(vis_j, update, lambda st: st, state), None

        (_, l, a), _ = jax.lax.scan(key_tile, state, (kt, vt, kst, vis))
        out = jnp.swapaxes(a / l[..., None], 0, 1).reshape(b, heads * dh)
        return None, out if finish is None else finish(out, ri)

    _, out = jax.lax.scan(query_tile, None, (qt, qst, visible, rt))
    return out.reshape(nt * b, *out.shape[2:])[:n]


def sinusoidal_code(coords: np.ndarray, width: int) -> np.ndarray:
    """Fixed coordinate features ``(D, width)``: each of the 4 columns of ``coords`` gets
    ``width // 8`` frequencies ``100^(-i/n)`` as (sin, cos) pairs; leftover columns are 0."""
    d, ncoord = coords.shape
    nf = width // (2 * ncoord)
    out = np.zeros((d, width))
    if nf == 0:
        return out
    freqs = 100.0 ** (-np.arange(nf) / nf)
    for c in range(ncoord):
        ang = coords[:, c : c + 1] * freqs[None, :]
        out[:, 2 * nf * c : 2 * nf * c + nf] = np.sin(ang)
        out[:, 2 * nf * c + nf : 2 * nf * (c + 1)] = np.cos(ang)
    return out


class TransformerConditioner(Conditioner):
    """Runtime causal transformer (see the module docstring)."""

    embed: Float[Array, "v w_in w"]
    embed_bias: Float[Array, "v w"]
    coord_tables: tuple[Float[Array, "r w"], ...]
    fixed_code: Float[Array, "d w"] | None
    query0: Float[Array, " w"]
    start: Float[Array, " w"]
    context_query: Float[Array, "c w"] | None
    context_start: Float[Array, "c w"] | None
    ln_kv: _LayerNorm
    blocks: tuple[_Block, ...]
    ln_out: _LayerNorm
    out_weight: Float[Array, "w p"]
    out_bias: Float[Array, " p"]
    # static tables (integer arrays, not trained)
    step_of: Int[Array, " d"]
    coords: Int[Array, "d 4"]
    feature_index: Int[Array, "d w_in"]
    var_index: Int[Array, " d"]
    elements: Int[Array, " n1"]
    block_elements: Int[Array, "s m"]
    prev_elements: Int[Array, "s m"]
    pos_in_block: Int[Array, " d1"]
    num_heads: int = eqx.field(static=True)
    dropout_rate: float = eqx.field(static=True)
    attention_tile: int = eqx.field(static=True, default=ATTENTION_TILE)  # rows per tile of the full pass

    # ---------------------------------------------------------------- pieces
    def _code(self, idx):
        if self.fixed_code is not None:
            return jax.lax.stop_gradient(jnp.take(self.fixed_code, idx, axis=0, mode="clip"))
        coords = jnp.take(self.coords, idx, axis=0, mode="clip")
        out = 0.0
        for c, table in enumerate(self.coord_tables):
            out = out + jnp.take(table, coords[:, c], axis=0, mode="clip")
        return out

    def _tokens(self, feats, idx):
        """Content tokens of elements ``idx``: ``E_var feats + b_var + code``."""
        fi = jnp.take(self.feature_index, idx, axis=0, mode="clip")
        f = jnp.take(feats, fi, mode="fill", fill_value=0)  # (m, w_in)
        var = jnp.take(self.var_index, idx, mode="clip")
        content = jnp.einsum("mi,miw->mw", f, self.embed[var]) + self.embed_bias[var]
        return content + self._code(idx)

    def _query0(self, idx, context):
        h = self._code(idx) + self.query0
        if self.context_query is not None:
            h = h + context @ self.context_query
        return h

    def _start(self, context):
        s = self.start
        if self.context_start is not None:
            s = s + context @ self.context_start
        return s

    def _kv(self, block: _Block, x):
        return _split(x @ block.wk, self.num_heads), _split(x @ block.wv, self.num_heads)

    def _readout(self, h, key=None):
        return dropout(self.ln_out(h), self.dropout_rate, key) @ self.out_weight + self.out_bias

    # ------------------------------------------------------------ full pass
    def __call__(self, x, feats, context, key=None):
        k_tokens, k_out = (None, None) if key is None else jax.random.split(key)
        # tokens in step order (stable sort), so the key tiles a query tile may not read
        # are those above the diagonal and blocked_attend skips them; rows are per-element,
        # so the order changes only the summation order inside attention
        order = jnp.argsort(self.step_of, stable=True)
        step = self.step_of[order]
        kv_in = self.ln_kv(dropout(self._tokens(feats, order), self.dropout_rate, k_tokens))
        h = self._query0(order, context)
        start = self.ln_kv(self._start(context)[None])
        for l, blk in enumerate(self.blocks):
            xq = blk.ln_q(h)
            k, v = self._kv(blk, kv_in if l == 0 else xq)
            q = _split(xq @ blk.wq, self.num_heads)
            # layer 1 cross-attends to earlier steps' content and the start token, the others
            # to steps <= their own; the residual and the MLP run per query tile
            first = tuple(a[0] for a in self._kv(blk, start)) if l == 0 else None
            h = blocked_attend(q, k, v, step, step, same_step=l > 0, start=first, tile=self.attention_tile, rows=h,
                               finish=lambda att, h_t, blk=blk: blk.mlp(h_t + att @ blk.wo + blk.bo))
        rank = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
        return self._readout(h[rank[self.elements[:-1]]], k_out)

    # ------------------------------------------------------------- KV cache
    def init_cache(self, context):
        d, heads = self.step_of.shape[0], self.num_heads
        w = self.query0.shape[0]
        dtype = self.query0.dtype
        kv_start = self.ln_kv(self._start(context)[None])
        cache = []
        for l, blk in enumerate(self.blocks):
            rows = d + 1 if l == 0 else d
            k = jnp.zeros((rows, heads, w // heads), dtype)
            v = jnp.zeros((rows, heads, w // heads), dtype)
            if l == 0:
                ks, vs = self._kv(blk, kv_start)
                k, v = k.at[d].set(ks[0]), v.at[d].set(vs[0])
            cache.append((k, v))
        return tuple(cache)

    def block_params(self, cache, x, feats, context, s, rows):
        prev, cur = self.prev_elements[s], self.block_elements[s]
        kv_new = self.ln_kv(self._tokens(feats, prev))
        h = self._query0(cur, context)
        step = self.step_of
        now = s[None]  # the current step, as the one reader of this step's queries
        valid1 = jnp.concatenate([may_read(now, step), jnp.ones((1, 1), bool)], axis=1)
        valid = may_read(now, step, same_step=True)
        new_cache = []
        for l, blk in enumerate(self.blocks):
            k, v = cache[l]
            xq = blk.ln_q(h)
            nk, nv = self._kv(blk, kv_new if l == 0 else xq)
            written = prev if l == 0 else cur
            k = k.at[written].set(nk, mode="drop")
            v = v.at[written].set(nv, mode="drop")
            att = _attend(_split(xq @ blk.wq, self.num_heads), k, v, valid1 if l == 0 else valid)
            h = blk.mlp(h + att @ blk.wo + blk.bo)
            new_cache.append((k, v))
        e = jnp.take(self.elements, rows, mode="clip")
        pos = jnp.take(self.pos_in_block, e, mode="clip")
        return self._readout(jnp.take(h, pos, axis=0)), tuple(new_cache)


# ---------------------------------------------------------------- building
def build_transformer(spec: Transformer, ctx: ConditionerContext, key: PRNGKeyArray) -> TransformerConditioner:
    layout, steps = ctx.layout, ctx.steps
    d, w, c = layout.num_elements, spec.width, ctx.context_size
    p = ctx.head.num_params
    dtype = jnp.result_type(float)
    nvar = len(layout.variables)
    w_in = int(layout.feature_width.max())
    feature_index = np.full((d, w_in), layout.num_features, dtype=np.int32)
    for j in range(w_in):
        has = layout.feature_width > j
        feature_index[has, j] = layout.feature_offset[has] + j
    coords = np.concatenate([layout.coords, layout.var_index[:, None]], axis=1).astype(np.int32)

    # the block schedule: elements of each step in ordering order (padded with D + 1: row D of
    # the first layer's cache holds the start token, so padding must be dropped on write)
    block_elements = schedule_table(steps.step, steps.num_steps, order=steps.perm, pad=d + 1)
    pos_in_block = np.concatenate([steps.slot, [0]]).astype(np.int32)
    prev_elements = np.concatenate([np.full((1, block_elements.shape[1]), d + 1, np.int32), block_elements[:-1]], axis=0)

    keys = iter(jax.random.split(key, 16 + 8 * spec.num_layers))
    std = 1.0 / math.sqrt(w)
    out_std = std / math.sqrt(2 * spec.num_layers)
    if spec.coordinate_coding == "learned":
        sizes = [int(coords[:, i].max()) + 1 for i in range(4)]
        coord_tables = tuple(normal_std(next(keys), (r, w), 0.1, dtype) for r in sizes)
        fixed = None
    else:
        coord_tables = ()
        fixed = jnp.asarray(sinusoidal_code(coords, w), dtype)
    ln = lambda: _LayerNorm(jnp.ones(w, dtype), jnp.zeros(w, dtype))
    hidden = spec.mlp_ratio * w
    blocks = tuple(
        _Block(
            ln_q=ln(),
            ln_mlp=ln(),
            wq=normal_std(next(keys), (w, w), std, dtype),
            wk=normal_std(next(keys), (w, w), std, dtype),
            wv=normal_std(next(keys), (w, w), std, dtype),
            wo=normal_std(next(keys), (w, w), out_std, dtype),
            bo=jnp.zeros(w, dtype),
            w1=normal_std(next(keys), (w, hidden), std, dtype),
            b1=jnp.zeros(hidden, dtype),
            w2=normal_std(next(keys), (hidden, w), out_std * math.sqrt(w / hidden), dtype),
            b2=jnp.zeros(w, dtype),
        )
        for _ in range(spec.num_layers)
    )
    return TransformerConditioner(
        embed=normal_std(next(keys), (nvar, w_in, w), 1.0, dtype),
        embed_bias=jnp.zeros((nvar, w), dtype),
        coord_tables=coord_tables,
        fixed_code=fixed,
        query0=normal_std(next(keys), (w,), 0.1, dtype),
        start=normal_std(next(keys), (w,), 0.1, dtype),
        context_query=normal_std(next(keys), (c, w), 1.0 / math.sqrt(c), dtype) if c else None,
        context_start=normal_std(next(keys), (c, w), 1.0 / math.sqrt(c), dtype) if c else None,
        ln_kv=ln(),
        blocks=blocks,
        ln_out=ln(),
        out_weight=jnp.zeros((w, p), dtype),
        out_bias=jnp.zeros(p, dtype),
        step_of=jnp.asarray(steps.step.astype(np.int32)),
        coords=jnp.asarray(coords),
        feature_index=jnp.asarray(feature_index),
        var_index=jnp.asarray(layout.var_index.astype(np.int32)),
        elements=jnp.asarray(np.concatenate([ctx.elements, [d]]).astype(np.int32)),
        block_elements=jnp.asarray(block_elements),
        prev_elements=jnp.asarray(prev_elements),
        pos_in_block=jnp.asarray(pos_in_block),
        num_heads=spec.num_heads,
        dropout_rate=float(spec.dropout),
    )

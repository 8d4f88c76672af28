"""Dilated causal 1-D convolution (WaveNet) over the ordered sequence, with queue-cached sampling.

The spec's D elements, in ordering order and grouped by step, form a sequence of S
positions with ``m`` slots each (``m`` = the largest block; singletons give ``m = 1``).
Position ``s`` reads

    u_s = [ feats of the elements of step s-1 (zeros at s=0) , coords of the elements of step s ]

(``coords``: present flag, row, column, channel scaled to [-1, 1], variable one-hot), so
an output at position ``s`` that depends on ``u_{<=s}`` depends only on steps ``< s``:
the contract holds for any ordering and any partition, and elements of one block never
see each other. The network is a causal conv (kernel ``k``) followed by gated residual
layers with dilation ``2^(l mod cycle)``:

    z = tanh(W_f * h + V_f c) . sigmoid(W_g * h + V_g c),   h <- h + R z,   skip += S z,

and ``params_s = W_2 relu(W_1 relu(skip) + V_o c)`` (``m x P`` values). A causal conv with
dilation ``d`` at position ``s`` reads ``h_{s - i d}``, ``i = 0..k-1``: the sampler keeps, per
layer, a ring buffer of the last ``(k-1) d`` inputs (Fast WaveNet), so each step costs
one position of every layer instead of a full pass over S positions.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..heads import Head
from .base import Conditioner, ConditionalSpec, ConditionerContext, check_dropout
from .sequence import SequenceInputs, check_positive_int, normal_fan_in, output_mlp, sequence_plan

# ----------------------------------------------------------------------------------- spec


@dataclasses.dataclass(frozen=True)
class WaveNet(ConditionalSpec):
    """Dilated causal 1-D convolution over the ordered sequence (WaveNet).

    Honours every ordering and every partition (a step's elements are one sequence
    position; see the module docstring). Reads every earlier element of every variable.

    Attributes:
        channels: residual channels ``c``.
        num_layers: gated residual layers; layer ``l`` has dilation ``2^(l mod cycle)``.
        kernel_size: taps of every causal conv (``>= 2``).
        dilation_cycle: restart the dilations every ``cycle`` layers (``None``: never).
        head: the head; ``None`` picks one from the variable.
        dropout: rate of inverted dropout on the read-out's hidden layer while training
            (``fit``); scoring and sampling never drop.
    """

    channels: int = 32
    num_layers: int = 6
    kernel_size: int = 2
    dilation_cycle: int | None = None
    head: Head | None = None
    dropout: float = 0.0
    kind: ClassVar[str] = "wavenet"

    def __post_init__(self) -> None:
        check_dropout("WaveNet", self.dropout)
        check_positive_int("WaveNet", "channels", self.channels)
        check_positive_int("WaveNet", "num_layers", self.num_layers)
        check_positive_int("WaveNet", "kernel_size", self.kernel_size, 2)
        if self.dilation_cycle is not None:
            check_positive_int("WaveNet", "dilation_cycle", self.dilation_cycle)

    @property
    def dilations(self) -> tuple[int, ...]:
        cycle = self.num_layers if self.dilation_cycle is None else self.dilation_cycle
        return tuple(2 ** (layer % cycle) for layer in range(self.num_layers))

    def receptive_field(self) -> int:
        """Positions (steps) each output sees, the current one included."""
        return 1 + (self.kernel_size - 1) * (1 + sum(self.dilations))

    def build(self, ctx: ConditionerContext, *, key: PRNGKeyArray) -> "WaveNetConditioner":
        plan = sequence_plan(ctx.layout, ctx.steps, ctx.elements)
        c, k, p, m = self.channels, self.kernel_size, ctx.head.num_params, plan.slots
        cs = ctx.context_size
        dtype = jnp.result_type(float)
        keys = iter(jax.random.split(key, 8 + 6 * self.num_layers))
        nrm = lambda shape, fan_in: normal_fan_in(next(keys), shape, fan_in, dtype)
        zeros = lambda *shape: jnp.zeros(shape, dtype)
        layers = tuple(
            GatedLayer(
                conv=nrm((k * c, 2 * c), k * c),
                conv_bias=zeros(2 * c),
                context=nrm((cs, 2 * c), cs) if cs else None,
                res=nrm((c, c), c),
                res_bias=zeros(c),
                skip=nrm((c, c), c),
                skip_bias=zeros(c),
                dilation=d,
            )
            for d in self.dilations
        )
        return WaveNetConditioner(
            inputs=SequenceInputs.from_plan(plan),
            in_conv=nrm((k * plan.input_size, c), k * plan.input_size),
            in_bias=zeros(c),
            layers=layers,
            out1=nrm((c, c), c),
            out1_bias=zeros(c),
            out1_context=nrm((cs, c), cs) if cs else None,
            out2=zeros(c, m * p),
            out2_bias=zeros(m * p),
            out_index=jnp.asarray(plan.out_index),
            row_slot=jnp.asarray(plan.row_slot),
            kernel_size=k,
            slots=m,
            num_params=p,
            dropout_rate=float(self.dropout),
        )


class GatedLayer(eqx.Module):
    """One gated residual layer of dilation ``d`` (weights of all taps stacked: ``(k c, 2c)``)."""

    conv: Float[Array, "kc c2"]
    conv_bias: Float[Array, " c2"]
    context: Float[Array, "cs c2"] | None
    res: Float[Array, "c c"]
    res_bias: Float[Array, " c"]
    skip: Float[Array, "c c"]
    skip_bias: Float[Array, " c"]
    dilation: int = eqx.field(static=True)

    def gate(self, stacked, context):
        """``stacked``: the k taps of the input, concatenated ``(..., k c)`` (one position)."""
        return self._gated(stacked @ self.conv, context)

    def gate_sequence(self, h, context):
        """``gate(causal_taps(h, k, d))`` at every position, as one causal convolution: XLA
        does not fuse a convolution with its input, so the residual stream ``h`` is stored once
        per layer. Fused into a tap concatenation it was recomputed by every later layer (layer
        ``l`` re-added all ``l`` earlier residual products): ``benchmarks/profile_wavenet.py``."""
        k = self.conv.shape[0] // h.shape[-1]
        w = self.conv.reshape(k, h.shape[-1], self.conv.shape[-1])
        d = self.dilation
        pre = jax.lax.conv_general_dilated(h[None], w, (1,), [((k - 1) * d, 0)], rhs_dilation=(d,),
                                           dimension_numbers=("NWC", "WIO", "NWC"))[0]
        return self._gated(pre, context)

    def _gated(self, pre, context):
        pre = pre + self.conv_bias
        if self.context is not None:
            pre = pre + context @ self.context
        c = pre.shape[-1] // 2
        return jnp.tanh(pre[..., :c]) * jax.nn.sigmoid(pre[..., c:])


def causal_taps(h: Float[Array, "s c"], k: int, d: int) -> Float[Array, "s kc"]:
    """``[h_{s-(k-1)d}, ..., h_{s-d}, h_s]`` at every position (zeros before the start)."""
    n = h.shape[0]
    padded = jnp.concatenate([jnp.zeros(((k - 1) * d, h.shape[1]), h.dtype), h], axis=0)
    return jnp.concatenate([padded[i * d : i * d + n] for i in range(k)], axis=-1)


def queue_taps(buffer: Float[Array, "r c"], h: Float[Array, " c"], s: Int[Array, ""], k: int, d: int):
    """Same taps at position ``s`` from a ring buffer holding position ``t`` at ``t mod r``,
    ``r = (k-1) d``; returns the taps and the buffer with ``h_s`` written."""
    r = buffer.shape[0]
    past = [buffer[(s - (k - 1 - i) * d) % r] for i in range(k - 1)]
    return jnp.concatenate([*past, h], axis=-1), buffer.at[s % r].set(h)


class WaveNetConditioner(Conditioner):
    """Runtime WaveNet; the sampling cache is one ring buffer per causal conv."""

    inputs: SequenceInputs
    in_conv: Float[Array, "ki c"]
    in_bias: Float[Array, " c"]
    layers: tuple[GatedLayer, ...]
    out1: Float[Array, "c c"]
    out1_bias: Float[Array, " c"]
    out1_context: Float[Array, "cs c"] | None
    out2: Float[Array, "c mp"]
    out2_bias: Float[Array, " mp"]
    out_index: Int[Array, " n"]
    row_slot: Int[Array, " n1"]
    kernel_size: int = eqx.field(static=True)
    slots: int = eqx.field(static=True)
    num_params: int = eqx.field(static=True)
    dropout_rate: float = eqx.field(static=True)

    def _head(self, skip, context, key=None):
        return output_mlp(jax.nn.relu(skip), context, self.out1, self.out1_bias, self.out1_context, self.out2,
                          self.out2_bias, self.dropout_rate, key)

    def __call__(self, x, feats, context, key=None):
        k = self.kernel_size
        h = causal_taps(self.inputs.all(feats), k, 1) @ self.in_conv + self.in_bias
        skip = jnp.zeros_like(h)
        for layer in self.layers:
            z = layer.gate_sequence(h, context)
            h = h + z @ layer.res + layer.res_bias
            skip = skip + z @ layer.skip + layer.skip_bias
        out = self._head(skip, context, key)  # (S, m P)
        return out.reshape(-1, self.num_params)[self.out_index]

    def init_cache(self, context):
        k, dtype = self.kernel_size, self.in_bias.dtype
        c = self.in_bias.shape[0]
        first = jnp.zeros((k - 1, self.in_conv.shape[0] // k), dtype)
        return (first, tuple(jnp.zeros(((k - 1) * layer.dilation, c), dtype) for layer in self.layers))

    def block_params(self, cache, x, feats, context, s, rows):
        k = self.kernel_size
        first, buffers = cache
        taps, first = queue_taps(first, self.inputs.at(feats, s), s, k, 1)
        h = taps @ self.in_conv + self.in_bias
        skip = jnp.zeros_like(h)
        new_buffers = []
        for layer, buf in zip(self.layers, buffers):
            taps, buf = queue_taps(buf, h, s, k, layer.dilation)
            new_buffers.append(buf)
            z = layer.gate(taps, context)
            h = h + z @ layer.res + layer.res_bias
            skip = skip + z @ layer.skip + layer.skip_bias
        out = self._head(skip, context).reshape(self.slots, self.num_params)
        params = out[jnp.take(self.row_slot, rows, mode="clip")]
        return params, (first, tuple(new_buffers))

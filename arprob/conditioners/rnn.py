"""Recurrent conditioner (GRU or LSTM) over the ordered sequence; its hidden state is the cache.

The sequence is the one of ``arprob.conditioners.sequence``: position ``s`` reads
``u_s = [feats of step s-1, coords of step s]`` (plus the context vector), so

    h_s = cell(u_s (+ c), h_{s-1}),   params_s = W_2 relu(W_1 h_s + b_1 + V c) + b_2

depends only on steps ``< s``, for any ordering and partition. Sampling carries ``h_{s-1}``
and applies the cell once per step: the same cell on the same inputs as the
teacher-forced pass (which runs the cell inside a ``lax.scan`` and also applies the
output map per position, so both paths evaluate identically shaped operations).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..heads import Head
from ..spec import fields
from .base import Conditioner, ConditionalSpec, ConditionerContext, check_dropout
from .sequence import SequenceInputs, check_positive_int, normal_fan_in, output_mlp, sequence_plan

CELLS = ("gru", "lstm")


@dataclasses.dataclass(frozen=True)
class RNN(ConditionalSpec):
    """GRU or LSTM over the ordered sequence, with the element coordinates as inputs.

    Attributes:
        hidden: hidden state size.
        cell: ``"gru"`` or ``"lstm"``.
        head: the head; ``None`` picks one from the variable.
        dropout: rate of inverted dropout on the read-out's hidden layer while training
            (``fit``); scoring and sampling never drop.
    """

    hidden: int = 64
    cell: str = "gru"
    head: Head | None = None
    dropout: float = 0.0
    kind: ClassVar[str] = "rnn"

    def __post_init__(self) -> None:
        check_dropout("RNN", self.dropout)
        check_positive_int("RNN", "hidden", self.hidden)
        fields.one_of("RNN", "cell", self.cell, CELLS)

    def build(self, ctx: ConditionerContext, *, key: PRNGKeyArray) -> "RNNConditioner":
        plan = sequence_plan(ctx.layout, ctx.steps, ctx.elements)
        hsz, p, m, cs = self.hidden, ctx.head.num_params, plan.slots, ctx.context_size
        dtype = jnp.result_type(float)
        k1, k2, k3 = jax.random.split(key, 3)
        cls = eqx.nn.GRUCell if self.cell == "gru" else eqx.nn.LSTMCell
        return RNNConditioner(
            inputs=SequenceInputs.from_plan(plan),
            cell=cls(plan.input_size + cs, hsz, key=k1),
            out1=normal_fan_in(k2, (hsz, hsz), hsz, dtype),
            out1_bias=jnp.zeros(hsz, dtype),
            out1_context=normal_fan_in(k3, (cs, hsz), cs, dtype) if cs else None,
            out2=jnp.zeros((hsz, m * p), dtype),
            out2_bias=jnp.zeros(m * p, dtype),
            out_index=jnp.asarray(plan.out_index),
            row_slot=jnp.asarray(plan.row_slot),
            lstm=self.cell == "lstm",
            slots=m,
            num_params=p,
            dropout_rate=float(self.dropout),
        )


class RNNConditioner(Conditioner):
    """Runtime recurrent conditioner; the sampling cache is the hidden state."""

    inputs: SequenceInputs
    cell: eqx.nn.GRUCell | eqx.nn.LSTMCell
    out1: Float[Array, "h h"]
    out1_bias: Float[Array, " h"]
    out1_context: Float[Array, "cs h"] | None
    out2: Float[Array, "h mp"]
    out2_bias: Float[Array, " mp"]
    out_index: Int[Array, " n"]
    row_slot: Int[Array, " n1"]
    lstm: bool = eqx.field(static=True)
    slots: int = eqx.field(static=True)
    num_params: int = eqx.field(static=True)
    dropout_rate: float = eqx.field(static=True)

    def _advance(self, state, u, context, key=None):
        """One position: new state and that position's ``(m P)`` outputs (``key``: dropout)."""
        if context is not None:
            u = jnp.concatenate([u, context])
        state = self.cell(u, state)
        h = state[0] if self.lstm else state
        return state, output_mlp(h, context, self.out1, self.out1_bias, self.out1_context, self.out2, self.out2_bias,
                                 self.dropout_rate, key)

    def init_cache(self, context):
        zeros = jnp.zeros(self.cell.hidden_size, self.out1.dtype)
        return (zeros, zeros) if self.lstm else zeros

    def __call__(self, x, feats, context, key=None):
        inputs = self.inputs.all(feats)
        if key is None:
            _, out = jax.lax.scan(lambda state, u: self._advance(state, u, context), self.init_cache(context), inputs)
        else:  # one dropout key per position
            keys = jax.random.split(key, inputs.shape[0])
            _, out = jax.lax.scan(lambda state, uk: self._advance(state, uk[0], context, uk[1]),
                                  self.init_cache(context), (inputs, keys))
        return out.reshape(-1, self.num_params)[self.out_index]

    def block_params(self, cache, x, feats, context, s, rows):
        state, out = self._advance(cache, self.inputs.at(feats, s), context)
        out = out.reshape(self.slots, self.num_params)
        return out[jnp.take(self.row_slot, rows, mode="clip")], state

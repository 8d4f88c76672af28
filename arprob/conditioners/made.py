"""MADE: one masked MLP shared by every conditional, with order-agnostic ensembles.

**Degrees from the step vector.** Every degree is a step of the spec (elements of one
block share a degree):

- input feature ``f``: ``m_in(f) = step[element(f)]``; a context input has degree ``-1``;
- hidden unit ``k`` of layer ``l``: ``m_l(k)`` in ``[lo, hi]`` with ``lo = -1`` when there
  is a context (else ``0``) and ``hi = max(out_step) - 1`` (a unit of a larger degree
  could feed no output);
- output element ``e``: ``m_out(e) = step[e]``.

Connectivity (``arprob.masks.rank_mask``): input/hidden -> hidden iff
``m_l(k) >= m_{l-1}(k')``; hidden -> output iff ``step[e] > m_L(k)`` (strict); direct
input -> output iff ``step[e] > m_in(f)`` (strict). A path from input ``f`` to output
``e`` therefore needs ``step[e] > m_L >= ... >= m_1 >= m_in(f)``: the autoregressive
contract. The context is connected to every hidden unit and, directly, to every output.

Hidden degrees are spread evenly (``degrees="equal"``: every value of ``[lo, hi]`` once
before any twice; with fewer units than values, ``round(linspace(lo, hi, H))`` skips
values) or drawn uniformly (``degrees="random"``, each layer from the previous layer's
minimum, as in Germain et al.). **Narrow layers cost conditionals**: when degree ``d``
has no unit, an input of step ``d`` reaches hidden units only of degree ``>= d' > d``
(the next present degree), so outputs with step in ``(d, d']`` cannot use it except
through the direct connection.

**Ensembles / order-agnostic training.** The conditioner holds ``K`` mask sets
(*members*) and a member index (an int array leaf, so changing it never retraces).
Member 0 uses the spec's own step vector; member ``k >= 1`` keeps the spec's blocks but
visits them in another order (``ordering_family="random"``: a permutation of the blocks
drawn from ``default_rng((seed, k))``; ``"fixed"``: the spec's order, i.e.
connectivity-agnostic only; or an explicit tuple of ``K - 1`` orderings that keep each
block consecutive), each resolved by ``compute_steps`` with ``Explicit`` /
``ExplicitBlocks``. With ``degrees="random"`` every member also draws its own hidden
degrees. Every member is an exact autoregressive model in its own ordering; ``arprob.ensembles``
(above the model) trains them order-agnostically through ``fit``, scores the ensemble
density and samples it.

``model.log_prob`` of a MADE model is the density of its current member (0 by default).
Every component of a model with ``K > 1`` must be a MADE with the same family.

**Cached sampling.** A hidden unit of degree ``d`` depends only on steps ``<= d``, so at
sampling step ``s = d + 1`` it is computed, once, from the now complete inputs and stored;
outputs of step ``s`` read units of degree ``< s``, all computed. Summed over the steps
this is one forward pass. Hidden units are stored sorted by degree, so the units of a
step are one contiguous window (a dynamic slice of the weights, an in-place update of the
cache). The cached pre-activation of a unit is the same sum
as in the full pass but evaluated by a smaller matrix product, so it can differ from it in
the last ulp (see docs/neural_made_transformer.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..errors import SpecError
from ..spec import fields
from ..heads import Head
from ..masks import Tiles, rank_mask, row_tiles, tiled_masked_matmul
from ..spec.layout import ElementLayout, Steps, compute_steps, schedule_table
from ..spec.orderings import Explicit, Ordering
from ..spec.partitions import ExplicitBlocks
from ..spec.variables import Variable
from .base import Conditioner, ConditionalSpec, ConditionerContext, check_dropout, dropout

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu}


# --------------------------------------------------------------------------- spec
@dataclasses.dataclass(frozen=True)
class MADE(ConditionalSpec):
    """Masked autoencoder for distribution estimation (Germain et al. 2015).

    Attributes:
        hidden: widths of the hidden layers (``()`` for none; then ``direct`` must be on).
        direct: add masked direct input -> output connections.
        num_orderings: ``K``, the number of mask sets (ensemble members).
        ordering_family: ``"random"`` (random permutations of the spec's blocks),
            ``"fixed"`` (the spec's ordering for every member; with ``degrees="random"``
            this is connectivity-agnostic training), or a tuple of ``K - 1`` orderings for
            members ``1..K-1`` (member 0 is always the spec's own ordering).
        degrees: ``"equal"`` (evenly spread hidden degrees) or ``"random"`` (drawn per
            member and layer).
        activation: ``"relu"``, ``"tanh"`` or ``"gelu"``.
        seed: seed of the member orderings and random degrees.
        head: the head; ``None`` picks Bernoulli / Categorical / Gaussian from the variable.
        dropout: rate of inverted dropout on every hidden layer while training (``fit``);
            scoring and sampling never drop.
    """

    hidden: tuple[int, ...] = (500,)
    direct: bool = True
    num_orderings: int = 1
    ordering_family: str | tuple[Ordering, ...] = "random"
    degrees: str = "equal"
    activation: str = "relu"
    seed: int = 0
    head: Head | None = None
    dropout: float = 0.0
    kind: ClassVar[str] = "made"

    @classmethod
    def smaller_alternatives(cls, variable, num_elements: int) -> list[tuple[str, "MADE"]]:
        """What the memory budget suggests for a variable whose family does not fit (the
        registry asks every family; see ``budget.check_budget``)."""
        return [(f"MADE(hidden=({h},), direct=False)", cls(hidden=(h,), direct=False)) for h in (500, 128, 32)]

    def __post_init__(self) -> None:
        hidden = self.hidden
        if isinstance(hidden, int) and not isinstance(hidden, bool):  # one hidden layer
            hidden = (fields.positive_int("MADE", "hidden", hidden),)
        hidden = fields.int_tuple("MADE", "hidden", hidden, 1)
        object.__setattr__(self, "hidden", hidden)
        fields.boolean("MADE", "direct", self.direct)
        if not hidden and not self.direct:
            raise SpecError("MADE with hidden=() needs direct=True; otherwise no input reaches an output.")
        object.__setattr__(self, "num_orderings", fields.positive_int("MADE", "num_orderings", self.num_orderings))
        object.__setattr__(self, "seed", fields.non_negative_int("MADE", "seed", self.seed))
        family = self.ordering_family
        if isinstance(family, str):
            if family not in ("random", "fixed"):
                raise fields.FieldError("MADE", "ordering_family", "'random', 'fixed' or a list of orderings", family)
        else:
            family = fields.sequence("MADE", "ordering_family", family, "'random', 'fixed' or a list of orderings")
            object.__setattr__(self, "ordering_family", family)
            for i, o in enumerate(family):
                if not isinstance(o, Ordering):
                    raise fields.FieldError("MADE", f"ordering_family[{i}]", "an ordering (a table with a 'kind')", o)
            if len(family) != self.num_orderings - 1:
                raise SpecError(
                    f"MADE with num_orderings={self.num_orderings} needs {self.num_orderings - 1} orderings in "
                    f"ordering_family (member 0 is the spec's own ordering); got {len(family)}."
                )
        fields.one_of("MADE", "degrees", self.degrees, ("equal", "random"))
        fields.one_of("MADE", "activation", self.activation, sorted(ACTIVATIONS))
        check_dropout("MADE", self.dropout)

    def validate(self, variable: Variable, layout: ElementLayout, steps: Steps, context_size: int) -> None:
        self.bind_head(variable)
        member_steps(self, layout, steps)  # raises if an explicit family ordering splits a block

    def build(self, ctx: ConditionerContext, *, key: PRNGKeyArray) -> "MADEConditioner":
        return build_made(self, ctx, key)


# ------------------------------------------------------------------ member orderings
def _blocks(steps: Steps) -> list[np.ndarray]:
    """``steps.elements_of_step(s)`` for every ``s`` in one stable sort (not ``S`` scans of ``D``)."""
    by_step = steps.perm[np.argsort(steps.step[steps.perm], kind="stable")]
    return np.split(by_step, np.cumsum(np.bincount(steps.step, minlength=steps.num_steps))[:-1])


#: host bytes of one ensemble member's ordering while it is validated: a ``Steps`` object and
#: its Python tuples (fixed part), and per element its int64 arrays and tuple entries
MEMBER_BYTES, MEMBER_BYTES_PER_ELEMENT = 16 * 2**10, 256


def member_steps(spec: MADE, layout: ElementLayout, steps: Steps) -> list[Steps]:
    """The step vector of every member: member 0 is ``steps``; the others reorder its blocks."""
    from ..spec.limits import format_bytes, how_to_raise, memory_budget

    need = spec.num_orderings * (MEMBER_BYTES + MEMBER_BYTES_PER_ELEMENT * layout.num_elements)
    if need > memory_budget():  # before K orderings are computed (a file may declare num_orderings=10**6)
        raise SpecError(f"MADE num_orderings={spec.num_orderings}: the member orderings of {layout.num_elements} "
                        f"elements need about {format_bytes(need)}, over the memory budget of "
                        f"{format_bytes(memory_budget())}; {how_to_raise()}.")
    blocks = _blocks(steps)
    out = [steps]
    for k in range(1, spec.num_orderings):
        if spec.ordering_family == "fixed":
            out.append(steps)
            continue
        if spec.ordering_family == "random":
            order = np.random.default_rng((spec.seed, k)).permutation(len(blocks))
            perm = np.concatenate([blocks[b] for b in order])
        else:
            perm = np.asarray(spec.ordering_family[k - 1].permutation(layout.variables))
        try:
            member = compute_steps(layout.variables, Explicit(tuple(int(e) for e in perm)), ExplicitBlocks(tuple(
                tuple(int(e) for e in b) for b in blocks)))
        except SpecError as err:
            raise SpecError(
                f"MADE ordering_family member {k}: the ordering must keep each block of the spec's partition "
                f"consecutive ({err})"
            ) from None
        out.append(member)
    return out


def _hidden_degrees(spec: MADE, lo: int, hi: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Degrees of every hidden layer (``rng`` None: evenly spread), each sorted ascending."""
    degrees, prev_min = [], lo
    for width in spec.hidden:
        if rng is None:
            r = hi - lo + 1
            d = lo + np.arange(width) % r if width >= r else np.round(np.linspace(lo, hi, width)).astype(np.int64)
        else:
            d = rng.integers(prev_min, hi + 1, size=width)
            prev_min = int(d.min())
        degrees.append(np.sort(np.asarray(d, dtype=np.int64)))
    return degrees


def _units_at_step(degrees: np.ndarray, num_steps: int, width: int) -> np.ndarray:
    """``(S, u)``: units whose degree is ``s - 1`` (computed at sampling step ``s``), padded with ``width``."""
    table = schedule_table(degrees + 1, num_steps, pad=width)  # a unit of degree d is computed at step d + 1
    for row in table:
        assert np.all(np.diff(row[row < width]) == 1), "hidden degrees must be sorted (the step's units form one window)"
    return table


# ---------------------------------------------------------------------- runtime
class MADEConditioner(Conditioner):
    """Runtime MADE (see the module docstring).

    Storage order: hidden units are sorted by member-0 degree, the network's inputs are
    the features permuted by ``in_perm`` (sorted by member-0 input degree) and the output
    rows are this variable's elements permuted by ``out_perm`` (sorted by member-0 step).
    Masks are never stored: they are the rank comparisons of the degree vectors of the
    current member (``in_deg``/``hidden_deg``/``out_deg``, stacked over members). With a
    single member the products use ``masks.row_tiles`` (staircase masks: masked blocks skipped).
    """

    weights: tuple[Float[Array, "h h_prev"], ...]
    biases: tuple[Float[Array, " h"], ...]
    context_weight: Float[Array, "h1 c"] | None
    out_weight: Float[Array, "n p hL"]
    out_bias: Float[Array, "n p"]
    direct_weight: Float[Array, "n p f"] | None
    context_out: Float[Array, "n p c"] | None
    in_deg: Int[Array, "k f"]
    hidden_deg: tuple[Int[Array, "k h"], ...]
    out_deg: Int[Array, "k n"]
    in_perm: Int[Array, " f"]
    in_pos: Int[Array, " f"]
    out_pos: Int[Array, " n1"]
    units_at_step: tuple[Int[Array, "k s u"], ...]
    member_steps: Int[Array, "k d"]
    member: Int[Array, ""]
    activation: str = eqx.field(static=True)
    dropout_rate: float = eqx.field(static=True)
    plans: tuple[Tiles, ...] | None = eqx.field(static=True)  # hidden layers, output, direct (K = 1)
    in_identity: bool = eqx.field(static=True)
    out_identity: bool = eqx.field(static=True)

    @property
    def num_members(self) -> int:
        return int(self.member_steps.shape[0])

    def _act(self, a):
        return ACTIVATIONS[self.activation](a)

    def masks(self, k: int = 0) -> dict[str, np.ndarray]:
        """Member ``k``'s boolean masks in storage order (for inspection and tests)."""
        degs = [np.asarray(self.in_deg[k])[np.asarray(self.in_perm)]] + [np.asarray(d[k]) for d in self.hidden_deg]
        out = {f"hidden{l}": rank_mask(degs[l], degs[l + 1], strict=False) for l in range(len(self.hidden_deg))}
        out_deg = np.asarray(self.out_deg[k])
        out["output"] = rank_mask(degs[-1], out_deg, strict=True)
        out["direct"] = rank_mask(degs[0], out_deg, strict=True)
        return out

    def _matmul(self, x, w, i: int, row_deg, col_deg, strict: bool):
        tiles = ((0, w.shape[0], w.shape[1]),) if self.plans is None else self.plans[i]
        return tiled_masked_matmul(x, w, tiles, row_deg, col_deg, strict=strict)

    def __call__(self, x, feats, context, key=None):
        m = self.member
        n, p = self.out_bias.shape
        xs = feats if self.in_identity else feats[self.in_perm]
        in_deg = self.in_deg[m] if self.in_identity else self.in_deg[m][self.in_perm]
        h, deg = xs, in_deg
        for l, (w, b, hdeg) in enumerate(zip(self.weights, self.biases, self.hidden_deg)):
            pre = self._matmul(h, w, l, hdeg[m], deg, False) + b
            if l == 0 and self.context_weight is not None:
                pre = pre + self.context_weight @ context
            h, deg = dropout(self._act(pre), self.dropout_rate, None if key is None else jax.random.fold_in(key, l)), hdeg[m]
        out_deg = jnp.repeat(self.out_deg[m], p)
        out = self.out_bias.reshape(-1)
        if self.weights:
            out = out + self._matmul(h, self.out_weight.reshape(n * p, -1), len(self.weights), out_deg, deg, True)
        if self.direct_weight is not None:
            out = out + self._matmul(xs, self.direct_weight.reshape(n * p, -1), len(self.weights) + 1, out_deg, in_deg, True)
        out = out.reshape(n, p)
        if self.context_out is not None:
            out = out + jnp.einsum("npc,c->np", self.context_out, context)
        return out if self.out_identity else out[self.out_pos[:-1]]

    def init_cache(self, context):
        return tuple(jnp.zeros(w.shape[0], w.dtype) for w in self.weights)

    def block_params(self, cache, x, feats, context, s, rows):
        """Compute the hidden units of degree ``s - 1`` (now complete), then the rows of step ``s``.

        The direct rows get their own matrix-vector product: stacking them with the new units
        into one few-row matrix product is slower on CPU (XLA's small-N matrix path)."""
        m = self.member
        in_deg = self.in_deg[m]  # natural feature order
        natural = lambda a: a if self.in_identity else jnp.take(a, self.in_pos, axis=-1)
        srows = jnp.take(self.out_pos, rows, mode="clip")  # storage rows of this step's elements
        take_rows = lambda a: jnp.take(a, srows, axis=0, mode="clip")
        out_deg = take_rows(self.out_deg[m])
        out = take_rows(self.out_bias)
        hs, inp, deg = [], feats, in_deg
        for l, (w, b, hdeg, table) in enumerate(zip(self.weights, self.biases, self.hidden_deg, self.units_at_step)):
            # Units are sorted by degree, so this step's units are contiguous: one window of
            # u rows (dynamic slices, in-place update); rows outside the step keep their value.
            width, u = w.shape[0], table.shape[-1]
            units = table[m, s]
            count = jnp.sum(units < width)
            start = jnp.clip(units[0], 0, width - u)
            win = lambda a, start=start, u=u: jax.lax.dynamic_slice_in_dim(a, start, u, axis=0)
            fresh = (jnp.arange(u) >= units[0] - start) & (jnp.arange(u) < units[0] - start + count)

            # Built inside the branch: a masked window made outside and passed in costs a third more.
            def update(h, inp=inp, deg=deg, hdeg=hdeg, w=w, win=win, fresh=fresh, start=start, b=b, l=l):
                wu = jnp.where(rank_mask(deg, win(hdeg[m]), strict=False), natural(win(w)) if l == 0 else win(w), 0.0)
                pre = wu @ inp + win(b)
                if l == 0 and self.context_weight is not None:
                    pre = pre + win(self.context_weight) @ context
                new = jnp.where(fresh, self._act(pre), win(h))
                return jax.lax.dynamic_update_slice_in_dim(h, new, start, axis=0)

            # steps with no unit of degree s - 1 (narrow layers) skip the product
            h = jax.lax.cond(count > 0, update, lambda h: h, cache[l])
            hs.append(h)
            inp, deg = h, hdeg[m]
        if self.weights:
            w = jnp.where(rank_mask(deg, out_deg, strict=True)[:, None, :], take_rows(self.out_weight), 0.0)
            out = out + jnp.einsum("npk,k->np", w, inp)
        if self.direct_weight is not None:
            w = jnp.where(rank_mask(in_deg, out_deg, strict=True)[:, None, :], natural(take_rows(self.direct_weight)), 0.0)
            out = out + jnp.einsum("npf,f->np", w, feats)
        if self.context_out is not None:
            out = out + jnp.einsum("npc,c->np", take_rows(self.context_out), context)
        return out, tuple(hs)


def _init_rows(key, shape, fan_in: np.ndarray, dtype) -> jax.Array:
    """N(0, 1/fan_in) per output row, ``fan_in`` the number of allowed inputs of that row."""
    scale = 1.0 / np.sqrt(np.maximum(fan_in, 1)).reshape((-1,) + (1,) * (len(shape) - 1))
    return jax.random.normal(key, shape, dtype) * jnp.asarray(scale, dtype)


def build_made(spec: MADE, ctx: ConditionerContext, key: PRNGKeyArray) -> MADEConditioner:
    layout = ctx.layout
    n, p = ctx.num_outputs, ctx.head.num_params
    f, c = layout.num_features, ctx.context_size
    dtype = jnp.result_type(float)
    members = member_steps(spec, layout, ctx.steps)
    feature_element = layout.feature_element
    in_degs = [st.step[feature_element] for st in members]
    out_degs = [st.step[ctx.elements] for st in members]
    in_perm = np.argsort(in_degs[0], kind="stable")
    out_perm = np.argsort(out_degs[0], kind="stable")
    hidden_degs: list[list[np.ndarray]] = []
    for k, st in enumerate(members):
        lo = -1 if c else int(in_degs[k].min())
        hi = max(int(out_degs[k].max()) - 1, lo)
        rng = np.random.default_rng((spec.seed, k, 1)) if spec.degrees == "random" else None
        hidden_degs.append(_hidden_degrees(spec, lo, hi, rng))

    # member-0 masks in storage order (rank_mask), used for init and the K = 1 block plans
    chain = [in_degs[0][in_perm]] + hidden_degs[0]
    out_sorted = out_degs[0][out_perm]
    plans = None
    if len(members) == 1:
        plans = tuple(row_tiles(rank_mask(chain[l], chain[l + 1], strict=False)) for l in range(len(spec.hidden)))
        plans += tuple(row_tiles(rank_mask(deg, np.repeat(out_sorted, p), strict=True)) for deg in (chain[-1], chain[0]))
    tables = []
    for l, width in enumerate(spec.hidden):
        per = [_units_at_step(hd[l], st.num_steps, width) for hd, st in zip(hidden_degs, members)]
        u = max(t.shape[1] for t in per)
        stacked = np.full((len(members), members[0].num_steps, u), width, dtype=np.int32)
        for k, t in enumerate(per):
            stacked[k, :, : t.shape[1]] = t
        tables.append(jnp.asarray(stacked))

    keys = jax.random.split(key, len(spec.hidden) + 3)
    weights, biases, fan_prev = [], [], f
    for l, width in enumerate(spec.hidden):
        fan_in = rank_mask(chain[l], chain[l + 1], strict=False).sum(1) + c
        weights.append(_init_rows(keys[l], (width, fan_prev), fan_in, dtype))
        biases.append(jnp.zeros(width, dtype))
        fan_prev = width
    out_weight = (
        _init_rows(keys[-3], (n, p, spec.hidden[-1]), rank_mask(chain[-1], out_sorted, strict=True).sum(1), dtype)
        if spec.hidden
        else jnp.zeros((n, p, 0), dtype)
    )
    out_pos = np.empty(n + 1, dtype=np.int32)
    out_pos[out_perm] = np.arange(n)
    out_pos[n] = n  # padding row -> clipped
    in_pos = np.empty(f, dtype=np.int32)
    in_pos[in_perm] = np.arange(f)
    return MADEConditioner(
        weights=tuple(weights),
        biases=tuple(biases),
        context_weight=(
            _init_rows(keys[-2], (spec.hidden[0], c), np.full(spec.hidden[0], c), dtype) if (c and spec.hidden) else None
        ),
        out_weight=out_weight,
        out_bias=jnp.zeros((n, p), dtype),
        direct_weight=jnp.zeros((n, p, f), dtype) if spec.direct else None,
        context_out=jnp.zeros((n, p, c), dtype) if c else None,
        in_deg=jnp.asarray(np.stack(in_degs).astype(np.int32)),
        hidden_deg=tuple(jnp.asarray(np.stack([hd[l] for hd in hidden_degs]).astype(np.int32)) for l in range(len(spec.hidden))),
        out_deg=jnp.asarray(np.stack([d[out_perm] for d in out_degs]).astype(np.int32)),
        in_perm=jnp.asarray(in_perm.astype(np.int32)),
        in_pos=jnp.asarray(in_pos),
        out_pos=jnp.asarray(out_pos),
        units_at_step=tuple(tables),
        member_steps=jnp.asarray(np.stack([st.step for st in members]).astype(np.int32)),
        member=jnp.asarray(0, jnp.int32),
        activation=spec.activation,
        dropout_rate=float(spec.dropout),
        plans=plans,
        in_identity=bool(np.array_equal(in_perm, np.arange(f))),
        out_identity=bool(np.array_equal(out_perm, np.arange(n))),
    )


__all__: Sequence[str] = ("MADE", "MADEConditioner", "member_steps")

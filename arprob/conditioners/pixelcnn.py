"""Gated PixelCNN (van den Oord et al. 2016b) for one image variable, with a row cache.

**Orderings.** The network is written for raster order on an image ``X`` of shape
``(H', W', C)``. Raster order, ``Reverse()``, ``Columns()`` and ``Reverse(Columns())`` are
served by transposing (rows <-> columns) and/or flipping every axis of the image before
the network and undoing it after. Which transform applies is read off the step vector
(the relative order of the variable's own elements), so e.g. ``ByVariable`` with a
raster ``within`` works too. Partitions: each element its own step (channels R -> G -> B
inside a pixel) or each pixel one step (``PerPixel``: channels see nothing of their
pixel). Anything else raises ``SpecError`` at spec construction.

**Network** (``p`` channels, kernel ``k``, ``a = k // 2``). Two stacks (no blind spot):

- vertical: ``v_pre = conv_{(a+1) x k}(v)`` over rows ``i-a..i``, ``v <- gate(v_pre)``;
- horizontal: ``h_pre = conv_{1 x (a+1)}(h)`` over columns ``j-a..j`` of row ``i`` +
  ``L v_pre`` *shifted down one row* (so ``h`` sees rows ``< i`` through the vertical
  stack and never the reverse), ``h <- h + R gate(h_pre)``;
- ``gate(y) = tanh(y_f + V_f c) . sigmoid(y_g + V_g c)`` with class/context vector ``c``.

Channel autoregression: features carry a *group* (input channel ``g`` of the pixel,
hidden feature ``q`` in group ``q G // p``; ``G = C`` with singleton steps, ``G = 1`` per
pixel); at the centre tap of the horizontal stack input group ``g`` may reach output
group ``g'`` iff ``g < g'`` in the first layer (mask A) and ``g <= g'`` after (mask B);
1x1 maps use mask B; channel ``c``'s parameters read groups ``<= c``. A constant ones
channel (group ``-1``, visible everywhere) lets the network tell zero padding from zeros.

**Cache** (Fast-PixelCNN style, exact): the sampler keeps every vertical-stack row and
the current row of every horizontal layer. At the first step of row ``i`` it computes
row ``i-1`` of the vertical stack (all layers, one row each); at each step it computes
the horizontal stack at one pixel only. Per image that is one vertical pass plus
``H' W'`` single-pixel horizontal passes instead of ``H' W' C`` full passes.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..errors import SpecError
from ..heads import Head
from ..masks import rank_mask
from ..spec import fields
from ..spec.layout import ElementLayout, Steps
from ..spec.variables import Variable
from .base import Conditioner, ConditionalSpec, ConditionerContext, check_dropout
from .sequence import check_positive_int, normal_fan_in, output_mlp

_TRANSFORMS = (
    ("raster", False, False),
    ("Reverse()", False, True),
    ("Columns()", True, False),
    ("Reverse(Columns())", True, True),
)


def _transform(a: np.ndarray, transpose: bool, flip: bool) -> np.ndarray:
    """Image (H, W, C, ...) -> the raster-order frame of the network."""
    if transpose:
        a = np.swapaxes(a, 0, 1)
    if flip:
        a = a[::-1, ::-1, ::-1]
    return np.ascontiguousarray(a)


@dataclasses.dataclass(frozen=True, eq=False)
class ImagePlan:
    """How a variable's elements map onto the network's raster frame.

    Attributes:
        transpose, flip: the transform (see ``_transform``) and its name.
        per_pixel: True when each pixel is one step (channels in one block).
        local: ``(H', W', C)`` local element index at each position of the frame.
        height, width, channels: ``H', W', C`` of the frame.
    """

    name: str
    transpose: bool
    flip: bool
    per_pixel: bool
    local: np.ndarray

    @property
    def height(self) -> int:
        return self.local.shape[0]

    @property
    def width(self) -> int:
        return self.local.shape[1]

    @property
    def channels(self) -> int:
        return self.local.shape[2]

    @property
    def groups(self) -> int:
        return 1 if self.per_pixel else self.channels


def image_plan(variable: Variable, layout: ElementLayout, steps: Steps) -> ImagePlan:
    """Find the transform that turns the variable's step order into raster order (or raise)."""
    if len(variable.shape) not in (2, 3):
        raise SpecError(
            f"PixelCNN models one image variable of shape (H, W) or (H, W, C); {variable.name!r} has shape "
            f"{variable.shape}. Use MADE, Transformer, WaveNet or RNN for other shapes."
        )
    h, w = variable.shape[:2]
    c = variable.shape[2] if len(variable.shape) == 3 else 1
    elements = layout.elements_of(variable.name)
    step = steps.step[elements].reshape(h, w, c)
    position = steps.position[elements].reshape(h, w, c)
    local = np.arange(h * w * c).reshape(h, w, c)
    order_ok = None
    for name, transpose, flip in _TRANSFORMS:
        st = _transform(step, transpose, flip)
        loc = _transform(local, transpose, flip)
        if np.all(np.diff(st.reshape(-1)) > 0):
            return ImagePlan(name, transpose, flip, False, loc)
        pix = st.reshape(-1, c)
        if np.all(pix == pix[:, :1]) and np.all(np.diff(pix[:, 0]) > 0):
            return ImagePlan(name, transpose, flip, True, loc)
        if np.all(np.diff(_transform(position, transpose, flip).reshape(-1)) > 0):
            order_ok = st
    if order_ok is not None:  # the order is fine; the partition groups elements a PixelCNN cannot
        flat = order_ok.reshape(-1)
        t = int(np.flatnonzero(np.diff(flat) == 0)[0])
        e1, e2 = elements[np.argsort(steps.position[elements])][[t, t + 1]]
        raise SpecError(
            f"PixelCNN for {variable.name!r} needs each element in its own step (Singletons) or each pixel's "
            f"channels in one step (PerPixel); {layout.describe_element(int(e1))} and "
            f"{layout.describe_element(int(e2))} share step {int(flat[t])}. Use MADE or Transformer for "
            "other partitions."
        )
    first = [layout.describe_element(int(e)) for e in elements[np.argsort(steps.position[elements])][:3]]
    raise SpecError(
        f"PixelCNN for {variable.name!r} honours only raster order and its flips/transposes (ar.Raster(), "
        f"ar.Reverse(), ar.Columns(), ar.Reverse(ar.Columns())); the ordering visits it as {', '.join(first)}, "
        "... Use MADE or Transformer (any ordering) or WaveNet/RNN (sequence models) instead."
    )


@dataclasses.dataclass(frozen=True)
class PixelCNN(ConditionalSpec):
    """Gated PixelCNN over one image variable ``(H, W)`` or ``(H, W, C)``.

    Reads only the variable's own elements; other variables can enter through the
    spec's context vector. See the module docstring for orderings and partitions.

    Attributes:
        channels: feature maps per stack ``p`` (at least ``C`` with singleton steps).
        num_layers: gated layers.
        kernel_size: odd ``k >= 3``; reaches ``k // 2`` pixels, which must be smaller than
            both image sides.
        head: the head; ``None`` picks one from the variable.
        dropout: rate of inverted dropout on the read-out's hidden layer while training
            (``fit``); scoring and sampling never drop.
    """

    channels: int = 32
    num_layers: int = 4
    kernel_size: int = 3
    head: Head | None = None
    dropout: float = 0.0
    kind: ClassVar[str] = "pixelcnn"

    @classmethod
    def smaller_alternatives(cls, variable, num_elements: int) -> list[tuple[str, "PixelCNN"]]:
        """The budget's suggestion for image-shaped variables (``MADE.smaller_alternatives``)."""
        return [("PixelCNN()", cls())] if len(variable.shape) in (2, 3) else []

    def __post_init__(self) -> None:
        check_dropout("PixelCNN", self.dropout)
        check_positive_int("PixelCNN", "channels", self.channels)
        check_positive_int("PixelCNN", "num_layers", self.num_layers)
        check_positive_int("PixelCNN", "kernel_size", self.kernel_size, 3)
        if self.kernel_size % 2 == 0:
            raise fields.FieldError("PixelCNN", "kernel_size", "an odd integer >= 3", self.kernel_size)

    def _plan(self, variable: Variable, layout: ElementLayout, steps: Steps) -> ImagePlan:
        plan = image_plan(variable, layout, steps)
        reach = self.kernel_size // 2
        if reach >= min(plan.height, plan.width):
            raise SpecError(
                f"PixelCNN for {variable.name!r}: kernel_size={self.kernel_size} reaches {reach} pixels from the "
                f"centre, but the image is {variable.shape[0]}x{variable.shape[1]}; use kernel_size <= "
                f"{2 * min(plan.height, plan.width) - 1}."
            )
        if self.channels < plan.groups:
            raise SpecError(
                f"PixelCNN for {variable.name!r}: channels={self.channels} cannot hold one feature group per "
                f"image channel ({plan.groups}); use channels >= {plan.groups}."
            )
        return plan

    def validate(self, variable, layout, steps, context_size) -> None:
        self._plan(variable, layout, steps)

    def build(self, ctx: ConditionerContext, *, key: PRNGKeyArray) -> "PixelCNNConditioner":
        layout, steps, var = ctx.layout, ctx.steps, ctx.variable
        plan = self._plan(var, layout, steps)
        hh, ww, cc, g = plan.height, plan.width, plan.channels, plan.groups
        w = int(layout.feature_width[ctx.elements[0]])
        p, a, big_l, k = self.channels, self.kernel_size // 2, self.num_layers, self.kernel_size
        np_ = ctx.head.num_params
        cs = ctx.context_size
        dtype = jnp.result_type(float)

        # -- input gather: frame position -> features
        base = int(layout.feature_offset[ctx.elements[0]])
        img_index = base + plan.local[..., None] * w + np.arange(w)  # (H', W', C, w)
        out_gather = np.argsort(plan.local.reshape(-1))  # local element -> frame index

        # -- groups and masks (ranks: mask A strict, mask B not)
        cin = cc * w + 1
        in_group = np.concatenate([(np.arange(cc * w) // w) if g > 1 else np.zeros(cc * w, int), [-1]])
        hid = np.arange(p) * g // p
        hid2 = np.concatenate([hid, hid])
        out_group = np.repeat(np.arange(cc), np_) if g > 1 else np.zeros(cc * np_, int)

        def hmask(in_ranks, strict):
            m = np.ones((1, a + 1, len(in_ranks), 2 * p), bool)
            m[0, a] = rank_mask(in_ranks, hid2, strict=strict).T  # (in, out)
            return jnp.asarray(m)

        keys = iter(jax.random.split(key, 8 + 8 * big_l))
        nrm = lambda shape, fan_in: normal_fan_in(next(keys), shape, fan_in, dtype)
        zeros = lambda *shape: jnp.zeros(shape, dtype)
        layers = []
        for layer in range(big_l):
            c_in = cin if layer == 0 else p
            layers.append(
                GatedPixelLayer(
                    v_kernel=nrm((a + 1, k, c_in, 2 * p), (a + 1) * k * c_in),
                    v_bias=zeros(2 * p),
                    link=nrm((2 * p, 2 * p), 2 * p),
                    h_kernel=nrm((1, a + 1, c_in, 2 * p), (a + 1) * c_in),
                    h_bias=zeros(2 * p),
                    h_mask=hmask(in_group if layer == 0 else hid, strict=layer == 0),
                    res=nrm((p, p), p),
                    res_bias=zeros(p),
                    res_mask=jnp.asarray(rank_mask(hid, hid, strict=False).T),
                    v_context=nrm((cs, 2 * p), cs) if cs else None,
                    h_context=nrm((cs, 2 * p), cs) if cs else None,
                )
            )
        # -- per-step schedule for the cache
        elements = ctx.elements
        tpos = np.empty(len(elements), np.int64)
        tpos[plan.local.reshape(-1)] = np.arange(len(elements))
        pixel = tpos // cc
        el_step = steps.step[elements]
        s_total = steps.num_steps
        step_row = np.zeros(s_total, np.int32)
        step_col = np.zeros(s_total, np.int32)
        has = np.zeros(s_total, bool)
        row_start = np.zeros(s_total, bool)
        step_row[el_step] = pixel // ww
        step_col[el_step] = pixel % ww
        has[el_step] = True
        for i in range(hh):
            row_start[el_step[pixel // ww == i].min()] = True
        return PixelCNNConditioner(
            layers=tuple(layers),
            out1=nrm((p, p), p),
            out1_bias=zeros(p),
            out1_mask=jnp.asarray(rank_mask(hid, hid, strict=False).T),
            out1_context=nrm((cs, p), cs) if cs else None,
            out2=zeros(p, cc * np_),
            out2_bias=zeros(cc * np_),
            out2_mask=jnp.asarray(rank_mask(hid, out_group, strict=False).T),
            img_index=jnp.asarray(img_index.reshape(hh, ww, cc * w), jnp.int32),
            out_gather=jnp.asarray(out_gather, jnp.int32),
            row_channel=jnp.asarray(np.concatenate([tpos % cc, [0]]), jnp.int32),
            step_row=jnp.asarray(step_row),
            step_col=jnp.asarray(step_col),
            step_has=jnp.asarray(has),
            step_row_start=jnp.asarray(row_start),
            transpose=plan.transpose,
            flip=plan.flip,
            reach=a,
            num_params=np_,
            dropout_rate=float(self.dropout),
        )


def _conv(x: Float[Array, "h w c"], kernel: Float[Array, "kh kw c o"]) -> Float[Array, "h2 w2 o"]:
    """VALID 2-D convolution (cross-correlation) of one image, NHWC / HWIO."""
    return jax.lax.conv_general_dilated(
        x[None], kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )[0]


def _gate(pre):
    p = pre.shape[-1] // 2
    return jnp.tanh(pre[..., :p]) * jax.nn.sigmoid(pre[..., p:])


class GatedPixelLayer(eqx.Module):
    """One layer of both stacks (see the module docstring)."""

    v_kernel: Float[Array, "a1 k c p2"]
    v_bias: Float[Array, " p2"]
    link: Float[Array, "p2 p2"]
    h_kernel: Float[Array, "1 a1 c p2"]
    h_bias: Float[Array, " p2"]
    h_mask: Bool[Array, "1 a1 c p2"]
    res: Float[Array, "p p"]
    res_bias: Float[Array, " p"]
    res_mask: Bool[Array, "p p"]
    v_context: Float[Array, "cs p2"] | None
    h_context: Float[Array, "cs p2"] | None

    def masked(self) -> tuple:
        """``(v_kernel, h_kernel, res)`` with masks applied (once per call)."""
        return self.v_kernel, jnp.where(self.h_mask, self.h_kernel, 0.0), jnp.where(self.res_mask, self.res, 0.0)

    def biases(self, context):
        vb, hb = self.v_bias, self.h_bias
        if self.v_context is not None:
            vb, hb = vb + context @ self.v_context, hb + context @ self.h_context
        return vb, hb


class PixelCNNConditioner(Conditioner):
    """Runtime gated PixelCNN; the sampling cache holds vertical rows and the current row."""

    layers: tuple[GatedPixelLayer, ...]
    out1: Float[Array, "p p"]
    out1_bias: Float[Array, " p"]
    out1_mask: Bool[Array, "p p"]
    out1_context: Float[Array, "cs p"] | None
    out2: Float[Array, "p cp"]
    out2_bias: Float[Array, " cp"]
    out2_mask: Bool[Array, "p cp"]
    img_index: Int[Array, "h w cw"]
    out_gather: Int[Array, " n"]
    row_channel: Int[Array, " n1"]
    step_row: Int[Array, " s"]
    step_col: Int[Array, " s"]
    step_has: Bool[Array, " s"]
    step_row_start: Bool[Array, " s"]
    transpose: bool = eqx.field(static=True)
    flip: bool = eqx.field(static=True)
    reach: int = eqx.field(static=True)
    num_params: int = eqx.field(static=True)
    dropout_rate: float = eqx.field(static=True)

    # ------------------------------------------------------------------ pieces
    def _image(self, feats):
        """Frame image with the ones channel, padded ``reach`` rows on top and columns each side."""
        img = feats[self.img_index]
        img = jnp.concatenate([img, jnp.ones(img.shape[:2] + (1,), img.dtype)], axis=-1)
        a = self.reach
        return jnp.pad(img, ((a, 0), (a, a), (0, 0)))

    def _output(self, h, context, key=None):
        w1, w2 = jnp.where(self.out1_mask, self.out1, 0.0), jnp.where(self.out2_mask, self.out2, 0.0)
        return output_mlp(jax.nn.relu(h), context, w1, self.out1_bias, self.out1_context, w2, self.out2_bias,
                          self.dropout_rate, key)

    # --------------------------------------------------------------- full pass
    def __call__(self, x, feats, context, key=None):
        a = self.reach
        padded = self._image(feats)  # (H'+a, W'+2a, c)
        ww = padded.shape[1] - 2 * a
        v_in, h_in = padded, padded[a:, : a + ww]  # h: left padding only
        h = None
        for layer in self.layers:
            vk, hk, res = layer.masked()
            vb, hb = layer.biases(context)
            v_pre = _conv(v_in, vk) + vb  # (H', W', 2p): rows i-a..i
            link = v_pre @ layer.link
            link = jnp.concatenate([jnp.zeros_like(link[:1]), link[:-1]], axis=0)  # down one row
            z = _gate(_conv(h_in, hk) + hb + link)
            r = z @ res + layer.res_bias
            h = r if h is None else h + r
            v_in = jnp.pad(_gate(v_pre), ((a, 0), (a, a), (0, 0)))
            h_in = jnp.pad(h, ((0, 0), (a, 0), (0, 0)))
        out = self._output(h, context, key)  # (H', W', C P)
        return out.reshape(-1, self.num_params)[self.out_gather]

    # ------------------------------------------------------------------- cache
    def init_cache(self, context):
        a, p = self.reach, self.out1.shape[0]
        hh, ww = self.img_index.shape[:2]
        dtype = self.out1.dtype
        n_layers = len(self.layers)
        return dict(
            v=jnp.zeros((max(n_layers - 1, 1), hh + a, ww + 2 * a, p), dtype),  # inputs of vertical layers >= 1
            h=jnp.zeros((max(n_layers - 1, 1), ww + a, p), dtype),  # current row of horizontal layers >= 1
            link=jnp.zeros((n_layers, ww, 2 * p), dtype),  # link terms for the current row
        )

    def _vertical_row(self, cache, padded, r, context):
        """Row ``r`` of every vertical layer; its links serve row ``r + 1``."""
        a = self.reach
        v, links = cache["v"], []
        for l, layer in enumerate(self.layers):
            vk, _, _ = layer.masked()
            vb, _ = layer.biases(context)
            src = padded if l == 0 else v[l - 1]
            win = jax.lax.dynamic_slice_in_dim(src, r, a + 1, axis=0)  # padded rows r..r+a = rows r-a..r
            v_pre = _conv(win, vk)[0] + vb  # (W', 2p)
            links.append(v_pre @ layer.link)
            if l + 1 < len(self.layers):
                v = v.at[l, r + a, a : a + v_pre.shape[0]].set(_gate(v_pre))
        return dict(cache, v=v, link=jnp.stack(links))

    def _pixel(self, cache, padded, i, j, context):
        """Horizontal stack at pixel ``(i, j)``; returns ``(C P,)`` outputs and the cache."""
        a = self.reach
        hrow, h = cache["h"], None
        for l, layer in enumerate(self.layers):
            _, hk, res = layer.masked()
            _, hb = layer.biases(context)
            if l == 0:
                win = jax.lax.dynamic_slice(padded, (i + a, j, jnp.zeros_like(j)), (1, a + 1, padded.shape[-1]))
            else:
                hrow = hrow.at[l - 1, j + a].set(h)
                win = jax.lax.dynamic_slice_in_dim(hrow[l - 1], j, a + 1, axis=0)[None]
            z = _gate(_conv(win, hk)[0, 0] + hb + cache["link"][l, j])
            r = z @ res + layer.res_bias
            h = r if h is None else h + r
        return self._output(h, context), dict(cache, h=hrow)

    def block_params(self, cache, x, feats, context, s, rows):
        padded = self._image(feats)
        i, j = self.step_row[s], self.step_col[s]
        cache = jax.lax.cond(
            self.step_row_start[s] & (i > 0),
            lambda c: self._vertical_row(c, padded, i - 1, context),
            lambda c: c,
            cache,
        )
        cp = self.out2.shape[1]

        def compute(c):
            return self._pixel(c, padded, i, j, context)

        out, cache = jax.lax.cond(
            self.step_has[s], compute, lambda c: (jnp.zeros(cp, self.out2.dtype), c), cache
        )
        out = out.reshape(-1, self.num_params)
        return out[jnp.take(self.row_channel, rows, mode="clip")], cache

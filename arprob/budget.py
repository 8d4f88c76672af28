"""Memory budgets checked before anything is allocated: estimates from the spec alone.

``estimate(spec)`` reads only the spec's sizes (elements ``n`` of each variable, the
model's ``D`` elements and ``F`` input features, the head's ``p`` parameters per element
and the family's hyperparameters) and returns, per variable,

- ``num_params``: float parameters of its conditioner and head (exact for ``Logistic``,
  ``MADE`` and ``Table``; the dominant terms for the other families);
- ``build_bytes``: host memory ``compile`` needs transiently for it (a dense ``Logistic``
  builds the ``(n, D)`` boolean connectivity, ``masks.allowed_inputs``, and its ``(n p, F)``
  masks; ``MADE`` its layer masks; the other families their position tables);
- ``fixed_bytes``: per-call memory of ``log_prob`` independent of the batch (the masked
  copy of a dense weight: ``where(mask, W, 0)`` before the product);
- ``log_prob_bytes`` / ``sample_bytes``: memory per example of one teacher-forced pass
  and of one ancestral sample (cache, pre-drawn uniforms ``S m U``, the sample).

With ``P`` the parameter bytes, the peak of compiling is ``P + max_v build_bytes(v)`` and
that of scoring a batch of ``B`` is ``P + sum fixed + B * sum log_prob_bytes``.
``check_budget`` (called at the top of ``compile``, hence by every loader that compiles)
raises ``SpecError`` naming the costliest variable and conditional, its count, the
estimate and the budget, and a smaller family that fits. ``batch_size_for`` is the largest
batch whose peak fits (``evaluate`` uses it).

The budget is ``set_memory_budget(bytes)``, else the environment variable
``ARPROB_MEMORY_BUDGET`` (bytes, or with a unit: ``"8GB"``, ``"512MiB"``), else
``machine_budget()``: the smallest of half the physical memory, the cgroup's memory limit
and ``RLIMIT_AS`` (stable run to run, unlike the momentary free memory); on an accelerator that reports its memory (GPU, TPU) the parameters and
activations are checked against its free memory instead (``device_budget``), compile's
host-side transients against the host's. ``arprob.sizes.exact_estimate(spec)`` adds the
exact array shapes of ``jax.eval_shape(lambda: compile(spec))`` (no device array is allocated; it runs only
once the formula says the host-side build fits).

Formulas for a user's own family: ``register_estimator(kind)(fn)`` with
``fn(cond, var, spec, n, p) -> ComponentEstimate``; an unregistered kind is counted by
``eval_shape`` of its build (its host-side arrays are then the user's own code).
The budget's settings live in ``spec/limits.py`` (the declaration layer checks a spec's
element count against them itself).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

from .errors import SpecError
from .spec.limits import (  # noqa: F401 - the budget's settings, re-exported
    ENV_VAR,
    SPEC_BYTES_PER_ELEMENT,
    available_memory,
    budget_is_set,
    check_num_elements,
    format_bytes,
    how_to_raise,
    machine_budget,
    memory_budget,
    parse_bytes,
    set_memory_budget,
)


class MemoryBudgetWarning(UserWarning):
    """A batch size was lowered to fit the memory budget."""


# ------------------------------------------------------------------- device memory
def device_memory() -> int | None:
    """Free bytes of the first local accelerator when it reports them (``memory_stats()``
    ``bytes_limit - bytes_in_use`` on GPUs and TPUs); ``None`` on CPU, whose arrays live in
    the host memory that ``memory_budget`` already follows."""
    try:
        import jax

        stats = jax.local_devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - no backend, or one without statistics
        return None
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def device_budget() -> int:
    """The budget of arrays on the device (parameters, activations): the explicit or
    environment budget when set, else the accelerator's free memory, else ``memory_budget()``."""
    if budget_is_set():
        return memory_budget()
    free = device_memory()
    return memory_budget() if free is None else free


# ------------------------------------------------------------------ estimates
@dataclasses.dataclass(frozen=True)
class ComponentEstimate:
    """Memory of one variable's conditioner and head (bytes at the estimate's itemsize).

    Attributes:
        name, kind: the variable and its conditional family.
        num_elements: ``n``.
        num_params: float parameters.
        param_bytes: bytes of every array the conditioner stores (parameters and index buffers).
        build_bytes: transient host bytes of ``compile`` for this variable.
        fixed_bytes: per-call bytes of ``log_prob`` independent of the batch.
        log_prob_bytes: bytes per example of the teacher-forced pass.
        sample_bytes: bytes per example of ancestral sampling (cache, uniforms, sample).
    """

    name: str
    kind: str
    num_elements: int
    num_params: int
    param_bytes: int
    build_bytes: int
    fixed_bytes: int
    log_prob_bytes: int
    sample_bytes: int


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Estimates of a whole model (see the module docstring for the peaks)."""

    components: tuple[ComponentEstimate, ...]
    itemsize: int
    overhead_bytes: int = 0
    exact_param_bytes: int | None = None

    @property
    def num_params(self) -> int:
        return sum(c.num_params for c in self.components)

    @property
    def param_bytes(self) -> int:
        return self.exact_param_bytes if self.exact_param_bytes is not None else self.overhead_bytes + sum(
            c.param_bytes for c in self.components)

    @property
    def compile_bytes(self) -> int:
        """Peak of ``compile``: every stored array plus the largest transient build."""
        return self.param_bytes + max(c.build_bytes for c in self.components)

    @property
    def fixed_bytes(self) -> int:
        return sum(c.fixed_bytes for c in self.components)

    @property
    def log_prob_bytes(self) -> int:
        return sum(c.log_prob_bytes for c in self.components)

    @property
    def sample_bytes(self) -> int:
        return sum(c.sample_bytes for c in self.components)

    def peak_bytes(self, batch_size: int = 1, what: str = "log_prob") -> int:
        """Peak of scoring (``"log_prob"``), sampling (``"sample"``) or one training step
        (``"fit"``: activations kept for the backward pass and the gradient, about 3x the
        scoring activations, and Adam's two moments) of a batch."""
        if what == "log_prob":
            return self.param_bytes + self.fixed_bytes + batch_size * self.log_prob_bytes
        if what == "sample":
            return self.param_bytes + batch_size * self.sample_bytes
        if what == "fit":
            return 4 * self.param_bytes + 2 * self.fixed_bytes + 3 * batch_size * self.log_prob_bytes
        raise ValueError(f"Expected what='log_prob', 'sample' or 'fit'; got {what!r}.")

    def batch_size_for(self, budget: int | None = None, what: str = "log_prob") -> int:
        """The largest batch whose peak fits ``budget`` (default ``device_budget()``; 0 when
        not even one example fits)."""
        budget = device_budget() if budget is None else budget
        one = self.peak_bytes(1, what)
        if one > budget:
            return 0
        per = max(self.peak_bytes(2, what) - one, 1)
        return 1 + (budget - one) // per

    def table(self) -> str:
        """A markdown table of the per-variable estimates."""
        rows = ["| variable | conditional | elements | parameters | stored | compile (transient) | log_prob/example"
                " | sample/example |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for c in self.components:
            rows.append(f"| {c.name} | {c.kind} | {c.num_elements} | {c.num_params} | {format_bytes(c.param_bytes)} | "
                        f"{format_bytes(c.build_bytes)} | {format_bytes(c.log_prob_bytes)} | "
                        f"{format_bytes(c.sample_bytes)} |")
        return "\n".join(rows)


Estimator = Callable[..., ComponentEstimate]
ESTIMATORS: dict[str, Estimator] = {}


def register_estimator(kind: str) -> Callable[[Estimator], Estimator]:
    """Register ``fn(cond, var, spec, n, p) -> ComponentEstimate`` for conditional ``kind``."""

    def deco(fn: Estimator) -> Estimator:
        ESTIMATORS[kind] = fn
        return fn

    return deco


def _itemsize() -> int:
    import jax.numpy as jnp

    return jnp.dtype(jnp.result_type(float)).itemsize


def _sizes(spec) -> tuple[int, int, int, int, int]:
    """``D``, ``F``, ``S``, the largest block ``m`` and the context size."""
    import numpy as np

    layout, steps = spec.layout, spec.steps
    m = max(1, int(np.bincount(steps.step, minlength=1).max()))  # O(D), not the O(S D) block table
    return layout.num_elements, layout.num_features, steps.num_steps, m, spec.context_size


def _sample_common(spec, u: int) -> int:
    """Per-example bytes every sampler needs (the sample, the features, the uniforms ``S m U``)
    at itemsize 1."""
    d, f, s, m, _ = _sizes(spec)
    return d + f + s * m * u


def _est(cond, var, spec, n, p, *, params: int, buffers: int, build: int, fixed: int, lp: int, smp: int,
         scan: bool = True):
    """``scan=False``: the model does not sample through the step scan (all tables), so no
    per-component share of its uniforms, sample and features."""
    it = _itemsize()
    u = int(getattr(cond.bind_head(var), "num_uniforms", 1))
    sample_common = _sample_common(spec, u) if scan else 0
    _, _, s, m, _ = _sizes(spec)
    buffers += 4 * (n + 2 * s * min(m, n))  # the model's component: elements, block rows and elements (int32)
    return ComponentEstimate(
        name=var.name, kind=type(cond).kind, num_elements=n, num_params=int(params),
        param_bytes=int(params * it + buffers), build_bytes=int(build), fixed_bytes=int(fixed * it),
        log_prob_bytes=int(lp * it), sample_bytes=int((smp + sample_common) * it),
    )


@register_estimator("logistic")
def _logistic(cond, var, spec, n, p):
    d, f, _, _, c = _sizes(spec)
    params = n * p * (f + 1 + c)
    # the (n, D) connectivity, feature_allowed (n, F) and its repeat (n p, F) as bool, one more
    # (n, F) temporary seen in the measured peak (n = 10,000: 806 MB over a warm process, 700 MB
    # without it); parents add (n, F)
    build = n * d + 2 * n * f + n * p * f + (n * f if cond.parent_names is not None else 0)
    buffers = 4 * (f + n) + (n * f if cond.parent_names is not None else 0)
    return _est(cond, var, spec, n, p, params=params, buffers=buffers, build=build,
                fixed=n * p * f, lp=d + f + 2 * n * p, smp=n * p)


@register_estimator("linear_gaussian")
def _linear_gaussian(cond, var, spec, n, p):
    d, f, _, _, _ = _sizes(spec)
    # weights, bias, log-scale; the (n, F) bool connectivity and the encoder's tables; the fit's
    # Gram matrix (1 + F + n)^2 and one (F, F) system at a time
    return _est(cond, var, spec, n, p, params=n * (f + 2), buffers=n * f + 8 * (d + 1) * 2, build=n * d + n * f,
                fixed=(1 + f + n) ** 2 + 2 * f * f, lp=d + f + 2 * n, smp=n * p)


@register_estimator("made")
def _made(cond, var, spec, n, p):
    d, f, s, _, c = _sizes(spec)
    hidden, k = tuple(cond.hidden), int(cond.num_orderings)
    widths = (f,) + hidden
    params = sum(widths[i] * widths[i + 1] + widths[i + 1] for i in range(len(hidden)))
    params += (hidden[0] * c if (c and hidden) else 0) + n * p * ((hidden[-1] if hidden else 0) + 1)
    params += n * p * f if cond.direct else 0
    params += n * p * c if c else 0
    # degree vectors, schedule tables (K, S, u) and member steps (int32)
    buffers = 4 * (k * (f + n + sum(hidden) + d) + 3 * f + n + sum(k * s * max(1, -(-h // max(s, 1))) for h in hidden))
    # host masks: every layer's (h, h_prev), the output and direct plans (n p, h_L) and (n p, F)
    build = sum(widths[i] * widths[i + 1] for i in range(len(hidden))) + n * p * ((hidden[-1] if hidden else 0) + f)
    weights = params - n * p * (1 + c)
    return _est(cond, var, spec, n, p, params=params, buffers=buffers, build=build, fixed=weights,
                lp=d + f + 2 * sum(hidden) + 2 * n * p, smp=k * sum(hidden) + n * p)


@register_estimator("table")
def _table(cond, var, spec, n, p):
    d, _, _, _, _ = _sizes(spec)
    layout, steps = spec.layout, spec.steps
    elements = layout.elements_of(var.name)
    k = var.num_values
    if n <= 4096 or cond.all_earlier:  # exact (Table's validation did the same; "all" stops at the limit)
        rows = sum(cond._rows_per_element(layout, steps, elements))
    else:  # an upper bound without a Python pass over the elements: every neighbour in range
        from .masks import parent_elements

        cards = [int(c) for c in layout.num_values[parent_elements(layout, cond.parents)]]
        per = math.prod(cards) * k ** len(cond.neighbours or ())
        rows = min(n * per, 2**24 // k + 1)  # Table refuses more than 2^24 cells
    # scoring gathers (``conditioners.table.TablePlan``): per element and example the int32 row
    # and cell index of each of its r parents, the transposed copy and the term; the table's
    # normalised, padded copy once per call. A model of tables only samples level by level
    # (per element: the draw, its uniform, the binary search's bounds, the flat output).
    r = _table_parents(cond, layout, steps, elements)
    only_tables, width = _table_model(spec)
    return _est(cond, var, spec, n, p, params=rows * k, buffers=4 * (n * d + 2 * n), build=4 * n * d + 8 * rows * k,
                # beside other families: x as int and the concatenation of the terms
                fixed=2 * rows * width, lp=n * (r + 4) + (0 if only_tables else 2 * d),
                smp=n * (r + 8) if only_tables else n * (r + 4 + k),
                scan=not only_tables)


def _table_model(spec) -> tuple[bool, int]:
    """Whether every conditional is a table, and the largest cardinality (once per spec: kept
    beside its cached layout, as hashing a spec of 1,041 CPTs takes milliseconds)."""
    found = spec.__dict__.get("_budget_table_model")
    if found is None:
        width = max([int(v.num_values) for v in spec.variables if v.is_discrete] + [1])
        found = (all(type(c).kind == "table" for _, c in spec.conditionals), width)
        spec.__dict__["_budget_table_model"] = found
    return found


def _table_parents(cond, layout, steps, elements) -> int:
    """The most parent elements one element of a table reads (``r``)."""
    if cond.all_earlier:
        return max(len(cond._parents_of(layout, steps, int(e))) for e in elements)
    from .masks import parent_elements

    return len(parent_elements(layout, cond.parents)) + len(cond.neighbours or ())


@register_estimator("transformer")
def _transformer(cond, var, spec, n, p):
    d, f, s, m, c = _sizes(spec)
    w, big_l, r, h = cond.width, cond.num_layers, cond.mlp_ratio, cond.num_heads
    layout = spec.layout
    w_in = int(layout.feature_width.max())
    coords = (sum(int(layout.coords[:, i].max()) + 1 for i in range(3)) + len(spec.variables)) * w
    params = big_l * (4 * w * w + 2 * r * w * w + (6 + r) * w) + len(spec.variables) * (w_in + 1) * w
    params += (coords if cond.coordinate_coding == "learned" else d * w) + 4 * w + w * p + p + 2 * c * w
    buffers = 4 * (d * (6 + w_in) + 3 * s * m)
    build = 8 * d * w + 8 * d * (w_in + 5)
    from .conditioners.transformer import ATTENTION_TILE, attention_tiles  # the tile the full pass really uses

    _, tile = attention_tiles(d, ATTENTION_TILE)
    # full pass (blocked_attend): the per-token arrays of the layers (tokens, queries, keys,
    # values, the stream; about 4 + 2.5 L (D, w) arrays live at XLA's peak), the scores and
    # weights of one (H, B, B) tile and one tile's MLP hidden (B, r w): no (H, D, D) scores
    lp = d * w * (8 + 5 * big_l) // 2 + 5 * h * tile * tile // 2 + 2 * tile * r * w + d + f + 2 * n * p
    # sampling: the KV cache (L layers x keys and values x (D + 1) x w) and the scan's copy
    # of the layer being written, one block's queries and MLP, the (H, D) scores
    smp = (2 * big_l + 3) * (d + 1) * w + 8 * w * (1 + r) * m + 2 * h * d
    return _est(cond, var, spec, n, p, params=params, buffers=buffers, build=build, fixed=params, lp=lp, smp=smp)


@register_estimator("pixelcnn")
def _pixelcnn(cond, var, spec, n, p):
    d, f, _, _, c = _sizes(spec)
    ch, big_l, k = cond.channels, cond.num_layers, cond.kernel_size
    a1 = k // 2 + 1
    w = int(spec.layout.feature_width[spec.layout.elements_of(var.name)[0]])
    cc = var.shape[-1] if len(var.shape) == 3 else 1
    cin = cc * w + 1
    per = lambda c_in: a1 * k * c_in * 2 * ch + 4 * ch * ch + a1 * c_in * 2 * ch + 5 * ch + ch * ch + 4 * c * ch
    params = per(cin) + (big_l - 1) * per(ch) + ch * ch + ch + c * ch + ch * cc * p + cc * p
    pixels = -(-n // cc)
    buffers = 4 * (n * (w + 3) + 5 * pixels) + big_l * (a1 * max(cin, ch) * 2 * ch + ch * ch)
    a = k // 2
    rows, cols = (int(var.shape[0]), int(var.shape[1])) if len(var.shape) >= 2 else (pixels, 1)
    framed = (rows + 2 * a) * (cols + 2 * a)  # a padded frame in either orientation (Columns() transposes)
    # full pass: about 2 (H', W', p) arrays per layer and 2 k more (the gates' 2 p pre-activations
    # and the padded inputs), the framed input image, the head's parameters
    lp = pixels * ch * (2 * big_l + 2 * k) + framed * cin + d + f + 2 * n * p
    # sampling (PixelCNNConditioner.init_cache): the vertical rows of layers >= 1 (L - 1, H'+a,
    # W'+2a, p), with about 1.5 copies more held by the scan and its lax.conds; the current
    # row of every horizontal layer, the link terms (L, W', 2 p), the framed image
    cache = max(big_l - 1, 1) * framed * ch
    smp = 5 * cache // 2 + 2 * big_l * cols * 2 * ch + 2 * max(big_l - 1, 1) * (cols + a) * ch + 2 * framed * cin
    smp += 2 * n * p
    return _est(cond, var, spec, n, p, params=params, buffers=buffers, build=8 * pixels * (cin + 4), fixed=params,
                lp=lp, smp=smp)


def _sequence_slots(spec, n: int) -> tuple[int, int, int]:
    """Sequence length ``L`` (every step), slots ``m`` and input size per position
    (``conditioners.sequence.SequencePlan``: ``m`` feature slots and coordinate codes)."""
    _, _, s, m, _ = _sizes(spec)
    nvar = len(spec.variables)
    w = int(spec.layout.feature_width.max())
    return s, m, m * w + m * (4 + (nvar if nvar > 1 else 0))


@register_estimator("wavenet")
def _wavenet(cond, var, spec, n, p):
    d, f, _, _, c = _sizes(spec)
    length, m, i = _sequence_slots(spec, n)
    ch, k, big_l = cond.channels, cond.kernel_size, cond.num_layers
    params = big_l * (k * ch * 2 * ch + 2 * ch + c * 2 * ch + 2 * ch * ch + 2 * ch) + k * i * ch + ch
    params += ch * ch + ch + c * ch + ch * m * p + m * p
    # the sampler's queues (WaveNetConditioner.init_cache): (k - 1) x dilation positions of
    # every layer, whatever the sequence length, about 2.5 copies at XLA's peak of the scan
    queued = (k - 1) * sum(cond.dilations)
    return _est(cond, var, spec, n, p, params=params, buffers=4 * (3 * n + 4 * d), build=12 * length * i, fixed=params,
                # full pass: about 2 (L, ch) arrays per layer (residual stream, skip sum, gates)
                lp=length * (ch * (2 * big_l + 4 + k) + k * i) + d + f + 2 * n * p,
                smp=5 * queued * ch // 2 + big_l * ch * (k + 4) + 2 * k * i + 2 * n * p)


@register_estimator("rnn")
def _rnn(cond, var, spec, n, p):
    d, f, _, _, c = _sizes(spec)
    length, m, i = _sequence_slots(spec, n)
    h = cond.hidden
    gates = 4 if cond.cell == "lstm" else 3
    params = gates * h * (i + c + h) + 4 * h + h * h + h + c * h + h * m * p + m * p
    # full pass: one scan over the L positions that reads each position out as it goes, so
    # per example it holds the inputs (L, i) twice and the (L m, p) outputs, not (L, h) states
    return _est(cond, var, spec, n, p, params=params, buffers=4 * (3 * n + 4 * d), build=12 * length * i, fixed=params,
                lp=length * (2 * i + 4) + h * (gates + 4) + d + f + 3 * n * p, smp=h * (gates + 4) + n * p)


def _by_eval_shape(cond, var, spec, n, p) -> ComponentEstimate:
    """A family without a formula: its exact array shapes by ``eval_shape`` of its build."""
    import jax
    import numpy as np

    from .conditioners.base import ConditionerContext
    from .spec.layout import component_schedule

    layout, steps = spec.layout, spec.steps
    elements = layout.elements_of(var.name)
    rows, _ = component_schedule(steps, elements)
    ctx = ConditionerContext(layout=layout, steps=steps, variable=var, elements=elements,
                             parents=cond.parent_names,
                             head=cond.bind_head(var), context_size=spec.context_size, block_rows=rows)
    try:
        shapes = jax.eval_shape(lambda: cond.build(ctx, key=jax.random.key(0)))
    except Exception:  # noqa: BLE001 - a build that cannot be traced abstractly: count its connectivity only
        shapes = ()
    leaves = [x for x in jax.tree_util.tree_leaves(shapes) if hasattr(x, "shape")]
    floats = [x for x in leaves if np.issubdtype(x.dtype, np.inexact)]
    params = sum(math.prod(x.shape) for x in floats)
    buffers = sum(math.prod(x.shape) * x.dtype.itemsize for x in leaves if x not in floats)
    return _est(cond, var, spec, n, p, params=params, buffers=buffers, build=0, fixed=params,
                lp=spec.num_elements + layout.num_features + 2 * n * p, smp=n * p)


def estimate_components(spec) -> tuple[ComponentEstimate, ...]:
    """One ``ComponentEstimate`` per variable, by its family's registered formula (cached
    per spec and float width: ``compile`` and every scoring call ask)."""
    try:
        return _components(spec, _itemsize(), tuple(ESTIMATORS.items()))
    except TypeError:  # a spec holding something unhashable: not cached
        return _components.__wrapped__(spec, _itemsize(), tuple(ESTIMATORS.items()))


@functools.lru_cache(maxsize=128)
def _components(spec, itemsize: int, estimators) -> tuple[ComponentEstimate, ...]:
    comps = []
    for var, (name, cond) in zip(spec.variables, spec.conditionals):
        p = int(cond.bind_head(var).num_params)
        fn = ESTIMATORS.get(type(cond).kind, _by_eval_shape)
        comps.append(fn(cond, var, spec, int(var.size), p))
    return tuple(comps)


def estimate(spec) -> Estimate:
    """Memory estimates of ``spec``'s model from the spec alone (nothing is allocated).
    ``arprob.sizes.exact_estimate`` adds the stored bytes counted on ``eval_shape`` of ``compile``."""
    layout = spec.layout
    encoder = 4 * (layout.num_elements + 1) * (2 + int(layout.feature_width.max()))  # features.Encoder (int32)
    return Estimate(components=estimate_components(spec), itemsize=_itemsize(), overhead_bytes=encoder)


# ---------------------------------------------------------------------- checks
def _suggestion(spec, comp: ComponentEstimate, budget: int) -> str:
    """A smaller family for the costliest variable whose estimate fits, if one does."""
    from .spec.registry import REGISTRY

    var = spec.variable(comp.name)
    n, d = comp.num_elements, spec.num_elements
    dense = (f" A dense Logistic's ({n}, {d}) connectivity alone needs {format_bytes(n * d)}."
             if comp.kind == "logistic" and n * d > budget else "")
    candidates = []  # every registered family that offers alternatives (``smaller_alternatives``)
    for family in REGISTRY.get("conditional", {}).values():
        offer = getattr(family, "smaller_alternatives", None)
        if offer is not None:
            candidates.extend(offer(var, d))
    old = spec.conditional[comp.name]
    head = getattr(old, "head", None)
    others = [c for c in estimate_components(spec) if c.name != comp.name]
    p = comp_p = int(old.bind_head(var).num_params)
    for text, cand in candidates:
        try:
            if head is not None and hasattr(cand, "head"):
                cand = dataclasses.replace(cand, head=head)
                p = int(cand.bind_head(var).num_params)
            alt = ESTIMATORS[type(cand).kind](cand, var, spec, n, p)  # no Spec is built: no validation pass
        except (SpecError, ValueError, TypeError, AttributeError, KeyError):
            continue
        finally:
            p = comp_p
        est = Estimate(components=tuple(others) + (alt,), itemsize=_itemsize())
        peak = max(est.compile_bytes, est.peak_bytes(1))
        if peak <= budget:
            return f"{dense} A {text} for {comp.name!r} would need about {format_bytes(peak)}."
    return f"{dense} No built-in family fits; declare fewer elements."


def check_budget(spec, est: Estimate | None = None, budget: int | None = None) -> Estimate:
    """Refuse ``spec`` with a ``SpecError`` when compiling it or scoring one example would
    exceed the memory budget; otherwise return its ``Estimate``."""
    est = estimate(spec) if est is None else est
    on_device = device_memory() is not None and budget is None
    host = memory_budget() if budget is None else budget
    device = device_budget() if budget is None else budget
    run = max(est.peak_bytes(1, "log_prob"), est.peak_bytes(1, "sample"))
    if on_device:  # compile's transients on the host; parameters and activations on the accelerator
        peak, budget = (est.compile_bytes, host) if est.compile_bytes > host else (run, device)
    else:
        peak, budget = max(est.compile_bytes, run), host
    if peak <= budget:
        return est
    worst = max(est.components, key=lambda c: c.param_bytes + c.build_bytes + c.fixed_bytes + c.log_prob_bytes)
    cond = spec.conditional[worst.name]
    raise SpecError(
        f"Variable {worst.name!r} ({type(cond).__name__} over {worst.num_elements} elements, {worst.num_params} "
        f"parameters): the model needs about {format_bytes(peak)} (stored arrays {format_bytes(est.param_bytes)}, "
        f"compile's transient masks {format_bytes(max(c.build_bytes for c in est.components))}, one example's "
        f"log_prob {format_bytes(est.fixed_bytes + est.log_prob_bytes)}), over the memory budget of "
        f"{format_bytes(budget)}; {how_to_raise()}.{_suggestion(spec, worst, budget)}"
    )


#: bytes of activations (everything but the stored arrays) that a scoring or sampling call
#: holds when the caller names no batch size: ``evaluate``'s default batch and the sampler's
#: chunks stay within it, so scoring or sampling 4096 images of 784 elements peaks below
#: 2 GB of resident memory with every built-in family (``benchmarks/bench_memory.py``)
WORKING_SET_BYTES = 2**30


def default_batch_size(model_or_spec: Any, what: str = "log_prob", *, limit: int = 1024,
                       budget: int | None = None, working_set: int | None = None) -> int:
    """The largest batch up to ``limit`` whose estimated activations (``peak_bytes`` less the
    stored arrays) stay within ``working_set`` (default ``WORKING_SET_BYTES``) and whose
    peak fits ``budget`` (default ``device_budget()``); at least 1, and when lowered below
    ``limit`` a multiple of 8 if above 8 (``evaluate``'s default batch size, the sampler's
    chunks)."""
    spec = getattr(model_or_spec, "spec", model_or_spec)
    est = estimate(spec)
    working_set = WORKING_SET_BYTES if working_set is None else working_set
    fits = min(est.batch_size_for(est.param_bytes + working_set, what), est.batch_size_for(budget, what))
    if fits >= limit:
        return limit
    return max(1, fits - fits % 8 if fits > 8 else fits)


def batch_size_for(model_or_spec: Any, requested: int, *, what: str = "log_prob", budget: int | None = None,
                   warn: Callable[[str], None] | None = None) -> int:
    """``requested`` if its peak fits the budget, else the largest batch that does (reported
    through ``warn``, default ``warnings.warn``)."""
    spec = getattr(model_or_spec, "spec", model_or_spec)
    budget = device_budget() if budget is None else budget
    est = estimate(spec)
    if est.peak_bytes(requested, what) <= budget:
        return requested
    fits = est.batch_size_for(budget, what)
    if fits < 1:
        raise SpecError(f"Not even one example fits the memory budget of {format_bytes(budget)} for {what} "
                        f"(needs {format_bytes(est.peak_bytes(1, what))}); {how_to_raise()}.")
    message = (f"batch_size={requested} would need about {format_bytes(est.peak_bytes(requested, what))} for {what}, "
               f"over the memory budget of {format_bytes(budget)}; using batch_size={fits}.")
    if warn is None:
        import warnings

        warnings.warn(message, MemoryBudgetWarning, stacklevel=3)
    else:
        warn(message)
    return fits

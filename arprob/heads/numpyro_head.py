"""A head from any NumPyro distribution with scalar parameters.

``NumPyroHead("Poisson")`` makes the network output one unconstrained number per
parameter of the distribution and maps it to the parameter's domain with NumPyro's own
``biject_to(D.arg_constraints[name])`` (``exp`` for positive parameters, ``sigmoid`` for
probabilities, the identity for reals), so

``log p(x | u) = D(**{name_i: biject_to(c_i)(u_i)}, **fixed).log_prob(x)``

is exactly NumPyro's density. Draws use the distribution's inverse CDF on the model's
pre-drawn uniform where NumPyro implements one (Normal, Laplace, Cauchy, LogNormal,
Exponential, ...); otherwise (Poisson, negative binomial, Student-t and Beta without
``tensorflow_probability``) the distribution's own sampler runs with a PRNG key built
from the bits of two pre-drawn uniforms, so a draw is still a function of the model's
uniforms. Integer-valued distributions model ``Real`` variables holding integer values
(counts); Bernoulli-type distributions model ``Binary`` variables.

The head is plain data (the distribution is named, looked up in
``numpyro.distributions``), so specs with it save to TOML/JSON like any other.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from ..errors import SpecError
from ..spec import fields
from ..spec.variables import Variable
from .base import Head


def _distribution_class(name: str):
    import numpyro.distributions as dist

    cls = getattr(dist, name, None)
    if not (isinstance(cls, type) and issubclass(cls, dist.Distribution)):
        raise SpecError(f"NumPyroHead: numpyro.distributions has no distribution named {name!r}.")
    return cls


@dataclasses.dataclass(frozen=True)
class NumPyroHead(Head):
    """A head wrapping ``numpyro.distributions.<distribution>``.

    Attributes:
        distribution: the class name in ``numpyro.distributions`` (a class is accepted
            and stored by name), e.g. ``"Poisson"``, ``"NegativeBinomial2"``,
            ``"StudentT"``, ``"Beta"``.
        params: the parameters the network outputs, in order (default: every entry of
            ``arg_constraints`` not in ``fixed``, except alternatives such as ``logits``
            when ``probs`` is listed first). Each must have a scalar constraint that
            ``numpyro.distributions.biject_to`` can map to.
        fixed: ``((name, value), ...)`` parameters held constant (e.g. Student-t's ``df``).

    !!! Example
        ``ar.Logistic(head=ar.heads.NumPyroHead("NegativeBinomial2"))`` for over-dispersed
        counts; ``NumPyroHead("StudentT", fixed=(("df", 4.0),))`` for heavy tails.
    """

    distribution: str = "Normal"
    params: tuple[str, ...] | None = None
    fixed: tuple[tuple[str, float], ...] = ()
    kind: ClassVar[str] = "numpyro"

    def __post_init__(self) -> None:
        d = self.distribution
        if isinstance(d, type):
            object.__setattr__(self, "distribution", d.__name__)
            if _distribution_class(d.__name__) is not d:
                raise SpecError(f"NumPyroHead: {d.__module__}.{d.__qualname__} is not a class of "
                                "numpyro.distributions; a spec names its distribution, so only those are accepted.")
        if not isinstance(self.distribution, str):
            raise fields.FieldError("NumPyroHead", "distribution", "the name of a numpyro.distributions class",
                                    self.distribution)
        cls = _distribution_class(self.distribution)
        try:
            fixed = tuple((str(k), float(v)) for k, v in (dict(self.fixed).items() if not isinstance(
                self.fixed, dict) else self.fixed.items()))
        except (TypeError, ValueError):
            raise SpecError(f"NumPyroHead: fixed must be (name, number) pairs; got {self.fixed!r}.") from None
        object.__setattr__(self, "fixed", fixed)
        constraints = cls.arg_constraints
        for name, _ in fixed:
            if name not in constraints:
                raise SpecError(f"NumPyroHead({self.distribution}): unknown fixed parameter {name!r}; "
                                f"parameters are {list(constraints)}.")
        if self.params is None:
            names = [n for n in constraints if n not in dict(fixed)]
            alternatives = {"probs": "logits", "logits": "probs"}
            chosen = []
            for n in names:
                if alternatives.get(n) not in chosen:
                    chosen.append(n)
            object.__setattr__(self, "params", tuple(chosen))
        else:
            object.__setattr__(self, "params", (self.params,) if isinstance(self.params, str) else tuple(self.params))
        for name in self.params:
            if name not in constraints:
                raise SpecError(f"NumPyroHead({self.distribution}): unknown parameter {name!r}; parameters are "
                                f"{list(constraints)}.")
            if name in dict(fixed):
                raise SpecError(f"NumPyroHead({self.distribution}): parameter {name!r} is both output and fixed.")
            try:
                transform = self._bijection(name)
            except NotImplementedError:
                raise SpecError(f"NumPyroHead({self.distribution}): parameter {name!r} has constraint "
                                f"{constraints[name]}, which biject_to cannot map to.") from None
            if transform.codomain.event_dim != 0:
                raise SpecError(f"NumPyroHead({self.distribution}): parameter {name!r} is not a scalar "
                                f"({constraints[name]}); only scalar parameters can be network outputs.")
        if not self.params:
            raise SpecError(f"NumPyroHead({self.distribution}): no parameter is left for the network to output.")

    # ------------------------------------------------------------------ helpers
    @property
    def distribution_class(self):
        return _distribution_class(self.distribution)

    def _bijection(self, name: str):
        from numpyro.distributions import biject_to

        return biject_to(self.distribution_class.arg_constraints[name])

    def constrained(self, params, *, integer: bool = False) -> dict:
        """The distribution's parameters from the unconstrained network outputs ``(n, P)``.
        Fixed values are floats of the params' dtype (exact log-probabilities in float64);
        ``integer=True`` gives integer-constrained ones as int32 (NumPyro's samplers index by them)."""
        out = {name: self._bijection(name)(params[:, i]) for i, name in enumerate(self.params)}
        constraints = self.distribution_class.arg_constraints
        for name, v in self.fixed:
            as_int = integer and constraints[name].is_discrete
            out[name] = jnp.asarray(v, jnp.int32 if as_int else params.dtype)
        return out

    def distribution_of(self, params, *, integer: bool = False):
        """The NumPyro distribution of every row, batch shape ``(n,)``."""
        return self.distribution_class(**self.constrained(params, integer=integer))

    @property
    def _support(self):
        from numpyro.distributions import constraints

        support = self.distribution_class.support
        if isinstance(support, constraints._Dependent):  # e.g. Binomial: support depends on parameters
            support = self.distribution_class(**self.constrained(jnp.zeros((1, len(self.params))))).support
        return support

    # ------------------------------------------------------------------ Head protocol
    def bind(self, variable: Variable) -> NumPyroHead:
        from numpyro.distributions import constraints

        support = self._support
        if support is constraints.boolean:
            allowed = ("binary",)
        elif support.is_discrete:
            allowed = ("real",)
        else:
            allowed = ("real",)
        if variable.kind not in allowed:
            what = "binary" if allowed == ("binary",) else "real (integer-valued for a discrete distribution)"
            raise SpecError(f"Variable {variable.name!r} is {variable.kind}; NumPyroHead({self.distribution}) with "
                            f"support {support} models {what} variables.")
        if variable.shape and getattr(self.distribution_class, "event_shape", ()) not in ((), None):
            raise SpecError(f"NumPyroHead({self.distribution}) needs a distribution over scalars.")
        return self

    @property
    def num_params(self) -> int:
        return len(self.params)

    @property
    def is_discrete(self) -> bool:
        return bool(self._support.is_discrete)

    def _runs(self, method: str) -> bool:
        try:
            jax.eval_shape(lambda p, u: getattr(self.distribution_of(p), method)(u), jnp.ones((1, self.num_params)),
                           jnp.full((1,), 0.5))
        except (NotImplementedError, ImportError):
            return False
        return True

    @property
    def has_icdf(self) -> bool:
        """Whether NumPyro implements (and can run) this distribution's inverse CDF."""
        return self._runs("icdf")

    @property
    def sampler(self) -> str:
        """How draws are made: ``"icdf"`` (NumPyro's inverse CDF of the uniform), ``"cdf"``
        (its CDF inverted by search: bisection for reals, integer search for counts, to float
        precision) or ``"own"`` (NumPyro's sampler, keyed by two uniforms)."""
        from numpyro.distributions import constraints

        if self.has_icdf:
            return "icdf"
        support = self._support
        searchable = (constraints.real, constraints.positive, constraints.unit_interval, constraints.nonnegative_integer)
        if any(support is c or type(support) is type(c) and support == c for c in searchable) and self._runs("cdf"):
            return "cdf"
        return "own"

    @property
    def num_uniforms(self) -> int:  # type: ignore[override]
        return 2 if self.sampler == "own" else 1

    def log_prob(self, params, values):
        return self.distribution_of(params).log_prob(values).astype(params.dtype)

    def sample_uniform(self, u, params):
        how = self.sampler
        d = self.distribution_of(params)
        if how == "icdf":
            tiny = jnp.finfo(u.dtype).tiny
            return d.icdf(jnp.clip(u[:, 0], tiny, 1.0 - jnp.finfo(u.dtype).epsneg)).astype(params.dtype)
        if how == "cdf":
            return _invert_cdf(d, self._support, u[:, 0]).astype(params.dtype)
        # NumPyro's own sampler, keyed by the bits of the row's two uniforms.
        bits = jax.lax.bitcast_convert_type(u, jnp.uint32 if u.dtype == jnp.float32 else jnp.uint64)
        bits = bits.astype(jnp.uint32) if bits.dtype == jnp.uint32 else (bits ^ (bits >> 32)).astype(jnp.uint32)
        keys = jax.vmap(lambda b: jax.random.wrap_key_data(b, impl="threefry2x32"))(bits)
        draw = jax.vmap(lambda k, p: self.distribution_of(p[None], integer=True).sample(k)[0])(keys, params)
        return draw.astype(params.dtype)

    def split_params(self, params):
        return self.constrained(params)



def _invert_cdf(d, support, u):
    """``F^{-1}(u)`` by search on NumPyro's CDF ``F``: for counts the least integer ``j`` with
    ``F(j) > u`` (so ``P(j) = F(j) - F(j - 1)``), for reals the point where ``F`` crosses
    ``u`` to float precision. A bracket grows by doubling (64 steps), then bisection."""
    from numpyro.distributions import constraints

    dtype = u.dtype
    counts = support is constraints.nonnegative_integer
    if support is constraints.unit_interval:
        lo, hi = jnp.zeros_like(u), jnp.ones_like(u)
    else:
        lo = jnp.zeros_like(u) if counts or support is constraints.positive else -jnp.ones_like(u)
        hi = jnp.ones_like(u)

        def grow(_, b):
            lo, hi = b
            if not (counts or support is constraints.positive):
                lo = jnp.where(d.cdf(lo) > u, 2 * lo, lo)
            return lo, jnp.where(d.cdf(hi) <= u, 2 * hi, hi)

        lo, hi = jax.lax.fori_loop(0, 64, grow, (lo, hi))
    if counts:  # invariant: F(lo - 1) <= u < F(hi); answer in [lo, hi]
        def halve(_, b):
            lo, hi = b
            mid = jnp.floor((lo + hi) / 2)
            above = d.cdf(mid) > u
            return jnp.where(above, lo, mid + 1), jnp.where(above, mid, hi)

        lo, hi = jax.lax.fori_loop(0, 70, halve, (lo, hi))
        return lo
    finfo = jnp.finfo(dtype)

    def bisect(_, b):
        lo, hi = b
        mid = lo + (hi - lo) / 2
        above = d.cdf(mid) > u
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    lo, hi = jax.lax.fori_loop(0, 64 + finfo.nmant + 8, bisect, (lo, hi))
    return lo + (hi - lo) / 2

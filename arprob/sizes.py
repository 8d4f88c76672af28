"""Exact sizes of a spec's model, counted on ``jax.eval_shape`` of ``compile`` (nothing is
allocated on the device): the check of ``arprob.budget``'s formulas. It sits above the
model, which itself calls the budget's check before it builds anything."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from .budget import Estimate, check_budget, estimate
from .model import compile as compile_spec


def _shapes(spec):
    check_budget(spec)  # the host-side build must fit before it runs
    return jax.eval_shape(lambda: compile_spec(spec, jax.random.key(0)))


def exact_estimate(spec) -> Estimate:
    """``budget.estimate(spec)`` with ``exact_param_bytes``: the bytes of every stored array."""
    leaves = [x for x in jax.tree_util.tree_leaves(_shapes(spec)) if hasattr(x, "shape")]
    total = sum(math.prod(x.shape) * x.dtype.itemsize for x in leaves)
    return dataclasses.replace(estimate(spec), exact_param_bytes=int(total))


def exact_num_params(spec) -> dict[str, int]:
    """Float parameters of each variable's conditioner."""
    out = {}
    for comp in _shapes(spec).components:
        leaves = [x for x in jax.tree_util.tree_leaves(comp.conditioner) if hasattr(x, "dtype")]
        out[comp.name] = sum(math.prod(x.shape) for x in leaves if np.issubdtype(x.dtype, np.inexact))
    return out

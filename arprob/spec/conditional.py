"""The declaration of a conditional family: what a ``Spec`` knows about a conditioner.

A *conditional spec* (``Table``, ``Logistic``, ``MADE``, ...) is frozen, array-free data
in a ``Spec``. This base class lives in the declaration layer so that ``Spec`` can
validate any family without importing one: families subclass it in
``arprob.conditioners`` and register themselves by their ``kind``
(``arprob.spec.registry``). Heads are reached the same way: the default head of a
variable is looked up by kind, and a declared head is any object with ``bind`` and
``validate`` (``arprob.heads.Head``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..errors import SpecError
from .layout import ElementLayout, Steps, check_parent_names, check_parents_precede
from .registry import Registered, lookup
from .variables import Variable

#: head kind a variable gets when its conditional names no head
DEFAULT_HEAD_KIND = {"binary": "bernoulli", "categorical": "categorical", "ordinal": "categorical", "real": "gaussian"}

#: conditional kind of a variable the spec's ``conditionals`` do not name
DEFAULT_CONDITIONAL_KIND = "logistic"


def default_head(variable: Variable) -> Any:
    """The head a variable gets when its conditional names none (bound to the variable)."""
    return lookup("head", DEFAULT_HEAD_KIND[variable.kind])().bind(variable)


def default_conditional() -> "ConditionalSpec":
    """The conditional family of a variable the spec does not name (``Logistic()``)."""
    return lookup("conditional", DEFAULT_CONDITIONAL_KIND)()


@dataclasses.dataclass(frozen=True)
class ConditionalSpec(Registered):
    """Base class of declared conditional families (frozen, serialisable data).

    A subclass sets ``kind`` (its name in spec files) and implements ``build(ctx, key=)``
    returning an ``arprob.conditioners.Conditioner``; ``validate`` adds family-specific
    checks at spec construction.
    """

    category: ClassVar[str] = "conditional"
    kind: ClassVar[str] = "conditional"

    @property
    def parent_names(self) -> tuple[str, ...] | None:
        """Declared parents (restricting the earlier elements an element may read), or None."""
        return getattr(self, "parents", None)

    def bind_head(self, variable: Variable) -> Any:
        """The head of ``variable`` under this family, bound to it (raises if it cannot model it)."""
        head = getattr(self, "head", None)
        return default_head(variable) if head is None else head.bind(variable)

    def validate(self, variable: Variable, layout: ElementLayout, steps: Steps, context_size: int) -> None:
        """Family-specific checks at spec construction; raise ``SpecError`` naming the culprit."""

    def check(self, name: str, variable: Variable, layout: ElementLayout, steps: Steps, context_size: int) -> None:
        """Every check a ``Spec`` runs on this conditional of variable ``name``."""
        head = getattr(self, "head", None)
        if head is not None and not (hasattr(head, "bind") and hasattr(head, "validate")):
            raise SpecError(f"Conditional of {name!r}: expected head to be a head (a table with a 'kind'); got {head!r}.")
        parents = self.parent_names
        check_parent_names(name, parents, layout)
        if parents:
            check_parents_precede(layout, steps, name, parents)
        self.bind_head(variable).validate(variable, layout, steps)
        self.validate(variable, layout, steps, context_size)

    def build(self, ctx, *, key):
        """The runtime conditioner (an ``arprob.conditioners.Conditioner``) for ``ctx``, an
        ``arprob.conditioners.ConditionerContext``."""
        raise NotImplementedError

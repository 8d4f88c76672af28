"""Conditioners: how each element's parameters are computed from earlier elements."""

from .base import Conditioner as Conditioner
from .base import ConditionalSpec as ConditionalSpec
from .base import ConditionerContext as ConditionerContext
from .logistic import Logistic as Logistic
from .logistic import LogisticConditioner as LogisticConditioner
from .table import Table as Table
from .table import TableConditioner as TableConditioner

CONDITIONAL_KINDS: dict[str, type[ConditionalSpec]] = {cls.kind: cls for cls in (Table, Logistic)}


def register_conditional(cls: type[ConditionalSpec]) -> type[ConditionalSpec]:
    """Register a conditional family so spec files can name it by ``kind``."""
    CONDITIONAL_KINDS[cls.kind] = cls
    return cls

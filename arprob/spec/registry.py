"""Kinds register themselves: the one table from spec-file names to classes.

Every declared object (variable, ordering, partition, conditional family, head) is a
frozen dataclass whose category base class derives from ``Registered``. A subclass that
sets its own ``kind`` is entered into ``REGISTRY[category][kind]`` when the class is
created (``__init_subclass__``), so a new family or head is one file and no central table
is edited; it is known once its module is imported. Classes that do not set ``kind``
(private bases, test doubles) are not entered.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import SpecError

#: category -> kind -> class, filled as classes are defined.
REGISTRY: dict[str, dict[str, type]] = {}


class Registered:
    """Mixin of declaration base classes: ``category`` names the table, ``kind`` the entry."""

    category: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "category" in cls.__dict__:  # a category base: opens its table, is not an entry
            REGISTRY.setdefault(cls.category, {})
            return
        if "kind" not in cls.__dict__:
            return
        table = REGISTRY.setdefault(cls.category, {})
        old = table.get(cls.kind)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise SpecError(
                f"{cls.__module__}.{cls.__qualname__} declares {cls.category} kind {cls.kind!r}, already taken by "
                f"{old.__module__}.{old.__qualname__}; choose another kind."
            )
        table[cls.kind] = cls


def kinds(category: str) -> dict[str, type]:
    """The live table of one category (``kind -> class``)."""
    return REGISTRY.setdefault(category, {})


def lookup(category: str, kind: str) -> type:
    """The class registered as ``category:kind``; raises ``SpecError`` naming the known kinds."""
    table = kinds(category)
    if kind not in table:
        raise SpecError(
            f"No {category} of kind {kind!r} is registered (known: {sorted(table)}); import the module that "
            "defines it (``import arprob`` registers the built-in kinds)."
        )
    return table[kind]


def category_of(obj: object) -> str:
    """The category of a declared object; raises ``SpecError`` for anything else."""
    category = getattr(type(obj), "category", "")
    if not isinstance(obj, Registered) or not category:
        raise SpecError(f"Cannot serialise {obj!r}: not an arprob spec object.")
    return category

"""Checks of single declared fields, shared by every declaration class.

A malformed field raises ``FieldError`` (a ``SpecError``) that knows its key path inside
the object (``hidden[1]``), what was expected and the value it got, so messages read the
same everywhere: ``MADE: hidden[1]: expected a positive integer, got -3``. The spec-file
loader re-raises it with the file and the full key path in front
(``model.yaml: conditionals.img.hidden[1]: expected a positive integer, got -3``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import SpecError


class FieldError(SpecError):
    """A field of a declared object has a malformed value.

    Attributes:
        owner: the object's class name (``"MADE"``).
        path: key path inside the object (``"hidden[1]"``).
        expected: what the field takes (``"a positive integer"``).
        got: the value given.
    """

    def __init__(self, owner: str, path: str, expected: str, got: Any) -> None:
        self.owner, self.path, self.expected, self.got = owner, path, expected, got
        super().__init__(f"{owner}: {self.detail}")

    @property
    def detail(self) -> str:
        """The message without the owner: ``hidden[1]: expected a positive integer, got -3``."""
        return f"{self.path}: expected {self.expected}, got {self.got!r}"


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int_words(minimum: int | None, maximum: int | None) -> str:
    if maximum is not None and minimum is not None:
        return f"an integer in {minimum}..{maximum}"
    if minimum == 1:
        return "a positive integer"
    if minimum is not None:
        return f"an integer >= {minimum}"
    return "an integer"


def integer(owner: str, path: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool, not ``3.0``) in range."""
    if not _is_int(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise FieldError(owner, path, _int_words(minimum, maximum), value)
    return int(value)


def positive_int(owner: str, path: str, value: object) -> int:
    """An integer ``>= 1``."""
    return integer(owner, path, value, 1)


def non_negative_int(owner: str, path: str, value: object) -> int:
    """An integer ``>= 0``."""
    return integer(owner, path, value, 0)


def int_tuple(owner: str, path: str, value: object, minimum: int | None = None) -> tuple[int, ...]:
    """A sequence of integers (each ``>= minimum``), as a tuple; errors name the index."""
    words = {None: "a list of integers", 1: "a list of positive integers"}.get(minimum, f"a list of integers >= {minimum}")
    items = sequence(owner, path, value, words)
    return tuple(integer(owner, f"{path}[{i}]", v, minimum) for i, v in enumerate(items))


def sequence(owner: str, path: str, value: object, expected: str) -> tuple:
    """``value`` as a tuple if it is a list or tuple (a string or a mapping is not)."""
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (Iterable, np.ndarray)):
        raise FieldError(owner, path, expected, value)
    return tuple(value)


def str_tuple(owner: str, path: str, value: object, expected: str = "a list of strings") -> tuple[str, ...]:
    """A sequence of strings, as a tuple; errors name the index."""
    items = sequence(owner, path, value, expected)
    for i, v in enumerate(items):
        if not isinstance(v, str):
            raise FieldError(owner, f"{path}[{i}]", "a string", v)
    return items


def boolean(owner: str, path: str, value: object) -> bool:
    """``True`` or ``False`` (not ``0``/``1``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise FieldError(owner, path, "true or false", value)
    return bool(value)


def one_of(owner: str, path: str, value: object, choices: Iterable[str]) -> str:
    """One of the given strings."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise FieldError(owner, path, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def number(owner: str, path: str, value: object, *, minimum: float | None = None, below: float | None = None,
           expected: str | None = None) -> float:
    """A finite real number (int or float, not a bool) ``>= minimum`` and ``< below``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    ok = ok and math.isfinite(value) and (minimum is None or value >= minimum) and (below is None or value < below)
    if not ok:
        if expected is None:
            expected = "a finite number" + (f" >= {minimum:g}" if minimum is not None else "") + (
                f" < {below:g}" if below is not None else "")
        raise FieldError(owner, path, expected, value)
    return float(value)


def identifier(owner: str, path: str, value: object) -> str:
    """A string that is a Python identifier (variable names)."""
    if not isinstance(value, str) or not value.isidentifier():
        raise FieldError(owner, path, "a name that is a Python identifier", value)
    return value

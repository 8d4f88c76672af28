"""Specs to and from plain dicts, JSON and TOML files (no code is ever loaded).

Every spec object is a frozen dataclass with a ``kind``; it is written as a table
``{"kind": "<category>:<kind>", field: value, ...}``. Inside ``variables``,
``ordering``, ``partition`` and ``conditionals`` the category may be left out
(``kind = "raster"``); nested objects need it only when a kind is ambiguous
(``head = {kind = "head:categorical"}``). Errors name the file and the key path.

```toml
[[variables]]
kind = "binary"
name = "img"
shape = [8, 8]

[ordering]
kind = "snake"

[conditionals.img]
kind = "logistic"
```
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..fileio import atomic_write_bytes
from .registry import REGISTRY, category_of
from .spec import Spec

FORMAT = "arprob.spec/1"


def _registries() -> dict[str, dict[str, type]]:
    """category -> kind -> class: every kind that has registered itself (``spec.registry``)."""
    return REGISTRY


_category = category_of


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"kind": f"{_category(value)}:{type(value).kind}"}
        for f in dataclasses.fields(value):
            if f.name in ("kind", "category") or not f.init:
                continue
            v = getattr(value, f.name)
            if v is not None:
                out[f.name] = _encode(v)
        return out
    if isinstance(value, (tuple, list)):
        return [_encode(v) for v in value]
    return value


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """A JSON/TOML-ready dict of ``spec``."""
    return {
        "format": FORMAT,
        "variables": [_encode(v) for v in spec.variables],
        "ordering": _encode(spec.ordering),
        "partition": _encode(spec.partition),
        "conditionals": {name: _encode(c) for name, c in spec.conditionals},
        "context_size": spec.context_size,
    }


def _decode(value: Any, where: str, default_category: str | None = None) -> Any:
    if isinstance(value, dict) and "kind" in value:
        return _build(value, where, default_category)
    if isinstance(value, dict):
        return {k: _decode(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_decode(v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def _build(table: dict, where: str, default_category: str | None) -> Any:
    registries = _registries()
    kind = table["kind"]
    if not isinstance(kind, str):
        raise SpecError(f"{where}.kind: expected a string; got {kind!r}.")
    if ":" in kind:
        category, short = kind.split(":", 1)
        if category not in registries:
            raise SpecError(f"{where}.kind: unknown category {category!r}; known: {sorted(registries)}.")
        candidates = [category] if short in registries[category] else []
    elif default_category is not None:
        category, short = default_category, kind
        candidates = [category] if short in registries[category] else []
    else:
        short = kind
        candidates = [c for c, reg in registries.items() if short in reg]
        if len(candidates) > 1:
            raise SpecError(f"{where}.kind: {kind!r} is ambiguous; write one of {[f'{c}:{kind}' for c in candidates]}.")
    if not candidates:
        known = sorted(registries[default_category]) if default_category else sorted(
            f"{c}:{k}" for c, reg in registries.items() for k in reg
        )
        raise SpecError(f"{where}.kind: unknown kind {kind!r}; known: {known}.")
    cls = registries[candidates[0]][short]
    fields = {f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("kind", "category")}
    kwargs = {}
    for key, v in table.items():
        if key == "kind":
            continue
        if key not in fields:
            raise SpecError(f"{where}: unknown key {key!r} for {kind!r}; expected some of {sorted(fields)}.")
        kwargs[key] = _decode(v, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None
    except (TypeError, ValueError, OverflowError) as e:
        raise SpecError(f"{where}: invalid {kind!r}: {e}") from None


def spec_from_dict(data: dict[str, Any], source: str = "spec") -> Spec:
    """Build a validated ``Spec`` from a dict; errors name ``source`` and the key path."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a table at the top level; got {type(data).__name__}.")
    allowed = {"format", "variables", "ordering", "partition", "conditionals", "context_size"}
    for key in data:
        if key not in allowed:
            raise SpecError(f"{source}: unknown key {key!r}; expected some of {sorted(allowed)}.")
    fmt = data.get("format", FORMAT)
    if fmt != FORMAT:
        raise SpecError(f"{source}.format: expected {FORMAT!r}; got {fmt!r}.")
    variables = data.get("variables")
    if not isinstance(variables, list) or not variables:
        raise SpecError(f"{source}.variables: expected a non-empty list of variable tables.")
    kwargs: dict[str, Any] = {
        "variables": tuple(_build(_table(v, f"{source}.variables[{i}]"), f"{source}.variables[{i}]", "variable")
                           for i, v in enumerate(variables))
    }
    for key in ("ordering", "partition"):
        if key in data:
            kwargs[key] = _build(_table(data[key], f"{source}.{key}"), f"{source}.{key}", key)
    conds = data.get("conditionals", {})
    if not isinstance(conds, dict):
        raise SpecError(f"{source}.conditionals: expected a table of variable name -> conditional.")
    kwargs["conditionals"] = tuple(
        (name, _build(_table(c, f"{source}.conditionals.{name}"), f"{source}.conditionals.{name}", "conditional"))
        for name, c in conds.items()
    )
    if "context_size" in data:
        kwargs["context_size"] = data["context_size"]
    try:
        return Spec(**kwargs)
    except SpecError as e:
        raise SpecError(f"{source}: {e}") from None


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict) or "kind" not in value:
        raise SpecError(f"{where}: expected a table with a 'kind' key; got {value!r}.")
    return value


def save_spec(spec: Spec, path: str | os.PathLike) -> None:
    """Write ``spec`` atomically as JSON (``.json``) or TOML (``.toml``)."""
    path = Path(path)
    data = spec_to_dict(spec)
    if path.suffix == ".toml":
        import tomli_w

        atomic_write_bytes(path, tomli_w.dumps(data).encode())
    else:
        atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def load_spec(path: str | os.PathLike) -> Spec:
    """Read a spec file (``.toml`` or ``.json``); errors name the file and the key path."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SpecError(f"{path}: cannot read spec file: {e.strerror}.") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, ValueError, UnicodeDecodeError, RecursionError) as e:  # ValueError: JSON, long ints
        raise SpecError(f"{path}: malformed {'TOML' if path.suffix == '.toml' else 'JSON'}: {str(e)[:300]}") from None
    try:
        return spec_from_dict(data, source=str(path))
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply.") from None

"""Specs to and from plain dicts and TOML, JSON or YAML files (no code is ever loaded).

Every spec object is a frozen dataclass with a ``kind``; it is written as a table
``{"kind": "<category>:<kind>", field: value, ...}`` whose keys are the constructor's
argument names, with the constructor's defaults. Inside ``variables``, ``ordering``,
``partition`` and ``conditionals`` the category may be left out (``kind = "raster"``); so
may it in a field that takes one category (``head = {kind = "categorical"}`` is a head,
``of = {kind = "columns"}`` an ordering). The file's suffix decides its format
(``.toml``, ``.json``, ``.yaml``/``.yml``); YAML is read with ``yaml.safe_load`` and may not
use aliases. Errors name the file, the key path and what was expected
(``model.yaml: conditionals.img.hidden[1]: expected a positive integer, got -3``).
``docs/spec_reference.md`` lists every kind and field (``python -m arprob.spec.schema``).

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
import datetime
import functools
import inspect
import json
import os
import tomllib
import typing
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..fileio import atomic_write_bytes
from .fields import FieldError
from .registry import REGISTRY, Registered, category_of
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


#: file suffix -> format name (the suffix decides the format)
SUFFIXES = {".toml": "TOML", ".json": "JSON", ".yaml": "YAML", ".yml": "YAML"}
#: deepest nesting a spec file may have (a Table's cpt nests once per parent)
MAX_DEPTH = 100


def _key(where: str, key: object) -> str:
    """The key path ``where.key`` (``where["a b"]`` for a key that is not a plain name)."""
    if not (isinstance(key, str) and key.isidentifier()):
        return f"{where}[{key!r}]"
    return f"{where}.{key}" if where else key


def _decode(value: Any, where: str, default_category: str | None = None) -> Any:
    if isinstance(value, dict) and "kind" in value:
        return _build(value, where, default_category)
    if isinstance(value, dict):
        return {k: _decode(v, _key(where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_decode(v, f"{where}[{i}]", default_category) for i, v in enumerate(value))
    return value


@functools.cache
def _field_categories(cls: type) -> dict[str, tuple[str, bool]]:
    """field -> (category, exact) for fields typed with one registered category base:
    ``exact`` when the field takes exactly one such object (``head: Head | None``), not a
    list of them (``ordering_family: str | tuple[Ordering, ...]``)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not evaluate: no inference
        return {}
    out = {}
    for f in dataclasses.fields(cls):
        tp = hints.get(f.name)
        direct = [a for a in (typing.get_args(tp) or (tp,)) if a is not type(None)]
        found: set[str] = set()
        stack = [tp]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, Registered) and t.category:
                found.add(t.category)
            stack.extend(typing.get_args(t))
        if len(found) == 1:
            category = found.pop()
            exact = len(direct) == 1 and isinstance(direct[0], type) and issubclass(direct[0], Registered)
            out[f.name] = (category, exact)
    return out


@functools.cache
def _required(cls: type) -> tuple[str, ...]:
    """Constructor arguments without a default (a spec file must give them)."""
    return tuple(n for n, p in inspect.signature(cls).parameters.items()
                 if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _build(table: dict, where: str, default_category: str | None) -> Any:
    registries = _registries()
    kind = table["kind"]
    at = _key(where, "kind")
    if not isinstance(kind, str):
        raise SpecError(f"{at}: expected a string; got {kind!r}.")
    if ":" in kind:
        category, short = kind.split(":", 1)
        if category not in registries:
            raise SpecError(f"{at}: unknown category {category!r}; known: {sorted(registries)}.")
        if default_category is not None and category != default_category:
            raise SpecError(f"{at}: expected a {default_category} here; got {kind!r}.")
        candidates = [category] if short in registries[category] else []
    elif default_category is not None:
        category, short = default_category, kind
        candidates = [category] if short in registries.get(category, {}) else []
    else:
        short = kind
        candidates = [c for c, reg in registries.items() if short in reg]
        if len(candidates) > 1:
            raise SpecError(f"{at}: {kind!r} is ambiguous; write one of {[f'{c}:{kind}' for c in candidates]}.")
    if not candidates:
        known = sorted(registries.get(default_category, {})) if default_category else sorted(
            f"{c}:{k}" for c, reg in registries.items() for k in reg
        )
        raise SpecError(f"{at}: unknown kind {kind!r}; known: {known}.")
    cls = registries[candidates[0]][short]
    fields = {f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("kind", "category")}
    typed = _field_categories(cls)
    kwargs = {}
    for key, v in table.items():
        if key == "kind":
            continue
        if key not in fields:
            raise SpecError(f"{where}: unknown key {key!r} for {kind!r}; expected some of {sorted(fields)}.")
        category, exact = typed.get(key, (None, False))
        if exact and v is not None and not (isinstance(v, dict) and "kind" in v):
            raise SpecError(f"{_key(where, key)}: expected a {category} (a table with a 'kind'), got {v!r}")
        kwargs[key] = _decode(v, _key(where, key), category)
    missing = [n for n in _required(cls) if n not in kwargs]
    if missing:
        raise SpecError(f"{where}: {kind!r} needs the key{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(m) for m in missing)}.")
    try:
        return cls(**kwargs)
    except FieldError as e:
        raise SpecError(f"{where}.{e.detail}") from None
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None
    except (TypeError, ValueError, OverflowError) as e:
        raise SpecError(f"{where}: invalid {kind!r}: {e}") from None


def spec_from_dict(data: dict[str, Any], source: str = "spec") -> Spec:
    """Build a validated ``Spec`` from a dict; errors name ``source`` and the key path."""
    try:
        return _spec_from_dict(data)
    except SpecError as e:
        raise SpecError(f"{source}: {e}") from None


#: host bytes per declared variable before any element exists: its variable and conditional
#: objects, its per-variable layout, schedule and compile-time entries (measured: about 100 kB
#: a variable when 20,000 one-element variables compile, so this is a lower bound)
SPEC_BYTES_PER_VARIABLE = 64 * 2**10


def _check_num_variables(count: int) -> None:
    """Refuse a file declaring more variables than the memory budget can build, before one
    variable object exists (100,000 crafted variable tables are refused at once)."""
    from .limits import format_bytes, how_to_raise, memory_budget

    need = count * SPEC_BYTES_PER_VARIABLE
    if need > memory_budget():
        raise SpecError(f"variables: {count} variables need at least {format_bytes(need)} to build, over the memory "
                        f"budget of {format_bytes(memory_budget())}; {how_to_raise()}.")


def _spec_from_dict(data: Any) -> Spec:
    if not isinstance(data, dict):
        raise SpecError(f"expected a table at the top level; got {type(data).__name__}.")
    allowed = {"format", "variables", "ordering", "partition", "conditionals", "context_size"}
    for key in data:
        if key not in allowed:
            raise SpecError(f"unknown key {key!r}; expected some of {sorted(allowed)}.")
    fmt = data.get("format", FORMAT)
    if fmt != FORMAT:
        raise SpecError(f"format: expected {FORMAT!r}; got {fmt!r}.")
    variables = data.get("variables")
    if not isinstance(variables, list) or not variables:
        raise SpecError(f"variables: expected a non-empty list of variable tables, got {variables!r:.200}")
    _check_num_variables(len(variables))
    kwargs: dict[str, Any] = {
        "variables": tuple(_build(_table(v, f"variables[{i}]"), f"variables[{i}]", "variable")
                           for i, v in enumerate(variables))
    }
    for key in ("ordering", "partition"):
        if key in data:
            kwargs[key] = _build(_table(data[key], key), key, key)
    conds = data.get("conditionals", {})
    if not isinstance(conds, dict):
        raise SpecError(f"conditionals: expected a table of variable name -> conditional, got {conds!r}")
    kwargs["conditionals"] = tuple(
        (name, _build(_table(c, _key("conditionals", name)), _key("conditionals", name), "conditional"))
        for name, c in conds.items()
    )
    if "context_size" in data:
        kwargs["context_size"] = data["context_size"]
    try:
        return Spec(**kwargs)
    except FieldError as e:
        raise SpecError(e.detail) from None


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict) or "kind" not in value:
        raise SpecError(f"{where}: expected a table with a 'kind' key; got {value!r}.")
    return value


def _format_of(path: Path) -> str:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SpecError(f"{path}: unknown spec file suffix {path.suffix!r}; expected one of {sorted(SUFFIXES)}.")
    return fmt


def save_spec(spec: Spec, path: str | os.PathLike) -> None:
    """Write ``spec`` atomically as TOML (``.toml``), JSON (``.json``) or YAML (``.yaml``, ``.yml``)."""
    path = Path(path)
    fmt = _format_of(path)
    data = spec_to_dict(spec)
    if fmt == "TOML":
        import tomli_w

        text = tomli_w.dumps(data)
    elif fmt == "YAML":
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(data, indent=2) + "\n"
    atomic_write_bytes(path, text.encode())


def _plain(value: Any, source: str) -> None:
    """Refuse what no spec field takes: non-string keys, dates and times, binary, sets, and
    nesting deeper than ``MAX_DEPTH`` (naming the key path). Iterative: no recursion limit."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        v, where, depth = stack.pop()
        at = where or "top level"
        if depth > MAX_DEPTH:
            raise SpecError(f"{source}: {at}: nested deeper than {MAX_DEPTH} levels.")
        if isinstance(v, dict):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise SpecError(f"{source}: {_key(where, k)}: expected a string key, got {type(k).__name__} {k!r} "
                                    "(quote it)")
                stack.append((item, _key(where, k), depth + 1))
        elif isinstance(v, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(v))
        elif isinstance(v, (datetime.date, datetime.time)):
            raise SpecError(f"{source}: {at}: expected a string, number, boolean, list or table, got a "
                            f"date/time {v.isoformat()} (quote it to make it a string)")
        elif v is not None and not isinstance(v, (str, int, float, bool)):
            raise SpecError(f"{source}: {at}: expected a string, number, boolean, list or table, got "
                            f"{type(v).__name__} {repr(v)[:80]}")


#: the largest spec file read (a spec is a few kB; a larger file is refused before it is read)
MAX_SPEC_FILE_BYTES = 16 * 2**20


def _unique_json_object(pairs: list[tuple[str, Any]]) -> dict:
    """``json.loads``' ``object_pairs_hook``: a key given twice is refused (JSON would keep the last)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise SpecError(f"duplicate key {key!r} (JSON keeps only the last; write it once)")
        out[key] = value
    return out


def _unique_key_loader():
    """A ``yaml.SafeLoader`` subclass refusing a mapping key given twice (PyYAML keeps the last)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: refused by the base class
                    continue
                if duplicate:
                    m = key_node.start_mark
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (YAML keeps only the last; write it once)", m)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _parse_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load`` after a token scan that refuses aliases: an alias can make a small
    file expand exponentially when walked, and no spec needs one."""
    import yaml

    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.AliasToken):
                m = token.start_mark
                raise SpecError(f"{path}: line {m.line + 1}, column {m.column + 1}: YAML aliases (*{token.value}) are "
                                "not allowed in spec files; write the value out.")
        return yaml.load(text, Loader=_unique_key_loader())  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(f"{path}: malformed YAML{where}: {str(problem)[:300]}") from None


def load_spec(path: str | os.PathLike) -> Spec:
    """Read a spec file (``.toml``, ``.json``, ``.yaml``/``.yml``); errors name the file and the key path."""
    path = Path(path)
    fmt = _format_of(path)
    from ..fileio import read_regular_bytes

    raw = read_regular_bytes(path, MAX_SPEC_FILE_BYTES, "spec file", SpecError)  # no FIFO, device, huge file
    try:
        if fmt == "TOML":
            data = tomllib.loads(raw.decode())  # refuses a key given twice itself
        elif fmt == "YAML":
            data = _parse_yaml(raw.decode(), path)
        else:
            data = json.loads(raw, object_pairs_hook=_unique_json_object)
    except SpecError as e:
        if str(e).startswith("duplicate key"):
            raise SpecError(f"{path}: malformed {fmt}: {e}") from None
        raise
    except (tomllib.TOMLDecodeError, ValueError, UnicodeDecodeError, RecursionError) as e:  # ValueError: JSON, long ints
        if isinstance(e, RecursionError):
            raise SpecError(f"{path}: malformed {fmt}: nested too deeply.") from None
        raise SpecError(f"{path}: malformed {fmt}: {str(e)[:300] or type(e).__name__}") from None
    if data is None:
        raise SpecError(f"{path}: the file holds no spec (an empty document).")
    _plain(data, str(path))
    try:
        return spec_from_dict(data, source=str(path))
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply.") from None

"""The spec-file reference, generated from the registry so that it cannot drift from the code.

``schema_markdown()`` reads ``REGISTRY`` (every kind that has registered itself) and, per
category and kind, writes the Python name (``ar.MADE``), the file kind (``made``) and each
key with its type, its default (the constructor's own: a file key left out takes the
constructor's default) and the description from the class docstring's ``Attributes:``
(or ``Args:``) section. This module reads only the declaration layer; the command line
imports ``arprob`` first so that the built-in kinds are registered::

    python -m arprob.spec.schema docs/spec_reference.md          # write it
    python -m arprob.spec.schema --check docs/spec_reference.md  # exit 1 when it differs
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

from .registry import REGISTRY

#: categories in the order the page lists them (others follow, sorted)
CATEGORY_ORDER = ("variable", "ordering", "partition", "conditional", "head")
_TITLES = {"variable": "Variables", "ordering": "Orderings", "partition": "Partitions",
           "conditional": "Conditionals (conditioners)", "head": "Heads"}
_WHERE = {
    "variable": "an entry of `variables` (`[[variables]]` in TOML)",
    "ordering": "the `ordering` table, or a field that takes an ordering (`Reverse.of`, `ByVariable.within`, "
                "`MADE.ordering_family`)",
    "partition": "the `partition` table",
    "conditional": "a table `conditionals.<variable name>`",
    "head": "the `head` key of a conditional",
}
_SECTION = re.compile(r"^(Attributes|Args|Arguments):\s*$")
_ENTRY = re.compile(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def _markdown(text: str) -> str:
    """rST inline code to Markdown, one line, safe inside a table cell."""
    text = " ".join(text.split()).replace("``", "`")
    return text.replace("|", "\\|")


def _section_docs(doc: str) -> dict[str, str]:
    """``name -> description`` from the ``Attributes:``/``Args:`` sections of a docstring."""
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    i = 0
    while i < len(lines):
        if not _SECTION.match(lines[i].strip()):
            i += 1
            continue
        base = len(lines[i]) - len(lines[i].lstrip())
        i += 1
        entry_indent, name = None, None
        while i < len(lines):
            line = lines[i]
            indent = len(line) - len(line.lstrip())
            if line.strip() and indent <= base:
                break
            if line.strip():
                m = _ENTRY.match(line.strip())
                if m and (entry_indent is None or indent == entry_indent):
                    entry_indent, name = indent, m.group(1)
                    out[name] = m.group(2)
                elif name is not None:
                    out[name] += " " + line.strip()
            i += 1
    return out


def field_docs(cls: type) -> dict[str, str]:
    """Descriptions of ``cls``'s fields from its docstring and its bases' (the class's own win)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = klass.__dict__.get("__doc__")
        if isinstance(doc, str):
            out.update(_section_docs(doc))
    return out


def summary(cls: type) -> str:
    """The first paragraph of the class docstring, on one line."""
    doc = cls.__dict__.get("__doc__") or ""
    return _markdown(inspect.cleandoc(doc).split("\n\n")[0])


def python_name(cls: type) -> str:
    """How the Python API spells ``cls``: ``ar.X`` where ``arprob`` exports it, else its
    sub-package (``ar.heads.X``) or module path (this module imports nothing to find out)."""
    for prefix, module in (("ar", "arprob"), ("ar.heads", "arprob.heads"), ("ar.conditioners", "arprob.conditioners")):
        mod = sys.modules.get(module)
        if mod is not None and getattr(mod, cls.__name__, None) is cls:
            return f"{prefix}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def spec_fields(cls: type) -> list[str]:
    """The keys a file may give for ``cls``: its constructor's arguments (dataclass fields)."""
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("kind", "category")]


def _file_value(value: Any) -> str:
    from .serialize import _encode  # the encoder files are written with

    if value is None:
        return "unset"
    return "`" + json.dumps(_encode(value)) + "`"


def constructor_defaults(cls: type) -> dict[str, Any]:
    """``field -> default`` of the constructor (``inspect.Parameter.empty`` when required);
    a ``default_factory`` is called, so ``Reverse.of`` shows ``Raster()``."""
    params = inspect.signature(cls).parameters
    factories = {f.name: f.default_factory for f in dataclasses.fields(cls)
                 if f.default_factory is not dataclasses.MISSING}
    out = {}
    for name in spec_fields(cls):
        p = params.get(name)
        if name in factories and (p is None or p.default is not inspect.Parameter.empty):
            out[name] = factories[name]()
        else:
            out[name] = inspect.Parameter.empty if p is None else p.default
    return out


def _type_of(cls: type, name: str) -> str:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return "`" + t.replace("|", "\\|") + "`"


def _kind_section(category: str, kind: str, cls: type) -> list[str]:
    out = [f"### `{kind}` — `{python_name(cls)}`", ""]
    text = summary(cls)
    if text:
        out += [text, ""]
    names = spec_fields(cls)
    if not names:
        out += [f'No keys besides `kind = "{kind}"`.', ""]
        return out
    docs, defaults = field_docs(cls), constructor_defaults(cls)
    out += ["| key | type | default | description |", "|---|---|---|---|"]
    for name in names:
        d = defaults[name]
        default = "required" if d is inspect.Parameter.empty else _file_value(d)
        out.append(f"| `{name}` | {_type_of(cls, name)} | {default} | {_markdown(docs.get(name, ''))} |")
    return out + [""]


def _top_level() -> list[str]:
    from .serialize import FORMAT
    from .spec import Spec

    docs = field_docs(Spec)
    rows = [("format", "`str`", f"`{json.dumps(FORMAT)}`", "the file format's version; written by `save_spec`.")]
    for name in spec_fields(Spec):
        d = constructor_defaults(Spec)[name]
        default = "required" if d is inspect.Parameter.empty else (
            "`{}`" if name == "conditionals" else _file_value(d))
        rows.append((name, _type_of(Spec, name), default, _markdown(docs.get(name, ""))))
    out = ["## Top level", "", "| key | type | default | description |", "|---|---|---|---|"]
    out += [f"| `{k}` | {t} | {d} | {s} |" for k, t, d, s in rows]
    out += ["", "`variables` is a list of variable tables; `conditionals` maps a variable's name to its "
                "conditional (a variable not named gets `logistic`).", ""]
    return out


def builtin_registry() -> dict[str, dict[str, type]]:
    """The registered kinds defined inside ``arprob`` (not a user's or a test's own)."""
    return {c: {k: cls for k, cls in table.items() if cls.__module__.split(".")[0] == "arprob"}
            for c, table in REGISTRY.items()}


def schema_markdown(registry: dict[str, dict[str, type]] | None = None) -> str:
    """The reference page of every kind in ``registry`` (default: the built-in kinds,
    ``builtin_registry()``; see the module docstring)."""
    registry = builtin_registry() if registry is None else registry
    categories = [c for c in CATEGORY_ORDER if registry.get(c)] + sorted(
        c for c in registry if c not in CATEGORY_ORDER and registry[c])
    out = [
        "# Spec file reference",
        "",
        "<!-- Generated by `python -m arprob.spec.schema docs/spec_reference.md` from the registry of kinds;",
        "     do not edit by hand (tests/test_spec_files.py fails when this page and the code differ). -->",
        "",
        "Every key below is the Python constructor's argument of the same name, with the same default: a key "
        "left out of a file takes that default. A spec file is TOML (`.toml`), JSON (`.json`) or YAML "
        "(`.yaml`, `.yml`); the suffix decides. Each object is a table with a `kind`; `kind` may carry its "
        "category (`\"head:categorical\"`), which can be left out where only one category fits (in "
        "`variables`, `ordering`, `partition`, `conditionals` and a field such as `head` or `of`). "
        "[Spec files](spec_files.md) shows complete examples.",
        "",
    ]
    out += _top_level()
    for category in categories:
        out += [f"## {_TITLES.get(category, category.title())}", ""]
        if category in _WHERE:
            out += [f"Written as {_WHERE[category]}.", ""]
        for kind in sorted(registry[category]):
            out += _kind_section(category, kind, registry[category][kind])
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m arprob.spec.schema [--check] PATH``: write the page, or compare with it."""
    parser = argparse.ArgumentParser(prog="python -m arprob.spec.schema", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="the Markdown page (docs/spec_reference.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 when PATH differs from the generated page")
    args = parser.parse_args(argv)
    import arprob  # noqa: F401  (registers the built-in kinds; this module itself reads only the registry)

    text = schema_markdown()
    if args.check:
        try:
            current = args.path.read_text()
        except OSError as e:
            print(f"{args.path}: cannot read: {e.strerror}", file=sys.stderr)
            return 1
        if current != text:
            print(f"{args.path} differs from the registry; run python -m arprob.spec.schema {args.path}",
                  file=sys.stderr)
            return 1
        return 0
    from ..fileio import atomic_write_bytes

    atomic_write_bytes(args.path, text.encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

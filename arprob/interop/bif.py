"""BIF (Bayesian Interchange Format) files to and from a ``Spec`` of ``Table`` conditionals.

A BIF file declares discrete variables with named states and one conditional probability
table per variable::

    network asia {
    }
    variable tub {
      type discrete [ 2 ] { yes, no };
    }
    probability ( tub | asia ) {
      (yes) 0.05, 0.95;
      (no) 0.01, 0.99;
    }

``read_bif`` gives one ``Categorical(name, k, states=...)`` per variable, in the file's
declaration order, and ``Table(parents=..., cpt=...)`` with ``cpt[i_1, ..., i_r, j] =
p(child = state j | parent_1 = state i_1, ...)``. When the declaration order is not
topological, the ordering is ``ByVariable`` over a topological order (the earliest
declared variable whose parents are all placed comes next); otherwise it is raster.
``table`` entries of a conditional list the child's states slowest and the last parent
fastest (the convention of pgmpy and of the BIF 0.15 draft); rows ``(s_1, ..., s_r)`` and
``default`` rows are accepted too. ``write_bif`` writes one row per parent configuration
with each probability as Python's shortest round-trip decimal, so
``read_bif(write_bif(spec))`` gives back an equal spec (raster ordering, declaration
order topological). Errors name the file and the line.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import os
import re
from pathlib import Path

import numpy as np

from ..conditioners.table import MAX_TABLE_CELLS, Table
from ..errors import SpecError
from ..fileio import atomic_write_bytes
from ..model import Model
from ..spec.orderings import ByVariable, Raster
from ..spec.spec import Spec
from ..spec.variables import Categorical
from .bayesnet import network_tables

__all__ = ["BIFError", "format_bif", "parse_bif", "read_bif", "write_bif"]

#: Largest |sum(row) - 1| accepted for a probability row (rows are kept as written).
ROW_TOLERANCE = 1e-6

_TOKEN = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:[^"\\]|\\.)*"|[{}()\[\];,|]|[^\s{}()\[\];,|"]+', re.DOTALL)
_PUNCT = set("{}()[];,|")


class BIFError(SpecError):
    """A malformed BIF file; ``line`` is the 1-based line of the offending token (0: none)."""

    def __init__(self, source: str, line: int, message: str):
        self.source, self.line = source, line
        super().__init__(f"{source}:{line}: {message}" if line else f"{source}: {message}")


class _Tokens:
    """Tokens with their offsets; a token's line is looked up (bisect) only when needed."""

    def __init__(self, text: str, source: str):
        self.source = source
        found = [(m.group(), m.start()) for m in _TOKEN.finditer(text)]
        kept = [f for f in found if not f[0].startswith(("//", "/*"))]
        self.toks: list[str] = [t for t, _ in kept]
        self.starts: list[int] = [p for _, p in kept]
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.semis = [i for i, t in enumerate(self.toks) if t == ";"]
        self.eof_line = len(self.newlines) + 1
        self.pos = 0

    def line_of(self, i: int) -> int:
        return bisect.bisect_right(self.newlines, self.starts[i]) + 1 if i < len(self.toks) else self.eof_line

    def error(self, message: str, line: int | None = None) -> BIFError:
        return BIFError(self.source, self.line_of(self.pos) if line is None else line, message)

    def peek(self) -> str | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    @property
    def line(self) -> int:
        return self.line_of(self.pos)

    def next(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.toks):
            raise self.error(f"unexpected end of file; expected {what}.")
        self.pos += 1
        return self.toks[self.pos - 1], self.line_of(self.pos - 1)

    def expect(self, tok: str) -> int:
        got, line = self.next(repr(tok))
        if got != tok:
            raise self.error(f"expected {tok!r}; got {got!r}.", line)
        return line

    def word(self, what: str) -> tuple[str, int]:
        got, line = self.next(what)
        if got in _PUNCT or got.startswith('"'):
            raise self.error(f"expected {what}; got {got!r}.", line)
        return got, line

    def skip_statement(self) -> None:
        """Skip to and past the next ``;`` (a ``property`` line)."""
        while True:
            tok, _ = self.next("';' ending the property")
            if tok == ";":
                return

    def numbers(self, what: str) -> tuple[list[float], int]:
        """Numbers separated by commas or spaces up to ``;``."""
        start, line0 = self.pos, self.line
        k = bisect.bisect_left(self.semis, start)
        if k < len(self.semis):  # fast path: convert the whole run at once
            end = self.semis[k]
            try:
                values = [float(t) for t in self.toks[start:end] if t != ","]
            except ValueError:
                values = None
            if values is not None and all(v >= 0 and v != math.inf for v in values):
                self.pos = end + 1
                return values, line0
        values = []
        while True:  # slow path: find the offending token and its line
            tok, line = self.next(f"{what} ending with ';'")
            if tok == ";":
                return values, line0
            if tok == ",":
                continue
            try:
                v = float(tok)
            except ValueError:
                raise self.error(f"expected a probability in {what}; got {tok!r}.", line) from None
            if not math.isfinite(v) or v < 0:
                raise self.error(f"probability {tok} in {what} is negative or not finite.", line)
            values.append(v)


def _check_row(tokens: _Tokens, values: list[float], k: int, what: str, line: int) -> None:
    if len(values) != k:
        raise tokens.error(f"{what} has {len(values)} probabilities; the child has {k} states.", line)
    total = math.fsum(values)
    if abs(total - 1.0) > ROW_TOLERANCE:
        raise tokens.error(f"{what} sums to {total:.10g}, not 1.", line)


def parse_bif(text: str, source: str = "<bif>") -> Spec:
    """Parse BIF text into a ``Spec`` (see the module docstring); errors name ``source``:line."""
    tokens = _Tokens(text, source)
    states: dict[str, tuple[str, ...]] = {}
    declared_at: dict[str, int] = {}
    blocks: dict[str, tuple[int, tuple[str, ...], np.ndarray]] = {}  # child -> (line, parents, cpt)
    while tokens.peek() is not None:
        keyword, line = tokens.word("'network', 'variable' or 'probability'")
        if keyword == "network":
            _parse_network(tokens)
        elif keyword == "variable":
            name, vstates = _parse_variable(tokens, states, declared_at)
            states[name] = vstates
        elif keyword == "probability":
            child, parents, cpt, pline = _parse_probability(tokens, states, blocks)
            blocks[child] = (pline, parents, cpt)
        else:
            raise tokens.error(f"expected 'network', 'variable' or 'probability'; got {keyword!r}.", line)
    if not states:
        raise tokens.error("the file declares no variables.", 0)
    for name, line in declared_at.items():
        if name not in blocks:
            raise tokens.error(f"variable {name!r} has no probability block (missing probabilities).", line)
    names = list(states)
    order = _topological(tokens, names, {c: b[1] for c, b in blocks.items()}, {c: b[0] for c, b in blocks.items()})
    ordering = Raster() if order == names else ByVariable(names=tuple(order))
    variables = [Categorical(n, len(states[n]), states=states[n]) for n in names]
    conditionals = {n: Table(parents=blocks[n][1], cpt=blocks[n][2]) for n in names}
    return Spec(variables=variables, ordering=ordering, conditionals=conditionals)


def _parse_network(tokens: _Tokens) -> None:
    tokens.next("the network name")
    if tokens.peek() != "{":  # a network name of several words
        while tokens.peek() not in ("{", None):
            tokens.next("'{'")
    tokens.expect("{")
    while tokens.peek() != "}":
        word, line = tokens.word("'property' or '}'")
        if word != "property":
            raise tokens.error(f"expected 'property' or '}}' in the network block; got {word!r}.", line)
        tokens.skip_statement()
    tokens.expect("}")


def _parse_variable(tokens: _Tokens, states: dict, declared_at: dict) -> tuple[str, tuple[str, ...]]:
    name, line = tokens.word("a variable name")
    if name in declared_at:
        raise tokens.error(f"variable {name!r} is declared twice (first on line {declared_at[name]}).", line)
    if not name.isidentifier():
        raise tokens.error(f"variable name {name!r} is not a Python identifier (arprob names data by variable).", line)
    tokens.expect("{")
    vstates: tuple[str, ...] | None = None
    while tokens.peek() != "}":
        word, wline = tokens.word("'type', 'property' or '}'")
        if word == "property":
            tokens.skip_statement()
            continue
        if word != "type":
            raise tokens.error(f"expected 'type' or 'property' in variable {name!r}; got {word!r}.", wline)
        kind, kline = tokens.word("'discrete'")
        if kind != "discrete":
            raise tokens.error(f"variable {name!r}: only discrete variables are supported; got type {kind!r}.", kline)
        tokens.expect("[")
        count_tok, cline = tokens.word("the number of states")
        tokens.expect("]")
        tokens.expect("{")
        names: list[str] = []
        while tokens.peek() != "}":
            tok, sline = tokens.next("a state name or '}'")
            if tok == ",":
                continue
            if tok in _PUNCT:
                raise tokens.error(f"variable {name!r}: expected a state name; got {tok!r}.", sline)
            if tok in names:
                raise tokens.error(f"variable {name!r}: duplicate state {tok!r}.", sline)
            names.append(tok)
        tokens.expect("}")
        tokens.expect(";")
        if not count_tok.isdigit() or int(count_tok) != len(names):
            raise tokens.error(f"variable {name!r} declares [{count_tok}] states but lists {len(names)}.", cline)
        if len(names) < 2:
            raise tokens.error(f"variable {name!r} has {len(names)} state; arprob needs at least 2.", cline)
        vstates = tuple(names)
    tokens.expect("}")
    if vstates is None:
        raise tokens.error(f"variable {name!r} has no 'type discrete [...] {{...}};' line.", line)
    declared_at[name] = line
    return name, vstates


def _parse_probability(tokens: _Tokens, states: dict, blocks: dict):
    pline = tokens.expect("(")
    names: list[tuple[str, int]] = []
    bar = False
    while tokens.peek() != ")":
        tok, line = tokens.next("a variable name or ')'")
        if tok == "|":
            bar = True
            continue
        if tok == ",":
            continue
        if tok in _PUNCT:
            raise tokens.error(f"expected a variable name; got {tok!r}.", line)
        names.append((tok, line))
    tokens.expect(")")
    if not names:
        raise tokens.error("a probability block names no variable.", pline)
    for n, line in names:
        if n not in states:
            role = "child" if n == names[0][0] else "parent"
            raise tokens.error(f"probability block names unknown {role} variable {n!r} (declare it first).", line)
    child, parents = names[0][0], tuple(n for n, _ in names[1:])
    del bar  # 'A | B, C' and the older 'A B C' read alike
    if child in blocks:
        raise tokens.error(f"variable {child!r} has a second probability block (first on line {blocks[child][0]}).",
                           pline)
    for i, (p, line) in enumerate(names[1:]):
        if p == child:
            raise tokens.error(f"variable {child!r} is listed as its own parent.", line)
        if p in parents[:i]:
            raise tokens.error(f"variable {child!r} lists parent {p!r} twice.", line)
    k = len(states[child])
    cards = tuple(len(states[p]) for p in parents)
    if math.prod(cards) * k > MAX_TABLE_CELLS:  # checked before the table is allocated
        raise tokens.error(f"the table of {child!r} would have {math.prod(cards) * k} cells (> {MAX_TABLE_CELLS}); "
                           "arprob's tables hold at most that many.", pline)
    rows = np.full((math.prod(cards), k), np.nan)
    seen: dict[int, int] = {}
    default: list[float] | None = None
    state_index = [{st: i for i, st in enumerate(states[p])} for p in parents]
    tokens.expect("{")
    while tokens.peek() != "}":
        tok, line = tokens.next("'table', '(', 'default', 'property' or '}'")
        if tok == "property":
            tokens.skip_statement()
        elif tok == "table":
            values, vline = tokens.numbers("the table")
            if len(values) != rows.size:
                raise tokens.error(f"table of {child!r} has {len(values)} probabilities; expected {rows.size} "
                                   f"({k} states x {rows.shape[0]} parent configurations).", vline)
            table = np.asarray(values).reshape(k, -1).T  # child slowest, last parent fastest
            for r in range(rows.shape[0]):
                config = ", ".join(states[p][i] for p, i in zip(parents, np.unravel_index(r, cards)))
                _check_row(tokens, table[r].tolist(), k, f"table of {child!r} at ({config})", vline)
                rows[r], seen[r] = table[r], vline
        elif tok == "default":
            default, vline = tokens.numbers("the default row")
            _check_row(tokens, default, k, f"default row of {child!r}", vline)
        elif tok == "(":
            try:
                close = tokens.toks.index(")", tokens.pos)
            except ValueError:
                raise tokens.error("unexpected end of file; expected ')'.") from None
            config = [t for t in tokens.toks[tokens.pos : close] if t != ","]
            for j, t in enumerate(tokens.toks[tokens.pos : close]):
                if t in _PUNCT and t != ",":
                    raise tokens.error(f"expected a parent state; got {t!r}.", tokens.line_of(tokens.pos + j))
            tokens.pos = close + 1
            if len(config) != len(parents):
                raise tokens.error(f"row of {child!r} names {len(config)} parent states; it has {len(parents)} "
                                   f"parents {list(parents)}.", line)
            index = []
            for p, s, lookup in zip(parents, config, state_index):
                if s not in lookup:
                    raise tokens.error(f"row of {child!r}: {s!r} is not a state of parent {p!r} "
                                       f"(states {list(states[p])}).", line)
                index.append(lookup[s])
            r = 0
            for i, c in zip(index, cards):  # mixed radix, last parent fastest
                r = r * c + i
            if r in seen:
                raise tokens.error(f"row ({', '.join(config)}) of {child!r} is given twice "
                                   f"(first on line {seen[r]}).", line)
            values, _ = tokens.numbers(f"row ({', '.join(config)}) of {child!r}")
            _check_row(tokens, values, k, f"row ({', '.join(config)}) of {child!r}", line)
            rows[r], seen[r] = values, line
        else:
            raise tokens.error(f"expected 'table', '(', 'default' or 'property' in the probability block of "
                               f"{child!r}; got {tok!r}.", line)
    tokens.expect("}")
    missing = [r for r in range(rows.shape[0]) if r not in seen]
    if missing:
        if default is None:
            config = ", ".join(states[p][i] for p, i in zip(parents, np.unravel_index(missing[0], cards)))
            raise tokens.error(f"probability block of {child!r} has no row for ({config}) "
                               f"(missing probabilities; {len(missing)} of {rows.shape[0]} rows missing).", pline)
        rows[missing] = default
    return child, parents, rows.reshape(*cards, k), pline


def _topological(tokens: _Tokens, names: list[str], parents: dict, lines: dict) -> list[str]:
    """Kahn's order, earliest declared ready variable first; a cycle is an error at its line."""
    index = {n: i for i, n in enumerate(names)}
    children: dict[str, list[str]] = {n: [] for n in names}
    waiting = {n: len(parents[n]) for n in names}
    for n in names:
        for p in parents[n]:
            children[p].append(n)
    ready = [index[n] for n in names if waiting[n] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        n = names[heapq.heappop(ready)]
        order.append(n)
        for c in children[n]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, index[c])
    if len(order) < len(names):
        cycle = _find_cycle([n for n in names if waiting[n] > 0], parents)
        first = min(cycle, key=lambda n: lines[n])
        raise tokens.error(f"the parents form a cycle: {' -> '.join(cycle + [cycle[0]])}.", lines[first])
    return order


def _find_cycle(stuck: list[str], parents: dict) -> list[str]:
    """A cycle among variables that Kahn's order could not place (walk up the parents)."""
    stuck_set = set(stuck)
    path, at = [], stuck[0]
    while at not in path:
        path.append(at)
        at = next(p for p in parents[at] if p in stuck_set)
    cycle = path[path.index(at):]
    return cycle[::-1]  # parent -> child direction


def read_bif(path: str | os.PathLike) -> Spec:
    """Read a BIF file into a ``Spec`` of ``Table`` conditionals (see the module docstring).

    Raises ``BIFError`` (a ``SpecError``) naming the file and line of a malformed entry:
    missing probabilities, a row not summing to 1, an unknown parent or state, a cycle,
    a duplicate state, variable, row or block.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise BIFError(str(path), 0, f"cannot read BIF file: {e.strerror}.") from None
    except UnicodeDecodeError as e:
        raise BIFError(str(path), 0, f"not a text file: {e}.") from None
    return parse_bif(text, str(path))


# ---------------------------------------------------------------------------- writing
def _check_token(what: str, tok: str) -> None:
    if not tok or any(c.isspace() or c in _PUNCT or c == '"' for c in tok) or tok.startswith(("//", "/*")):
        raise SpecError(f"{what} {tok!r} cannot be written to BIF (spaces, quotes or {{}}()[];,| inside).")


def format_bif(spec_or_model: Spec | Model, name: str = "arprob") -> str:
    """BIF text of a network of ``Table`` conditionals (a spec's CPTs or a model's tables)."""
    _check_token("network name", name)
    tables = network_tables(spec_or_model)
    states = {}
    lines = [f"network {name} {{", "}"]
    for var, _, _ in tables:
        s = getattr(var, "states", None) or tuple(str(j) for j in range(var.num_values))
        for t in s:
            _check_token(f"state of {var.name!r}", t)
        states[var.name] = s
        lines += [f"variable {var.name} {{", f"  type discrete [ {len(s)} ] {{ {', '.join(s)} }};", "}"]
    for var, parents, cpt in tables:
        head = f"probability ( {var.name}{' | ' + ', '.join(parents) if parents else ''} ) {{"
        lines.append(head)
        flat = cpt.reshape(-1, cpt.shape[-1])
        if not parents:
            lines.append(f"  table {', '.join(repr(float(v)) for v in flat[0])};")
        else:
            configs = itertools.product(*(states[p] for p in parents))
            for config, row in zip(configs, flat):
                lines.append(f"  ({', '.join(config)}) {', '.join(repr(float(v)) for v in row)};")
        lines.append("}")
    return "\n".join(lines) + "\n"


def write_bif(spec_or_model: Spec | Model, path: str | os.PathLike, *, name: str = "arprob") -> None:
    """Write a network atomically as BIF: the CPTs of a ``Spec`` of ``Table(cpt=...)``
    conditionals, or the (fitted) tables of a ``Model``. State names come from
    ``Categorical.states`` (``0..k-1`` otherwise); probabilities are written as Python's
    shortest round-trip decimals, so reading the file back gives the same floats."""
    atomic_write_bytes(path, format_bif(spec_or_model, name).encode())

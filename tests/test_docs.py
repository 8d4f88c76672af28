"""Every fenced code block of README.md and docs/**/*.md runs, so the docs cannot drift from
the code.

- ```python blocks of one page run in order in one namespace, in a temporary working
  directory (``tests/`` and ``examples/`` of the repository are linked into it, so a block
  may read ``tests/data/asia.bif`` as from the repository root). A block that needs several
  processes (``jax.distributed``) carries ``<!-- no-run: reason -->`` and is only compiled.
- ```toml / ```yaml / ```json blocks are parsed; unless the line before the block is
  ``<!-- fragment -->`` they are loaded as a spec with ``arprob.spec_from_dict``.
- ```bash / ```console blocks: every ``arprob ...`` command line must be accepted by the
  command's own argument parser (a ``console`` command whose shown output is an argparse
  error must be refused with exactly that line). Cheap commands (``--help``, ``--version``,
  ``inspect``) are run; a block with any other command needs ``<!-- no-run: reason -->`` on
  the line before it.
- ```text blocks are output and are not run; a fence without a language is an error.

Test ids are ``file:line`` of the block's opening fence.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import sys
import tomllib
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LANGUAGES = {"python", "toml", "yaml", "json", "bash", "console", "text"}
#: Pages whose Python blocks another test runs (with checks of its own); they are not run twice.
RUN_ELSEWHERE = {"docs/architecture.md": "tests/test_architecture_doc.py"}
#: Checks on a page's namespace after its last Python block (what the blocks claim in comments).
AFTER_PAGE = {
    # README: "flagged where p <= fpr" on uniform noise
    "README.md": lambda ns: float(ns["det"].decide(ns["noise"]).mean()) > 0.9,
}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+)(?P<lang>[^\s`]*)\s*$")
MARK = re.compile(r"^\s*<!--\s*(?P<kind>fragment|no-run)\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    mark: str | None  # "fragment", "no-run" or None
    reason: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of one markdown file (indented fences inside list items included)."""
    rel = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{fence}\s*$", lines[j]):
            j += 1
        if j == len(lines):
            raise AssertionError(f"{rel}:{i + 1}: code fence never closed")
        body = [ln[indent:] if not ln[:indent].strip() else ln.lstrip() for ln in lines[i + 1:j]]
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = MARK.match(prev)
        blocks.append(Block(rel, i + 1, m["lang"], "\n".join(body) + "\n",
                            mark["kind"] if mark else None, mark["reason"] if mark else None))
        i = j + 1
    return blocks


ALL_BLOCKS = [b for page in PAGES for b in parse_blocks(page)]
PYTHON = [b for b in ALL_BLOCKS if b.lang == "python"]
DATA = [b for b in ALL_BLOCKS if b.lang in ("toml", "yaml", "json")]
SHELL = [b for b in ALL_BLOCKS if b.lang in ("bash", "console")]


def test_every_block_is_tagged_and_marked_sensibly():
    problems = []
    for b in ALL_BLOCKS:
        if b.lang not in LANGUAGES:
            problems.append(f"{b.id}: fence language {b.lang!r}; use one of {sorted(LANGUAGES)} (text for output)")
        if b.mark == "no-run" and not b.reason:
            problems.append(f"{b.id}: <!-- no-run --> needs a reason: <!-- no-run: why -->")
        if b.mark == "no-run" and b.lang not in ("bash", "console", "python"):
            problems.append(f"{b.id}: only shell and python blocks may be marked no-run")
        if b.mark == "fragment" and b.lang not in ("toml", "yaml", "json"):
            problems.append(f"{b.id}: <!-- fragment --> applies to toml/yaml/json blocks")
    assert not problems, "\n".join(problems)
    assert len(PYTHON) >= 20 and len(SHELL) >= 5, "the block parser lost blocks"


# --------------------------------------------------------------------------- python


@dataclass
class PageRun:
    """The namespace of one page's Python blocks, run in order once."""

    module: types.ModuleType
    cwd: Path
    done: int = 0  # blocks of the page run so far
    failed: str | None = None  # id of the block that failed
    blocks: list[Block] = field(default_factory=list)


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory):
    runs: dict[str, PageRun] = {}
    yield runs
    for run in runs.values():
        sys.modules.pop(run.module.__name__, None)


def _page_run(runs: dict[str, PageRun], page: str, tmp_path_factory) -> PageRun:
    if page not in runs:
        name = "docs_" + re.sub(r"\W", "_", page)
        module = types.ModuleType(name)  # dataclasses defined in a block look their module up
        sys.modules[name] = module
        cwd = tmp_path_factory.mktemp(name)
        for sub in ("tests", "examples"):
            (cwd / sub).symlink_to(ROOT / sub, target_is_directory=True)
        runs[page] = PageRun(module, cwd, blocks=[b for b in PYTHON if b.page == page and b.mark != "no-run"])
    return runs[page]


def _exec(block: Block, run: PageRun) -> None:
    # Line numbers of a traceback point into the markdown file.
    code = compile("\n" * block.line + block.code, str(ROOT / block.page), "exec")
    old = Path.cwd()
    os.chdir(run.cwd)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, run.module.__dict__)  # noqa: S102 - our own documentation
    finally:
        os.chdir(old)


@pytest.mark.parametrize("block", PYTHON, ids=[b.id for b in PYTHON])
def test_python_block_runs(block, page_runs, tmp_path_factory):
    if block.page in RUN_ELSEWHERE:
        other = ROOT / RUN_ELSEWHERE[block.page]
        assert other.exists(), f"{block.id}: {other} was to run this page's blocks"
        pytest.skip(f"run by {RUN_ELSEWHERE[block.page]}")
    if block.mark == "no-run":  # compiled only: a syntax error or a stale name still shows
        compile("\n" * block.line + block.code, str(ROOT / block.page), "exec")
        return
    run = _page_run(page_runs, block.page, tmp_path_factory)
    index = run.blocks.index(block)
    while run.done <= index:
        current = run.blocks[run.done]
        if run.failed:
            pytest.fail(f"{block.id}: not run, an earlier block of the page failed ({run.failed})")
        try:
            _exec(current, run)
        except BaseException:
            run.failed = current.id
            raise
        run.done += 1
    if run.done == len(run.blocks) and block.page in AFTER_PAGE:
        assert AFTER_PAGE[block.page](run.module.__dict__), f"{block.page}: the check after its last block failed"


# --------------------------------------------------------------------------- spec files


def _parse(block: Block):
    if block.lang == "toml":
        return tomllib.loads(block.code)
    if block.lang == "json":
        return json.loads(block.code)
    import yaml

    return yaml.safe_load(block.code)


@pytest.mark.parametrize("block", DATA, ids=[b.id for b in DATA])
def test_spec_block_loads(block):
    data = _parse(block)
    if block.mark == "fragment":
        return
    import arprob as ar

    spec = ar.spec_from_dict(data, source=block.id)
    assert ar.spec_from_dict(ar.spec_to_dict(spec)) == spec


# --------------------------------------------------------------------------- shell


def _commands(block: Block) -> list[tuple[list[str], list[str]]]:
    """(argv, shown output lines) per command line; console blocks mark commands with '$ '."""
    text = block.code.replace("\\\n", " ")
    out: list[tuple[list[str], list[str]]] = []
    for line in text.splitlines():
        if block.lang == "console":
            if line.startswith("$ "):
                out.append((shlex.split(line[2:], comments=True), []))
            elif out:
                out[-1][1].append(line)
        else:
            argv = shlex.split(line, comments=True)
            if argv:
                out.append((argv, []))
    return out


def _arprob_commands(argv: list[str]) -> list[list[str]]:
    """The ``arprob ...`` parts of a command line (``pip install -e . && arprob digits``)."""
    parts, current = [], []
    for word in argv + ["&&"]:
        if word in ("&&", "||", ";", "|", "&"):
            if current and current[0] == "arprob":
                parts.append(current[1:])
            current = []
        else:
            current.append(word)
    return parts


def _cheap(args: list[str]) -> bool:
    return bool(args) and ("--help" in args or "-h" in args or args == ["--version"] or args[0] == "inspect")


def _run_cli(args: list[str]) -> tuple[int, str, str]:
    from arprob.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as e:  # argparse: --help, --version, usage errors
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("block", SHELL, ids=[b.id for b in SHELL])
def test_shell_block(block, tmp_path, monkeypatch):
    from arprob.cli import build_parser

    monkeypatch.chdir(tmp_path)
    commands = _commands(block)
    assert commands, f"{block.id}: no command in the block"
    for argv, shown in commands:
        for args in _arprob_commands(argv):
            usage_error = next((s for s in shown if ": error: argument " in s), None)
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    build_parser().parse_args(args)
                    parsed = 0
                except SystemExit as e:
                    parsed = e.code
            if usage_error is not None:
                assert parsed == 2 and err.getvalue().strip().splitlines()[-1] == usage_error, (
                    f"{block.id}: `arprob {' '.join(args)}` should fail with {usage_error!r}; got {err.getvalue()!r}")
                continue
            assert parsed == 0, f"{block.id}: `arprob {' '.join(args)}` is refused: {err.getvalue().strip()}"
            if block.mark == "no-run":
                continue
            assert _cheap(args), (f"{block.id}: `arprob {' '.join(args)}` is not a cheap command; "
                                  "mark the block <!-- no-run: reason --> or make it --help/--version/inspect")
            code, _, stderr = _run_cli(args)
            assert code == 0, f"{block.id}: `arprob {' '.join(args)}` exited {code}: {stderr.strip()}"
        if block.mark != "no-run" and argv and argv[0] != "arprob":
            pytest.fail(f"{block.id}: `{' '.join(argv)}` is not an arprob command; "
                        "mark the block <!-- no-run: reason -->")

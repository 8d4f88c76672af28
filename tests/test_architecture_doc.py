"""The worked examples of docs/architecture.md (a custom head, a custom conditioner) run."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_architecture_examples_run(monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2, "docs/architecture.md should hold the head and the conditioner example"
    module = types.ModuleType("architecture_doc")  # dataclasses look their module up in sys.modules
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102 - our own documentation
    assert module.fitted.spec == module.spec

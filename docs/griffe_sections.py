"""A griffe extension for the API pages: arprob's docstrings head their sections with a bold
line (``**Arguments:**``, readable as plain text and in ``help()``); mkdocstrings' Google
parser needs the bare header (``Arguments:``) to render the section as a table."""

from __future__ import annotations

import re

import griffe

_BOLD_HEADER = re.compile(r"^(\s*)\*\*(Arguments|Args|Parameters|Returns|Raises|Attributes|Yields):\*\*\s*$", re.M)


class BoldSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _BOLD_HEADER.sub(r"\1\2:", obj.docstring.value)

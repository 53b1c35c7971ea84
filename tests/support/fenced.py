"""Fenced code blocks of Markdown files, as the documentation tests run them."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)[ \t]*(?P<attrs>.*)$")
_TITLE = re.compile(r"""title=["'](?P<title>[^"']+)["']""")


@dataclass(frozen=True)
class FencedBlock:
    """One fenced block: where it is, its language, its optional ``title="..."``, and its text (dedented)."""

    path: Path
    line: int
    language: str
    title: str | None
    text: str

    def label(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def fenced_blocks(path: Path) -> list[FencedBlock]:
    """Every fenced block of ``path`` in order; blocks indented under lists or admonitions included."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[FencedBlock] = []
    i = 0
    while i < len(lines):
        opened = _OPEN.match(lines[i])
        if opened is None:
            i += 1
            continue
        indent, fence = opened["indent"], opened["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{i + 1}: fenced block never closed")
        title = _TITLE.search(opened["attrs"])
        blocks.append(FencedBlock(path=path, line=i + 1, language=opened["lang"].lower(),
                                  title=title["title"] if title else None,
                                  text=textwrap.dedent("\n".join(body)) + "\n"))
        i = j + 1
    return blocks

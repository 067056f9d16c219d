"""The fenced code blocks of the docs pages, each with the example file it quotes.

Every code block of the docs is a file that a test runs; these helpers check that a page
quotes its files exactly, so the docs cannot drift from the tested code.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
MARKER = re.compile(r"<!-- example: (?P<path>(?:\.\./templates|examples)/[\w./-]+) -->")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.M | re.S)
CODE_LANGUAGES = frozenset({"python", "py", "bash", "sh", "shell", "console"})
"""Languages whose blocks are code examples (diagrams and data blocks are not)."""


def code_blocks(page: Path) -> list[tuple[str | None, str, str]]:
    """(quoted file or None, language, code) for every fenced block of a page."""
    text = page.read_text()
    blocks = []
    for fence in FENCE.finditer(text):
        before = text[: fence.start()].rstrip().splitlines()
        marker = MARKER.fullmatch(before[-1].strip()) if before else None
        blocks.append((marker["path"] if marker else None, fence["lang"], fence["code"]))
    return blocks


def check_quotes_exactly(page: Path, languages: frozenset[str] = CODE_LANGUAGES) -> set[str]:
    """Assert that every code block of ``page`` is marked and equals its file; returns the
    files the page quotes (paths relative to ``docs/``)."""
    quoted = set()
    for path, lang, code in code_blocks(page):
        if lang not in languages:
            continue
        assert path is not None, f"{page.name}: a {lang} block is not marked <!-- example: ... -->"
        assert code == (DOCS / path).read_text(), f"{page.name}: the block differs from {path}"
        quoted.add(path)
    return quoted

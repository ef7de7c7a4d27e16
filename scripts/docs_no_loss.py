"""Check that a README rewrite lost nothing: every sentence of an old README is in README.md or docs/*.md.

``python scripts/docs_no_loss.py OLD_README`` (e.g. ``git show main~1:README.md > /tmp/old.md``) prints each
sentence, table row or code line of the old README that appears in none of the current pages, and exits 1
if there is any. Whitespace and line breaks, links (``[text](target)`` reads as ``text``) and list markers
are ignored, so a paragraph moved to another page, re-wrapped or with its links re-pointed counts as kept.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def normalize(text: str) -> str:
    """Markdown text without link targets, list markers and whitespace differences."""
    text = re.sub(r"\]\([^)\s]*\)", "]", text).replace("[", "").replace("]", "")
    text = re.sub(r"^\s*[-*]\s+", "", text, flags=re.M)
    return re.sub(r"\s+", " ", text).strip()


def units(markdown: str) -> list[str]:
    """The old README as comparable pieces: sentences of prose, table rows, code lines, headings."""
    pieces: list[str] = []
    paragraph: list[str] = []
    in_code = False

    def flush() -> None:
        text = normalize(" ".join(paragraph))
        pieces.extend(s for s in re.split(r"(?<=[.;:!?])\s+(?=[A-Z`(*\[])", text) if s)
        paragraph.clear()

    for line in markdown.splitlines():
        if line.startswith("```"):
            flush()
            in_code = not in_code
            continue
        if in_code or line.startswith("|") or line.startswith("#") or line.startswith("<!--"):
            flush()
            if line.strip():
                pieces.append(normalize(line.lstrip("#")))
        elif not line.strip() or re.match(r"^\s*[-*]\s|^\s*\d+\.\s", line):
            flush()
            if line.strip():
                paragraph.append(line)
        else:
            paragraph.append(line)
    flush()
    return pieces


def main(old_readme: str) -> int:
    corpus = " ".join(normalize(p.read_text()) for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    pieces = units(Path(old_readme).read_text())
    missing = [p for p in pieces if p not in corpus]
    for piece in missing:
        print(f"MISSING: {piece}")
    print(f"{len(pieces) - len(missing)} of {len(pieces)} pieces of {old_readme} found in README.md and docs/*.md")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

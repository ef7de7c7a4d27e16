"""Every relative link and every ``#anchor`` in README.md and docs/*.md resolves.

Anchors follow GitHub's heading slugs: the heading's text (without its markdown: code ticks, emphasis,
link targets), lowercased, every character that is not a letter, digit, space, hyphen or underscore
dropped, each space a hyphen; a repeated heading gets ``-1``, ``-2``, ... in order.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SCREENSHOTS = REPO / "docs" / "img"  # left out of the sdist on purpose (pyproject), so absent when testing from it

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's markdown text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a page, duplicates numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """The links of ``page`` that do not resolve: a missing file, a path outside ``root``, a missing anchor."""
    text = _CODE.sub("", _FENCE.sub("", page.read_text()))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if root == REPO and not SCREENSHOTS.is_dir() and resolved.is_relative_to(SCREENSHOTS):
            continue
        if not resolved.is_relative_to(root.resolve()) or not resolved.exists():
            broken.append(f"{page.name}: {target} (no such file)")
            continue
        if anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved.read_text())):
            broken.append(f"{page.name}: {target} (no such anchor)")
    return broken


def test_slugs_follow_github() -> None:
    assert slug("Wait on a job: `AISearchJobSensor`") == "wait-on-a-job-aisearchjobsensor"
    assert slug("Did it index? The item quality gate") == "did-it-index-the-item-quality-gate"
    assert slug("Retries and clears never start a second job") == "retries-and-clears-never-start-a-second-job"
    assert slug("The `wait_for_items` bound (1 hour)") == "the-wait_for_items-bound-1-hour"
    assert slug("A, B & C") == "a-b--c"
    assert anchors("# A\n## A\n```\n# A\n```\n## A\n") == {"a", "a-1", "a-2"}


def test_the_checker_finds_a_broken_link_and_a_broken_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Section\n\n## Section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#section-1) [ok](#here) [ok](https://example.com/x.md)\n"
        "# Here\n"
        "`[in code](nowhere.md)`\n"
        "[gone](missing.md) [bad anchor](other.md#section-2) [outside](../../etc/passwd) ![img](img/none.png)\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#section-2 (no such anchor)",
        "page.md: ../../etc/passwd (no such file)",
        "page.md: img/none.png (no such file)",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    """No page is orphaned: each docs/*.md is linked from the README or from a page the README links."""
    reachable, todo = set(), [REPO / "README.md"]
    while todo:
        page = todo.pop()
        if page in reachable:
            continue
        reachable.add(page)
        text = _CODE.sub("", _FENCE.sub("", page.read_text()))
        for target in _LINK.findall(text):
            path_part = target.partition("#")[0]
            linked = (page.parent / path_part).resolve()
            if path_part.endswith(".md") and linked.is_file() and not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                todo.append(linked)
    assert [p.name for p in PAGES if p.resolve() not in reachable] == []

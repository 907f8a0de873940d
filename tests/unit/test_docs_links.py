"""The README is a landing page and the documents hold together: it has at most 300 lines and links every
page under ``docs/``, and every relative link in ``README.md`` and ``docs/*.md`` names a file that exists
and, with a ``#fragment``, a heading of that file (as GitHub derives heading anchors)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCUMENTS = [README, *PAGES]
README_MAX_LINES = 300

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`[^`]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> Iterator[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield line


def relative_links(text: str) -> list[str]:
    """Link targets without a scheme (no ``https:``, ``mailto:``), outside code blocks and code spans."""
    return [
        target
        for line in prose_lines(text)
        for target in LINK.findall(CODE_SPAN.sub("", line))
        if not SCHEME.match(target)
    ]


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchor of every heading: lower case, punctuation dropped, spaces as ``-``, repeats numbered."""
    anchors: set[str] = set()
    for line in prose_lines(text):
        match = HEADING.match(line)
        if match:
            anchor = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            repeat = 0
            unique = anchor
            while unique in anchors:
                repeat += 1
                unique = f"{anchor}-{repeat}"
            anchors.add(unique)
    return anchors


def broken_links(document: Path) -> list[str]:
    """Each relative link of ``document`` whose file, or heading, does not exist, with why."""
    problems = []
    for link in relative_links(document.read_text(encoding="utf-8")):
        path, _, fragment = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        if not target.exists():
            problems.append(f"{link}: no such file")
        elif (
            fragment
            and target.suffix == ".md"
            and fragment not in heading_anchors(target.read_text(encoding="utf-8"))
        ):
            problems.append(f"{link}: no such heading in {target.name}")
    return problems


def test_readme_is_a_landing_page_of_at_most_300_lines() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move deep sections to docs/"


def test_readme_links_every_page_under_docs() -> None:
    linked = {
        (ROOT / link.partition("#")[0]).resolve()
        for link in relative_links(README.read_text(encoding="utf-8"))
    }
    assert [page.name for page in PAGES if page.resolve() not in linked] == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda document: document.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(document: Path) -> None:
    assert broken_links(document) == []


def test_missing_files_and_headings_are_reported_and_code_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading: twice\n", encoding="utf-8")
    document = tmp_path / "page.md"
    document.write_text(
        "# Page\n\n"
        "[ok](other.md) [ok](other.md#a-code-heading-twice) [ok](#page) [web](https://example.com/x.md)\n"
        "[gone](missing.md) [no heading](other.md#nowhere) [no heading here](#nowhere)\n"
        "`[in a span](missing-span.md)`\n"
        "```\n[in a block](missing-block.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(document) == [
        "missing.md: no such file",
        "other.md#nowhere: no such heading in other.md",
        "#nowhere: no such heading in page.md",
    ]

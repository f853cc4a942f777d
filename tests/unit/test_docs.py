"""The README and docs/: the generated configuration reference is in sync with the schema, the
README keeps what a newcomer reads first, and every relative link lands on a file and heading."""

from __future__ import annotations

import re
from pathlib import Path

from text2sign.config_docs import reference_markdown

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
START, END = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    heads = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_config_reference_matches_the_schema():
    text = (REPO / "docs" / "configuration.md").read_text()
    generated = text[text.index(START) + len(START) : text.index(END)]
    assert generated == reference_markdown(), (
        "docs/configuration.md is stale: regenerate with `make docs`"
    )


def test_readme_documents_the_two_commands_and_exit_codes():
    text = README.read_text()
    for needle in ("make demo", "make test", "| 75 |", "| 2 |", "Results layout", "Module map"):
        assert needle in text
    assert len(text.splitlines()) <= 260, (
        "the README is what a newcomer reads first: move detail to docs/"
    )


def test_every_relative_link_lands_on_a_file_and_a_heading():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http:, mailto:
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken

"""The README's configuration reference is generated from the schema: keep them in sync."""

from __future__ import annotations

from pathlib import Path

from text2sign.config_docs import reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_reference_matches_the_schema():
    text = README.read_text()
    start = text.index("<!-- config-reference:start -->\n") + len(
        "<!-- config-reference:start -->\n"
    )
    end = text.index("<!-- config-reference:end -->")
    assert text[start:end] == reference_markdown(), (
        "README config reference is stale: regenerate with "
        "`python -m text2sign config --keys --markdown`"
    )


def test_readme_documents_the_two_commands_and_exit_codes():
    text = README.read_text()
    for needle in ("make demo", "make test", "| 75 |", "| 2 |", "Results layout"):
        assert needle in text

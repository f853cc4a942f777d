"""``make bench`` for a few benchmarks: re-measure them and merge them into BENCHMARKS.md.

``python -m bench.run --only a,b --update`` renders the re-measured sections as a full run does,
then puts them into the existing file: a section with the same title is replaced where it stands,
a new one is appended; the summary rows follow the sections. Every merged section says when, at
which commit and under which load it was measured, and the file's opening line says which
sections are newer than the machine table (which describes the full run).
"""

from __future__ import annotations

import re

SECTION = re.compile(r"^## (\d+)\. (.+)$")


def _split(text: str) -> tuple[list[str], list[list[str]], dict[str, list[str]], list[str]]:
    """(lines before the summary table, summary rows' cells, title → section body, order)."""
    lines = text.rstrip("\n").split("\n")
    start = lines.index("## Summary")
    head = lines[: start + 2]
    table_end = next(
        (i for i in range(start + 2, len(lines)) if not lines[i].startswith("|")), len(lines)
    )
    rows = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines[start + 4 : table_end]]
    sections: dict[str, list[str]] = {}
    order: list[str] = []
    current = None
    for ln in lines[table_end:]:
        m = SECTION.match(ln)
        if m:
            current = m.group(2)
            order.append(current)
            sections[current] = []
        elif current is not None:
            sections[current].append(ln)
    return head, rows, sections, order


def merge(old: str, new: str, stamp: str) -> str:
    """``old`` BENCHMARKS.md with the sections of ``new`` (a render of the re-run benchmarks)
    replacing those of the same title or appended; ``stamp``: when/where they were measured."""
    head, rows, sections, order = _split(old)
    _, new_rows, new_sections, new_order = _split(new)
    for body in (*sections.values(), *new_sections.values()):
        while body and not body[-1].strip():
            body.pop()
    for title in new_order:
        sections[title] = [*new_sections[title], f"- Re-measured {stamp}."]
        if title not in order:
            order.append(title)
    fresh = set(new_order)
    by_title: dict[str, list[list[str]]] = {}
    for r in rows:
        if r[0] not in fresh:
            by_title.setdefault(r[0], []).append(r)
    for r in new_rows:
        by_title.setdefault(r[0], []).append(r)
    later = [str(i) for i, t in enumerate(order, 1) if any(ln.startswith("- Re-measured")
                                                            for ln in sections[t])]  # fmt: skip
    head[2] = head[2].split(" Sections ")[0].split(" Section ")[0]
    head[2] += (f" Section{'s' if len(later) > 1 else ''} {', '.join(later)} re-measured later (each "
                "says when, at which commit and under which load); the machine table describes "
                "the full run.")  # fmt: skip
    out = [*head, "| benchmark | metric | measured | Goal | met? |", "|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for t in order for r in by_title.get(t, [])]
    for i, title in enumerate(order, 1):
        out += ["", f"## {i}. {title}", *sections[title]]
    return "\n".join(out).rstrip() + "\n"

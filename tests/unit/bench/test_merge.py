"""bench/merge.py: re-measured sections replace theirs in place, new ones are appended, the rest
stay as they were, and the file says which sections are newer."""

from __future__ import annotations

from bench.common import Goal, Section
from bench.merge import merge
from bench.run import render


def _section(title: str, value: str) -> Section:
    return Section(title=title, method=f"method of {title}", columns=["path", "s"],
                   rows=[["ours", value]], goals=[Goal(metric=f"{title} time", value=value,
                                                       goal="<= 9", met=True)],
                   notes=[f"note {value}"], seconds=1.0)  # fmt: skip


def test_a_re_measured_section_replaces_its_own_and_a_new_one_is_appended():
    old = render([_section("A", "1"), _section("B", "2"), _section("C", "3")], [("CPU", "x")],
                 "2026-01-01 00:00 UTC", 60)  # fmt: skip
    new = render(
        [_section("B", "7"), _section("D", "8")], [("CPU", "y")], "2026-02-02 00:00 UTC", 1
    )
    out = merge(old, new, "on 2026-02-02 at commit abc")
    assert [ln for ln in out.splitlines() if ln.startswith("## ")] == [
        "## Machine", "## Summary", "## 1. A", "## 2. B", "## 3. C", "## 4. D"]  # fmt: skip
    summary = out.split("## Summary")[1].split("## 1.")[0]
    assert "| B | B time | 7 | <= 9 | yes |" in summary and "| B | B time | 2 |" not in summary
    assert summary.index("| C |") < summary.index("| D |")
    assert "note 1" in out and "note 3" in out and "note 2" not in out
    b = out.split("## 2. B")[1].split("## 3.")[0]
    assert "- Re-measured on 2026-02-02 at commit abc." in b and "\n\n\n" not in out
    assert out.splitlines()[2].endswith(" Sections 2, 4 re-measured later (each says when, at "
                                        "which commit and under which load); the machine table "
                                        "describes the full run.")  # fmt: skip
    again = merge(out, render([_section("A", "5")], [("CPU", "z")], "x", 1), "on 2.3 / 4.5")
    assert again.splitlines()[2].count("re-measured") == 1 and again.count("- Re-measured") == 3
    assert " Sections 1, 2, 4 re-measured later" in again.splitlines()[2]

"""The recorded GPU lifecycle checks (``bench/gpu_lifecycle_check.sh``, run by hand on a lent GPU).

A GPU is rarely available to the machine that runs ``make bench``: each check's result is kept
as Markdown in ``bench/recorded/gpu_lifecycle_*.md`` (device and date in the name) and folded
into BENCHMARKS.md here, so regenerating the file never drops a GPU measurement.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import Goal, Section

RECORDED = Path(__file__).parent / "recorded"


def run() -> Section:
    files = sorted(RECORDED.glob("gpu_lifecycle_*.md"))
    if not files:
        return Section(title="GPU lifecycle check: none recorded", method="No recorded run.",
                       columns=[], rows=[], goals=[], notes=[], seconds=0.0)  # fmt: skip
    parts = [f"From `bench/recorded/{f.name}`:\n\n{f.read_text().strip()}" for f in files]
    device, date = files[-1].stem.removeprefix("gpu_lifecycle_").split("_", 1)
    return Section(
        title=f"GPU lifecycle check (recorded: {device}, {date})",
        method="\n\n".join(parts),
        columns=[],
        rows=[],
        # The recorded file is the measurement: no result is restated (or judged) in code.
        goals=[
            Goal(
                metric=f"GPU lifecycle check ({device}, {date})",
                value="see the recorded table",
                goal="-",
                met=None,
            )
        ],  # fmt: skip
        notes=[],
        seconds=0.0,
    )

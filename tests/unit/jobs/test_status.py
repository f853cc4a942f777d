"""Study status reads only the tail of each metrics CSV, and gets the same rows as a full read."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from jobs.status import ETA_WINDOW, _last_row, _tail_rows

FIELDS = ["step", "loss", "step_time_s", "samples_per_s", "peak_memory_bytes"]


def write_metrics(path: Path, steps: int, partial: str = "") -> list[dict[str, str]]:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS, lineterminator="\n")
        w.writeheader()
        for i in range(1, steps + 1):
            w.writerow({"step": i, "loss": 1 / i, "step_time_s": 0.1 + i % 7 / 100,
                        "samples_per_s": 80 + i % 5, "peak_memory_bytes": 2**20 * i})  # fmt: skip
        f.write(partial)
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tail_matches_a_full_read_on_a_long_file(tmp_path: Path) -> None:
    path = tmp_path / "training_metrics.csv"
    rows = write_metrics(path, 5000)
    assert path.stat().st_size > 5 * 32_768  # the tail is a small part of the file
    assert _tail_rows(path) == rows[-ETA_WINDOW:]
    last = _last_row(path)
    assert last["step"] == "5000"
    assert last["_times"] == [float(r["step_time_s"]) for r in rows[-ETA_WINDOW:]]


def test_short_file_partial_line_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "training_metrics.csv"
    rows = write_metrics(path, 3, partial="4,0.25,0.1")  # row 4 is still being written
    assert _tail_rows(path) == rows[:3]
    assert _last_row(path)["step"] == "3"
    write_metrics(path, 0)
    assert _tail_rows(path) == [] and _last_row(path) == {}
    assert _last_row(tmp_path / "missing.csv") == {}


def test_make_status_says_what_each_halving_decider_did_or_why_it_failed(tmp_path):
    """Before: a failed decider was invisible in make status (only halving/rung0.json said)."""
    import json as _json

    from jobs import decider
    from jobs.status import halving_lines
    from tests.unit.jobs.test_decider import make_study

    study = make_study(tmp_path)
    rec = {"halving": {"rungs": [{"rung": 0, "points": ["good", "also", "bad"],
                                  "array_job_ids": ["1"], "decider_job_id": "2"}]}}  # fmt: skip
    assert halving_lines(study, rec, {"2": {"state": "PENDING"}}) == [
        "halving rung 0 (3 points): decider 2 PENDING"]  # fmt: skip
    (study / "halving" / "plan.json").rename(tmp_path / "plan.json")
    with pytest.raises(RuntimeError, match="resumable"):
        decider.run_decider(study, 0, lambda *a: {})
    [line] = halving_lines(study, rec, {"2": {"state": "FAILED"}})
    assert line.startswith("halving rung 0 (3 points): decider 2 FAILED: FileNotFoundError: ")
    assert line.endswith("; the study is resumable (--resume-study)")
    (tmp_path / "plan.json").rename(study / "halving" / "plan.json")
    decider.decide_rung(study, 0)
    assert halving_lines(study, rec, {"2": {"state": "COMPLETED"}}) == [
        "halving rung 0 (3 points): kept good, also; dropped bad"]  # fmt: skip
    d = _json.loads((study / "halving" / "rung0.json").read_text())
    assert d["dropped"] == ["bad"]

"""Cost over a run's whole life: every submission's jobs (review item 5), and only the work after
an attempt's last checkpoint counted as lost (review item 14). A stand-in for sacct; the real
cluster: tests/cluster/test_cost.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from jobs import status
from text2sign.study import slurm_query
from text2sign.study.collect import collect
from text2sign.study.cost import lost_fraction, status_footer

from .test_collect import fake_run

T0 = datetime(2026, 12, 2, 10, 0, 0)  # sacct prints local times without a zone


def _sacct(monkeypatch, lines: str) -> None:
    monkeypatch.setattr(slurm_query, "_run", lambda cmd, timeout=30: lines)
    monkeypatch.setattr(slurm_query, "available", lambda: True)


def _t(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def test_a_resubmitted_runs_first_jobs_stay_in_the_cost(tmp_path, monkeypatch):
    """First submission: job 6_0 timed out after 1000 s; --resume-study: job 9_0 completed in
    500 s. Before: only 9_0 counted (500 s), the first submission's hours vanished."""
    _sacct(monkeypatch, f"6_0|TIMEOUT|00:16:40|n1|0:0|{_t(0)}|{_t(1000)}|1000|1000|cpu=1\n"
                        f"9_0|COMPLETED|00:08:20|n2|0:0|{_t(2000)}|{_t(2500)}|500|500|cpu=1\n")  # fmt: skip
    fake_run(tmp_path, "baseline", 0, final_loss=0.2)
    first = {
        "runs": [{"variant": "baseline", "seed": 0, "run_dir": "baseline/seed0", "job_id": "6_0"}]
    }  # fmt: skip  (an older study.json: no job_ids)
    again = {"variant": "baseline", "seed": 0, "run_dir": "baseline/seed0", "job_id": "9_0"}
    (tmp_path / "study.json").write_text(json.dumps({
        "executor": "slurm", "runs": [again], "runs_all": [again],
        "previous_submissions": [first]}))  # fmt: skip
    df = collect(tmp_path, plots=False)
    assert df.core_hours.sum() == pytest.approx(1500 / 3600)
    assert list(df.attempts) == [2] and list(df.lost_attempts) == [1]
    assert df.lost_share.iloc[0] == pytest.approx(1000 / 1500)  # never checkpointed: all of it
    monkeypatch.setattr(slurm_query.SacctPoller, "get", lambda self, ids, max_age=None:
                        slurm_query.summarize(slurm_query.job_records(ids)))  # fmt: skip
    assert status.table(tmp_path)[0]["cost"] == "0.417 core-h (67% lost)"
    rec = json.loads((tmp_path / "study.json").read_text())
    jobs = slurm_query.summarize(slurm_query.job_records(["6_0", "9_0"]))
    assert status_footer(rec, jobs, tmp_path).startswith("cost so far: 0.417 core-h (67% lost)")


def test_a_requeue_after_its_checkpoint_loses_only_the_minutes_after_it(tmp_path, monkeypatch):
    """Attempt 1 (1000 s) checkpointed at 990 s on USR2 and was requeued; attempt 2 completed.
    Before: attempt 1 counted as lost whole (1000 of 1500 s); after: 10 s."""
    _sacct(monkeypatch, f"7_0|REQUEUED|00:16:40|n1|0:0|{_t(0)}|{_t(1000)}|1000|1000|cpu=1\n"
                        f"7_0|COMPLETED|00:08:20|n1|0:0|{_t(1100)}|{_t(1600)}|500|500|cpu=1\n")  # fmt: skip
    run = fake_run(tmp_path, "baseline", 0, final_loss=0.2)
    saved = (T0 + timedelta(seconds=990)).astimezone().astimezone(timezone.utc).isoformat()
    st = json.loads((run / "status.json").read_text())
    st["history"] = [{"attempt": 1, "checkpoint_step": 800, "checkpoint_at": saved},
                     {"attempt": 2}]  # fmt: skip
    (run / "status.json").write_text(json.dumps(st))
    (tmp_path / "study.json").write_text(json.dumps({"executor": "slurm", "runs": [
        {"variant": "baseline", "seed": 0, "run_dir": "baseline/seed0", "job_id": "7_0"}]}))  # fmt: skip
    df = collect(tmp_path, plots=False)
    assert df.lost_share.iloc[0] == pytest.approx(10 / 1500)
    report = (tmp_path / "report.md").read_text()
    assert "1% of it (0.00278 core-h) was lost" in report


def test_lost_fraction_of_an_attempt():
    a = {"state": "FAILED", "start": _t(0), "end": _t(100)}
    at = [(T0 + timedelta(seconds=s)).astimezone() for s in (30, 75, 500)]
    assert lost_fraction(a, at) == pytest.approx(0.25)  # the last checkpoint inside it: 75 s
    assert lost_fraction(a) == 1.0 and lost_fraction({**a, "state": "COMPLETED"}) == 0.0
    assert lost_fraction({**a, "state": "RUNNING"}, at) == 0.0  # not lost yet
    assert lost_fraction({**a, "start": "Unknown"}, at) == 1.0
    # sacct's End of a cancelled attempt is the scancel; the trainer checkpointed 1 s later
    late = [(T0 + timedelta(seconds=101)).astimezone()]
    assert lost_fraction(a, late) == 0.0
    assert lost_fraction(a, late, until=(T0 + timedelta(seconds=100)).astimezone()) == 1.0

"""What a study cost (sacct + NVML telemetry) and the provenance warnings, on fabricated run dirs
and a stand-in for sacct (the real cluster: tests/cluster/test_cost.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from jobs import status
from text2sign.study import slurm_query
from text2sign.study.collect import collect

from .test_collect import fake_run

# sacct -X -D -n -P -o JobID,State,Elapsed,NodeList,ExitCode,Start,End,ElapsedRaw,CPUTimeRAW,AllocTRES
SACCT = """\
7_0|REQUEUED|00:01:40|n1|0:0|s|e|100|200|billing=2,cpu=2,gres/gpu=1,node=1
7_0|COMPLETED|00:05:00|n2|0:0|s|e|300|600|billing=2,cpu=2,gres/gpu=1,node=1
7_1|COMPLETED|00:06:00|n1|0:0|s|e|360|720|billing=2,cpu=2,gres/gpu:h100=1,node=1
7_2|FAILED|00:00:36|n1|1:0|s|e|36|72|billing=2,cpu=2,gres/gpu=1,node=1
8|RUNNING|00:00:10|n1|0:0|s|Unknown|10|10|billing=1,cpu=1,node=1
"""


@pytest.fixture
def fake_sacct(monkeypatch):
    calls = []

    def run(cmd, timeout=30):
        calls.append(cmd)
        return SACCT if cmd[0] == "sacct" else None

    monkeypatch.setattr(slurm_query, "_run", run)
    monkeypatch.setattr(slurm_query, "available", lambda: True)
    return calls


def gpu_study(tmp_path):
    runs = []
    for i, (variant, seed) in enumerate((("baseline", 0), ("baseline", 1), ("no_ema", 0))):
        run = fake_run(tmp_path, variant, seed, final_loss=0.2, state="FAILED" if i == 2 else
                       "COMPLETED")  # fmt: skip
        runs.append({"variant": variant, "seed": seed, "run_dir": f"{variant}/seed{seed}",
                     "job_id": f"7_{i}"})  # fmt: skip
        meta = {"git": {"commit": "c0ffee" if i < 2 else "deadbeef", "dirty": False},
                "world_size": 1, "gpus_torch": ["NVIDIA H100"], "container": {"runtime": "none"},
                "telemetry": {"backend": "nvml", "reason": ""}}  # fmt: skip
        (run / "metadata.json").write_text(json.dumps(meta))
        (run / "gpu_memory.csv").write_text(
            "time,elapsed_s,step,rank,gpu_index,gpu_uuid,gpu_name,memory_used_bytes,"
            "memory_total_bytes,utilization_percent,power_w,process_rss_bytes\n"
            f"0,0,0,0,0,u,H100,{2**30},{2**34},{40 + 20 * i},300,1\n"
            f"1,1,1,0,0,u,H100,{3 * 2**30},{2**34},{60 + 20 * i},300,1\n"
        )
    (tmp_path / "study.json").write_text(json.dumps({"executor": "slurm", "runs": runs,
                                                     "collector_job_id": "8"}))  # fmt: skip
    return tmp_path


def test_gpu_hours_per_run_point_and_study_with_requeues_and_failures(tmp_path, fake_sacct):
    df = collect(gpu_study(tmp_path), plots=False).set_index("variant")
    assert len(fake_sacct) == 1  # one sacct call for the whole study (settle reuses it)
    assert "-D" in fake_sacct[0] and "CPUTimeRAW" in fake_sacct[0][fake_sacct[0].index("-o") + 1]
    b, n = df.loc["baseline"], df.loc["no_ema"]
    # baseline: 7_0 (100 s requeued + 300 s) and 7_1 (360 s), one GPU each
    assert b.gpu_hours == pytest.approx((100 + 300 + 360) / 3600)
    assert b.core_hours == pytest.approx((200 + 600 + 720) / 3600)
    assert b.lost_share == pytest.approx(100 / 760) and b.attempts == 3 and b.lost_attempts == 1
    assert n.gpu_hours == pytest.approx(36 / 3600) and n.lost_share == 1.0
    assert b.cost_unit == "GPU-h"
    assert b.gpu_util_percent == pytest.approx((50 + 70) / 2)  # mean over runs of run means
    assert b.gpu_memory_mib == pytest.approx(2048)
    report = (tmp_path / "report.md").read_text()
    cost = report.split("## Cost")[1].split("\n## ")[0]
    total = (100 + 300 + 360 + 36) / 3600
    assert f"**{total:.4g} GPU-h**" in cost and f"{(100 + 36) / 796:.0%} of it" in cost
    assert "collector job's own cost is excluded (it is still running): 0.00278 core-h" in cost
    assert "| baseline | 0.211 | 0.422 | 13% | 3 (1 interrupted) | 60 % | 2048 MiB |  |" in cost
    assert "| baseline | seed0 | COMPLETED | 0.111 GPU-h (25% lost) | - |  |" in report  # per run
    csv = pd.read_csv(tmp_path / "comparison_table.csv").set_index("variant")
    assert csv.loc["no_ema", "gpu_hours"] == pytest.approx(0.01)


def test_cpu_runs_have_core_hours_and_nvml_na_with_the_reason(tmp_path, monkeypatch):
    lines = "7_0|COMPLETED|00:01:00|n1|0:0|s|e|60|120|billing=2,cpu=2,node=1\n"
    monkeypatch.setattr(slurm_query, "_run", lambda cmd, timeout=30: lines)
    monkeypatch.setattr(slurm_query, "available", lambda: True)
    run = fake_run(tmp_path, "baseline", 0, final_loss=0.2)
    (run / "metadata.json").write_text(json.dumps(
        {"telemetry": {"backend": "none", "reason": "no NVIDIA GPU/driver (NVMLError)"}}))  # fmt: skip
    (run / "gpu_memory.csv").write_text("elapsed_s,memory_used_bytes,utilization_percent,"
                                        "process_rss_bytes\n0,,,1000\n")  # fmt: skip
    (tmp_path / "study.json").write_text(json.dumps({"executor": "slurm", "runs": [
        {"variant": "baseline", "seed": 0, "run_dir": "baseline/seed0", "job_id": "7_0"}]}))  # fmt: skip
    r = collect(tmp_path, plots=False).iloc[0]
    assert r.cost_unit == "core-h" and r.core_hours == pytest.approx(120 / 3600)
    assert r.gpu_hours == 0 and math.isnan(r.gpu_util_percent)
    assert r.cost_note == "NVML: no NVIDIA GPU/driver (NVMLError)"
    assert "| baseline | 0 | 0.0333 | 0% | 1 (0 interrupted) | N/A | N/A | NVML: no NVIDIA" in (
        tmp_path / "report.md").read_text()  # fmt: skip


def test_a_local_study_says_why_it_has_no_cost(tmp_path):
    fake_run(tmp_path, "baseline", 0, final_loss=0.2)
    collect(tmp_path, plots=False)
    assert "Not available: no SLURM accounting (not a SLURM study)." in (
        tmp_path / "report.md").read_text()  # fmt: skip


def test_make_status_shows_cost_per_run_and_the_study_total(tmp_path, fake_sacct, monkeypatch):
    gpu_study(tmp_path)
    monkeypatch.setattr(slurm_query.SacctPoller, "get", lambda self, ids, max_age=None:
                        slurm_query.summarize(slurm_query.job_records(ids)))  # fmt: skip
    rows = {(r["variant"], r["seed"]): r for r in status.table(tmp_path)}
    assert rows[("baseline", 0)]["cost"] == "0.111 GPU-h (25% lost)"
    assert rows[("no_ema", 0)]["cost"] == "0.01 GPU-h (100% lost)"
    assert status.main([str(tmp_path)]) == 0


def test_status_footer_lists_the_collector_separately(fake_sacct):
    jobs = slurm_query.summarize(slurm_query.job_records(["7_0", "7_1", "7_2", "8"]))
    from text2sign.study.cost import status_footer

    plan = {"runs": [{"variant": "b", "seed": s, "job_id": f"7_{s}"} for s in range(3)],
            "collector_job_id": "8"}  # fmt: skip
    assert status_footer(plan, jobs, Path("/nonexistent")) == (
        "cost so far: 0.221 GPU-h (17% lost) over 4 attempts; collector (not included): "
        "0.00278 core-h"
    )


def test_provenance_warns_when_a_comparison_mixes_commits(tmp_path):
    for i, (variant, commit) in enumerate((("baseline", "c0ffee1"), ("baseline", "c0ffee1"),
                                           ("no_ema", "deadbee"), ("text_finetuned", "c0ffee1"))):  # fmt: skip
        run = fake_run(tmp_path, variant, i, final_loss=0.2)
        (run / "metadata.json").write_text(json.dumps({
            "git": {"commit": commit, "dirty": False}, "world_size": 1, "gpus_torch": [],
            "container": {"runtime": "none"}}))  # fmt: skip
    collect(tmp_path, plots=False)
    prov = (tmp_path / "report.md").read_text().split("## Provenance")[1].split("\n## ")[0]
    assert "> **Warning: the runs compared below did not run under the same conditions**" in prov
    assert ("> - `no_ema` vs `baseline`: the runs ran on different git commits: `c0ffee1` "
            "(baseline/seed0, baseline/seed1); `deadbee` (no_ema/seed2).") in prov  # fmt: skip
    assert "text_finetuned" not in prov  # same commit as its reference: no warning


def test_provenance_is_quiet_when_everything_matches(tmp_path):
    for variant in ("baseline", "no_ema"):
        run = fake_run(tmp_path, variant, 0, final_loss=0.2)
        (run / "metadata.json").write_text(json.dumps({
            "git": {"commit": "abc", "dirty": False}, "world_size": 2, "gpus_torch": ["A100"] * 2,
            "container": {"runtime": "apptainer", "sha256": "f00d"}}))  # fmt: skip
    fake_run(tmp_path, "no_ema", 1, final_loss=0.2)  # no metadata.json: counted, not compared
    collect(tmp_path, plots=False)
    report = (tmp_path / "report.md").read_text()
    assert "same GPU type, world size, container image digest and git commit (metadata.json) " \
           "(1 runs without metadata.json are not checked)" in report  # fmt: skip
    assert "Warning" not in report


def test_nvml_usage_of_a_csv_without_gpu_columns_is_na_not_a_crash(tmp_path):
    """A CPU run dir from before the NVML columns (or a hand-trimmed CSV): N/A with a reason."""
    from text2sign.study.cost import nvml_usage
    from text2sign.study.records import RunRecord

    (tmp_path / "gpu_memory.csv").write_text("elapsed_s,process_rss_bytes\n0,1000\n")
    u, m, why = nvml_usage(RunRecord("baseline", "seed0", tmp_path, "COMPLETED"))
    assert math.isnan(u) and math.isnan(m) and why == "no NVML samples (no GPU)"
    (tmp_path / "gpu_memory.csv").write_text("utilization_percent,memory_used_bytes\n50,\n70,\n")
    u, m, why = nvml_usage(RunRecord("baseline", "seed0", tmp_path, "COMPLETED"))
    assert u == 60 and math.isnan(m) and why == ""


def test_provenance_tells_dirty_snapshots_apart_by_their_diff(tmp_path):
    for seed, diff in enumerate(("aaaa1111bbbb2222", "cccc3333dddd4444")):
        run = fake_run(tmp_path, "baseline" if seed == 0 else "no_ema", 0, final_loss=0.2)
        (run / "metadata.json").write_text(json.dumps(
            {"git": {"commit": "abc", "dirty": True, "diff_sha256": diff}}))  # fmt: skip
    collect(tmp_path, plots=False)
    report = (tmp_path / "report.md").read_text()
    assert "`abc (dirty, diff aaaa1111bbbb)` (baseline/seed0); `abc (dirty, diff cccc3333dddd)` " \
           "(no_ema/seed0)" in report  # fmt: skip

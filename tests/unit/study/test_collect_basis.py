"""The collector says what every evaluation number rests on (clips, recordings, signers), keeps
the per-seed audit summary with the clustered p, explains a missing p, and shows the floor."""

from __future__ import annotations

import pandas as pd

from text2sign.study.collect import collect

from .test_collect import fake_run
from .test_collect_stats import fake_eval, md_section, tex_rows


def run(tmp, variant, seed, **metrics):
    r = fake_run(tmp, variant, seed, final_loss=0.2 + seed / 100)
    fake_eval(r, **metrics)


REAL = {"eval_clips": 32.0, "eval_recordings": 12.0, "eval_signers": 3.0, "dtw_mje_clips": 32.0,
        "dtw_mje_floor_clips": 32.0, "audit_recordings": 12.0}  # fmt: skip


def test_the_table_and_report_say_what_each_evaluation_rests_on(tmp_path):
    for seed in range(2):
        run(tmp_path, "baseline", seed, dtw_mje=0.5, dtw_mje_floor=0.12, audit_gap=0.1,
            audit_p=[0.0002, 0.03][seed], **REAL)  # fmt: skip
        one_rec = {**REAL, "eval_recordings": 1.0, "eval_signers": 1.0, "audit_recordings": 1.0,
                   "dtw_mje_clips": 30.0}  # fmt: skip
        run(tmp_path, "no_ema", seed, dtw_mje=0.6, dtw_mje_floor=0.12, audit_gap=0.1,
            audit_p="all 30 clips come from 1 recording: no test across recordings", **one_rec)  # fmt: skip
    df = collect(tmp_path, plots=False).set_index("variant")
    assert df.loc["baseline", "evaluated_on"] == "32 clips, 12 recordings, 3 signers"
    assert (
        df.loc["no_ema", "evaluated_on"] == "32 clips, 1 recording, 1 signer; DTW-MJE on 30 clips"
    )
    assert not any(c.startswith(("eval_clips_", "audit_recordings_", "dtw_mje_clips_"))
                   for c in df.columns)  # counts: never averaged or tested  # fmt: skip
    md = (tmp_path / "comparison_table.md").read_text()
    header = md.split("### Evaluation")[1].split("\n\n")[1].splitlines()[0]
    cols = [c.strip() for c in header.strip("|").split(" | ")]
    assert cols[1:4] == ["DTW-MJE ↓", "DTW-MJE floor (estimator)", "audit gap ↑"]  # floor beside
    rows = {r[0]: dict(zip(cols, r, strict=True)) for r in md_section(md, "Evaluation")}
    assert rows["baseline"]["audit: seeds with p < 0.05"] == "2/2 (p = 0.0002, 0.03)"
    assert rows["no_ema"]["audit: seeds with p < 0.05"] == (
        "N/A (all 30 clips come from 1 recording: no test across recordings)"
    )
    assert rows["baseline"]["evaluated on"] == "32 clips, 12 recordings, 3 signers"
    assert rows["baseline"]["DTW-MJE floor (estimator)"] == "0.1200 ± 0.0000"
    report = (tmp_path / "report.md").read_text()
    assert "Evaluations rest on: baseline: 32 clips, 12 recordings, 3 signers; no_ema: 32 clips, " \
        "1 recording, 1 signer; DTW-MJE on 30 clips." in report  # fmt: skip
    assert "exact one-sided sign-flip test over recordings" in report
    assert "DTW-MJE floor: the references' keypoints at the model's resolution" in report
    _, tex_body = tex_rows((tmp_path / "comparison_table.tex").read_text())
    assert (
        "Evaluations rest on: baseline: 32 clips" in (tmp_path / "comparison_table.tex").read_text()
    )
    assert len(tex_body) == 2
    long = pd.read_csv(tmp_path / "comparison_long.csv")
    clips = long[(long.metric == "eval_recordings") & (long.point == "no_ema")]
    assert list(clips.value) == [1.0, 1.0]  # the tidy table keeps the counts per run


def test_seeds_that_drew_different_clips_are_named(tmp_path):
    run(tmp_path, "baseline", 0, dtw_mje=0.5, **REAL)
    run(tmp_path, "baseline", 1, dtw_mje=0.5, **{**REAL, "eval_recordings": 11.0,
                                                 "audit_recordings": 11.0})  # fmt: skip
    df = collect(tmp_path, plots=False)
    assert df.evaluated_on[0] == ("32 clips, 12 recordings, 3 signers (seed0) / 32 clips, "
                                  "11 recordings, 3 signers (seed1)")  # fmt: skip
    report = (tmp_path / "report.md").read_text()
    assert "Every evaluation rests on 32 clips, 12 recordings, 3 signers (seed0) / " in report


def test_keypoints_estimated_on_frames_too_small_are_marked_in_the_table(tmp_path):
    """Issue 22: at the tiny profile's 16 px MediaPipe 'finds' a body with positions that are
    noise; the evaluation says so and the table's keypoints column carries it."""
    import json

    from text2sign.study.records import load_study

    r = fake_run(tmp_path, "baseline", 0, final_loss=0.2)
    fake_eval(r, dtw_mje=0.5)
    ev = json.loads((r / "evaluation_metrics.json").read_text())
    ev.update(keypoints_source="estimated", keypoints_warning="keypoints at 16 px are noise")
    (r / "evaluation_metrics.json").write_text(json.dumps(ev))
    (rec,) = load_study(tmp_path).records
    assert rec.keypoints == "estimated (frames too small: noise)"

"""The collector's comparison statistics: paired t-test, exact sign-flip p, Holm, the "no test"
rule with fewer than 3 matched seeds (the import graph that keeps the data flowing one way:
tests/unit/test_layout.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from text2sign.metrics.stats import holm, paired_t_p, sign_flip_p
from text2sign.study.collect import collect

from .test_collect import fake_run
from .test_collect_stats import fake_eval, md_section, study_of


def test_sign_flip_p_is_exact_on_hand_computed_examples():
    # d = [1, 2, 3, 4], sum 10. Of the 2^4 = 16 sign assignments only all-plus (+10) and
    # all-minus (-10) reach |sum| >= 10 (flipping the smallest, 1, already gives 8): p = 2/16.
    assert sign_flip_p([1, 2, 3, 4]) == 2 / 16
    # d = [1, -1, 2], sum 2: |sum| >= 2 for (+,-,+) = 2, (-,+,-) = -2, (+,+,+) = 4, (-,-,-) = -4,
    # (-,-,+) = 2, (+,+,-) = -2; not for (+,-,-) = -2? 1+1-2 = 0 ... enumerate all 8:
    # +1-1+2=2 ✓, +1-1-2=-2 ✓, +1+1+2=4 ✓, +1+1-2=0, -1-1+2=0, -1-1-2=-4 ✓, -1+1+2=2 ✓,
    # -1+1-2=-2 ✓: 6 of 8.
    assert sign_flip_p([1, -1, 2]) == 6 / 8
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0  # no difference at all
    assert sign_flip_p([0.5, 0.5, 0.5]) == 2 / 8  # the smallest p 3 pairs can give
    assert sign_flip_p([1.0] * 20) == 1 / 10_001  # Monte Carlo above 16: only the draw itself


def test_paired_t_matches_scipy_and_constant_differences_have_none():
    a, b = [0.31, 0.28, 0.35, 0.30], [0.29, 0.27, 0.30, 0.31]
    assert paired_t_p(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert math.isnan(paired_t_p([0.11, 0.21, 0.31], [0.1, 0.2, 0.3]))  # Δ 0.01 each, to rounding


def test_holm_step_down_on_a_worked_example():
    # m = 4, sorted: 0.005·4 = 0.02; 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → running max
    # 0.06. Back in the input order: [0.03, 0.06, 0.06, 0.02].
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    got = holm([0.01, math.nan, 0.02])  # NaN: no test, not in the family (m = 2)
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.02)


def test_the_table_holds_paired_signflip_and_holm_p_values(tmp_path):
    base, var = [1.0, 1.2, 0.9, 1.1], [0.7, 1.0, 0.5, 0.9]
    dbase, dvar = [0.10, 0.12, 0.11, 0.13], [0.11, 0.12, 0.10, 0.15]
    study_of(tmp_path, {"baseline": base, "no_ema": var}, dtw_mje=[dbase, dvar])
    r = collect(tmp_path, plots=False).set_index("variant").loc["no_ema"]
    p_loss, p_dtw = stats.ttest_rel(var, base).pvalue, stats.ttest_rel(dvar, dbase).pvalue
    assert r.final_loss_p_paired_t == pytest.approx(p_loss)
    assert r.dtw_mje_p_paired_t == pytest.approx(p_dtw)
    assert r.final_loss_n_paired == 4 and r.final_loss_mean_diff == pytest.approx(-0.275)
    assert r.final_loss_p_signflip == 2 / 16  # every difference negative: as [1, 2, 3, 4]
    assert [r.final_loss_p_holm, r.dtw_mje_p_holm] == pytest.approx(holm([p_loss, p_dtw]))
    assert r.final_loss_p_welch == pytest.approx(stats.ttest_ind(var, base, equal_var=False).pvalue)
    assert math.isnan(r.train_time_s_p_holm)  # not a headline metric: not in Holm's family


def test_two_seeds_give_no_test_and_never_significant(tmp_path):
    """Regression: the fresh-clone `make demo` printed "the DTW-MJE is significantly lower
    (better) at the 5 % level" for no_ema from a Welch p = 0.04 with 2 vs 2 seeds."""
    dbase, dno = [0.0570, 0.0576], [0.0530, 0.0532]
    assert stats.ttest_ind(dno, dbase, equal_var=False).pvalue < 0.05  # what was reported
    study_of(tmp_path, {"baseline": [0.0272, 0.0277], "no_ema": [0.0272, 0.0277]},
             dtw_mje=[dbase, dno], psnr=[[20.5, 20.5], [20.4, 20.6]])  # fmt: skip
    df = collect(tmp_path, plots=False).set_index("variant")
    cols = [c for c in df.columns if "_p_" in c and not c.startswith("audit_")]
    assert df[cols].isna().all().all()  # no p-value at all, Welch included
    assert "n = 2 matched seeds: no test (needs ≥ 3)" in df.loc["no_ema", "dtw_mje_note"]
    md = (tmp_path / "comparison_table.md").read_text()
    report = (tmp_path / "report.md").read_text()
    row = next(r for r in md_section(md, "Headline metrics") if r[:2] == ["DTW-MJE ↓", "no_ema"])
    assert row[-4:] == ["2", "no test", "no test", "no test"]
    findings = report.split("## Findings")[1].split("## ")[0]
    assert "the DTW-MJE from 0.0573 ± 0.0004 to 0.0531 ± 0.0001 (−7.3 %, n = 2 matched seeds: " \
           "no test (needs ≥ 3))" in findings  # fmt: skip
    assert "significant" not in findings.replace('"no significant difference"', "")
    assert "p =" not in findings and "Welch p" not in findings
    body = (tmp_path / "comparison_table.tex").read_text().split(r"\midrule")[1]
    assert "^{*}" not in body  # no star in any cell (the caption explains the star)


def test_study_json_points_overrides_and_reference(tmp_path):
    """study.json as the submit side writes it (points, overrides, reference): the reference row
    comes first, every point has its overrides, the long CSV has one row per run × metric."""
    import json

    points = {"baseline": {}, "baseline__lr1e-3": {"train.lr": "0.001", "ema.decay": "0.99"}}
    runs = []
    for i, (point, over) in enumerate(points.items()):
        for seed in range(3):
            run = fake_run(tmp_path, point, seed, final_loss=0.2 + 0.1 * i + 0.01 * seed)
            fake_eval(run, psnr=20.0 + i + seed % 2, fvd="no I3D weights")
            runs.append({"variant": point, "point": point, "seed": seed, "job_id": f"7_{len(runs)}",
                         "run_dir": f"{point}/seed{seed}", "base_variant": "baseline",
                         "overrides": over})  # fmt: skip
    fake_run(tmp_path, "baseline__lr1e-3", 3, state="FAILED")
    (tmp_path / "study.json").write_text(json.dumps({
        "runs": runs, "runs_all": runs, "reference": "baseline__lr1e-3",
        "reference_source": "--reference", "sweep": {"train.lr": ["0.001"]},
        "code": {"commit": "abc", "dirty": False}, "mail_user": "a@b.c", "array_job_ids": ["7"],
        "collector_job_id": "8", "events": [],
    }))  # fmt: skip
    df = collect(tmp_path, plots=False)
    assert list(df.variant) == ["baseline__lr1e-3", "baseline"]  # the reference first
    assert list(df.overrides.fillna("")) == ["train.lr=0.001, ema.decay=0.99", ""]
    assert list(df.reference.fillna("")) == ["", "baseline__lr1e-3"]
    assert df.set_index("variant").loc["baseline", "final_loss_delta_pct"] < 0
    md = (tmp_path / "comparison_table.md").read_text()
    assert "Δ and tests against `baseline__lr1e-3` (reference: --reference)." in md
    assert "| baseline__lr1e-3 | 3 COMPLETED, 1 FAILED |" in md and "ema.decay=0.99 |" in md
    assert "Δ and tests against `baseline__lr1e-3` (reference: --reference)." in (
        tmp_path / "report.md").read_text()  # fmt: skip
    tex = (tmp_path / "comparison_table.tex").read_text()
    assert "Overrides" in tex and r"train.lr=0.001, ema.decay=0.99" in tex
    long = pd.read_csv(tmp_path / "comparison_long.csv").fillna({"overrides": "", "reason": ""})
    assert list(long.columns) == ["study", "point", "base_variant", "seed", "overrides", "metric",
                                  "value", "state", "reason"]  # fmt: skip
    assert len(long) == 7 * 8  # 7 runs × (6 summary metrics + psnr + fvd)
    one = long[(long.point == "baseline__lr1e-3") & (long.seed == 1) & (long.metric == "psnr")]
    assert one.value.tolist() == [22.0] and one.overrides.tolist() == [
        "train.lr=0.001, ema.decay=0.99"]  # fmt: skip
    fvd = long[long.metric == "fvd"]
    assert fvd.value.isna().all() and "no I3D weights" in set(fvd.reason)
    failed = long[long.state == "FAILED"]
    assert len(failed) == 8 and set(failed.reason) == {"run FAILED: boom"}


def test_reference_falls_back_to_baseline_then_to_the_first_point(tmp_path):
    study_of(tmp_path / "a", {"no_ema": [0.3, 0.4, 0.5], "baseline": [0.2, 0.3, 0.4]})
    assert list(collect(tmp_path / "a", plots=False).variant) == ["baseline", "no_ema"]
    study_of(tmp_path / "b", {"lr_hi": [0.3, 0.4, 0.5], "lr_lo": [0.2, 0.3, 0.4]})
    df = collect(tmp_path / "b", plots=False)
    assert list(df.variant) == ["lr_hi", "lr_lo"] and df.reference.tolist()[1] == "lr_hi"
    md = (tmp_path / "b" / "comparison_table.md").read_text()
    assert "Δ and tests against `lr_hi` (reference: first point)." in md


def test_means_and_ci_are_unchanged_by_the_paired_rewrite(tmp_path):
    vals = [0.2, 0.25, 0.4]
    study_of(tmp_path, {"baseline": vals})
    r = collect(tmp_path, plots=False).iloc[0]
    assert r.final_loss_mean == pytest.approx(np.mean(vals))
    assert r.final_loss_ci95_high == pytest.approx(
        stats.t.interval(0.95, 2, loc=np.mean(vals), scale=stats.sem(vals))[1]
    )

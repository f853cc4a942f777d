"""The collector on fabricated run dirs: broken runs still yield tables; no runs is exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from text2sign.cli import main
from text2sign.study.collect import collect


def fake_run(study: Path, variant: str, seed: int, *, state="COMPLETED", final_loss=None,
             summary=True, steps=20) -> Path:  # fmt: skip
    run = study / variant / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": state, "step": steps, "total_steps": steps,
                                                 "reason": "boom" if state == "FAILED" else ""}))  # fmt: skip
    rows = [
        "step,epoch,loss,lr,grad_norm,samples_per_s,step_time_s,peak_memory_bytes,memory_kind,wall_time_s"
    ]
    rows += [
        f"{s},0,{1.0 / s},0.001,0.5,10,0.1,{2**20 * 100},process_rss,{s * 0.1}"
        for s in range(1, steps + 1)
    ]
    (run / "training_metrics.csv").write_text("\n".join(rows) + "\n")
    if summary:
        (run / "summary.json").write_text(json.dumps({
            "final_loss": final_loss, "train_time_s": 10.0 + seed, "samples_per_s_median": 10.0,
            "peak_memory_bytes": 2**20 * 100, "params_total": 1000, "params_trainable": 900,
        }))  # fmt: skip
    return run


def test_mean_std_and_delta_vs_baseline(tmp_path):
    for seed, loss in enumerate([0.2, 0.4]):
        fake_run(tmp_path, "baseline", seed, final_loss=loss)
    for seed, loss in enumerate([0.3, 0.5]):
        fake_run(tmp_path, "no_ema", seed, final_loss=loss)
    df = collect(tmp_path, plots=False)
    assert list(df.variant) == ["baseline", "no_ema"]
    b, n = df.iloc[0], df.iloc[1]
    assert b.final_loss_mean == pytest.approx(0.3) and b.final_loss_std == pytest.approx(
        0.1414, abs=1e-4
    )
    assert n.final_loss_delta_pct == pytest.approx((0.4 - 0.3) / 0.3 * 100)
    md = (tmp_path / "comparison_table.md").read_text()
    assert "| baseline | 2 COMPLETED | 0.3000 ± 0.1414 |" in md and "+33.3%" in md
    assert len(pd.read_csv(tmp_path / "comparison_table.csv")) == 2


def test_broken_runs_still_yield_tables_with_their_state(tmp_path, caplog):
    fake_run(tmp_path, "baseline", 0, final_loss=0.2)
    fake_run(tmp_path, "baseline", 1, state="FAILED", final_loss=None)
    fake_run(tmp_path, "text_finetuned", 0, summary=False)  # COMPLETED but no summary: PARTIAL
    corrupt = fake_run(tmp_path, "no_ema", 0, final_loss=0.1)
    (corrupt / "status.json").write_text("{not json")
    (tmp_path / "study.json").write_text(json.dumps({"runs": [{"variant": "no_ema", "seed": 1}]}))
    with caplog.at_level("WARNING"):
        df = collect(tmp_path, plots=True)
    states = dict(zip(df.variant, df.state, strict=True))
    assert states == {"baseline": "1 COMPLETED, 1 FAILED", "no_ema": "1 CORRUPT, 1 MISSING",
                      "text_finetuned": "1 PARTIAL"}  # fmt: skip
    assert df.set_index("variant").loc["baseline", "final_loss_n"] == 1  # FAILED seed excluded
    assert (
        "4 of 5 runs are not COMPLETED" in caplog.text
        and "baseline/seed1 FAILED: boom" in caplog.text
    )
    report = (tmp_path / "report.md").read_text()
    assert (
        "![loss_curves.png](loss_curves.png)" in report
        and (tmp_path / "loss_curves.png").stat().st_size > 1000
    )
    assert "| no_ema | seed1 | MISSING |" in report
    tex = (tmp_path / "comparison_table.tex").read_text()  # the paper table survives broken runs
    assert "text\\_finetuned & unknown & 0 & --$^{a}$" in tex


def test_no_runs_is_exit_2(tmp_path, capsys):
    assert main(["collect", str(tmp_path)]) == 2
    assert "no runs found" in capsys.readouterr().err
    assert main(["collect", str(tmp_path / "nope")]) == 2


def test_steps_logged_twice_count_once_and_the_report_is_written(tmp_path):
    """A run dir from before restarts truncated the metrics (an attempt killed before its first
    checkpoint logged steps 1..k twice): the last attempt's rows win, and report.md exists."""
    for seed in (0, 1):
        run = fake_run(tmp_path, "baseline", seed, final_loss=0.2)
    csv_path = run / "training_metrics.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join([lines[0], *lines[1:6], *lines[1:]]) + "\n")  # steps 1..5 twice
    collect(tmp_path)
    assert (tmp_path / "report.md").exists() and (tmp_path / "loss_curves.png").exists()


def test_the_report_names_the_device_each_run_was_evaluated_on(tmp_path):
    run = fake_run(tmp_path, "baseline", 0, final_loss=0.2)
    fake_run(tmp_path, "baseline", 1, final_loss=0.3)  # evaluated before devices were recorded
    (run / "evaluation_metrics.json").write_text(json.dumps({
        "weights": "ema", "metrics": {"psnr": {"value": 20.0, "reason": ""}},
        "inference_device": "cuda:0 (NVIDIA H100 80GB HBM3)",
        "inference_ranks": [{"rank": 0}, {"rank": 1}],
    }))  # fmt: skip
    collect(tmp_path, plots=False)
    report = (tmp_path / "report.md").read_text()
    assert "| evaluated on |" in report
    assert "| cuda:0 (NVIDIA H100 80GB HBM3) x2 ranks |" in report
    assert "| baseline | seed1 | COMPLETED | - | - |" in report

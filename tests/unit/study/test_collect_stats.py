"""Collector statistics, tables (CSV/Markdown/LaTeX), findings and sample strips on fabricated runs
with known values; the numbers are checked against scipy (the paired tests, Holm and the
"no test" rule: test_collect_paired.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from text2sign.study.collect import collect
from text2sign.study.comparison import STAT_SUFFIXES
from text2sign.study.report import findings

from .test_collect import fake_run

BASE, VAR = [0.2, 0.25, 0.4], [0.3, 0.35, 0.5, 0.45]


def fake_eval(run: Path, weights: str | None = "ema", **metrics: float | str | None) -> None:
    """evaluation_metrics.json; a str value is an N/A metric with that reason."""
    m = {k: {"value": None, "reason": v} if isinstance(v, str) else {"value": v, "reason": ""}
         for k, v in metrics.items()}  # fmt: skip
    (run / "evaluation_metrics.json").write_text(
        json.dumps({"weights": weights, "num_videos": 4, "seed": 0, "metrics": m})
    )


def study_of(tmp: Path, variants: dict[str, list[float]], **evals: list) -> Path:
    """Runs with the given final losses; ``evals[metric][variant_index][seed]`` per metric."""
    for i, (variant, losses) in enumerate(variants.items()):
        for seed, loss in enumerate(losses):
            run = fake_run(tmp, variant, seed, final_loss=loss)
            if evals:
                fake_eval(run, **{k: v[i][seed] for k, v in evals.items()})
    return tmp


def md_section(md: str, heading: str) -> list[list[str]]:
    """The body rows of the Markdown table under ``### heading``, as lists of cells."""
    blocks = md.split(f"### {heading}")[1].split("\n\n")
    block = next(b for b in blocks if b.startswith("|"))
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in block.splitlines()[2:]]


def tex_rows(tex: str) -> tuple[list[str], list[list[str]]]:
    """Parse the booktabs table back: (header cells, body rows' cells)."""
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    head = tex.split(r"\toprule")[1].split(r"\midrule")[0]
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]

    def cells(row: str) -> list[str]:
        return [c.strip() for c in row.split(" & ")]

    header = cells(head.strip().removesuffix(r"\\").strip())
    return header, [cells(r) for r in body.split(r"\\") if r.strip()]


def test_mean_std_ci_and_welch_match_scipy(tmp_path):
    study_of(tmp_path, {"baseline": BASE, "text_finetuned": VAR})
    df = collect(tmp_path, plots=False).set_index("variant")
    v = df.loc["text_finetuned"]
    assert v.final_loss_mean == pytest.approx(np.mean(VAR))
    assert v.final_loss_std == pytest.approx(np.std(VAR, ddof=1))
    lo, hi = stats.t.interval(0.95, len(VAR) - 1, loc=np.mean(VAR), scale=stats.sem(VAR))
    assert (v.final_loss_ci95_low, v.final_loss_ci95_high) == pytest.approx((lo, hi))
    p = stats.ttest_ind(VAR, BASE, equal_var=False).pvalue
    assert v.final_loss_p_welch == pytest.approx(p) and 0.05 < p < 1
    assert v.final_loss_delta_pct == pytest.approx((np.mean(VAR) / np.mean(BASE) - 1) * 100)
    assert v.final_loss_n == 4 and df.loc["baseline"].final_loss_n == 3
    csv = pd.read_csv(tmp_path / "comparison_table.csv").set_index("variant")
    assert {f"final_loss_{s}" for s in STAT_SUFFIXES} <= set(csv.columns)
    assert {"state", "weights", "completed"} <= set(csv.columns)
    assert csv.loc["text_finetuned", "final_loss_p_welch"] == pytest.approx(p)
    assert math.isnan(csv.loc["baseline", "final_loss_p_welch"])  # no test of baseline vs itself
    rows = md_section((tmp_path / "comparison_table.md").read_text(), "Headline metrics")
    d = (np.mean(VAR) / np.mean(BASE) - 1) * 100
    # seeds 0-2 are matched, their differences all 0.1: no paired t-test; sign-flip p = 2/2^3
    assert rows[1] == ["final loss ↓", "text_finetuned", f"0.4000 ± {np.std(VAR, ddof=1):.4f}",
                       f"[{lo:.4f}, {hi:.4f}]", "4", f"{d:+.1f}%", "3",
                       "n/a (constant differences)", "0.25", f"{p:.2g}"]  # fmt: skip


def test_n_below_3_and_zero_variance_are_marked_not_tested(tmp_path):
    study_of(tmp_path, {"baseline": [0.2, 0.2, 0.2], "no_ema": [0.3],
                        "text_finetuned": [0.2, 0.2, 0.2], "wide": [0.5, 0.5, 0.5]})  # fmt: skip
    df = collect(tmp_path, plots=False).set_index("variant")
    assert df.loc["no_ema", "final_loss_note"] == "n<2; n = 1 matched seed: no test (needs ≥ 3)"
    assert df.loc["text_finetuned", "final_loss_note"] == (
        "constant differences: no paired t-test; zero variance"
    )
    assert df.loc["text_finetuned", "final_loss_p_signflip"] == 1.0  # all differences are 0
    assert math.isnan(df.loc["no_ema", "final_loss_ci95_low"])
    assert (
        df[["final_loss_p_welch", "final_loss_p_paired_t", "final_loss_p_holm"]].isna().all().all()
    )
    rows = md_section((tmp_path / "comparison_table.md").read_text(), "Headline metrics")
    by_variant = {r[1]: r for r in rows if r[0].startswith("final loss")}
    assert by_variant["no_ema"][2:] == ["0.3000 (n=1)", "n<2", "1", "+50.0%", "1", "no test",
                                        "no test", "no test"]  # fmt: skip
    assert by_variant["text_finetuned"][-4:] == ["3", "n/a (constant differences)", "1",
                                                 "n/a (zero variance)"]  # fmt: skip
    text = " ".join(findings(df.reset_index(), "baseline"))
    assert "n = 1 matched seed: no test (needs ≥ 3)" in text
    assert "(+0.0 %, paired t-test over n = 3 matched seeds): identical in every matched seed" \
        in text  # fmt: skip
    assert "(+150.0 %, paired t-test over n = 3 matched seeds: p undefined (constant differences); " \
           "sign-flip p = 0.25): cannot be judged by the t-test" in text  # fmt: skip
    assert "significant" not in text


def test_na_metrics_show_their_reason_never_a_number(tmp_path):
    study_of(
        tmp_path, {"baseline": [0.2, 0.3], "no_ema": [0.3, 0.4]},
        fvd=[["no I3D weights"] * 2] * 2, psnr=[[18.0, 19.0], [20.0, 21.0]],
        lpips=[["torchvision unavailable"] * 2, [0.2, 0.3]],
    )  # fmt: skip
    df = collect(tmp_path, plots=False)
    md = (tmp_path / "comparison_table.md").read_text()
    ev = md_section(md, "Evaluation")
    header = md.split("### Evaluation")[1].split("\n\n")[1].splitlines()[0]
    assert header == (
        "| variant | PSNR ↑ | FVD ↓ | LPIPS ↓ | audit: seeds with p < 0.05 | keypoints "
        "| evaluated on |"
    )
    assert [r[-1] for r in ev] == ["4 clips (recordings and signers not recorded)"] * 2
    assert [r[2] for r in ev] == ["N/A (no I3D weights)"] * 2
    assert ev[0][3] == "N/A (torchvision unavailable)" and ev[1][3] == "0.2500 ± 0.0707"
    assert df.fvd_n.tolist() == [0, 0] and df.fvd_mean.isna().all()
    fvd_rows = [r for r in md_section(md, "Headline metrics") if r[0].startswith("FVD")]
    assert [r[2:] for r in fvd_rows] == [
        ["N/A (no I3D weights)", "N/A", "0", "—", "—", "—", "—", "—"],
        ["N/A (no I3D weights)", "N/A", "0", "n/a", "0", "N/A", "N/A", "N/A"],
    ]
    tex = (tmp_path / "comparison_table.tex").read_text()
    header, rows = tex_rows(tex)
    col = header.index(r"FVD $\downarrow$")
    assert [r[col] for r in rows] == ["--$^{a}$", "--$^{a}$"]
    assert r"$^{a}$FVD: no I3D weights" in tex


def test_latex_table_parses_back_to_the_expected_rows(tmp_path):
    study_of(tmp_path, {"baseline": [0.2, 0.4, 0.3], "text_finetuned": [1.0, 1.02, 0.98]},
             psnr=[[18.0, 19.0, 18.5], [20.0, 21.0, 22.0]])  # fmt: skip
    (tmp_path / "extra_a&b").mkdir()  # not a run dir: ignored
    df = collect(tmp_path, plots=False).set_index("variant")
    # Holm over {final loss, PSNR}: both paired p < 0.05 after the correction: both starred
    raw = [stats.ttest_rel([1.0, 1.02, 0.98], [0.2, 0.4, 0.3]).pvalue,
           stats.ttest_rel([20.0, 21.0, 22.0], [18.0, 19.0, 18.5]).pvalue]  # fmt: skip
    lo, hi = sorted(raw)
    holm = {lo: 2 * lo, hi: max(2 * lo, hi)}
    assert df.loc["text_finetuned", "final_loss_p_holm"] == pytest.approx(holm[raw[0]])
    assert df.loc["text_finetuned", "psnr_p_holm"] == pytest.approx(holm[raw[1]])
    assert holm[raw[1]] < 0.05
    tex = (tmp_path / "comparison_table.tex").read_text()
    header, rows = tex_rows(tex)
    assert header == ["Variant", "Weights", "$n$", r"Final loss $\downarrow$", r"PSNR $\uparrow$"]
    assert rows == [
        ["baseline", "EMA", "3", r"$0.3000 \pm 0.1000$", r"$18.5 \pm 0.5$"],
        ["text\\_finetuned", "EMA", "3", r"$1.0000 \pm 0.0200^{*}$", r"$21.0 \pm 1.0^{*}$"],
    ]
    assert "\\usepackage{booktabs}" in tex and r"\begin{tabular}{lllcc}" in tex


def test_latex_table_compiles_with_pdflatex(tmp_path):
    if shutil.which("pdflatex") is None:
        if os.environ.get("T2S_REQUIRE_LATEX") == "1":  # CI installs TeX: never a silent skip
            pytest.fail("T2S_REQUIRE_LATEX=1 but pdflatex is not installed")
        pytest.skip("no pdflatex here (CI sets T2S_REQUIRE_LATEX=1 and installs it)")
    study_of(tmp_path, {"baseline": [0.2, 0.4], "no_ema": [0.3]}, fvd=[["no I3D"] * 2, ["x"]])
    collect(tmp_path, plots=False)
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
                   "\\input{comparison_table.tex}\n\\end{document}\n")  # fmt: skip
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def _fp(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def test_findings_name_the_paired_test_holm_and_the_direction(tmp_path):
    base, no_ema = [1.0, 1.01, 0.99], [0.5, 0.52, 0.47]
    dtw_base, dtw_no_ema = [0.1, 0.11, 0.09], [0.1, 0.11, 0.1]
    study_of(tmp_path, {"baseline": base, "text_finetuned": [0.9, 1.1, 1.0], "no_ema": no_ema,
                        "wide": [1.5, 1.52, 1.47]},
             dtw_mje=[dtw_base, [0.1, 0.12, 0.09], dtw_no_ema, ["no poses"] * 3])  # fmt: skip
    df = collect(tmp_path, plots=False)
    assert list(df.variant) == ["baseline", "no_ema", "text_finetuned", "wide"]
    text = dict(zip(df.variant[1:], findings(df, "baseline"), strict=True))
    assert text["text_finetuned"].startswith(
        "Finetuning the text encoder (text_finetuned) changed the final loss from 1.0000 ± 0.0100 "
        "to 1.0000 ± 0.1000 (+0.0 %, paired t-test over n = 3 matched seeds: p = 1 (Holm-adjusted "
        "over 2 metrics; raw 1); sign-flip p = 1): no significant difference at the 5 % level; "
        "the DTW-MJE from"
    )
    assert "significant" not in text["text_finetuned"].replace("no significant", "")
    raw = stats.ttest_rel(no_ema, base).pvalue
    raw_dtw = stats.ttest_rel(dtw_no_ema, dtw_base).pvalue
    assert raw < raw_dtw  # Holm: the smaller p times 2 (two metrics in the family)
    d = (np.mean(no_ema) - 1) * 100
    assert text["no_ema"].startswith("Turning EMA off (no_ema) changed the final loss from")
    assert (f"({d:+.1f} %, ".replace("-", "−") + "paired t-test over n = 3 matched seeds: "
            f"p = {_fp(2 * raw)} (Holm-adjusted over 2 metrics; raw {_fp(raw)}); sign-flip "
            "p = 0.25): the final loss is significantly lower (better) at the 5 % level after "
            "Holm's correction") in text["no_ema"]  # fmt: skip
    assert "(one metric, no correction; raw" in text["wide"]
    assert "the final loss is significantly higher (worse) at the 5 % level;" not in text["wide"]
    assert text["wide"].endswith("the final loss is significantly higher (worse) at the 5 % "
                                 "level. Not available: DTW-MJE (no poses).")  # fmt: skip
    assert text["wide"].startswith("Variant wide changed")
    report = (tmp_path / "report.md").read_text()
    assert text["no_ema"] in report
    assert "Δ and tests against `baseline` (reference: baseline)." in report


def _gif(path: Path, colour: tuple[int, int, int], frames: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    video = np.zeros((frames, 16, 16, 3), np.uint8)
    video[:, :, :] = colour
    video[1::2, :, :8] = 255 - np.array(colour, np.uint8)  # odd frames differ: an animation
    iio.imwrite(path, video, duration=100, loop=0)


def test_report_has_sample_strips_metric_bars_and_weights(tmp_path, caplog):
    for variant, weights, colour in (
        ("baseline", "ema", (255, 0, 0)),
        ("no_ema", "raw", (0, 0, 255)),
    ):
        for seed in range(2):
            run = fake_run(tmp_path, variant, seed, final_loss=0.1 + seed / 10)
            fake_eval(run, weights=None, psnr=18.0 + seed, fvd="no I3D weights")
            _gif(run / "samples" / "s0.gif", colour)
            (run / "samples" / "index.json").write_text(json.dumps(
                {"files": ["s0.gif"], "captions": ["hello world"], "weights": weights}))  # fmt: skip
    (tmp_path / "no_ema" / "seed1" / "evaluation_metrics.json").write_text("{corrupt")
    fake_run(tmp_path, "text_finetuned", 0, final_loss=0.1)  # no samples: no strip
    with caplog.at_level("WARNING"):
        df = collect(tmp_path, plots=True).set_index("variant")
    assert "no_ema/seed1: corrupt evaluation_metrics.json" in caplog.text
    assert df.loc["no_ema", "psnr_n"] == 1 and df.loc["baseline", "psnr_n"] == 2
    assert df.weights.to_dict() == {"baseline": "ema", "no_ema": "raw", "text_finetuned": ""}
    md = (tmp_path / "comparison_table.md").read_text()
    assert [r[-1] for r in md_section(md, "Training")] == ["EMA", "raw", "unknown"]
    strip = iio.imread(tmp_path / "samples_no_ema.png")[..., :3]
    assert strip.shape[0] >= 64 and strip.shape[1] >= 8 * 64
    blue = np.all(strip == (0, 0, 255), axis=-1)
    assert blue.sum(axis=0).max() >= 64  # a 16 px frame, upscaled to >= 64 px tall
    assert not (tmp_path / "samples_text_finetuned.png").exists()
    report = (tmp_path / "report.md").read_text()
    assert "![samples_baseline.png](samples_baseline.png)" in report
    assert "`no_ema/seed0/samples/s0.gif` (raw weights)" in report
    assert "![metrics.png](metrics.png)" in report and (tmp_path / "metrics.png").stat().st_size
    assert "error bars: 95 % Student-t confidence interval" in report
    assert "Not plotted (N/A): FVD (no I3D weights; corrupt evaluation_metrics.json" in report


def test_audit_p_values_are_counted_per_seed_never_averaged(tmp_path):
    study_of(tmp_path, {"baseline": [0.2, 0.2], "no_ema": [0.2, 0.2]},
             audit_p=[[0.38, 0.007], [0.04, 0.0004]], audit_gap=[[0.002, 0.02], [0.01, 0.03]])  # fmt: skip
    df = collect(tmp_path, plots=False)
    assert "audit_p_mean" not in df.columns  # a mean of p-values means nothing
    assert list(df.audit_seeds_significant) == [1, 2] and list(df.audit_seeds_tested) == [2, 2]
    rows = md_section((tmp_path / "comparison_table.md").read_text(), "Evaluation")
    assert rows[0][-3] == "1/2 (p = 0.38, 0.007)" and rows[1][-3] == "2/2 (p = 0.04, 0.0004)"
    assert rows[0][-2] == "exact"  # DTW-MJE without a keypoints_source: the synthetic set


def test_the_table_and_report_say_which_keypoints_dtw_mje_compared(tmp_path):
    """Exact (synthetic) and estimated (MediaPipe) keypoints are told apart, per point."""
    for variant, source in (("baseline", "exact"), ("real", "estimated")):
        for seed in (0, 1):
            run = fake_run(tmp_path, variant, seed, final_loss=0.2)
            fake_eval(run, dtw_mje=0.1 + seed, audit_gap=0.05)
            ev = json.loads((run / "evaluation_metrics.json").read_text())
            (run / "evaluation_metrics.json").write_text(
                json.dumps({**ev, "keypoints_source": source})
            )
    df = collect(tmp_path, plots=False)
    assert list(df.keypoints) == ["exact", "estimated"]
    rows = md_section((tmp_path / "comparison_table.md").read_text(), "Evaluation")
    assert [r[-2] for r in rows] == ["exact", "estimated"]
    report = (tmp_path / "report.md").read_text()
    assert (
        "the synthetic set's exact keypoints (blob centres found by colour in the samples) (`baseline`)"
        in report
    )
    assert "keypoints estimated by MediaPipe Holistic on samples and references alike" in report
    assert "evaluation_metrics.json) (`real`)" in report

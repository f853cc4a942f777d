"""report.html: every seed visible, the tests beside them, failed and running runs said, the
videos side by side, no network; and in a real browser (tests/tools/browser.py)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from text2sign.evaluation import showcase
from text2sign.study.collect import collect
from text2sign.study.tables import fmt_p

from .test_collect import fake_run
from .test_collect_stats import fake_eval, study_of

LOSSES = {"baseline": [0.30, 0.32, 0.31], "no_ema": [0.28, 0.30, 0.27],
          "text_finetuned": [0.35, 0.33, 0.36]}  # fmt: skip
DTW = [[0.10, 0.12, 0.11], [0.09, 0.11, 0.10], [0.13, 0.12, 0.14]]


def _card(page: str, key: str) -> str:
    anchor = "metric-" + key.replace("_", "-")
    return page.split(f'id="{anchor}"')[1].split('<div class="card"')[0]


def test_every_seed_is_a_dot_joined_across_points_with_its_tests(tmp_path):
    study_of(tmp_path, LOSSES, dtw_mje=DTW)
    df = collect(tmp_path, plots=False).set_index("variant")
    page = (tmp_path / "report.html").read_text()
    card = _card(page, "dtw_mje")
    values = sorted(float(v) for v in re.findall(r'class="dot"[^>]*data-value="([^"]+)"', card))
    assert values == sorted(v for row in DTW for v in row)  # 3 points x 3 seeds, nothing averaged
    assert card.count("<line x1") >= 6  # each seed joined across the 3 points (2 segments x 3)
    assert 'href="no_ema/seed1/evaluation_metrics.json"' in card  # a dot leads to its run
    for point in ("no_ema", "text_finetuned"):
        p = fmt_p(df.loc[point], "dtw_mje", "p_holm")
        assert f"<td>{point}</td>" in card and f"<td>{p}</td>" in card
    head = page.split('id="headline-table"')[1].split("</table>")[0]
    assert f'data-mean="{float(df.loc["no_ema", "dtw_mje_mean"])!r}"' in head


def test_a_failed_run_is_a_row_with_its_reason_and_a_running_one_makes_the_page_partial(tmp_path):
    study_of(tmp_path, {"baseline": [0.3, 0.31]})
    fake_run(tmp_path, "no_ema", 0, state="FAILED")
    fake_run(tmp_path, "no_ema", 1, state="RUNNING")
    collect(tmp_path, plots=False)
    page = (tmp_path / "report.html").read_text()
    assert 'data-state="FAILED"' in page and "boom" in page
    assert "Partial page: 1 of 4 runs have not ended (no_ema/seed1 RUNNING)" in page
    study_of(tmp_path / "done", {"baseline": [0.3]})
    collect(tmp_path / "done", plots=False)
    assert "Partial page" not in (tmp_path / "done" / "report.html").read_text()


def test_the_page_needs_no_network_and_names_no_path_of_this_machine(tmp_path):
    study_of(tmp_path, LOSSES, dtw_mje=DTW)
    collect(tmp_path, plots=False)
    page = (tmp_path / "report.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and not [r for r in refs if re.match(r"[a-z]+://", r) or r.startswith("/")]
    assert str(tmp_path) not in page


def test_no_html_writes_no_page(tmp_path):
    study_of(tmp_path, {"baseline": [0.3]})
    collect(tmp_path, plots=False, html=False)
    assert not (tmp_path / "report.html").exists()


# ----------------------------------------------------------------------------------------------
# Videos side by side
# ----------------------------------------------------------------------------------------------

K, T = 2, 6


def videos_study(tmp_path, seeds=(0, 1), points=("baseline", "no_ema")):
    """Runs with real encoded eval videos, per-clip audit detail and DTW-MJE per seed."""
    rng = np.random.default_rng(0)
    for i, point in enumerate(points):
        for seed in seeds:
            run = fake_run(tmp_path, point, seed, final_loss=0.3 + 0.01 * seed)
            dtw = 0.1 + 0.01 * i + 0.02 * seed
            fake_eval(run, dtw_mje=dtw, eval_clips=4.0, eval_recordings=2.0, fvd="no I3D weights")
            ev = json.loads((run / "evaluation_metrics.json").read_text())
            per = {"correct": [0.1, 0.2, 0.15, 0.1], "shuffled": [0.3, 0.35, 0.2, None],
                   "empty": [0.4, 0.4, 0.3, 0.3]}  # fmt: skip
            ev["audit"] = {"per_video": per, "recordings": ["r0", "r0", "r1", "r1"],
                           "clustered_test": {"p": 0.25, "n_clusters": 2}}  # fmt: skip
            (run / "evaluation_metrics.json").write_text(json.dumps(ev))
            vids = {
                p: rng.integers(0, 255, (K, T, 16, 16, 3), dtype=np.uint8) for p in showcase.PASSES
            }
            clips = [{"name": f"clip{j}", "recording": f"r{j}", "caption": f"hello {j}",
                      "shuffled_caption": f"bye {j}", "dtw_mje": {"correct": dtw, "shuffled": 0.3}}
                     for j in range(K)]  # fmt: skip
            showcase.write(run, clips, vids, fps=8, step=20, weights="ema")
    return tmp_path


def test_each_point_shows_its_best_seed_unless_one_is_chosen(tmp_path):
    videos_study(tmp_path)
    collect(tmp_path, plots=False)
    page = (tmp_path / "report.html").read_text()
    assert page.count("<video") == K * (1 + 2 * 2)  # per clip: reference + 2 per point
    assert "baseline/seed0/eval_videos/clip00_correct.mp4" in page  # seed0: the lower DTW-MJE
    assert "seed0: the lowest DTW-MJE of 2 seeds" in page and "“hello 1”" in page
    assert "shuffled caption: “bye 0”" in page
    collect(tmp_path, plots=False, video_seed=1)
    page = (tmp_path / "report.html").read_text()
    assert "no_ema/seed1/eval_videos/clip01_shuffled.webm" in page and "seed1, as chosen" in page


def test_a_point_without_videos_says_why(tmp_path):
    videos_study(tmp_path, seeds=(0,), points=("baseline",))
    fake_run(tmp_path, "no_ema", 0, state="FAILED")
    collect(tmp_path, plots=False)
    page = (tmp_path / "report.html").read_text()
    assert "No videos of <code>no_ema</code>: seed0 FAILED: boom" in page


def test_the_page_in_a_real_browser(tmp_path, browser):
    videos_study(tmp_path)
    fake_run(tmp_path, "no_ema", 2, state="FAILED")
    collect(tmp_path, plots=False)
    check = browser.check_page(tmp_path / "report.html", "unit-study")
    browser.assert_page_ok(check, tmp_path / "comparison_table.csv", videos=K * (1 + 2 * 2))
    assert all(v["src"].endswith(".mp4") for v in check.videos)  # H.264 first, where it plays
    assert "boom" in check.text and check.load_ms < 1000
    df = pd.read_csv(tmp_path / "comparison_table.csv")
    assert len(check.table) == len(df) * 3  # final loss, DTW-MJE and FVD (N/A) per point
    assert "N/A baseline: no I3D weights" in check.text  # FVD: a card with the reason


@pytest.mark.parametrize("broken", ["missing video"])
def test_the_browser_check_catches_a_missing_video(tmp_path, browser, broken):
    videos_study(tmp_path, seeds=(0,), points=("baseline",))
    collect(tmp_path, plots=False)
    for f in (tmp_path / "baseline" / "seed0" / "eval_videos").glob("clip00_correct.*"):
        f.unlink()
    check = browser.check_page(tmp_path / "report.html", "unit-broken")
    with pytest.raises(AssertionError):
        browser.assert_page_ok(check, tmp_path / "comparison_table.csv")
    assert any("clip00_correct" in b for b in check.broken_links)

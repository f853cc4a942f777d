"""Evaluation on a real person's clips through the real trainer: the keypoints are estimated,
the samples saved, and a second evaluation scores the saved samples without sampling again."""

from __future__ import annotations

import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from tests.conftest import REPO, run_train, train_env
from text2sign.evaluation import overlay

pytestmark = pytest.mark.integration


def test_evaluation_on_real_people_estimates_keypoints_and_never_samples_twice(tmp_path, pose):
    from text2sign.data import person

    person.write_folder(tmp_path / "data", frames=8, size=64, signers=3)  # 24 clips, 3 signers
    run = tmp_path / "run"
    proc = run_train(run, tmp_path / "data", "data.image_size=64", "train.max_steps=2",
                     "eval.num_videos=3", "diffusion.sample_steps=2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((run / "evaluation_metrics.json").read_text())
    m = result["metrics"]
    assert result["keypoints_source"] == "estimated" and not result["samples_reused"]
    assert "MediaPipe Holistic" in result["audit"]["keypoints"]
    assert m["reference_pose_found_body"]["value"] == 1.0  # the astronaut is found at 64 px
    for key in ("dtw_mje", "dtw_mje_shuffled", "dtw_mje_empty", "pose_found_body"):
        assert m[key]["value"] is not None or m[key]["reason"], key  # measured, or N/A with why
    assert m["dtw_mje_clips"]["value"] == 3.0
    # what the numbers rest on: val holds 1 of the 3 signers (its recording): no test across
    # recordings, and the reason says so
    assert (m["eval_clips"]["value"], m["eval_recordings"]["value"], m["eval_signers"]["value"]) \
        == (3.0, 1.0, 1.0)  # fmt: skip
    assert result["clips"]["names"] == [n for n in result["clips"]["names"] if n.startswith("s")]
    assert m["audit_p"] == {"value": None,
                            "reason": "all 3 clips come from 1 recording: no test across recordings"}  # fmt: skip
    # the sources are 64 px like the model: native and cached frames are the same, floor 0
    assert m["dtw_mje_floor"]["value"] == 0.0 and m["dtw_mje_floor_clips"]["value"] == 3.0
    for part in ("body", "left_hand", "right_hand"):
        gap = m[f"detection_gap_{part}"]
        assert gap["value"] is not None and -1.0 <= gap["value"] <= 1.0, part
    # the report's videos: the skeleton MediaPipe found is drawn over the reference (upper body
    # yellow), and over nothing it did not find
    index = json.loads((run / "eval_videos" / "index.json").read_text())
    assert index["skeleton"] == "estimated" and len(index["clips"]) == 3
    clip = index["clips"][0]
    assert clip["detection"]["reference"]["body"] == 1.0 and clip["caption"]

    def yellow(name: str) -> np.ndarray:  # per frame, pixels of the body's colour after H.264
        f = iio.imread(run / "eval_videos" / clip["files"][name]["mp4"], index=None).astype(int)
        assert f.shape[1] >= 128
        return ((f[..., 0] > 170) & (f[..., 1] > 160) & (f[..., 2] < 110)).sum(axis=(1, 2))

    assert overlay.COLOURS["body"] == (255, 214, 0) and yellow("reference").min() > 10
    if clip["detection"]["correct"]["body"] == 0.0:  # no body found in the sample: none drawn
        assert yellow("correct").max() == 0
    samples = run / "eval_samples" / "videos.npy"
    assert samples.is_file() and len(list((run / "eval_samples" / "keypoints").glob("*.pose")))
    before = samples.stat().st_mtime_ns

    again = subprocess.run([sys.executable, "-m", "text2sign", "evaluate", "--run-dir", str(run)],
                           cwd=REPO, env=train_env(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((run / "evaluation_metrics.json").read_text())
    assert second["samples_reused"] and samples.stat().st_mtime_ns == before
    assert second["metrics"]["dtw_mje"] == m["dtw_mje"]  # the same samples, the same keypoints

"""The real trainer on an mp4 manifest: ``python -m text2sign train --profile tiny`` with
``data.root=<manifest.csv>`` over synthetic H.264 clips, decoded by FFmpeg (PyAV) into the cache,
sampled uniformly, with a bad row named and skipped, through training and the final evaluation;
and a manifest without a usable row is one line, exit 2, before any run state is written."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import read_metrics, run_train
from text2sign.data.synth import generate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mp4_manifest(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mp4set")
    generate(root, 48, frames=12, size=16, fmt="mp4")
    manifest = root / "manifest.csv"
    with open(manifest, "a") as f:
        f.write("gone.mp4,hello yes,s9\n")  # a row whose file is missing
    return manifest


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


def test_tiny_training_on_an_mp4_manifest(mp4_manifest, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(run_dir, mp4_manifest, "train.max_steps=6", "data.frame_sampling=uniform",
                     "eval.num_videos=2")  # fmt: skip
    _ok(proc)
    warned = [line for line in proc.stderr.splitlines() if "skipped 1 bad entries" in line]
    assert len(warned) == 2 and warned[0] == warned[1]  # opened for training, then evaluation
    assert warned[0].endswith("manifest.csv: manifest.csv line 50 (gone.mp4: file missing)")
    assert [int(r["step"]) for r in read_metrics(run_dir)] == list(range(1, 7))
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "COMPLETED" and status["step"] == 6
    result = json.loads((run_dir / "evaluation_metrics.json").read_text())
    # the synthetic set's exact keypoints, found beside each mp4 (<clip>.keypoints.json)
    assert result["keypoints_source"] == "exact" and result["metrics"]["dtw_mje"]["value"] >= 0
    # The decoded cache beside the manifest: every clip an mp4, sampled uniformly over 12 frames.
    folder = mp4_manifest.parent / ".t2s_cache"
    (cache,) = [p for p in folder.iterdir() if (p / "index.json").is_file()]  # one decoding
    index = json.loads((cache / "index.json").read_text())
    assert index["frame_sampling"] == "uniform" and len(index["samples"]) == 48
    assert {(r["kind"], r["frames"]) for r in index["samples"]} == {("mp4", 12)}
    assert index["skipped"] == []


def test_manifest_without_a_usable_row_fails_at_start_with_one_line(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,caption,signer\ngone.mp4,hello yes,s1\n")
    proc = run_train(tmp_path / "run", manifest, "train.max_steps=2")
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("text2sign: error:")]
    assert errors == [
        f"text2sign: error: no usable row in manifest {manifest} "
        "(1 bad: m.csv line 2 (gone.mp4: file missing))"
    ]

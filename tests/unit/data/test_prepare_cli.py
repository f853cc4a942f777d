"""``python -m text2sign data prepare`` without the pose estimator (``--no-keypoints``): shards
decoded by separate processes, merged by the last, a share of failed clips tolerated and named,
above it the task fails; progress lines with an ETA. The estimator's side: tests/pose."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from text2sign.data.cache import open_dataset
from text2sign.data.synth import generate


def prepare(root, *args, sets=()):
    cmd = [sys.executable, "-m", "text2sign", "data", "prepare", str(root), "--no-keypoints",
           "--workers", "2", *args]  # fmt: skip
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture
def mp4s(tmp_path):
    """40 synthetic mp4 clips (with exact keypoints: decoding only) and 2 that do not decode."""
    generate(tmp_path, 40, frames=6, size=16, fmt="mp4")
    for name in ("zz_bad1", "zz_bad2"):
        (tmp_path / f"{name}.mp4").write_bytes(b"\x00" * 300)
        (tmp_path / f"{name}.txt").write_text("hello yes")
    return tmp_path


def test_shards_prepared_apart_make_the_cache_training_opens(mp4s):
    sets = ["prepare.max_failed_share=0.1"]
    second = prepare(mp4s, "--task", "1", "--tasks", "2", sets=sets)
    assert second.returncode == 0, second.stderr
    assert "shard 2/2" in second.stdout and "(merged)" not in second.stdout
    assert "ETA" in second.stderr  # progress lines
    first = prepare(mp4s, "--task", "0", "--tasks", "2", sets=sets)
    assert first.returncode == 0, first.stderr
    assert "(merged)" in first.stdout  # the last task merges
    train, val = open_dataset(mp4s, num_frames=8, size=16, val_fraction=0.2)
    assert len(train.cache) == 40 and train.cache.path.name in first.stdout
    whole, _ = open_dataset(mp4s, num_frames=8, size=16, val_fraction=0.2,
                            cache_dir=mp4s / "elsewhere")  # built in one go  # fmt: skip
    assert np.array_equal(whole.cache.videos, train.cache.videos)


def test_failed_clips_above_the_share_fail_the_task_and_are_named(mp4s):
    """2 of 42 clips (4.8 %) fail to decode: within 5 % the task passes; one shard holds both
    (2 of 21: 9.5 %), so it fails unless the share allows it."""
    whole = prepare(mp4s)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert (
        "2 of 42 clips failed (4.8%" in whole.stdout and "failed to decode zz_bad1" in whole.stdout
    )
    shard = prepare(mp4s, "--task", "1", "--tasks", "2", sets=["data.cache_dir=" + str(mp4s / "c")])
    assert shard.returncode == 1 and "2 of 21 clips failed (9.5%" in shard.stdout
    assert "FAILED" in shard.stdout


def test_a_bad_task_number_is_one_line(mp4s):
    proc = prepare(mp4s, "--task", "3", "--tasks", "2")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "--task 3 is not one of 0..1" in proc.stderr

"""The prepare stage's estimator side, for real: shards estimated apart and merged, a clip that
kills the estimator tolerated within ``prepare.max_failed_share`` and failing the task above it,
a task killed mid-way resumed (its decoded shard and its finished keypoints kept), and a word
when the frames are too small for the estimator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, train_env
from text2sign.pose.extract import content_key
from text2sign.pose.worker import FAULT_ENV


def prepare_cmd(root, *args, size=64):
    return [sys.executable, "-m", "text2sign", "data", "prepare", str(root), "--profile", "tiny",
            "--set", f"data.image_size={size}", "--workers", "2", *args]  # fmt: skip


def prepare(root, *args, size=64, env=None):
    return subprocess.run(prepare_cmd(root, *args, size=size), cwd=REPO, env=env or train_env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture
def people(tmp_path):
    from text2sign.data import person

    person.write_folder(tmp_path / "d", frames=4, size=64, signers=2)  # 16 clips
    return tmp_path / "d"


def _keys(root) -> list[str]:
    from text2sign.data import open_dataset

    train, _ = open_dataset(root, num_frames=8, size=64, val_fraction=0.0)
    return [content_key(v) for v in np.load(train.cache.path / "videos.npy", mmap_mode="r")]


def test_two_shards_estimate_every_clip_once_and_merge(people, pose):
    for task in ("1", "0"):
        out = prepare(people, "--task", task, "--tasks", "2")
        assert out.returncode == 0, out.stdout + out.stderr[-2000:]
        assert "8 estimated" in out.stdout
    assert "(merged)" in out.stdout
    kp = people / ".t2s_cache" / "keypoints"
    assert sorted(p.stem for p in kp.glob("*.pose")) == sorted(_keys(people))


def test_a_clip_that_kills_the_estimator_is_left_out_within_the_share(people, pose):
    """One bad clip used to fail its worker's chunk, the stage, and so cancel every run."""
    keys = sorted(set(_keys(people)))  # decodes the cache (the stage then reuses it)
    env = {**train_env(), FAULT_ENV: keys[3]}
    tolerated = prepare(people, "--set", "prepare.max_failed_share=0.1", env=env)
    assert tolerated.returncode == 0, tolerated.stdout + tolerated.stderr[-2000:]
    assert "15 estimated" in tolerated.stdout and "1 failed" in tolerated.stdout
    assert f"keypoints failed {keys[3]}: pose worker exit -11" in tolerated.stdout
    assert "1 of 16 clips failed (6.2%; prepare.max_failed_share 10.0%): ok" in tolerated.stdout
    strict = prepare(people, "--set", "prepare.max_failed_share=0.05", env=env)
    assert strict.returncode == 1 and "FAILED" in strict.stdout  # 1/16 > 5 %: the stage fails


def test_a_killed_task_resumes_with_what_it_had_finished(people, pose):
    proc = subprocess.Popen(prepare_cmd(people, "--workers", "1"), cwd=REPO, env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    kp = people / ".t2s_cache" / "keypoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(kp.glob("*.pose"))) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # as SLURM kills a task at its time limit
    proc.wait()
    kept = len(list(kp.glob("*.pose")))
    assert 3 <= kept < 16
    again = prepare(people)
    assert again.returncode == 0, again.stdout + again.stderr[-2000:]
    assert "decoding" not in again.stderr  # the decoded shard was kept
    assert f"{16 - kept} estimated, {kept} already there" in again.stdout


def test_frames_too_small_for_the_estimator_say_so(people, pose):
    out = prepare(people, size=16)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "warning: keypoints at 16 px are noise: MediaPipe needs >= 64 px" in out.stdout

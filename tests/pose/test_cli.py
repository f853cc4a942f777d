"""``python -m text2sign data keypoints``: every clip once, resumable, and one line without the
pose environment."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, train_env


def keypoints(root, *extra, env=None):
    cmd = [sys.executable, "-m", "text2sign", "data", "keypoints", str(root), "--profile", "tiny",
           "--set", "data.image_size=64", *extra]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, env=env or train_env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_every_clip_is_estimated_once_and_a_rerun_finds_them(tmp_path, pose):
    from text2sign.data import person

    names = person.write_folder(tmp_path / "d", frames=4, size=64, signers=1)  # 8 clips
    first = keypoints(tmp_path / "d", "--workers", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"keypoints: {len(names)} clips" in first.stdout and "8 estimated" in first.stdout
    assert "found: body 100%" in first.stdout
    poses = list((tmp_path / "d" / ".t2s_cache" / "keypoints").glob("*.pose"))
    assert len(poses) == len(names)
    assert "clips (" in first.stderr  # progress
    again = keypoints(tmp_path / "d")
    assert again.returncode == 0 and "0 estimated, 8 already there" in again.stdout


def test_without_a_pose_environment_it_is_one_line_exit_2(tmp_path):
    from text2sign.data import person

    person.write_folder(tmp_path / "d", frames=2, size=32, signers=1)
    env = {**train_env(), "T2S_POSE_PYTHON": str(tmp_path / "nowhere" / "python")}
    out = keypoints(tmp_path / "d", env=env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no pose environment" in lines[0] and "make pose-venv" in lines[0]


def test_a_dataset_with_exact_keypoints_needs_no_estimation(tmp_path):
    from text2sign.data.synth import generate

    generate(tmp_path / "s", 6, frames=4, size=16)
    env = {**train_env(), "T2S_POSE_PYTHON": str(tmp_path / "nowhere" / "python")}
    out = keypoints(tmp_path / "s", env=env)  # no pose environment needed either
    assert out.returncode == 0 and "keypoints: not estimated (exact keypoints" in out.stdout

"""The keypoints stage of a study, planned at submit time: real signers get their keypoints first.

DTW-MJE and the conditioning audit need the reference clips' keypoints. The synthetic set carries
exact ones (``<clip>.keypoints.json``); any other dataset has them estimated by MediaPipe in the
pose environment (:mod:`text2sign.pose`). So that every run does not estimate the same clips
again inside its evaluation, a study on such data starts with a keypoints job array, one task per
distinct decoding of a dataset (root, frames, size, sampling, cache folder), running
``python -m text2sign data keypoints`` (cached by content: a task whose clips are all there ends in
seconds). The training arrays depend on it with ``afterok`` (and ``--kill-on-invalid-dep``): a
failed keypoints task cancels them, and the collector names the keypoints job as the reason.

Checked here, before anything is submitted: that the runs' environment has a pose environment
(the venv's ``-pose`` sibling, or the image's ``/opt/venv-pose`` by its labels); without one the
study could not score what it is asked to, so it is one line, exit 2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from jobs.container import ContainerSpec
from jobs.inputs import job_path
from jobs.spec import KeypointsSpec
from text2sign.config import Config
from text2sign.errors import UsageError

DECODING_KEYS = ("num_frames", "image_size", "frame_sampling", "cache_dir")


def exact_keypoints(cfg: Config, workdir: Path) -> bool:
    """The dataset carries exact keypoints (the synthetic set): its first sample has them."""
    from text2sign.data.samples import keypoints_path
    from text2sign.data.sources import first_valid_sample

    return keypoints_path(first_valid_sample(job_path(cfg.data.root, workdir)).source).is_file()


def decoding(cfg: Config) -> tuple:
    """What makes a keypoints task: the dataset and how its clips are decoded."""
    return (cfg.data.root, *(getattr(cfg.data, k) for k in DECODING_KEYS))


def check_pose_environment(container: ContainerSpec) -> None:
    """The runs can estimate keypoints: one line, exit 2, when they could not."""
    if container.runtime == "apptainer":
        labels = subprocess.run(["apptainer", "inspect", "--labels", container.image],
                                capture_output=True, text=True, timeout=60).stdout  # fmt: skip
        if "org.text2sign.pose.mediapipe" not in labels:
            raise UsageError(
                f"container image {container.image} has no pose environment (built before "
                "it had one?): rebuild it (make container / make container-cpu) or --set "
                "eval.enabled=false; DTW-MJE on real data needs MediaPipe"
            )
        return
    from text2sign.pose import env as pose_env

    found = pose_env.find()
    if not found.ok:
        raise UsageError(f"data.root holds no exact keypoints and {found.reason} (DTW-MJE on "
                         "real data needs MediaPipe; or --set eval.enabled=false)")  # fmt: skip


def stage_task(
    cfg: Config,
    *,
    study: str,
    profile: str,
    variant: str,
    overrides: tuple[str, ...],
    config_file: str | None,
    container: ContainerSpec,
    code: str | None,
    workdir: Path,
    input_check: bool,
) -> KeypointsSpec | None:
    """The keypoints task this run needs, or None (no evaluation, exact keypoints, or data that
    cannot be looked at here: ``--no-input-check``, when each run's evaluation estimates the
    keypoints it needs itself, cached by content all the same)."""
    if not cfg.eval.enabled or not input_check or exact_keypoints(cfg, workdir):
        return None
    check_pose_environment(container)
    d = cfg.data
    label = f"{d.root} at {d.num_frames} x {d.image_size} px, {d.frame_sampling}"
    return KeypointsSpec(study=study, root=d.root, profile=profile, variant=variant,
                         overrides=overrides, label=label, config_file=config_file,
                         container=container, workdir=str(workdir), code=code)  # fmt: skip

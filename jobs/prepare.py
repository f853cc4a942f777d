"""The prepare stage of a study, planned at submit time: real data is decoded and estimated first.

On real data (anything but the synthetic set, whose clips are small and carry exact keypoints)
a study starts with a prepare job array: per distinct decoding of a dataset (root, frames, size,
sampling, cache folder), ``prepare.tasks`` array tasks, each running
``python -m text2sign data prepare --task K --tasks N``: it decodes its shard of the clips into
the decoded cache with every CPU of its allocation and, when the runs evaluate, estimates the
shard's keypoints with MediaPipe (cached by content); the last task to finish merges the shards
(:mod:`text2sign.data.build`). A task whose shard is done ends in seconds, so a resubmitted
study only redoes what is missing. The training arrays depend on the stage with ``afterok``
(and ``--kill-on-invalid-dep``): a task fails only when more than ``prepare.max_failed_share``
of its clips failed (the others are named and left out), and then the collector names the job
as the reason the runs never started.

Checked here, before anything is submitted: that the runs' environment has a pose environment
(the venv's ``-pose`` sibling, or the image's ``/opt/venv-pose`` by its labels) when keypoints
are needed; without one the study could not score what it is asked to, so it is one line, exit 2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from jobs.container import ContainerSpec
from jobs.inputs import job_path
from jobs.spec import PrepareSpec
from text2sign.config import Config
from text2sign.errors import UsageError

DECODING_KEYS = ("num_frames", "image_size", "frame_sampling", "cache_dir")


def exact_keypoints(cfg: Config, workdir: Path) -> bool:
    """The dataset carries exact keypoints (the synthetic set): its first sample has them."""
    from text2sign.data.samples import keypoints_path
    from text2sign.data.sources import first_valid_sample

    return keypoints_path(first_valid_sample(job_path(cfg.data.root, workdir)).source).is_file()


def decoding(cfg: Config) -> tuple:
    """What makes a prepare task: the dataset and how its clips are decoded."""
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


def stage_tasks(
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
) -> list[PrepareSpec]:
    """The prepare tasks this run's data needs: none for the synthetic set (exact keypoints,
    small) or for data that cannot be looked at here (``--no-input-check``: each run then
    decodes, and its evaluation estimates, what it needs itself, cached all the same)."""
    if not input_check or exact_keypoints(cfg, workdir):
        return []
    keypoints = cfg.eval.enabled
    if keypoints:
        check_pose_environment(container)
    d, n = cfg.data, cfg.prepare.tasks
    label = f"{d.root} at {d.num_frames} x {d.image_size} px, {d.frame_sampling}"
    return [PrepareSpec(study=study, root=d.root, profile=profile, variant=variant,
                        overrides=overrides, label=label + (f", shard {k + 1}/{n}" if n > 1 else ""),
                        config_file=config_file, container=container, workdir=str(workdir),
                        code=code, task=k, tasks=n, keypoints=keypoints)
            for k in range(n)]  # fmt: skip

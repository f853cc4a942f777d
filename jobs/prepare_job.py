"""A task of a study's prepare stage, on the compute node (host side, as the launchers).

It runs ``python -m text2sign data prepare ROOT --task K --tasks N`` for its dataset, decoding
and shard (in the image when the runs use one) as a child process, with the study's code
snapshot first on ``PYTHONPATH``, and ends with its exit code: 0 when the shard is decoded and
(with keypoints) estimated, failures within ``prepare.max_failed_share`` named and left out;
non-zero otherwise, which SLURM's ``afterok`` turns into cancelled training arrays.

    python -m jobs.prepare_job TASKS_JSON    (plain sbatch: array task $SLURM_ARRAY_TASK_ID)

The submitit door wraps :func:`run` as :class:`jobs.launcher.PrepareJob`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jobs.spec import PrepareSpec, describe, prepare_argv, prepare_from_dict, trainer_env


def run(spec: PrepareSpec) -> int:
    """Prepare one shard of one dataset decoding; the child's exit code."""
    argv = prepare_argv(spec)
    print(f"[prepare] {spec.label}: {describe(argv)}", flush=True)
    env = trainer_env(spec, dict(os.environ))  # the snapshot first, as for a trainer
    return subprocess.run(argv, cwd=spec.workdir, env=env).returncode


def read_task(path: Path, index: int) -> PrepareSpec:
    return prepare_from_dict(json.loads(Path(path).read_text())["tasks"][index])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m jobs.prepare_job TASKS_JSON", file=sys.stderr)
        return 2
    index = int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
    return run(read_task(Path(args[0]), index))


if __name__ == "__main__":
    sys.exit(main())

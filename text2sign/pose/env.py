"""Where the pose environment is: a Python that can import mediapipe and pose_format.

In order: ``T2S_POSE_PYTHON``; else the sibling of the running environment with ``-pose`` added
(``.venv`` → ``.venv-pose`` from ``make pose-venv``, ``/opt/venv`` → ``/opt/venv-pose`` in the
images). A job started from a study's code snapshot runs the checkout's ``.venv`` Python, so its
sibling is found too. Absent or broken, :func:`find` says why in one line: the keypoints step
names it, evaluation reports the pose metrics N/A with that reason.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "T2S_POSE_PYTHON"
PROBE = (
    "import mediapipe, pose_format.utils.holistic; from importlib.metadata import version; "
    'print(version("mediapipe"), version("pose-format"))'
)


@dataclass(frozen=True)
class PoseEnv:
    """A pose Python that answered, or the reason there is none (``python`` is then None)."""

    python: str | None
    versions: str = ""  # "mediapipe X pose-format Y"
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.python is not None


def candidates(environ: dict[str, str] | None = None, prefix: str | None = None) -> list[Path]:
    """Where to look, first match wins (pure: testable)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR):
        return [Path(env[ENV_VAR])]
    here = Path(prefix or sys.prefix)
    return [here.with_name(here.name + "-pose") / "bin" / "python"]


@functools.cache
def _probe(python: str) -> tuple[str, str]:
    """(versions, error): run the probe once per interpreter and process."""
    try:
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "", f"{python} does not run: {e}"
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return "", f"{python} cannot import mediapipe/pose_format: {last}"
    mp, pf = out.stdout.split()
    return f"mediapipe {mp}, pose-format {pf}", ""


def find(environ: dict[str, str] | None = None, prefix: str | None = None) -> PoseEnv:
    """The pose environment of this process, or the one-line reason it has none."""
    paths = candidates(environ, prefix)
    for path in paths:
        if path.exists():
            versions, error = _probe(str(path))
            return PoseEnv(str(path), versions) if not error else PoseEnv(None, reason=error)
    where = ", ".join(str(p) for p in paths)
    return PoseEnv(
        None, reason=f"no pose environment at {where}: run `make pose-venv` or set {ENV_VAR}"
    )

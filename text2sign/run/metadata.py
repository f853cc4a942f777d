"""Provenance of a run: code version, host, library versions, devices."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import text2sign
from text2sign import __version__
from text2sign.run.rundir import now_iso

PACKAGE = Path(text2sign.__file__).resolve().parent  # text2sign/ of the checkout or snapshot


def git_info(path: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the checkout holding the package (``unknown`` outside git).

    A package imported from a study's code snapshot (``jobs/snapshot.py``: ``CODE.json`` at its
    root) reports the snapshot's record: it lies inside ``results/`` of some checkout, whose
    HEAD at run time says nothing about the code that runs."""
    if path is None:
        frozen = PACKAGE.parent / "CODE.json"
        if frozen.is_file():
            import json

            code = json.loads(frozen.read_text())
            return {"commit": code.get("commit", "unknown"), "dirty": code.get("dirty"),
                    "diff_sha256": code.get("diff_sha256"), "snapshot": str(frozen.parent)}  # fmt: skip
    where = str(path or PACKAGE)
    try:
        commit = subprocess.run(
            ["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": "unknown", "dirty": None}
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": "unknown", "dirty": None}


def versions() -> dict[str, str]:
    import torch

    out = {"python": sys.version.split()[0], "text2sign": __version__, "torch": torch.__version__}
    for name in ("deepspeed", "transformers", "tokenizers", "numpy", "av"):  # av: the decoder
        try:
            out[name] = __import__(name).__version__
        except Exception:
            out[name] = "not installed"
    return out


def torch_gpus() -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def container_info() -> dict[str, Any]:
    """Whether this process runs inside an Apptainer image, and which (its env vars say so)."""
    image = os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER")
    if not image:
        return {"runtime": "none"}
    return {
        "runtime": "apptainer",
        "image": image,
        "name": os.environ.get("APPTAINER_NAME") or os.environ.get("SINGULARITY_NAME"),
        "sha256": os.environ.get("T2S_IMAGE_SHA256"),  # passed by jobs/container.py
        "commit": os.environ.get("T2S_IMAGE_COMMIT"),  # the image's build commit (%environment)
    }


def collect_metadata(env, telemetry, counts: dict[str, int], run_dir: Path) -> dict[str, Any]:
    return {
        "git": git_info(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "container": container_info(),
        "versions": versions(),
        "gpus_torch": torch_gpus(),
        "world_size": env.world_size,
        "backend": env.backend,
        "device": str(env.device),
        "telemetry": telemetry.metadata(),
        "parameters": counts,
        "started_at": now_iso(),
        "ended_at": None,
        "wall_time_s": None,
        "run_dir": run_dir.name,
    }

"""The container runtime of a run: what is bound, the ``apptainer exec`` command, image checks.

A run in a container starts, on the compute node (host side, after submitit and srun), as

    apptainer exec [--nv] --bind RESULTS,DATA,HF_CACHE:/hf_cache[,EXTRA] \\
        --env HF_HOME=/hf_cache --env PYTHONSAFEPATH=1 ... IMAGE.sif python -m text2sign train ...

* Results and data are bound at their own paths, so every path in the config, the run dir and
  the study means the same inside and outside the image. A manifest's data is its folder and
  the folders its videos lie in, merged into a few roots (:func:`text2sign.data.sources.data_folders`:
  at most 8 binds, however many frame folders); a folder reached through a link is bound at
  the path the manifest uses. ``data.cache_dir``, when set, is bound too (created first).
* The host HF cache is bound at the image's fixed ``/hf_cache`` and ``HF_HOME`` is passed with
  ``--env`` (which overrides the image's ``%environment``; a plain host variable would not). A
  default cache that does not exist is not bound (Apptainer refuses a missing bind source); one
  the user named must exist.
* ``PYTHONSAFEPATH=1`` and an empty ``PYTHONPATH``: the trainer imports the *image's* package,
  never the host checkout that is the working directory and the host's PYTHONPATH.
* ``--nv`` only when the run asks for GPUs.

``check_image()`` validates an image before anything is submitted (a missing file, no apptainer
on PATH, not a SIF, or an image ``apptainer inspect`` rejects is a one-line usage error).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from text2sign.data.sources import data_folders
from text2sign.errors import UsageError

HF_CACHE_TARGET = "/hf_cache"  # where the images look for the HF cache (HF_HOME)
SIF_MAGIC = b"SIF_MAGIC"  # at byte 32 of every SIF, after the "#!/usr/bin/env run-singularity" line
SIF_MAGIC_OFFSET = 32
INSPECT_TIMEOUT_S = 60


@dataclass(frozen=True)
class ContainerSpec:
    """How the trainer is started: ``none`` (host Python) or ``apptainer`` (an image)."""

    runtime: str = "none"
    image: str | None = None
    binds: tuple[str, ...] = ()  # "SRC" (same path inside) or "SRC:DST[:OPTS]"
    gpus: bool = False
    sha256: str | None = None  # of the image at submission; recorded in each run's metadata


def container_argv(container: ContainerSpec, argv: list[str]) -> list[str]:
    """Wrap ``argv`` in ``apptainer exec`` (or return it unchanged for runtime ``none``)."""
    if container.runtime == "none":
        return argv
    if container.runtime != "apptainer":
        raise ValueError(f"unknown container runtime {container.runtime!r}")
    if not container.image:
        raise ValueError("container.runtime is apptainer but container.image is not set")
    wrapped = ["apptainer", "exec"]
    if container.gpus:
        wrapped.append("--nv")  # NVIDIA driver libraries and devices into the container
    if container.binds:
        wrapped += ["--bind", ",".join(container.binds)]
    env = [f"HF_HOME={HF_CACHE_TARGET}", "PYTHONSAFEPATH=1", "PYTHONPATH="]
    if container.sha256:
        env.append(f"T2S_IMAGE_SHA256={container.sha256}")
    for item in env:
        wrapped += ["--env", item]
    return wrapped + [container.image] + argv


def default_hf_cache() -> str:
    """The host HF cache a run would use: $HF_HOME, else ~/.cache/huggingface."""
    return os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")


def _bind(folder: Path) -> str:
    """``SRC`` bound at its own path, or ``REAL:AS_WRITTEN`` for a folder reached by a link."""
    real = folder.resolve()
    return str(real) if real == folder else f"{real}:{folder}"


def binds(
    *, results: Path, data_root: str, hf_cache: str | None, extra: list[str],
    cache_dir: str | None = None,
) -> tuple[str, ...]:  # fmt: skip
    """The bind list of a container run; every source must exist (results is created later)."""
    data = Path(os.path.abspath(data_root))
    if not data.exists():
        raise UsageError(f"data.root {data_root} does not exist (it is bound into the container)")
    # A manifest: its folder and the folders of its videos (missing ones are skipped rows).
    folders = [f for f in data_folders(data) if f.exists()]
    out = [str(results.resolve()), *map(_bind, folders)]
    if cache_dir:
        cache = Path(os.path.abspath(cache_dir))
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(
                f"data.cache_dir {cache_dir}: cannot create it: {e.strerror}"
            ) from None
        out.append(_bind(cache))
    hf = hf_cache or default_hf_cache()
    if Path(hf).is_dir():
        out.append(f"{Path(hf).resolve()}:{HF_CACHE_TARGET}")
    elif hf_cache:
        raise UsageError(f"container.hf_cache {hf_cache} does not exist (create or fill it first)")
    for item in extra:
        src = item.split(":", 1)[0]
        if not src or not Path(src).exists():
            raise UsageError(f"container.binds: bind source {src!r} does not exist")
        out.append(item)
    return tuple(dict.fromkeys(out))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_image(image: str) -> str:
    """Validate an Apptainer image for submission; returns its sha256 (UsageError otherwise)."""
    path = Path(image)
    if not path.is_file():
        raise UsageError(f"container image {image} not found: build it with `make container`")
    if shutil.which("apptainer") is None:
        raise UsageError(
            "--runtime apptainer: no apptainer on PATH (load the site module, or `make apptainer`)"
        )
    with open(path, "rb") as f:
        head = f.read(SIF_MAGIC_OFFSET + len(SIF_MAGIC))
    if head[SIF_MAGIC_OFFSET:] != SIF_MAGIC:
        raise UsageError(f"container image {image} is not a SIF file (build it with apptainer)")
    try:
        proc = subprocess.run(["apptainer", "inspect", str(path)], capture_output=True, text=True,
                              timeout=INSPECT_TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise UsageError(f"container image {image}: apptainer inspect timed out") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise UsageError(f"container image {image}: apptainer inspect failed: {why}")
    return sha256(path)

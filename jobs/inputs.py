"""What a study reads, checked on the submitting host before anything is submitted.

A missing dataset folder or manifest, one without a sample that decodes (the check stops at the
first that does), or a text encoder that is neither a local folder nor in the HF cache is one line and exit 2 here, instead
of every array task failing on a compute node. Where the data or the HF cache is mounted only on
the compute nodes, ``--no-input-check`` skips these checks (the error says so).
"""

from __future__ import annotations

import os
from pathlib import Path

from text2sign.config import Config
from text2sign.errors import UsageError

SKIP_HINT = "(mounted only on the compute nodes? pass --no-input-check)"


def job_path(path: str, workdir: Path) -> Path:
    """A config path as the job will see it: relative paths are relative to the job's workdir."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else workdir / p


def check_data(cfg: Config, workdir: Path) -> None:
    from text2sign.data.sources import first_valid_sample

    try:
        first_valid_sample(job_path(cfg.data.root, workdir))
    except UsageError as e:
        raise UsageError(f"data.root: {e} {SKIP_HINT}") from None


def hf_cache_dir(cfg: Config) -> Path:
    home = cfg.container.hf_cache or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    return Path(home).expanduser() / "hub"


def check_text_encoder(cfg: Config, workdir: Path) -> None:
    """``tiny`` needs nothing; a path must be a saved model; a hub id must be in the HF cache."""
    name = cfg.text.encoder
    if name == "tiny":
        return
    if name.startswith(("/", ".", "~")) or job_path(name, workdir).exists():
        folder = job_path(name, workdir)
        if not (folder / "config.json").is_file():
            raise UsageError(
                f"text.encoder: {folder} is not a saved model (no config.json) {SKIP_HINT}"
            )
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(
        try_to_load_from_cache(name, "config.json", cache_dir=hf_cache_dir(cfg)), str
    ):
        raise UsageError(
            f"text.encoder: {name!r} is not in the HF cache {hf_cache_dir(cfg)}: pre-fill it "
            f"(huggingface-cli download {name}) or give a local path {SKIP_HINT}"
        )


def check_inputs(cfg: Config, workdir: Path) -> None:
    check_data(cfg, workdir)
    check_text_encoder(cfg, workdir)

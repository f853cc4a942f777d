"""What a study reads, checked on the submitting host before anything is submitted.

A missing dataset folder or manifest, one without a sample that decodes (the check stops at the
first that does), or a text encoder that is neither a local folder nor in the HF cache is one line and exit 2 here, instead
of every array task failing on a compute node. Where the data or the HF cache is mounted only on
the compute nodes, ``--no-input-check`` skips these checks (the error says so). The embedded
synthetic dataset (the default ``data.root``, ``data/synth``) is generated when it is missing,
as ``make data`` does (not by a dry run, whose error says ``make data``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from text2sign.config import Config
from text2sign.errors import UsageError

SKIP_HINT = "(mounted only on the compute nodes? pass --no-input-check)"
EMBEDDED_ROOT = "data/synth"  # base.yaml's data.root: the synthetic set the package generates
COMPLETE = ".complete"  # written last, as by `make data`
SYNTH_CLIPS = 384  # `python -m text2sign data synth`'s default, what `make data` generates


def job_path(path: str, workdir: Path) -> Path:
    """A config path as the job will see it: relative paths are relative to the job's workdir."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else workdir / p


def embedded_data(cfg: Config, workdir: Path) -> None:
    """Generate the embedded synthetic dataset when ``data.root`` is its default and missing."""
    root = job_path(cfg.data.root, workdir)
    if cfg.data.root != EMBEDDED_ROOT or root.exists():
        return
    from text2sign.data.synth import generate

    print(f"submit: generating the embedded synthetic dataset in {root} (as `make data` does)",
          file=sys.stderr, flush=True)  # fmt: skip
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synth.", dir=root.parent))
    try:
        generate(tmp, SYNTH_CLIPS)
        (tmp / COMPLETE).touch()
        tmp.rename(root)
    except OSError:
        if not root.is_dir():  # else a concurrent submission generated it first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_data(cfg: Config, workdir: Path) -> None:
    from text2sign.data.sources import first_valid_sample

    try:
        first_valid_sample(job_path(cfg.data.root, workdir))
    except UsageError as e:
        embedded = "(`make data` generates the embedded synthetic set there)"
        hint = embedded if cfg.data.root == EMBEDDED_ROOT else SKIP_HINT
        raise UsageError(f"data.root: {e} {hint}") from None


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


def check_inputs(cfg: Config, workdir: Path, *, generate: bool = True) -> None:
    if generate:
        embedded_data(cfg, workdir)
    check_data(cfg, workdir)
    check_text_encoder(cfg, workdir)

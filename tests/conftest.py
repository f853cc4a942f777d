"""Shared fixtures: a small synthetic dataset and a runner for real training subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Every test process runs offline and single-threaded (2-core CI machine; ranks share it).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Small, fast settings shared by every training run in the tests.
TINY_TEST_SETS = [
    "train.batch_size=4",
    "train.log_every=2",
    "train.num_samples=2",
    "train.warmup_steps=0",
    "diffusion.sample_steps=4",
    "telemetry.interval_s=0.2",
    "eval.num_videos=4",
    "eval.timing_videos=1",
]


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """96 synthetic clips (6 signers), generated once per test session."""
    from text2sign.data.synth import generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, 96, frames=8, size=16, seed=0)
    return root


def train_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", PYTHONUNBUFFERED="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def train_cmd(run_dir: Path, data: Path, *sets: str, nproc: int = 1, variant: str = "baseline"):
    """The real CLI: ``python -m text2sign train``, under torchrun when ``nproc > 1``."""
    launcher = [sys.executable, "-m", "text2sign"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={nproc}", "-m", "text2sign"]  # fmt: skip
    args = ["train", "--profile", "tiny", "--variant", variant, "--run-dir", str(run_dir)]
    sets_args = [x for s in [*TINY_TEST_SETS, f"data.root={data}", *sets] for x in ("--set", s)]
    return launcher + args + sets_args


def run_train(run_dir: Path, data: Path, *sets: str, nproc: int = 1, variant: str = "baseline",
              timeout: int = 420) -> subprocess.CompletedProcess:  # fmt: skip
    return subprocess.run(
        train_cmd(run_dir, data, *sets, nproc=nproc, variant=variant),
        cwd=REPO, env=train_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(run_dir / "training_metrics.csv", newline="") as f:
        return list(csv.DictReader(f))

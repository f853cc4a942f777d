"""GPU tests (``pytest -m gpu``): run by ``make gpu-check`` on a CUDA machine.

Without CUDA they are collected and skipped with the reason; with ``T2S_REQUIRE_GPU=1`` (what
``make gpu-check`` sets once it has seen a GPU) a missing GPU is a failure, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, TINY_TEST_SETS


@pytest.fixture(scope="session")
def cuda() -> torch.device:
    if not torch.cuda.is_available():
        if os.environ.get("T2S_REQUIRE_GPU") == "1":
            pytest.fail("T2S_REQUIRE_GPU=1 but torch sees no CUDA device")
        pytest.skip("no CUDA (make gpu-check runs these on a GPU machine)")
    return torch.device("cuda", 0)


def gpu_env() -> dict[str, str]:
    """The trainer's environment on a GPU: no CPU accelerator forced, offline, few threads."""
    env = {k: v for k, v in os.environ.items() if k not in ("DS_ACCELERATOR", "RANK", "WORLD_SIZE",
                                                            "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}  # fmt: skip
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="4", PYTHONUNBUFFERED="1")
    return env


def gpu_train_cmd(run_dir: Path, data: Path, *sets: str) -> list[str]:
    args = ["train", "--profile", "tiny", "--variant", "baseline", "--run-dir", str(run_dir)]
    all_sets = [*TINY_TEST_SETS, f"data.root={data}", "train.precision=bf16", "train.zero_stage=2",
                *sets]  # fmt: skip
    return [sys.executable, "-m", "text2sign", *args] + [x for s in all_sets for x in ("--set", s)]


def run_gpu(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=gpu_env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip

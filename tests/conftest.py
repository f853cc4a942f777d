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
    """96 synthetic clips (32 signers, 3 clips each), generated once per test session."""
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


@pytest.fixture(scope="session")
def person_manifest(tmp_path_factory) -> Path:
    """Real-person clips (skimage's astronaut under 8 camera motions, 2 signers) as H.264 .mp4
    files and a CSV manifest over them: a dataset without exact keypoints."""
    from text2sign.data import person
    from text2sign.data.writers import write_video

    root = tmp_path_factory.mktemp("person_mp4")
    rows = ["video,caption,signer"]
    for k, offset in enumerate(((-8.0, 0.0), (8.0, 6.0))):
        for motion in person.MOTIONS:
            name = f"s{k}_{motion.replace(' ', '_')}"
            write_video(root / "clips" / name, person.clip(motion, 8, 64, offset), "mp4")
            rows.append(f"clips/{name}.mp4,{motion},s{k}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


@pytest.fixture(scope="session")
def fullsize_phoenix(tmp_path_factory) -> Path:
    """PHOENIX-2014T's train split at its real size (7,096 frame folders of count-only clips, 9
    signers) on "shared storage", imported into a manifest in another folder (the project):
    the manifest's path. About 10 s, once per test process."""
    from text2sign.data import fullsize
    from text2sign.data.importers import import_phoenix

    store, project = tmp_path_factory.mktemp("store"), tmp_path_factory.mktemp("project")
    fullsize.phoenix(store / "PHOENIX-2014-T")
    manifest = project / "phoenix-train.csv"
    import_phoenix(store / "PHOENIX-2014-T", "train", manifest)
    return manifest


@pytest.fixture(scope="session")
def fullsize_how2sign(tmp_path_factory) -> Path:
    """How2Sign's train split at its real size (31,128 sentence clips, count-only) on "shared
    storage", imported into a manifest in another folder: the manifest's path (~15 s)."""
    from text2sign.data import fullsize
    from text2sign.data.importers import import_how2sign

    store, project = tmp_path_factory.mktemp("store"), tmp_path_factory.mktemp("project")
    made = fullsize.how2sign(store / "how2sign")
    manifest = project / "how2sign-train.csv"
    import_how2sign(made.annotations, manifest, clips=made.clips)
    return manifest


@pytest.fixture(scope="session")
def pose():
    """The pose environment (``make pose-venv``): tests that need it skip with the reason, or
    fail under ``T2S_REQUIRE_POSE=1`` (CI), like every other component."""
    from text2sign.pose import env as pose_env

    found = pose_env.find()
    if not found.ok:
        if os.environ.get("T2S_REQUIRE_POSE") == "1":
            pytest.fail(f"T2S_REQUIRE_POSE=1 but {found.reason}")
        pytest.skip(f"{found.reason}; set T2S_REQUIRE_POSE=1 to make this a failure")
    return found


@pytest.fixture(scope="session")
def browser():
    """A real browser (system Chromium through Playwright, ``tests/tools/browser.py``): tests
    that need it skip with the reason, or fail under ``T2S_REQUIRE_BROWSER=1`` (CI)."""
    from tests.tools import browser as browser_mod

    why = browser_mod.missing()
    if why:
        if os.environ.get("T2S_REQUIRE_BROWSER") == "1":
            pytest.fail(f"T2S_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(f"{why}; set T2S_REQUIRE_BROWSER=1 to make this a failure")
    return browser_mod

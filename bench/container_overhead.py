"""Container overhead: a tiny training step in the CPU image vs on the host, and start-up time.

Both sides run the same worker (the tiny DiT: forward, MSE, backward, AdamW) in a fresh
process, the host with this venv's Python, the image with ``apptainer exec`` as the launcher
starts it (jobs/container.py); rounds alternate host, image, host, image, ... so both share the
machine's load. Start-up: ``apptainer exec IMAGE python -c pass`` vs ``python -c pass``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Goal, Section, median, spread
from jobs.container import ContainerSpec, container_argv

REPO = Path(__file__).resolve().parents[1]
IMAGE = Path(os.environ.get("T2S_CPU_IMAGE", REPO / "containers" / "text2sign-cpu.sif"))


def _shown(path: Path) -> str:
    """A path as BENCHMARKS.md may show it: relative to the repo, never this machine's layout."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


ROUNDS, WARMUP, STEPS, STARTS = 5, 3, 15, 10
BATCH, FRAMES, SIZE, TEXT_LEN, TEXT_DIM = 8, 8, 16, 16, 64
GOAL = 1.05

WORKER = f"""
import json, time, torch, torch.nn.functional as F
from text2sign.models.dit import DIT_PRESETS, VideoDiT
torch.manual_seed(0)
model = VideoDiT(DIT_PRESETS["tiny"], num_frames={FRAMES}, image_size={SIZE}, text_dim={TEXT_DIM})
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
x = torch.randn({BATCH}, {FRAMES}, 3, {SIZE}, {SIZE})
t = torch.randint(0, 50, ({BATCH},))
text = torch.randn({BATCH}, {TEXT_LEN}, {TEXT_DIM})
mask = torch.ones({BATCH}, {TEXT_LEN}, dtype=torch.bool)
times = []
for i in range({WARMUP} + {STEPS}):
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    F.mse_loss(model(x, t, text, mask), x).backward()
    opt.step()
    times.append(time.perf_counter() - start)
print(json.dumps({{"times": times[{WARMUP}:], "torch": torch.__version__,
                  "threads": torch.get_num_threads()}}))
"""


def _in_image(argv: list[str]) -> list[str]:
    return container_argv(ContainerSpec("apptainer", str(IMAGE)), argv)


def _worker(argv: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - start


def run() -> Section:
    """Step-time ratio image/host (goal <= 1.05) and the start-up cost of ``apptainer exec``."""
    start = time.perf_counter()
    method = (
        f"Tiny DiT, {FRAMES}x{SIZE}x{SIZE}, batch {BATCH}: forward, MSE, backward, AdamW step. "
        f"{ROUNDS} rounds alternating host / image, each a fresh process timing {STEPS} steps "
        f"after {WARMUP} warm-up steps; medians over all timed steps. Start-up: {STARTS} "
        "alternating wall times of `python -c pass` (host venv) and `apptainer exec IMAGE "
        "python -c pass` (the launcher's flags)."
    )
    if shutil.which("apptainer") is None or not IMAGE.is_file():
        return Section(title="Container overhead (Apptainer, CPU image)", method=method,
                       columns=["side", "value"], rows=[], seconds=time.perf_counter() - start,
                       goals=[Goal(metric="image / host step time", value="not measured",
                                   goal=f"<= {GOAL}", met=None)],
                       notes=[f"not measured: needs apptainer and {_shown(IMAGE)} "
                              "(make apptainer container-cpu)"])  # fmt: skip
    host_py = [sys.executable, "-c"]
    steps: dict[str, list[float]] = {"host": [], "image": []}
    info: dict[str, dict] = {}
    for _ in range(ROUNDS):
        for side, argv in (
            ("host", host_py + [WORKER]),
            ("image", _in_image(["python", "-c", WORKER])),
        ):
            info[side] = _worker(argv)
            steps[side] += info[side]["times"]
    starts: dict[str, list[float]] = {"host": [], "image": []}
    for _ in range(STARTS):
        starts["host"].append(_wall([sys.executable, "-c", "pass"]))
        starts["image"].append(_wall(_in_image(["python", "-c", "pass"])))
    h, i = median(steps["host"]), median(steps["image"])
    sh, si = median(starts["host"]), median(starts["image"])
    ratio = i / h
    size = IMAGE.stat().st_size / 2**20
    return Section(
        title="Container overhead (Apptainer, CPU image)",
        method=method,
        columns=["side", "train step median (min-max)", "start-up median (min-max)", "torch"],
        rows=[
            [
                "host venv",
                f"{h * 1e3:.1f} ms ({spread(steps['host'])})",
                f"{sh * 1e3:.0f} ms ({spread(starts['host'])})",
                info["host"]["torch"],
            ],
            [
                "CPU image",
                f"{i * 1e3:.1f} ms ({spread(steps['image'])})",
                f"{si * 1e3:.0f} ms ({spread(starts['image'])})",
                info["image"]["torch"],
            ],
        ],  # fmt: skip
        goals=[
            Goal(
                metric="image / host train step time",
                value=f"{ratio:.3f}",
                goal=f"<= {GOAL}",
                met=ratio <= GOAL,
            ),
            Goal(
                metric="apptainer exec start-up minus bare python",
                value=f"{(si - sh) * 1e3:.0f} ms",
                goal="none",
                met=None,
            ),
        ],  # fmt: skip
        notes=[
            f"Image {IMAGE.name}: {size:.0f} MiB; torch threads per process: "
            f"{info['image']['threads']} (host {info['host']['threads']}).",
            "The start-up cost is paid once per job (the trainer is one long process).",
        ],
        seconds=time.perf_counter() - start,
    )

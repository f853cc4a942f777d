"""The EMA built from a DeepSpeed engine (2 CPU ranks, gloo, tiny DiT; ``bench.ema_worker``).

Guarantees shown here:
* at ZeRO 0, 1, 2 and 3 (bf16, and fp32 at ZeRO-2) the EMA after 4 steps equals an unsharded
  reference EMA of the full fp32 master weights, and differs from an EMA of the bf16 weights;
* under ZeRO-3 each rank holds, and saves in its own checkpoint file, half of the EMA;
* a full EMA (the format of ZeRO 0-2 and of checkpoints from before sharding) loads at every stage;
* ZeRO-3 checkpoint save -> load into a new engine -> 2 more steps gives the same EMA as 2 more
  steps without the checkpoint; the shards read back offline (as sampling does) are the EMA saved.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, train_env

pytestmark = pytest.mark.integration

EXACT = {"rtol": 1e-6, "atol": 1e-7}  # fp32 rounding: the same lerp on the same fp32 values


def launch(stage: int, precision: str, out: Path) -> tuple[dict, list[dict]]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "bench.ema_worker", "--stage", str(stage), "--precision", precision,
           "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=train_env(), capture_output=True, text=True,
                          timeout=400)  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    result = torch.load(f"{out}.pt", weights_only=True)
    stats = [json.loads(Path(f"{out}.rank{r}.json").read_text()) for r in range(2)]
    return result, stats


def assert_dicts_close(a: dict, b: dict, **tol) -> None:
    assert set(a) == set(b) and len(a) > 50
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name, **tol)


def max_diff(a: dict, b: dict) -> float:
    return max((a[n] - b[n]).abs().max().item() for n in a)


@pytest.mark.parametrize(
    ("stage", "precision"), [(0, "bf16"), (1, "bf16"), (2, "bf16"), (2, "fp32")]
)
def test_ema_follows_the_fp32_masters(stage, precision, tmp_path):
    result, stats = launch(stage, precision, tmp_path / "w")
    assert_dicts_close(result["ema"], result["reference"], **EXACT)
    assert_dicts_close(result["from_full"], result["ema"], rtol=0, atol=0)  # each rank's part
    if precision == "bf16":  # the masters, not the bf16 weights the model computes with
        assert max_diff(result["ema"], result["bf16"]) > 1e-4
    if stage > 0:  # the optimizer partition: the ranks' pieces are disjoint and cover it
        assert all(s["sharded"] for s in stats)
        assert sum(s["ema_bytes"] for s in stats) == stats[0]["full_copy_bytes"]
    else:
        assert all(s["ema_bytes"] == s["full_copy_bytes"] for s in stats)


def test_zero3_ema_is_sharded_and_resumes_exactly(tmp_path):
    result, stats = launch(3, "bf16", tmp_path / "w")
    assert_dicts_close(result["ema"], result["reference"], **EXACT)
    assert max_diff(result["ema"], result["bf16"]) > 1e-4
    full = stats[0]["full_copy_bytes"]
    for s in stats:  # half of the EMA per rank (plus at most one padded tail per parameter)
        assert s["sharded"] and s["ema_bytes"] <= full / 2 + 4 * 96 * 64
        assert s["checkpoint_ema_bytes"] == s["ema_bytes"]
    assert_dicts_close(result["offline"], result["saved"], rtol=0, atol=0)
    assert_dicts_close(result["from_full"], result["ema"], rtol=0, atol=0)  # old full format
    assert max_diff(result["continued"], result["saved"]) > 1e-4  # the 2 steps moved it
    assert_dicts_close(result["resumed"], result["continued"], **EXACT)

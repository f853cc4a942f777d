"""``train.compile``: the compiled tiny DiT trains under DeepSpeed like the eager one.

Guarantee shown here: through the real trainer CLI (1 rank, ZeRO-2, fp32), 2 steps with
``train.compile=true`` (the whole DiT, and ``perf.compile_scope=blocks``) give the eager losses (to float tolerance; inductor fuses and reorders
float ops), and metadata/startup say which optimizer and compile setting ran. Compiling takes
about a minute on a loaded 2-core machine, hence 2 steps only.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import read_metrics, run_train

pytestmark = pytest.mark.integration

SETS = ("train.max_steps=2", "train.num_samples=0", "train.zero_stage=2", "train.log_every=1")


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="inductor on CPU needs a C++ compiler")  # fmt: skip
def test_compiled_dit_trains_like_eager(synth_data, tmp_path):
    eager = run_train(tmp_path / "eager", synth_data, *SETS)
    compiled = run_train(
        tmp_path / "compiled", synth_data, *SETS, "train.compile=true", timeout=600
    )
    regional = run_train(tmp_path / "blocks", synth_data, *SETS, "train.compile=true",
                         "perf.compile_scope=blocks", timeout=600)  # fmt: skip
    for proc in (eager, compiled, regional):
        assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "compile=true" in compiled.stdout and "compile=false" in eager.stdout
    want = [float(r["loss"]) for r in read_metrics(tmp_path / "eager")]
    for run in ("compiled", "blocks"):  # the whole DiT, and each block alone (regional)
        got = [float(r["loss"]) for r in read_metrics(tmp_path / run)]
        assert len(got) == len(want) == 2
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
    meta = json.loads((tmp_path / "compiled" / "metadata.json").read_text())
    assert meta["optimizer"] == "AdamW (torch)"  # CPU: the fused kernel is for CUDA runs

"""The CUDA cluster image (``make container``: Debian mirror + PyPI, no Docker Hub), on this CPU
machine: ``apptainer test``, its labels, the pieces a GPU node needs (NVML bindings, Triton and
the C compiler it uses), and a real tiny training run with the CUDA torch build on the CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from jobs import container as C
from tests.conftest import REPO, TINY_TEST_SETS
from tests.unit.jobs.test_container import _make_torch, _pins

pytestmark = pytest.mark.container
VERSION = _make_torch().split("==")[1]


def test_apptainer_test_runs_doctor_with_the_cuda_torch(cuda_image):
    proc = subprocess.run(["apptainer", "test", str(cuda_image)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(rf"torch\s+{re.escape(VERSION)}\+cu\d+", out), out  # PyPI's CUDA wheel
    assert re.search(rf"container\s+{re.escape(str(cuda_image))} \(built from [0-9a-f]{{40}}", out)
    assert "torch GPUs" in out and "DS accelerator" in out and "HF_HUB_OFFLINE=1" in out


def test_labels_carry_the_pins_and_a_cuda_build(cuda_image):
    out = subprocess.run(["apptainer", "inspect", "--labels", "--json", str(cuda_image)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    labels = json.loads(out)["data"]["attributes"]["labels"]
    assert labels["org.text2sign.pin.torch"] == _make_torch()
    assert labels["org.text2sign.installed.torch"] == VERSION
    assert re.fullmatch(r"\d+\.\d+", labels["org.text2sign.torch.cuda"])
    assert labels["org.text2sign.installed.deepspeed"] == _pins()["deepspeed"]
    assert labels["org.text2sign.installed.nvidia-ml-py"] == _pins()["nvidia-ml-py"]
    assert labels["org.label-schema.usage.singularity.deffile.bootstrap"] == "debootstrap"


def test_the_image_has_nvml_bindings_triton_and_its_compiler(cuda_image):
    code = ("import pynvml, triton, shutil, sys, torch; "
            "print(triton.__version__, shutil.which('cc') or shutil.which('gcc'), "
            "torch.backends.cudnn.version(), torch.cuda.nccl.version())")  # fmt: skip
    argv = C.container_argv(C.ContainerSpec("apptainer", str(cuda_image)), ["python", "-c", code])
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    triton, cc, cudnn, nccl = out.stdout.split(maxsplit=3)
    assert re.fullmatch(r"\d+\.\d+\.\d+", triton) and cc.startswith("/usr/bin/")
    assert int(cudnn) > 0 and nccl.startswith("(")  # the nvidia-* wheels' cuDNN and NCCL


def test_a_tiny_run_trains_in_the_cuda_image_on_the_cpu(cuda_image, synth_data, tmp_path):
    run = tmp_path / "results" / "run"
    run.parent.mkdir()
    sets = [*TINY_TEST_SETS, f"data.root={synth_data}", "train.max_steps=2", "train.num_samples=1",
            "eval.num_videos=2"]  # fmt: skip
    binds = C.binds(results=run.parent, data_root=str(synth_data), hf_cache=None, extra=[])
    argv = ["python", "-m", "text2sign", "train", "--profile", "tiny", "--run-dir", str(run)]
    argv += [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(C.container_argv(C.ContainerSpec("apptainer", str(cuda_image), binds), argv),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run / "status.json").read_text())["state"] == "COMPLETED"
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["device"] == "cpu" and meta["versions"]["torch"].startswith(f"{VERSION}+cu")

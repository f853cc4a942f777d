"""The CPU image itself: ``apptainer test``, labels, the image's own package, the HF cache bound
from the host and found offline, and bad container input refused at submission."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import container as C
from tests.conftest import REPO, TINY_TEST_SETS
from tests.unit.jobs.test_container import _make_torch, _pins

pytestmark = pytest.mark.container
HUB_ID = "t2s-test/tiny-distilbert"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def test_apptainer_test_runs_doctor_inside_the_image(image):
    proc = subprocess.run(["apptainer", "test", str(image)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "text2sign doctor" in out and re.search(r"torch\s+2\.13\.0", out), out
    assert re.search(rf"container\s+{re.escape(str(image))} \(built from [0-9a-f]{{40}}", out), out
    assert "DS accelerator cpu" in out and "HF_HUB_OFFLINE=1" in out and "/hf_cache" in out
    assert re.search(r"pose env\s+/opt/venv-pose/bin/python \(mediapipe 0\.10\.21", out), out


def test_deepspeeds_cpu_comm_op_is_built_into_the_image(image):
    """The image has no compiler: the op jobs need must be there (not from another build's wheel)."""
    code = "from deepspeed.git_version_info import installed_ops as o; print(bool(o['deepspeed_shm_comm']))"
    argv = C.container_argv(C.ContainerSpec("apptainer", str(image)), ["python", "-c", code])
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.split()[-1] == "True", out.stdout + out.stderr[-2000:]


def test_labels_carry_the_commit_and_the_pins(image):
    out = subprocess.run(["apptainer", "inspect", "--labels", "--json", str(image)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    labels = json.loads(out)["data"]["attributes"]["labels"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels["org.opencontainers.image.revision"])
    assert labels["org.text2sign.pin.torch"] == _make_torch()
    assert labels["org.text2sign.pin.deepspeed"] == f"deepspeed=={_pins()['deepspeed']}"
    assert labels["org.text2sign.installed.torch"].startswith(_make_torch().split("==")[1])
    assert labels["org.text2sign.installed.deepspeed"] == _pins()["deepspeed"]
    assert labels["org.text2sign.installed.transformers"] == _pins()["transformers"]
    # the pose environment beside the trainer's, at text2sign/pose/requirements.txt's pins
    pose_pins = (REPO / "text2sign" / "pose" / "requirements.txt").read_text()
    assert f"mediapipe=={labels['org.text2sign.pose.mediapipe']}" in pose_pins
    assert f"pose_format=={labels['org.text2sign.pose.pose-format']}" in pose_pins


def test_the_image_imports_its_own_package_not_the_host_checkout(image):
    """The launcher runs from the repo (cwd) with PYTHONPATH=repo: neither may shadow the image."""
    code = "import os, text2sign; print(text2sign.__file__, os.environ['HF_HOME'])"
    argv = C.container_argv(C.ContainerSpec("apptainer", str(image)), ["python", "-c", code])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    path, hf_home = out.stdout.split()
    assert path.startswith("/opt/venv/") and hf_home == C.HF_CACHE_TARGET, out.stdout


def _tiny_distilbert_in_hf_cache(hf: Path) -> None:
    """A tiny DistilBERT + tokenizer, saved with save_pretrained in the HF hub cache layout."""
    from transformers import DistilBertConfig, DistilBertModel

    from text2sign.models.text_encoder import train_tokenizer

    repo = hf / "hub" / f"models--{HUB_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    tokenizer = train_tokenizer(["left hand up", "right hand down"], vocab_size=200, max_tokens=77)
    config = DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2,
                              hidden_dim=64, max_position_embeddings=128)  # fmt: skip
    DistilBertModel(config).save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)


def _train_in_image(image: Path, run_dir: Path, data: Path, hf_cache: str | None, env: dict):
    """The trainer in the image, started as the launcher starts it (binds as plan() makes them)."""
    sets = [*TINY_TEST_SETS, f"data.root={data}", f"text.encoder={HUB_ID}", "train.max_steps=2",
            "train.num_samples=1", "eval.num_videos=2"]  # fmt: skip
    binds = C.binds(results=run_dir.parent, data_root=str(data), hf_cache=hf_cache, extra=[])
    spec = C.ContainerSpec("apptainer", str(image), binds, sha256="f" * 64)
    argv = ["python", "-m", "text2sign", "train", "--profile", "tiny", "--run-dir", str(run_dir)]
    argv += [x for s in sets for x in ("--set", s)]
    return subprocess.run(C.container_argv(spec, argv), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_a_hub_encoder_in_the_host_hf_cache_loads_inside_the_image_offline(
    image, synth_data, tmp_path, monkeypatch
):
    hf = tmp_path / "hf"
    _tiny_distilbert_in_hf_cache(hf)
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setenv("HF_HOME", str(hf))  # as a user would before submitting
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # The bug this catches: a host HF_HOME does not override the image's %environment, so the
    # cache bound at its host path was never looked at inside the image.
    plain = subprocess.run(["apptainer", "exec", "--bind", str(hf), str(image), "sh", "-c",
                            "echo $HF_HOME"], env=env, capture_output=True, text=True)  # fmt: skip
    assert plain.stdout.strip() == C.HF_CACHE_TARGET != str(hf)

    run = results / "hub_encoder"
    proc = _train_in_image(image, run, synth_data, None, env)  # the default cache: $HF_HOME
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["container"]["runtime"] == "apptainer" and meta["container"]["sha256"] == "f" * 64
    assert meta["container"]["image"] == str(image)
    assert json.loads((run / "status.json").read_text())["state"] == "COMPLETED"

    # Control: the same run without the cache bound fails at start-up, naming the encoder.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no_cache_here"))
    proc = _train_in_image(image, results / "no_cache", synth_data, None, env)
    assert proc.returncode == 2 and f"text encoder '{HUB_ID}' not found locally" in proc.stderr


def _submit(results: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "jobs/submit.py", "--executor", "local", "--study", "s",
           "--results", str(results), "--variants", "baseline", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, env=env or dict(os.environ), capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _refused(proc: subprocess.CompletedProcess, message: str, results: Path) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not results.exists() or list(results.iterdir()) == []  # nothing submitted


def test_bad_container_input_is_one_line_exit_2_and_submits_nothing(image, synth_data, tmp_path):
    res = tmp_path / "results"
    ok = ["--runtime", "apptainer", "--set", f"data.root={synth_data}"]
    not_sif = tmp_path / "not.sif"
    not_sif.write_text("Bootstrap: docker\n" * 10)
    _refused(_submit(res, *ok, "--image", str(not_sif)), "is not a SIF file", res)
    broken = tmp_path / "broken.sif"  # a real SIF header, the rest cut off
    with open(image, "rb") as f:
        broken.write_bytes(f.read(4096))
    _refused(_submit(res, *ok, "--image", str(broken)), "apptainer inspect failed", res)
    _refused(_submit(res, *ok, "--image", str(tmp_path / "gone.sif")), "not found", res)
    good = [*ok, "--image", str(image)]
    _refused(_submit(res, *good, "--set", "container.binds=['/no/such/dir:/x']"),
             "bind source '/no/such/dir' does not exist", res)  # fmt: skip
    _refused(_submit(res, *good, "--set", f"container.hf_cache={tmp_path / 'nohf'}"),
             "container.hf_cache", res)  # fmt: skip
    _refused(_submit(res, "--runtime", "apptainer", "--image", str(image), "--set",
                     f"data.root={tmp_path / 'nodata'}"), "does not exist", res)  # fmt: skip
    where = os.path.dirname(shutil.which("apptainer"))
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != where)
    _refused(_submit(res, *good, env={**os.environ, "PATH": path}), "no apptainer on PATH", res)

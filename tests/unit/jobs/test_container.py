"""The definition files and the container side of the launcher, without apptainer.

The three defs install through the one shared recipe with the same pins: containers/text2sign.def
(the cluster image, CUDA, from a Debian mirror and PyPI), text2sign-cpu.def (CI and laptops) and
text2sign-dockerhub.def (the same cluster image from a Docker Hub base, an option; parsed with
spython, a real parser that knows only ``Bootstrap: docker``). The exact ``apptainer exec``
command and bind list are pinned. The images themselves are built and run by tests/container/
(``make container-cpu``; the CUDA image, ``make container``, when it is there).
"""

from __future__ import annotations

import configparser
import re
import subprocess

import pytest

from jobs import container as C
from jobs.container import ContainerSpec, container_argv
from jobs.spec import RunSpec, build_command
from tests.conftest import REPO
from text2sign.errors import UsageError

DEFS = {
    "cuda": REPO / "containers" / "text2sign.def",
    "cpu": REPO / "containers" / "text2sign-cpu.def",
    "dockerhub": REPO / "containers" / "text2sign-dockerhub.def",
}
RECIPE = REPO / "containers" / "install-python-deps.sh"
TORCH_BUILD = {"cuda": " cuda", "cpu": " cpu", "dockerhub": ""}  # the recipe's 4th argument


def _recipe():
    from spython.main.parse.parsers import SingularityParser

    recipes = SingularityParser(str(DEFS["dockerhub"])).recipe  # {stage name: Recipe}
    assert len(recipes) == 1
    return next(iter(recipes.values()))


def sections(path) -> dict[str, str]:
    """``%name`` → body of a definition file (both bootstraps; spython reads only docker)."""
    out: dict[str, str] = {"header": ""}
    name = "header"
    for line in path.read_text().splitlines():
        m = re.match(r"^%(\w+)\s*$", line)
        if m:
            name = m.group(1)
            out[name] = ""
        else:
            out[name] += line + "\n"
    return out


def _pins() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    reqs = [r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()]
    return dict(r.split("==") for r in reqs if "==" in r)


def _make_torch() -> str:
    return re.search(r"TORCH\s*\?=\s*(torch==[\d.]+)", (REPO / "Makefile").read_text()).group(1)


def test_dockerhub_def_parses_and_has_every_section():
    recipe = _recipe()
    assert recipe.fromHeader.startswith("pytorch/pytorch:") and re.search(
        r":\d+\.\d+\.\d+-cuda", recipe.fromHeader
    )
    text = DEFS["dockerhub"].read_text()
    for section in ("%environment", "%post", "%runscript", "%test", "%labels", "%help", "%files"):
        assert section in text, section
    env = "\n".join(recipe.environ)
    for var in ("HF_HUB_OFFLINE=1", "PYTHONUNBUFFERED=1", f"HF_HOME={C.HF_CACHE_TARGET}"):
        assert var in env, var
    assert recipe.cmd == 'exec python -m text2sign "$@"'
    assert re.search(r"%test\n\s+python -m text2sign doctor", text)  # spython moves it to a script
    labels = " ".join(recipe.labels)
    assert "version {{ VERSION }}" in labels and "revision {{ COMMIT }}" in labels


@pytest.mark.parametrize("kind", sorted(DEFS))
def test_every_def_installs_through_the_one_recipe_with_the_same_pins(kind):
    s = sections(DEFS[kind])
    make_torch = _make_torch()
    # The torch pin: the Makefile's, as the %arguments default and (Docker Hub) as the base tag.
    assert re.search(rf"^\s*TORCH={re.escape(make_torch)}\s*$", s["arguments"], re.M)
    if kind == "dockerhub":
        assert re.search(rf"^From: pytorch/pytorch:{make_torch.split('==')[1]}-", s["header"], re.M)
    else:  # from a Debian mirror: no container registry
        assert re.search(r"^Bootstrap: debootstrap$", s["header"], re.M)
        assert re.search(r"^MirrorURL: \{\{ MIRROR \}\}$", s["header"], re.M)
        assert re.search(r"^OSVersion: bookworm$", s["header"], re.M)
        assert "export PATH=/opt/venv/bin:$PATH" in s["environment"]
    # %post installs Python packages only through the shared script: no pip line of its own.
    calls = re.findall(r"install-python-deps\.sh (\S+) /opt/text2sign \"\{\{ TORCH \}\}\"(.*)$",
                       s["post"], re.M)  # fmt: skip
    assert calls and len(calls) == 1 and "pip" not in s["post"], s["post"]
    assert calls[0][1] == TORCH_BUILD[kind]  # cuda/cpu: the recipe checks the torch build
    assert (
        "containers/install-python-deps.sh /opt/text2sign/containers/install-python-deps.sh"
        in (s["files"])
    )
    assert "setup.cfg /opt/text2sign/setup.cfg" in s["files"]
    assert "org.opencontainers.image.revision {{ COMMIT }}" in s["labels"]
    assert "python -m text2sign doctor" in s["test"]
    assert f"HF_HOME={C.HF_CACHE_TARGET}" in s["environment"]
    assert "{{ BUILD_MOUNTS }}" in s["setup"]  # build-image.sh's pip sources and cache


def test_the_cuda_image_keeps_a_compiler_for_triton_and_deepspeeds_cpu_op_and_prebuilds_none():
    post = sections(DEFS["cuda"])["post"]
    assert re.search(r"apt-get install .*\bgcc g\+\+ libc6-dev python3-dev\b", post)
    assert "apt-get purge" not in post and "export DS_BUILD_OPS=0" in post


def test_make_builds_the_cluster_image_from_the_registry_free_def():
    make = (REPO / "Makefile").read_text()
    assert re.search(
        r"^container:.*\n\tbash containers/build-image.sh containers/text2sign.def ", make, re.M
    )
    assert "containers/text2sign-dockerhub.def" in make
    full = (REPO / "text2sign" / "configs" / "profiles" / "full.yaml").read_text()
    assert "image: containers/text2sign.sif" in full


@pytest.mark.parametrize(("kind", "want"), [("cuda", "torch===2.13.0"), ("cpu", "torch==2.13.0"),
                                            ("any", "torch==2.13.0")])  # fmt: skip
def test_the_recipe_asks_pip_for_exactly_the_pins_version_for_a_cuda_image(kind, want):
    # torch===X matches "X" (PyPI's CUDA wheel), never a local "X+cpu" wheel a pip folder offers.
    text = RECIPE.read_text()
    case = text[text.index("case $KIND in") : text.index("esac") + 4]
    out = subprocess.run(["sh", "-c", f'TORCH="$1"; KIND="$2"; {case}; echo "$TORCH_REQ"', "sh",
                          "torch==2.13.0", kind], capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == want
    bad = subprocess.run(["sh", "-c", f"TORCH=x; KIND=gpu; {case}"], capture_output=True, text=True)
    assert bad.returncode == 2 and "must be any, cpu or cuda" in bad.stderr


def test_the_recipe_takes_deepspeed_from_setup_cfg_and_installs_the_project():
    text = RECIPE.read_text()
    line = next(x for x in text.splitlines() if x.startswith("DEEPSPEED=$("))
    out = subprocess.run(["sh", "-c", f'SRC="$1"; {line}; echo "$DEEPSPEED"', "sh", str(REPO)],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert out == f"deepspeed=={_pins()['deepspeed']}"
    assert (
        '--no-cache-dir --no-build-isolation "$DEEPSPEED"' in text  # built for this image's torch
        and '"$PY" -m pip install -q "$TORCH_REQ"' in text
    )
    assert '"$PY" -m pip install -q "$SRC"' in text  # the project: every setup.cfg pin
    assert "PIP_NO_CACHE_DIR=1" in text and "APPTAINER_LABELS" in text
    assert "torch.version.cuda" in text  # the build of torch is checked after the install


def test_exec_command_for_binds_and_gpus():
    c = ContainerSpec(runtime="apptainer", image="/img/t2s.sif",
                      binds=("/res", "/data", "/hf:/hf_cache"), gpus=True, sha256="ab12")  # fmt: skip
    spec = RunSpec(study="s", variant="no_ema", seed=2, profile="full", run_dir="/res/s/no_ema/seed2",
                   overrides=("train.lr=1e-4",), container=c)  # fmt: skip
    assert build_command(spec) == [
        "apptainer", "exec", "--nv", "--bind", "/res,/data,/hf:/hf_cache",
        "--env", "HF_HOME=/hf_cache", "--env", "PYTHONSAFEPATH=1", "--env", "PYTHONPATH=",
        "--env", "T2S_IMAGE_SHA256=ab12", "/img/t2s.sif",
        "python", "-m", "text2sign", "train", "--profile", "full", "--variant", "no_ema",
        "--run-dir", "/res/s/no_ema/seed2", "--set", "train.lr=1e-4", "--set", "train.seed=2",
    ]  # fmt: skip
    cpu = ContainerSpec(runtime="apptainer", image="/img/t2s.sif", binds=("/res",), gpus=False)
    assert container_argv(cpu, ["python"]) == [
        "apptainer", "exec", "--bind", "/res", "--env", "HF_HOME=/hf_cache",
        "--env", "PYTHONSAFEPATH=1", "--env", "PYTHONPATH=", "/img/t2s.sif", "python",
    ]  # fmt: skip
    assert container_argv(ContainerSpec(), ["python", "-V"]) == ["python", "-V"]


def test_binds_put_the_hf_cache_at_the_images_path_and_check_every_source(tmp_path, monkeypatch):
    data, hf, extra = tmp_path / "data", tmp_path / "hf", tmp_path / "scratch"
    for d in (data, hf, extra):
        d.mkdir()
    res = tmp_path / "results"  # not yet created: submit creates it
    monkeypatch.setenv("HF_HOME", str(hf))
    got = C.binds(results=res, data_root=str(data), hf_cache=None, extra=[f"{extra}:/scratch:ro"])
    assert got == (str(res), str(data), f"{hf}:/hf_cache", f"{extra}:/scratch:ro")
    # A default cache that does not exist is not bound (apptainer would refuse the bind) ...
    monkeypatch.setenv("HF_HOME", str(tmp_path / "nohf"))
    assert C.binds(results=res, data_root=str(data), hf_cache=None, extra=[]) == (
        str(res),
        str(data),
    )
    # ... one the user named, a missing data root or extra bind source is a usage error.
    with pytest.raises(UsageError, match="container.hf_cache .* does not exist"):
        C.binds(results=res, data_root=str(data), hf_cache=str(tmp_path / "nohf"), extra=[])
    with pytest.raises(UsageError, match="data.root .* does not exist"):
        C.binds(results=res, data_root=str(tmp_path / "nodata"), hf_cache=None, extra=[])
    with pytest.raises(UsageError, match="bind source .* does not exist"):
        C.binds(results=res, data_root=str(data), hf_cache=None, extra=["/no/such/dir:/x"])


def test_check_image_without_apptainer_on_path_is_a_usage_error(tmp_path, monkeypatch):
    image = tmp_path / "t2s.sif"
    image.write_bytes(b"#!/usr/bin/env run-singularity\n\nSIF_MAGIC" + bytes(64))
    monkeypatch.setenv("PATH", str(tmp_path))  # no apptainer here
    with pytest.raises(UsageError, match="no apptainer on PATH"):
        C.check_image(str(image))
    with pytest.raises(UsageError, match="not found"):
        C.check_image(str(tmp_path / "missing.sif"))


def test_a_manifest_binds_its_folder_and_the_folders_of_its_videos(tmp_path):
    lists, clips, frames = tmp_path / "lists", tmp_path / "clips", tmp_path / "P" / "train"
    for d in (lists, clips / "sub", frames / "clip7"):
        d.mkdir(parents=True)
    manifest = lists / "m.csv"
    manifest.write_text(
        "video,caption,signer\n"
        f"{clips}/a.mp4,x,s\n{clips}/sub/b.mp4,x,s\n{frames}/clip7,x,s\n"
        "local.gif,x,s\n/gone/away.mp4,x,s\n"  # a missing folder is not bound (a skipped row)
    )
    got = C.binds(results=tmp_path / "res", data_root=str(manifest), hf_cache=None, extra=[])
    assert got[0] == str(tmp_path / "res")
    assert sorted(got[1:]) == sorted(str(p) for p in (lists, clips, frames / "clip7"))

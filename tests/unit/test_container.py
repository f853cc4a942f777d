"""containers/text2sign.def: parsed with spython (a real parser), pins match setup.cfg, and the
exact ``apptainer exec`` command the launcher builds. The apptainer binary cannot be installed on
this machine, so the image build itself is untested here (see README)."""

from __future__ import annotations

import configparser
import re

from jobs.launcher import ContainerSpec, RunSpec, build_command, container_argv
from tests.conftest import REPO

DEF = REPO / "containers" / "text2sign.def"


def _recipe():
    from spython.main.parse.parsers import SingularityParser

    recipes = SingularityParser(str(DEF)).recipe  # {stage name: Recipe}
    assert len(recipes) == 1
    return next(iter(recipes.values()))


def _pins() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    reqs = [r.strip() for r in cfg["options"]["install_requires"].splitlines() if r.strip()]
    return dict(r.split("==") for r in reqs if "==" in r)


def test_def_file_parses_and_has_every_section():
    recipe = _recipe()
    assert recipe.fromHeader.startswith("pytorch/pytorch:") and re.search(
        r":\d+\.\d+\.\d+-cuda", recipe.fromHeader
    )
    text = DEF.read_text()
    for section in ("%environment", "%post", "%runscript", "%test", "%labels", "%help", "%files"):
        assert section in text, section
    env = "\n".join(recipe.environ)
    for var in ("HF_HUB_OFFLINE=1", "PYTHONUNBUFFERED=1", "HF_HOME="):
        assert var in env, var
    assert recipe.cmd == 'exec python -m text2sign "$@"'
    assert re.search(r"%test\n\s+python -m text2sign doctor", text)  # spython moves it to a script
    labels = " ".join(recipe.labels)
    assert "version {{ VERSION }}" in labels and "revision {{ COMMIT }}" in labels


def test_def_installs_what_setup_cfg_pins():
    recipe = _recipe()
    text = "\n".join(recipe.install)  # the parsed %post
    pins = _pins()
    # torch comes from the base image: its tag must be the Makefile's torch pin.
    make_torch = re.search(r"TORCH\s*\?=\s*torch==([\d.]+)", (REPO / "Makefile").read_text()).group(
        1
    )
    assert recipe.fromHeader.startswith(f"pytorch/pytorch:{make_torch}-")
    # DeepSpeed (needs --no-build-isolation) is pinned like setup.cfg; the project then installs
    # from setup.cfg itself, so every other pin is identical by construction.
    assert f"--no-build-isolation deepspeed=={pins['deepspeed']}" in text
    assert "pip install --no-cache-dir /opt/text2sign" in text
    assert "setup.cfg /opt/text2sign/setup.cfg" in recipe.files
    assert re.search(r'TORCH_CUDA_ARCH_LIST="8\.0;9\.0"', text)  # A100 + H100


def test_exec_command_for_binds_and_gpus():
    c = ContainerSpec(
        runtime="apptainer", image="/img/t2s.sif", binds=("/res", "/data", "/hf"), gpus=True
    )
    spec = RunSpec(study="s", variant="no_ema", seed=2, profile="full", run_dir="/res/s/no_ema/seed2",
                   overrides=("train.lr=1e-4",), container=c)  # fmt: skip
    assert build_command(spec) == [
        "apptainer", "exec", "--nv", "--bind", "/res,/data,/hf", "/img/t2s.sif",
        "python", "-m", "text2sign", "train", "--profile", "full", "--variant", "no_ema",
        "--run-dir", "/res/s/no_ema/seed2", "--set", "train.lr=1e-4", "--set", "train.seed=2",
    ]  # fmt: skip
    cpu = ContainerSpec(runtime="apptainer", image="/img/t2s.sif", binds=("/res",), gpus=False)
    assert container_argv(cpu, ["python"]) == [
        "apptainer",
        "exec",
        "--bind",
        "/res",
        "/img/t2s.sif",
        "python",
    ]
    assert container_argv(ContainerSpec(), ["python", "-V"]) == ["python", "-V"]

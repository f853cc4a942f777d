"""Config: overlays, strict validation, one-line errors naming the file and key, exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from text2sign.cli import main
from text2sign.config import BASE_CONFIG, available, load_config, load_resolved
from text2sign.config_docs import describe_fields
from text2sign.errors import ConfigError


def test_full_profile_carries_the_reference_values():
    cfg = load_config(profile="full", variant="baseline")
    assert (cfg.data.num_frames, cfg.data.image_size) == (16, 64)
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.weight_decay) == (2, 5e-5, 0.01)
    assert (cfg.train.grad_clip, cfg.train.grad_accum, cfg.train.epochs) == (1.0, 8, 150)
    assert cfg.ema.decay == 0.9999 and cfg.ema.enabled
    assert (cfg.diffusion.schedule, cfg.diffusion.timesteps) == ("cosine", 50)
    assert (cfg.text.encoder, cfg.text.max_tokens) == ("distilbert-base-uncased", 77)
    assert cfg.model.preset == "d14"


def test_variants_are_overlays_on_the_base():
    assert available("variants") == ["baseline", "no_ema", "text_finetuned"]
    base = load_config(variant="baseline")
    assert not base.text.finetune and base.ema.enabled
    assert load_config(variant="text_finetuned").text.finetune
    no_ema = load_config(variant="no_ema")
    assert not no_ema.ema.enabled and not no_ema.text.finetune
    assert no_ema.train == base.train  # only the overlay's keys change


def test_set_overrides_parse_yaml_values_and_change_the_hash():
    base = load_config()
    cfg = load_config(overrides=["train.lr=3e-4", "train.betas=[0.8, 0.9]", "ema.enabled=false"])
    assert cfg.train.lr == 3e-4 and cfg.train.betas == (0.8, 0.9) and not cfg.ema.enabled
    assert cfg.hash() != base.hash()
    assert load_config().hash() == base.hash()  # stable


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["train.lrr=1"], "unknown key 'train.lrr'; did you mean 'train.lr'?"),
        (["trian.lr=1"], "unknown key 'trian'; did you mean 'train'?"),
        (["train.lr=-1"], "key 'train.lr': Input should be greater than 0"),
        (["train.batch_size=abc"], "key 'train.batch_size': Input should be a valid integer"),
        (["train.zero_stage=4"], "key 'train.zero_stage'"),
        (["model.preset=huge"], "unknown preset 'huge'"),
        (["train.lr"], "expected KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_key(overrides, expected):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=overrides)
    msg = str(e.value)
    assert expected in msg and "\n" not in msg
    if "=" in overrides[0]:
        assert msg.startswith(f"--set {overrides[0].split('=')[0]}")


def test_bad_key_in_a_file_names_that_file(tmp_path):
    cfg_file = tmp_path / "mine.yaml"
    cfg_file.write_text(BASE_CONFIG.read_text().replace("max_beta: 0.999", "max_beta: 1.5"))
    with pytest.raises(
        ConfigError, match=r"mine\.yaml: key 'diffusion\.max_beta': Input should be less than 1"
    ):
        load_config(config_file=cfg_file)
    cfg_file.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: line \d+ invalid YAML"):
        load_config(config_file=cfg_file)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(config_file=tmp_path / "missing.yaml")


def test_unknown_profile_and_variant_list_the_valid_ones():
    with pytest.raises(
        ConfigError, match="unknown variant 'fancy'; valid: baseline, no_ema, text_finetuned"
    ):
        load_config(variant="fancy")
    with pytest.raises(ConfigError, match="unknown profile 'huge'; valid: full, full128, tiny"):
        load_config(profile="huge")


def test_resolved_config_round_trips(tmp_path):
    from text2sign.config import dump_yaml

    cfg = load_config(variant="no_ema", overrides=["train.seed=3"])
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(cfg))
    assert load_resolved(path).hash() == cfg.hash()


def test_every_field_is_documented():
    rows = describe_fields()
    assert len(rows) > 40
    assert all(desc for _, _, desc in rows), [k for k, _, d in rows if not d]


def test_cli_config_error_is_one_line_and_exit_2(capsys):
    assert main(["config", "--set", "train.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'train.lr'" in err


def test_cli_subprocess_has_no_traceback():
    cmd = [sys.executable, "-m", "text2sign", "train", "--run-dir", "x", "--variant", "nope"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "text2sign: error: unknown variant 'nope'; valid: baseline, no_ema, text_finetuned"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "text2sign", "bogus"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_a_profile_extends_another_and_a_loop_is_one_line(tmp_path, monkeypatch):
    from text2sign import config

    full, full128 = load_config(profile="full"), load_config(profile="full128")
    assert (full128.data.image_size, full128.model.preset) == (128, "d14p4")
    assert full128.train.batch_size == full.train.batch_size  # the rest comes from full
    assert full128.slurm.gpus_per_node == full.slurm.gpus_per_node
    for kind in ("profiles", "variants"):
        (tmp_path / kind).mkdir()
    (tmp_path / "variants" / "baseline.yaml").write_text("{}\n")
    (tmp_path / "profiles" / "a.yaml").write_text("extends: b\n")
    (tmp_path / "profiles" / "b.yaml").write_text("extends: a\n")
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path)
    with pytest.raises(
        ConfigError, match=r"b.yaml: extends 'a', which is not another packaged profile"
    ):
        load_config(profile="a")

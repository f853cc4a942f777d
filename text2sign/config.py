"""One typed config tree: base YAML ⊕ profile ⊕ variant ⊕ ``--set`` overrides, strictly validated.

Every field carries a description (``python -m text2sign config --help-keys`` prints them, and the
configuration reference, docs/configuration.md, is generated from the same text). Errors are one line that names
the file (or ``--set``) and the dotted key, and suggests the closest valid key for typos.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from text2sign.errors import ConfigError
from text2sign.presets import DIT_PRESETS  # torch-free: submitting a study never imports torch

CONFIG_DIR = Path(str(resources.files("text2sign") / "configs"))
BASE_CONFIG = CONFIG_DIR / "base.yaml"
HASH_EXCLUDED = ("eval", "slurm", "container", "perf", "prepare", "halving")
#: No string of the config may hold one: values reach batch scripts and command lines, where a
#: newline would end an ``#SBATCH`` line and start a line of shell.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
#: SLURM names (partition, account, QOS; comma lists allowed) and constraint expressions.
SLURM_NAME = re.compile(r"^[A-Za-z0-9_.,+-]+$")
SLURM_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.,:&|()\[\]*!+-]+$")
SLURM_FLAG = re.compile(r"^--[A-Za-z][A-Za-z0-9-]*(=[^\x00-\x20\x7f]+)?$")


class Section(BaseModel):
    """A config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and CONTROL_CHARS.search(item):
                raise ValueError(
                    "a newline or other control character is not allowed (values reach batch "
                    "scripts and command lines)"
                )
        return value


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


class DataConfig(Section):
    root: str = Field(
        "data/synth",
        description="A dataset folder (NAME.gif/.mp4/.webm or frame folder NAME/, each with "
        "NAME.txt) or a manifest file (.csv, .jsonl; docs/data.md).",
    )
    num_frames: int = Field(8, ge=1, le=512, description="Frames per clip (see frame_sampling).")
    frame_sampling: Literal["first", "uniform"] = Field(
        "first",
        description="Which frames of a clip's cut: first (the first num_frames, padded with the "
        "last) or uniform (num_frames evenly spaced over the cut).",
    )
    image_size: int = Field(16, ge=8, le=1024, description="Square frame size after resize+crop.")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Fraction of signers held out.")
    split_seed: int = Field(
        0, ge=0, description="Seed of the signer split: fixed, so every seed of a study shares it."
    )
    cache_dir: str | None = Field(
        None,
        description="Decoded cache folder (default: .t2s_cache in the dataset folder, or "
        "beside the manifest).",
    )
    strict: bool = Field(
        False, description="Fail on bad files or manifest rows instead of skipping them."
    )
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes.")


class ModelConfig(Section):
    preset: str = Field("tiny", description="Video DiT size preset (see text2sign.models.dit).")
    grad_checkpointing: bool = Field(False, description="Recompute block activations in backward.")

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        if v not in DIT_PRESETS:
            raise ValueError(f"unknown preset {v!r}; valid: {', '.join(DIT_PRESETS)}")
        return v


class TextConfig(Section):
    encoder: str = Field(
        "tiny",
        description="'tiny' (DistilBERT built from config, tokenizer trained on the captions), "
        "a hub id such as distilbert-base-uncased (from the HF cache), or a local path.",
    )
    max_tokens: int = Field(77, ge=4, le=512, description="Caption length limit in tokens.")
    finetune: bool = Field(False, description="Train the text encoder (else frozen, eval mode).")
    lr: float | None = Field(
        None, gt=0, description="Text encoder LR when finetuned (default: train.lr)."
    )
    caption_dropout: float = Field(
        0.1, ge=0.0, lt=1.0, description="Probability of training on the empty caption (for CFG)."
    )


class DiffusionConfig(Section):
    schedule: Literal["cosine"] = Field("cosine", description="Noise schedule.")
    timesteps: int = Field(50, ge=2, le=4000, description="Training timesteps.")
    cosine_s: float = Field(0.008, ge=0.0, le=1.0, description="Cosine schedule offset s.")
    max_beta: float = Field(0.999, gt=0.0, lt=1.0, description="Clamp on beta_t.")
    prediction: Literal["eps", "v"] = Field(
        "v",
        description="Network output: eps (noise) or v (weights every noise level; see text2sign/models/diffusion.py).",
    )
    timestep_sampling: Literal["uniform", "high_noise"] = Field(
        "uniform",
        description="Training timesteps: uniform, or with prob. high_noise_prob from the noisier half.",
    )
    high_noise_prob: float = Field(
        0.5, ge=0.0, le=1.0, description="With high_noise: share of timesteps drawn from [T/2, T)."
    )
    sample_steps: int = Field(50, ge=1, le=4000, description="DDIM (eta=0) sampling steps.")
    guidance_scale: float = Field(
        1.0, ge=0.0, le=50.0, description="Classifier-free guidance scale."
    )


class EMAConfig(Section):
    enabled: bool = Field(True, description="Keep an fp32 EMA of the DiT weights for sampling.")
    decay: float = Field(0.9999, gt=0.0, lt=1.0, description="EMA decay per update.")
    update_every: int = Field(1, ge=1, description="Optimizer steps between EMA updates.")


class TrainConfig(Section):
    seed: int = Field(0, ge=0, description="Seed for init, data order, noise and timesteps.")
    batch_size: int = Field(8, ge=1, description="Micro-batch size per GPU/rank.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    lr: float = Field(1e-3, gt=0.0, lt=1.0, description="Peak learning rate of the DiT (AdamW).")
    weight_decay: float = Field(0.01, ge=0.0, lt=1.0, description="AdamW weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    grad_clip: float = Field(1.0, ge=0.0, description="Gradient clipping norm (0: off).")
    warmup_steps: int = Field(0, ge=0, description="Linear LR warm-up in optimizer steps.")
    epochs: int = Field(1, ge=1, description="Passes over the training split.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps, if before the last epoch."
    )
    zero_stage: int = Field(2, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    precision: Literal["bf16", "fp32"] = Field("bf16", description="Mixed precision switch.")
    deterministic: bool = Field(
        False,
        description="Deterministic CUDA kernels (torch.use_deterministic_algorithms): exact "
        "resume on GPU, at some speed; CPU runs are deterministic anyway.",
    )
    compile: bool = Field(
        False,
        description="torch.compile the DiT before DeepSpeed wraps it (the first step compiles).",
    )
    deepspeed_config: str = Field(
        "default.json", description="DeepSpeed JSON template under text2sign/configs/deepspeed."
    )
    log_every: int = Field(10, ge=1, description="Optimizer steps per metrics row.")
    checkpoint_every: int = Field(100, ge=1, description="Optimizer steps between checkpoints.")
    keep_checkpoints: int = Field(2, ge=1, description="Complete checkpoints kept on disk.")
    sample_every: int = Field(
        0, ge=0, description="Steps between sample GIFs (0: only at the end)."
    )
    num_samples: int = Field(4, ge=0, le=64, description="Validation captions sampled as GIFs.")
    nan_at_step: int | None = Field(
        None, ge=1, description="Fault injection for tests: make the loss NaN at this step."
    )

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("each beta must be in [0, 1)")
        return v


class TelemetryConfig(Section):
    interval_s: float = Field(1.0, gt=0.0, le=3600, description="NVML/RSS sampling interval.")


class EvalConfig(Section):
    """Evaluation after training and by ``python -m text2sign evaluate`` (ignored by the hash)."""

    enabled: bool = Field(True, description="Evaluate at the end of training (all ranks).")
    num_videos: int = Field(32, ge=1, le=10_000, description="Validation clips sampled and scored.")
    seed: int = Field(1234, ge=0, description="Seed of the evaluation noise (same for every run).")
    timing_videos: int = Field(3, ge=1, le=100, description="Videos timed for inference speed.")
    batch_size: int = Field(
        8, ge=1, le=1024, description="Videos one rank samples at once (bounds inference memory)."
    )
    video_clips: int = Field(
        4,
        ge=0,
        le=64,
        description="Evaluated clips written as videos (reference, sample, "
        "sample with a shuffled caption) for report.html and TensorBoard (0: none).",
    )
    video_fps: int = Field(8, ge=1, le=60, description="Frames per second of those videos.")
    i3d_path: str | None = Field(
        None, description="StyleGAN-V i3d_torchscript.pt for FVD (absent: FVD is N/A)."
    )
    torch_home: str | None = Field(
        None, description="TORCH_HOME with torchvision's AlexNet checkpoint for LPIPS."
    )


class PrepareConfig(Section):
    """The stage before training on real data: decoding into the cache and pose keypoints
    (docs/data.md, "Preparing a dataset"; ignored by the hash: it never changes results)."""

    tasks: int = Field(
        1, ge=1, le=1000,
        description="Array tasks per dataset decoding: each decodes and estimates one shard on "
        "its own node, the last one merges the shards into the cache.",
    )  # fmt: skip
    max_failed_share: float = Field(
        0.05, ge=0.0, le=1.0,
        description="Share of a shard's clips that may fail (decoding or pose estimation) "
        "before the stage fails; the failed clips are named and left out.",
    )  # fmt: skip


class SlurmConfig(Section):
    """Resources of one run's job (ignored by the config hash: they never change results)."""

    partition: str | None = Field(None, description="SLURM partition (sbatch --partition).")
    account: str | None = Field(None, description="SLURM account to charge (--account).")
    qos: str | None = Field(None, description="SLURM quality of service (--qos).")
    time_min: int = Field(60, ge=1, description="Time limit per job in minutes (--time).")
    nodes: int = Field(1, ge=1, le=1024, description="Nodes per run (multi-node DeepSpeed).")
    gpus_per_node: int = Field(0, ge=0, le=16, description="GPUs per node (--gpus-per-node).")
    tasks_per_node: int | None = Field(
        None, ge=1, le=64, description="Ranks per node (default: gpus_per_node, or 1 on CPU)."
    )
    cpus_per_task: int = Field(1, ge=1, le=256, description="CPU cores per rank (--cpus-per-task).")
    mem_gb: float | None = Field(None, gt=0, description="Memory per node in GB (--mem).")
    constraint: str | None = Field(None, description="Node feature constraint (--constraint).")
    extra: list[str] = Field(
        default_factory=list,
        description="Extra sbatch flags, e.g. ['--exclusive', '--reservation=x'].",
    )
    signal_delay_s: int = Field(
        120, ge=10, le=3600, description="USR2 this many seconds before the time limit (--signal)."
    )
    array_parallelism: int = Field(16, ge=1, description="Runs of a study running at once (%N).")
    max_requeues: int = Field(
        3, ge=0, le=100, description="Requeues on the USR2 time-limit signal per run; then TIMEOUT."
    )
    max_retries: int = Field(
        1, ge=0, le=10,
        description="Retries of a crashed run (not exit 2, NaN or cancel), each on another node.",
    )  # fmt: skip

    @field_validator("partition", "account", "qos")
    @classmethod
    def _slurm_name(cls, value: str | None) -> str | None:
        if value is not None and not SLURM_NAME.match(value):
            raise ValueError("use only letters, digits and _ . , + - (a SLURM name or list)")
        return value

    @field_validator("constraint")
    @classmethod
    def _slurm_constraint(cls, value: str | None) -> str | None:
        if value is not None and not SLURM_CONSTRAINT.match(value):
            raise ValueError(
                "use only letters, digits, _ . , : + - and the operators & | ! * ( ) [ ]"
            )
        return value

    @field_validator("extra")
    @classmethod
    def _slurm_flags(cls, value: list[str]) -> list[str]:
        for flag in value:
            if not SLURM_FLAG.match(flag):
                raise ValueError(f"{flag!r} is not of the form --name or --name=value")
        return value

    def ranks_per_node(self) -> int:
        return self.tasks_per_node or max(1, self.gpus_per_node)


class ContainerConfig(Section):
    """How the trainer is started on the node (ignored by the config hash)."""

    runtime: Literal["none", "apptainer"] = Field(
        "none", description="'apptainer' runs the trainer in container.image; 'none' on the host."
    )
    image: str | None = Field(None, description="Apptainer image (.sif) built from containers/.")
    binds: list[str] = Field(
        default_factory=list, description="Extra bind mounts (results, data, HF cache are added)."
    )
    hf_cache: str | None = Field(
        None, description="Host HF cache bound into the container (default: $HF_HOME)."
    )


class PerfConfig(Section):
    """Throughput switches (ignored by the config hash): none changes what is computed beyond
    float rounding (tests/unit/models/test_levers.py), so a run may resume with others. Each
    defaults to the code's behaviour before it existed; ``make gpu-check`` measures each alone."""

    attention_backend: Literal["auto", "flash", "cudnn", "efficient", "math"] = Field(
        "auto", description="SDPA kernel of every attention call (auto: torch chooses). On a CPU, "
        "cudnn and efficient fall back to auto with a warning; flash needs cross_attention=grouped.",
    )  # fmt: skip
    cross_attention: Literal["masked", "grouped"] = Field(
        "masked", description="Caption padding: a boolean mask, or mask-free calls with the keys cut "
        "to each caption's length (one host sync per forward; a shape per length when compiled).",
    )  # fmt: skip
    fused_adaln: bool = Field(
        False, description="LayerNorm + adaLN modulation as one compiled function (norm_modulate)."
    )
    checkpoint_blocks: int | None = Field(
        None, ge=0, description="With model.grad_checkpointing: recompute the first N blocks only."
    )
    fused_adamw: bool = Field(
        True, description="torch's fused AdamW on CUDA (false: its foreach kernel); CPU: default."
    )
    compile_scope: Literal["model", "blocks"] = Field(
        "model", description="With train.compile: the whole DiT, or each block alone (regional)."
    )
    pin_memory: bool = Field(
        False, description="Pinned batches and non-blocking copies to the GPU (none on a CPU)."
    )
    cfg_batch: bool = Field(
        False, description="Guidance: conditional and unconditional in one forward per DDIM step."
    )

    @model_validator(mode="after")
    def _flash_takes_no_mask(self) -> PerfConfig:
        if self.attention_backend == "flash" and self.cross_attention == "masked":
            raise ValueError(
                "attention_backend=flash takes no mask: set perf.cross_attention=grouped"
            )
        return self


class HalvingConfig(Section):
    """Successive halving over a study's points (docs/cluster.md, "Successive halving"; ignored
    by the hash: a rung only stops a run early and resumes it, the final weights are those of
    an uninterrupted run, tests/integration/test_rung_resume.py)."""

    enabled: bool = Field(
        False, description="Run the study in rungs: a decider job after each drops the points "
        "shown worse than the best, the survivors resume from their checkpoints.",
    )  # fmt: skip
    eta: float = Field(
        3.0, gt=1.0, le=100.0,
        description="Reduction factor: rung budgets grow by eta, and a rung keeps at least "
        "ceil(points / eta) points.",
    )  # fmt: skip
    rungs: int = Field(
        2, ge=1, le=10, description="Rungs, the last at the final budget (train.max_steps/epochs)."
    )
    first_steps: int | None = Field(
        None, ge=1,
        description="Optimizer steps of rung 0 (default: final steps / eta^(rungs-1)); rung r "
        "has first_steps * eta^r, the last rung the final steps.",
    )  # fmt: skip
    alpha: float = Field(
        0.05, gt=0.0, lt=1.0,
        description="Level of the paired one-sided test against the best point, Holm-corrected "
        "over the points: a point is dropped only below it (and worse in every matched seed).",
    )  # fmt: skip
    margin: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Drop a point only when shown worse than the best by more than this share of "
        "the best's mean (0: by any amount); early differences that are small but consistent "
        "need not last (BENCHMARKS.md, the halving simulation).",
    )  # fmt: skip
    metric: str = Field(
        "dtw_mje",
        description="The evaluation metric the rule compares (a key of evaluation_metrics.json "
        "or summary.json whose direction is known, e.g. dtw_mje, psnr, final_loss); per-clip "
        "values are used where the evaluation records them (dtw_mje).",
    )  # fmt: skip
    eval_clips: int | None = Field(
        None, ge=1, le=10_000,
        description="Validation clips evaluated at a rung's end (default: eval.num_videos); the "
        "same clips for every run (eval.seed).",
    )  # fmt: skip
    max_keep: int | None = Field(
        None, ge=1,
        description="At most this many points go on from a rung (the budget); never fewer than "
        "ceil(points / eta). Default: no cap.",
    )  # fmt: skip
    stop_at: int | None = Field(
        None, ge=1,
        description="Set by the study per run, not by hand: stop at this step (a rung's budget), "
        "checkpoint, evaluate into rungs/step<N>/; the LR schedule stays that of the final budget.",
    )  # fmt: skip


class Config(Section):
    """The whole resolved config of one run."""

    profile: str = Field("tiny", description="Size preset this config was resolved with.")
    variant: str = Field("baseline", description="Ablation variant overlay.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    ema: EMAConfig = Field(default_factory=EMAConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)
    container: ContainerConfig = Field(default_factory=ContainerConfig)
    perf: PerfConfig = Field(default_factory=PerfConfig)
    halving: HalvingConfig = Field(default_factory=HalvingConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def hash(self) -> str:
        """Stable short hash of what determines the results: a run dir refuses a different one.

        ``eval``, ``prepare``, ``slurm``, ``container``, ``perf`` and ``halving`` are left out: moving a run to another
        partition or image, giving it more time, a faster kernel, or evaluating it differently
        must not block its resume.
        """
        data = {k: v for k, v in self.to_dict().items() if k not in HASH_EXCLUDED}
        canon = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Loading, overlays and error reporting
# ----------------------------------------------------------------------------------------------


def available(kind: Literal["profiles", "variants"]) -> list[str]:
    """Names of the packaged profiles or variants."""
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: top level must be a mapping of sections, got {type(data).__name__}"
        )
    return data


def _merge(dst: dict, src: dict, source: str, prov: dict[str, str], prefix: str = "") -> None:
    """Deep-merge ``src`` into ``dst``, recording which source set each dotted key."""
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value, source, prov, dotted + ".")
        else:
            dst[key] = copy.deepcopy(value)
            prov[dotted] = source
            if isinstance(value, dict):
                for sub in _dotted_keys(value, dotted + "."):
                    prov[sub] = source


def _dotted_keys(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out.append(prefix + str(k))
        if isinstance(v, dict):
            out.extend(_dotted_keys(v, f"{prefix}{k}."))
    return out


def _check_unknown_keys(
    model: type[BaseModel], data: Any, prov: dict[str, str], prefix: str = ""
) -> None:
    """Reject unknown keys with a suggestion, before pydantic's less helpful message."""
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            valid = ", ".join(fields)
            raise ConfigError(
                f"{prov.get(dotted, '<config>')}: unknown key '{dotted}'{hint} (valid: {valid})"
            )
        ann = fields[key].annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            _check_unknown_keys(ann, value, prov, dotted + ".")


def _profile_layers(name: str, seen: tuple[str, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """A profile's YAML after the profiles it ``extends:`` (a key of its own, then dropped)."""
    path = CONFIG_DIR / "profiles" / f"{name}.yaml"
    data = _read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return [(path, data)]
    if parent not in available("profiles") or parent in (*seen, name):
        raise ConfigError(f"{path}: extends {parent!r}, which is not another packaged profile")
    return [*_profile_layers(parent, (*seen, name)), (path, data)]


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse one ``--set section.key=value`` (the value is YAML: numbers, booleans, lists)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set: expected KEY=VALUE with a dotted key, got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML") from None
    return key.split("."), value


def load_config(
    *,
    profile: str = "tiny",
    variant: str = "baseline",
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Config:
    """Resolve base ⊕ profile ⊕ variant ⊕ overrides into a validated :class:`Config`."""
    for kind, name in (("profiles", profile), ("variants", variant)):
        if name not in available(kind):  # type: ignore[arg-type]
            valid = ", ".join(available(kind))  # type: ignore[arg-type]
            raise ConfigError(f"unknown {kind[:-1]} {name!r}; valid: {valid}")
    base = Path(config_file) if config_file else BASE_CONFIG
    merged: dict[str, Any] = {}
    prov: dict[str, str] = {}
    layers = [(base, _read_yaml(base)), *_profile_layers(profile)]
    variant_file = CONFIG_DIR / "variants" / f"{variant}.yaml"
    for path, data in [*layers, (variant_file, _read_yaml(variant_file))]:
        _merge(merged, data, str(path), prov)
    _merge(merged, {"profile": profile, "variant": variant}, "<cli>", prov)
    for item in overrides or []:
        keys, value = parse_override(item)
        nested: Any = value
        for k in reversed(keys):
            nested = {k: nested}
        _merge(merged, nested, f"--set {item.partition('=')[0]}", prov)
    return validate(merged, prov)


def validate(data: dict[str, Any], prov: dict[str, str] | None = None) -> Config:
    """Validate a merged dict, turning the first error into a one-line :class:`ConfigError`."""
    prov = prov or {}
    _check_unknown_keys(Config, data, prov)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        dotted = ".".join(str(p) for p in err["loc"])
        source = prov.get(dotted, "<config>")
        got = (
            f" (got {err['input']!r})"
            if "input" in err and not isinstance(err["input"], dict)
            else ""
        )
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: key '{dotted}': {msg}{got}") from None


def load_resolved(path: str | Path) -> Config:
    """Load a run dir's saved ``config.yaml`` (already resolved, validated again)."""
    path = Path(path)
    data = _read_yaml(path)
    return validate(data, {k: str(path) for k in _dotted_keys(data)})


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)

"""Checkpoints: DeepSpeed's ``save_checkpoint`` plus our client state, made resumable atomically.

A checkpoint ``checkpoints/step00000100/`` holds DeepSpeed's model/optimizer shards, our client
state (step, epoch, data position, EMA, rank-0 RNG states, config hash) and one RNG file per rank.
It becomes the resume point only when every rank has finished writing: then rank 0 replaces the
``checkpoints/latest`` pointer atomically. A killed save leaves the previous pointer intact.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from text2sign import atomic
from text2sign.distributed import barrier
from text2sign.errors import RunDirError

# The rank-0 file holding the module and our client state: ZeRO-3 names it per data-parallel rank.
MODEL_STATES = ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt")


def tag_for(step: int) -> str:
    return f"step{step:08d}"


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    engine, ckpt_dir: Path, *, step: int, rank: int, client_state: dict[str, Any], keep: int
) -> str:
    """Collective: every rank calls it. Returns the tag once the checkpoint is complete."""
    tag = tag_for(step)
    client_state = {**client_state, "rng": rng_state()}
    engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state=client_state, save_latest=False)
    torch.save(rng_state(), ckpt_dir / tag / f"rng_rank{rank}.pt")
    barrier()  # every shard of every rank is on disk
    if rank == 0:
        atomic.write_text(ckpt_dir / "latest", tag + "\n")
        _prune(ckpt_dir, keep=keep, current=tag)
    barrier()
    return tag


def _prune(ckpt_dir: Path, *, keep: int, current: str) -> None:
    tags = sorted(p.name for p in ckpt_dir.glob("step*") if p.is_dir())
    for old in tags[:-keep]:
        if old != current:
            shutil.rmtree(ckpt_dir / old, ignore_errors=True)


def load(engine, ckpt_dir: Path, tag: str, *, rank: int, config_hash: str) -> dict[str, Any]:
    """Collective: restore engine, optimizer and scheduler; return the client state."""
    _, client = engine.load_checkpoint(str(ckpt_dir), tag=tag, load_module_strict=True)
    if client is None:
        raise RunDirError(f"{ckpt_dir / tag}: DeepSpeed could not load this checkpoint")
    if client.get("config_hash") != config_hash:
        raise RunDirError(
            f"{ckpt_dir / tag}: checkpoint config hash {client.get('config_hash')} != {config_hash}"
        )
    rng_file = ckpt_dir / tag / f"rng_rank{rank}.pt"
    if rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return client


# ----------------------------------------------------------------------------------------------
# Offline loading (sampling, evaluation, tests): no DeepSpeed engine, no process group
# ----------------------------------------------------------------------------------------------


def read_client_state(ckpt_dir: Path, tag: str) -> dict[str, Any]:
    """The rank-0 model-states file: DeepSpeed stores the client state at its top level."""
    for name in MODEL_STATES:
        if (ckpt_dir / tag / name).exists():
            return torch.load(ckpt_dir / tag / name, map_location="cpu", weights_only=False)
    raise RunDirError(f"{ckpt_dir / tag}: no DeepSpeed model-states file")


def fp32_weights(ckpt_dir: Path, tag: str, *, zero_stage: int) -> dict[str, torch.Tensor]:
    """The trained (non-EMA) weights in fp32, consolidated with DeepSpeed's own zero_to_fp32."""
    if zero_stage == 0:
        module = read_client_state(ckpt_dir, tag)["module"]
        return {k: v.float() for k, v in module.items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt_dir), tag=tag)
    return {k: v.float() for k, v in state.items()}

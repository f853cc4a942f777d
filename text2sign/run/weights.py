"""A run's trained weights, read offline from a checkpoint: no DeepSpeed engine, no process group.

What sampling, evaluation and tests load: the EMA (ZeRO-3 shards assembled) or the trained weights
consolidated by DeepSpeed's ``zero_to_fp32``. The files are written by
:mod:`text2sign.training.checkpoint`; every load here is weights-only (:mod:`text2sign.run.safeload`).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from text2sign.errors import RunDirError
from text2sign.run import safeload

# The rank-0 file holding the module and our client state: ZeRO-3 names it per data-parallel rank.
MODEL_STATES = ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt")


def read_client_state(ckpt_dir: Path, tag: str) -> dict[str, Any]:
    """The rank-0 model-states file: DeepSpeed stores the client state at its top level."""
    for name in MODEL_STATES:
        if (ckpt_dir / tag / name).exists():
            return safeload.load(ckpt_dir / tag / name, map_location="cpu")
    raise RunDirError(f"{ckpt_dir / tag}: no DeepSpeed model-states file")


def read_ema(ckpt_dir: Path, tag: str) -> dict[str, torch.Tensor] | None:
    """The full fp32 EMA of a checkpoint (None without EMA). A ZeRO-3 checkpoint holds one shard
    per rank, in each rank's model-states file: they are assembled here."""
    from text2sign.models.ema import assemble_shards, is_shard

    state = read_client_state(ckpt_dir, tag).get("ema")
    if not is_shard(state):
        return state  # the full EMA (ZeRO 0-2, and checkpoints from before sharding)
    shards = [state]
    for r in range(1, int(state["world_size"])):
        path = ckpt_dir / tag / f"zero_pp_rank_{r}_mp_rank_00_model_states.pt"
        if not path.exists():
            raise RunDirError(f"{ckpt_dir / tag}: EMA shard of rank {r} missing ({path.name})")
        shards.append(safeload.load(path, map_location="cpu")["ema"])
    return assemble_shards(shards)


def fp32_weights(ckpt_dir: Path, tag: str, *, zero_stage: int) -> dict[str, torch.Tensor]:
    """The trained (non-EMA) weights in fp32, consolidated with DeepSpeed's own zero_to_fp32."""
    if zero_stage == 0:
        module = read_client_state(ckpt_dir, tag)["module"]
        return {k: v.float() for k, v in module.items()}
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    try:
        with safeload.weights_only():
            state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt_dir), tag=tag)
    except pickle.UnpicklingError as e:
        raise safeload.refusal(ckpt_dir / tag, e) from None
    return {k: v.float() for k, v in state.items()}

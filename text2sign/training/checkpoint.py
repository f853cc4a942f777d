"""Checkpoints: DeepSpeed's ``save_checkpoint`` plus our client state, made resumable atomically.

A checkpoint ``checkpoints/step00000100/`` holds DeepSpeed's model/optimizer shards, our client
state (step, epoch, data position, EMA, rank-0 RNG states, config hash), one RNG file per rank and
``t2s.json`` (step, world size, config hash: what a resume or ``--resume-study`` checks without
loading a tensor). The EMA is in the client state: in full in rank 0's file under ZeRO 0-2, one
shard per rank in each rank's file under ZeRO-3 (:func:`text2sign.run.weights.read_ema` assembles them). Everything we write is tensors and plain types, and every load is weights-only
(:mod:`text2sign.run.safeload`): a run dir from someone else cannot run code here.
It becomes the resume point only when every rank has finished writing: then rank 0 replaces the
``checkpoints/latest`` pointer atomically. A killed save leaves the previous pointer intact.
"""

from __future__ import annotations

import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from text2sign import atomic
from text2sign.errors import RunDirError
from text2sign.run import safeload
from text2sign.run.rundir import CHECKPOINT_META, checkpoint_meta
from text2sign.runtime.distributed import barrier


def tag_for(step: int) -> str:
    return f"step{step:08d}"


def rng_state() -> dict[str, Any]:
    """Every RNG's state as tensors and plain types (loadable with ``weights_only=True``)."""
    version, mt, pos = random.getstate()
    name, keys, npos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": [version, list(mt), pos],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), npos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt, pos = state["python"]
    random.setstate((version, tuple(mt), pos))
    name, keys, npos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), npos, has_gauss, gauss))
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
        meta = {k: client_state.get(k) for k in ("step", "world_size", "config_hash")}
        atomic.write_json(ckpt_dir / tag / CHECKPOINT_META, meta)
        atomic.write_text(ckpt_dir / "latest", tag + "\n")
        _prune(ckpt_dir, keep=keep, current=tag)
    barrier()
    return tag


def _prune(ckpt_dir: Path, *, keep: int, current: str) -> None:
    tags = sorted(p.name for p in ckpt_dir.glob("step*") if p.is_dir())
    for old in tags[:-keep]:
        if old != current:
            shutil.rmtree(ckpt_dir / old, ignore_errors=True)


def check_world_size(ckpt_dir: Path, tag: str, world_size: int) -> None:
    """Refuse (exit 2) to resume with another number of ranks than wrote the checkpoint.

    A different world size changes the global batch and every rank's data order, so the run
    would no longer be the run its config describes; we refuse rather than convert (docs/training.md).
    """
    written = checkpoint_meta(ckpt_dir, tag).get("world_size")
    if written is not None and int(written) != world_size:
        raise RunDirError(
            f"{ckpt_dir / tag}: written by {written} ranks, this job has {world_size}; resume "
            f"with {written} ranks (the --nodes and --gpus-per-node/--tasks-per-node it was "
            "submitted with) or start a new study"
        )


def load(engine, ckpt_dir: Path, tag: str, *, rank: int, config_hash: str) -> dict[str, Any]:
    """Collective: restore engine, optimizer and scheduler; return the client state."""
    try:
        with safeload.weights_only():
            _, client = engine.load_checkpoint(str(ckpt_dir), tag=tag, load_module_strict=True)
    except pickle.UnpicklingError as e:
        raise safeload.refusal(ckpt_dir / tag, e) from None
    if client is None:
        raise RunDirError(f"{ckpt_dir / tag}: DeepSpeed could not load this checkpoint")
    if client.get("config_hash") != config_hash:
        raise RunDirError(
            f"{ckpt_dir / tag}: checkpoint config hash {client.get('config_hash')} != {config_hash}"
        )
    rng_file = ckpt_dir / tag / f"rng_rank{rank}.pt"
    if rng_file.exists():
        set_rng_state(safeload.load(rng_file))
    return client

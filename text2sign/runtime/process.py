"""Process-wide settings of a trainer: deterministic kernels, quiet libraries, one-line errors."""

from __future__ import annotations

import logging
import os

import torch

from text2sign.errors import UsageError


def deterministic() -> None:
    """Deterministic kernels, so a resumed CUDA run repeats the uninterrupted one. cuBLAS needs
    its workspace setting before its first call; kernels without a deterministic version warn."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def quiet_libraries() -> None:
    """Batch logs stay readable: no per-file progress bars from transformers, DS at warnings."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    from deepspeed.utils import logger as ds_logger

    ds_logger.setLevel(logging.WARNING)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    detail = text[-1] if text else ""
    return detail if isinstance(e, UsageError) else f"{type(e).__name__}: {detail}".rstrip(": ")

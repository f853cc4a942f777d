"""Loading checkpoint files without executing code: ``torch.load(weights_only=True)`` only.

A run dir may belong to a colleague on a shared results tree; a pickle in it must never run code
when we resume, sample or evaluate it. Everything text2sign writes is tensors and plain types.
DeepSpeed's own files hold a few data-only classes of its own (allow-listed below), and DeepSpeed
turns the weights-only unpickler off in its own ``torch.load`` calls, so those run inside
:func:`weights_only`, which forces it back on for every ``torch.load``
(``TORCH_FORCE_WEIGHTS_ONLY_LOAD``).
"""

from __future__ import annotations

import contextlib
import enum
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from text2sign.errors import RunDirError


def _deepspeed_globals() -> list[Any]:
    """DeepSpeed's data-only classes in its checkpoints: loss scaler, ZeRO stage, fragment address."""
    out: list[Any] = []
    with contextlib.suppress(ImportError):
        from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler

        out += [LossScaler, DynamicLossScaler]
    with contextlib.suppress(ImportError):
        from deepspeed.runtime.zero.config import ZeroStageEnum

        out.append(ZeroStageEnum)
    with contextlib.suppress(ImportError):
        from deepspeed.utils.tensor_fragment import fragment_address

        out.append(fragment_address)
    return out


def _enum_member(cls: Any, name: str) -> Any:
    """What a pickled ``getattr(SomeEnum, "member")`` may do here: look up a member of an
    allow-listed enum, nothing else. Some Python builds (Debian's 3.11 in the CPU image) pickle
    enum members that way, DeepSpeed's ZeroStageEnum among them."""
    if isinstance(cls, type) and issubclass(cls, enum.Enum) and cls in _deepspeed_globals():
        if isinstance(name, str) and name in cls.__members__:
            return cls[name]
    raise pickle.UnpicklingError(f"Unsupported global: GLOBAL getattr({cls!r}, {name!r})")


def refusal(path: str | Path, exc: BaseException) -> RunDirError:
    detail = next((ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln), "")
    detail = detail.split(" was not")[0].replace("WeightsUnpickler error: ", "")
    return RunDirError(
        f"{path}: refused to load: it holds a pickled object, not only tensors and plain data"
        f"{f' ({detail})' if detail else ''}; it was written by another program or by an older "
        "text2sign, and loading it could run code"
    )


@contextlib.contextmanager
def weights_only() -> Iterator[None]:
    """Every ``torch.load`` inside (DeepSpeed's too) uses the weights-only unpickler."""
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with torch.serialization.safe_globals(
            [*_deepspeed_globals(), (_enum_member, "builtins.getattr")]
        ):
            yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old


def load(path: str | Path, **kwargs: Any) -> Any:
    """``torch.load`` that refuses (``RunDirError``, exit 2) anything but weights and plain data."""
    try:
        with weights_only():
            return torch.load(path, weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        raise refusal(path, e) from None

"""``python -m text2sign doctor``: what this machine offers a run, in one screen."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from text2sign.pose import env as pose_env
from text2sign.run.metadata import container_info, git_info, versions


def _nvml_lines() -> list[str]:
    try:
        import pynvml

        pynvml.nvmlInit()
        out = [f"driver {pynvml.nvmlSystemGetDriverVersion()}"]
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            out.append(f"[{i}] {pynvml.nvmlDeviceGetName(h)} {pynvml.nvmlDeviceGetUUID(h)} "
                       f"{mem.used / 2**30:.1f}/{mem.total / 2**30:.1f} GiB")  # fmt: skip
        pynvml.nvmlShutdown()
        return out
    except Exception as e:
        return [f"unavailable ({type(e).__name__}: {e})"]


def _readable(path: str | None) -> str:
    if not path:
        return "not set"
    p = Path(path)
    return f"{p} ({'readable' if p.exists() and os.access(p, os.R_OK) else 'NOT readable'})"


def report() -> str:
    lines = ["text2sign doctor"]
    lines += [f"  {k:14s} {v}" for k, v in versions().items()]
    g = git_info()
    lines.append(f"  {'git':14s} {g['commit']}{' (dirty)' if g['dirty'] else ''}")
    c = container_info()
    where = f"{c['image']} (built from {c['commit']})" if c["runtime"] != "none" else "none (host)"
    lines.append(f"  {'container':14s} {where}")
    if torch.cuda.is_available():
        gpus = [f"{i}: {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
        lines.append(f"  {'torch GPUs':14s} {', '.join(gpus)}")
    else:
        lines.append(f"  {'torch GPUs':14s} none (CUDA not available)")
    lines += [f"  {'NVML':14s} {s}" for s in _nvml_lines()]
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        from deepspeed.accelerator import get_accelerator

        acc = get_accelerator()
        lines.append(
            f"  {'DS accelerator':14s} {acc.device_name()} ({acc.communication_backend_name()})"
        )
    except Exception as e:
        lines.append(f"  {'DS accelerator':14s} unavailable ({e})")
    from text2sign.config import load_config

    cfg = load_config()
    pose = pose_env.find()
    lines.append(f"  {'pose env':14s} " + (f"{pose.python} ({pose.versions})" if pose.ok
                                            else f"none ({pose.reason})"))  # fmt: skip
    lines.append(f"  {'data root':14s} {_readable(cfg.data.root)}")
    hf = os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface")
    lines.append(
        f"  {'HF cache':14s} {_readable(hf)} HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}"
    )
    return "\n".join(lines)

"""A short torch.profiler summary of training micro-steps: where the time goes, and which SDPA
kernel each kind of attention call ran on (``make gpu-check`` writes it into gpu_check.json).

* **categories**: device time (CUDA kernels; on a CPU, the self time of the ops) in matmul,
  attention, elementwise (norms, activations, copies, reductions), optimizer (everything the
  DeepSpeed step launches, from the ``t2s.phase.optimizer`` label of bench/gpu_harness.py), data
  (host-to-device copies), communication and other, as shares and milliseconds per micro-step;
* **top**: the kernels (ops) with the most time per micro-step;
* **sdpa**: for the ``t2s.attn.spatial``/``temporal``/``cross`` labels of
  text2sign/models/attention.py, how many forward calls ran on flash, efficient, cudnn or math
  (a mask can send cross-attention to a slower kernel than self-attention's).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

import torch

SDPA_KERNELS = (  # forward SDPA op names -> backend
    ("flash_attention", "flash"),
    ("efficient_attention", "efficient"),
    ("cudnn_attention", "cudnn"),
    ("attention_math", "math"),
)
CATEGORIES = ("matmul", "attention", "elementwise", "optimizer", "data", "communication", "other")
_PATTERNS = (  # first match wins; kernel names (CUDA) and op names (CPU)
    ("communication", r"nccl|c10d::|gloo"),
    ("data", r"memcpy htod|memcpy hto|pin_memory|copy_h2d"),
    ("attention", r"flash|fmha|attention|sdpa|softmax_warp"),
    ("matmul", r"gemm|xmma|nvjet|cublas|cutlass|wgmma|sm\d\d_.*(mma|tensorop)|aten::(mm|addmm|bmm|baddbmm|_convolution|mkldnn_convolution|convolution|matmul)$|triton_tem_"),
    ("optimizer", r"adam|multi_tensor_apply|optimizer"),
    ("elementwise", r"elementwise|vectorized|unrolled|reduce|norm|gelu|silu|triton_(poi|red|per)_|cat|copy|fill|memset|memcpy|index|aten::"),
)  # fmt: skip


def category(name: str) -> str:
    """The category of one kernel (or op) by its name."""
    low = name.lower()
    for cat, pattern in _PATTERNS:
        if re.search(pattern, low):
            return cat
    return "other"


def sdpa_backend(name: str) -> str | None:
    """The SDPA backend of a forward SDPA op name, else None."""
    if not name.startswith("aten::_scaled_dot_product") or name.endswith("_backward"):
        return None
    return next((b for key, b in SDPA_KERNELS if key in name), None)


def _ancestors(event) -> list[str]:
    names, node = [], event.cpu_parent
    while node is not None:
        names.append(node.name)
        node = node.cpu_parent
    return names


def _device_type(prof) -> str:
    return (
        "cuda"
        if any(e.device_type == torch.autograd.DeviceType.CUDA for e in prof.events())
        else "cpu"
    )


def summarize(prof, micro_steps: int, top: int = 12) -> dict[str, Any]:
    """The summary of a finished ``torch.profiler.profile`` over ``micro_steps`` micro-steps."""
    events = prof.events()
    device = _device_type(prof)
    by_cat: Counter[str] = Counter()
    by_name: Counter[str] = Counter()
    cat_of_name: dict[str, str] = {}
    sdpa: dict[str, Counter[str]] = defaultdict(Counter)
    for e in events:
        if e.device_type != torch.autograd.DeviceType.CPU:
            continue
        up = _ancestors(e)
        backend = sdpa_backend(e.name)
        if backend is not None:
            label = next((a for a in up if a.startswith("t2s.attn.")), "t2s.attn.unlabelled")
            sdpa[label.removeprefix("t2s.attn.")][backend] += 1
        in_optimizer = "t2s.phase.optimizer" in up or e.name == "t2s.phase.optimizer"
        # The work of this op: its kernels on a GPU, its self time on a CPU (microseconds).
        if device == "cuda":
            work = [(k.name, k.duration) for k in e.kernels]
        else:
            work = [(e.name, e.self_cpu_time_total)] if e.self_cpu_time_total > 0 else []
        for name, us in work:
            cat = "optimizer" if in_optimizer else category(name)
            by_cat[cat] += us
            by_name[name] += us
            cat_of_name.setdefault(name, cat)
    total = sum(by_cat.values()) or 1.0
    per = 1e3 * max(micro_steps, 1)  # microseconds -> ms per micro-step
    return {
        "device": device,
        "micro_steps": micro_steps,
        "time_ms_per_micro_step": total / per,
        "categories": {c: round(by_cat[c] / total, 4) for c in CATEGORIES},
        "category_ms": {c: round(by_cat[c] / per, 3) for c in CATEGORIES},
        "top": [
            {
                "name": name[:120],
                "category": cat_of_name[name],
                "ms": round(us / per, 3),
                "share": round(us / total, 4),
            }
            for name, us in by_name.most_common(top)
        ],  # fmt: skip
        "sdpa": {label: dict(counts) for label, counts in sorted(sdpa.items())},
    }


def profile_micro_steps(harness, micro_steps: int) -> dict[str, Any]:
    """Profile ``micro_steps`` micro-steps of a warmed-up ``bench.gpu_harness.Harness``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if harness.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    harness._sync()
    with profile(activities=activities) as prof:
        for _ in range(micro_steps):
            harness.micro_step()
        harness._sync()
    return summarize(prof, micro_steps)

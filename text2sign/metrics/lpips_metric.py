"""LPIPS (AlexNet) between real and generated frames, never downloading weights.

The ``lpips`` package ships its linear calibration weights, but builds its AlexNet trunk with
torchvision, which loads ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` and would
download it when missing. We check that file first, point torch.hub at it, and refuse any
download attempt, so LPIPS is either measured with local weights or N/A with a reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from text2sign.metrics.result import Metric

ALEXNET_CHECKPOINT = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet IMAGENET1K_V1 file
NO_WEIGHTS = "no AlexNet weights in TORCH_HOME"
# Smallest frame side LPIPS-AlexNet accepts: conv1 (k11, s4, p2) and two 3x3/2 max-pools
# leave nothing below 31 pixels ((31 - 7) // 4 + 1 = 7 -> 3 -> 1).
MIN_SIZE = 31


def alexnet_checkpoint(torch_home: str | os.PathLike | None = None) -> Path:
    """Where torchvision looks for the AlexNet weights: ``<hub dir>/checkpoints/<file>``.

    The hub dir is ``torch_home/hub`` when given, else torch's own (``$TORCH_HOME/hub``,
    default ``~/.cache/torch/hub``, or whatever ``torch.hub.set_dir`` set).
    """
    hub = Path(torch_home) / "hub" if torch_home else Path(torch.hub.get_dir())
    return hub / "checkpoints" / ALEXNET_CHECKPOINT


@contextlib.contextmanager
def _offline_hub(hub_dir: Path) -> Iterator[None]:
    """Point torch.hub at ``hub_dir`` and make any download raise, then restore both."""
    previous_dir = getattr(torch.hub, "_hub_dir", None)
    previous_download = torch.hub.download_url_to_file

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        raise RuntimeError(f"download of {url} refused: weights must be local")

    torch.hub.set_dir(str(hub_dir))
    # torchvision loads through torch.hub.load_state_dict_from_url, which calls this by name.
    torch.hub.download_url_to_file = refuse
    try:
        yield
    finally:
        torch.hub.download_url_to_file = previous_download
        torch.hub._hub_dir = previous_dir


def _frames(x: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) -> (F, H, W, 3)."""
    x = np.asarray(x)
    if x.ndim < 3 or x.shape[-1] != 3:
        raise ValueError(f"expected (..., H, W, 3) frames, got shape {x.shape}")
    return x.reshape(-1, *x.shape[-3:])


def _to_input(frames: np.ndarray, resize_to: int | None) -> torch.Tensor:
    """uint8 (F, H, W, 3) -> float32 (F, 3, H', W') in [-1, 1], as LPIPS expects."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2)
    if resize_to is not None:
        x = F.interpolate(x, size=(resize_to, resize_to), mode="bilinear", align_corners=False)
    return x / 127.5 - 1.0


def lpips_distance(
    real_uint8: np.ndarray,
    fake_uint8: np.ndarray,
    *,
    torch_home: str | None,
    resize_to: int | None = None,
    batch_size: int = 32,
) -> Metric:
    """Mean LPIPS (``lpips.LPIPS(net="alex")``, v0.1) over paired frames; lower is closer.

    ``real_uint8`` and ``fake_uint8``: same-shape uint8 (..., H, W, 3), frames paired in order.
    Frames go in as NCHW in [-1, 1]; ``resize_to`` resizes them bilinearly to a square first
    (LPIPS-AlexNet needs sides >= 31 px: smaller frames without ``resize_to`` give N/A).
    N/A when the AlexNet checkpoint is not in ``torch_home`` (else ``$TORCH_HOME``, else
    ``~/.cache/torch``), or when torchvision or lpips cannot be imported or built.
    """
    real, fake = _frames(real_uint8), _frames(fake_uint8)
    if real.shape != fake.shape:
        raise ValueError(f"shape mismatch: {real.shape} vs {fake.shape}")
    side = resize_to if resize_to is not None else min(real.shape[1:3])
    if side < MIN_SIZE:
        return Metric.na(
            f"frames of {side} px are below LPIPS-AlexNet's {MIN_SIZE} px minimum (set resize_to)"
        )
    checkpoint = alexnet_checkpoint(torch_home)
    if not checkpoint.is_file():
        return Metric.na(f"{NO_WEIGHTS} (looked for {checkpoint})")
    # lpips imports torchvision itself; importing it first gives the more precise reason.
    try:
        import torchvision  # noqa: F401
    except Exception as e:  # ImportError, or e.g. a RuntimeError from a mismatched torch build
        return Metric.na(f"torchvision unavailable: {e}")
    try:
        import lpips
    except Exception as e:
        return Metric.na(f"lpips unavailable: {e}")
    try:
        with _offline_hub(checkpoint.parent.parent):
            model = lpips.LPIPS(net="alex", pretrained=True, verbose=False).eval()
    except Exception as e:  # e.g. a corrupt checkpoint, an API change, a refused download
        return Metric.na(f"LPIPS-AlexNet could not be built: {e}")
    dists = []
    with torch.no_grad():
        for start in range(0, len(real), batch_size):
            a = _to_input(real[start : start + batch_size], resize_to)  # (B, 3, H', W')
            b = _to_input(fake[start : start + batch_size], resize_to)
            dists.append(model(a, b).reshape(-1).double())  # (B,)
    return Metric.of(float(torch.cat(dists).mean()))

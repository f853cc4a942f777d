"""LPIPS: every N/A path (no weights, no torchvision, no lpips), and the measuring path with a
stand-in ``lpips`` module, since the real package and torchvision do not import here."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from text2sign.metrics import lpips_distance
from text2sign.metrics.lpips_metric import ALEXNET_CHECKPOINT, NO_WEIGHTS

VIDEO = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def torch_home(tmp_path) -> Path:
    """A TORCH_HOME with a (placeholder) AlexNet checkpoint where torchvision looks for it."""
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / ALEXNET_CHECKPOINT).write_bytes(b"placeholder")
    return tmp_path


def test_na_without_alexnet_weights(tmp_path, monkeypatch):
    result = lpips_distance(VIDEO, VIDEO, torch_home=str(tmp_path))
    assert result.is_na and result.reason.startswith(NO_WEIGHTS)
    assert str(tmp_path / "hub" / "checkpoints" / ALEXNET_CHECKPOINT) in result.reason
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "env_home"))  # the default: $TORCH_HOME
    result = lpips_distance(VIDEO, VIDEO, torch_home=None)
    assert result.is_na and str(tmp_path / "env_home") in result.reason


def test_na_without_torchvision(torch_home, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    result = lpips_distance(VIDEO, VIDEO, torch_home=str(torch_home))
    assert result.is_na and result.reason.startswith("torchvision unavailable: ")


def test_na_without_lpips(torch_home, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "lpips", None)
    result = lpips_distance(VIDEO, VIDEO, torch_home=str(torch_home))
    assert result.is_na and result.reason.startswith("lpips unavailable: ")


def test_this_machine_gives_na_not_a_number(torch_home):
    # With the real environment (no lpips; torchvision does not import beside torch 2.13).
    result = lpips_distance(VIDEO, VIDEO, torch_home=str(torch_home))
    assert result.is_na and result.reason


def test_small_frames_are_na_unless_resized(torch_home):
    small = VIDEO[..., :16, :16, :]
    result = lpips_distance(small, small, torch_home=str(torch_home))
    assert result.is_na and "resize_to" in result.reason


class _StandInLPIPS(torch.nn.Module):
    """A STAND-IN for lpips.LPIPS: mean |a - b| per image, recording what it was given."""

    seen: list[tuple[str, object]] = []

    def __init__(self, net: str, pretrained: bool, verbose: bool) -> None:
        super().__init__()
        assert (net, pretrained) == ("alex", True)
        # Where torchvision would load the AlexNet checkpoint from, at construction time.
        self.seen.append(("hub", torch.hub.get_dir()))
        if self.download:
            torch.hub.download_url_to_file("https://example.invalid/alexnet.pth", "/tmp/x")

    download = False

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.seen.append(("input", (tuple(a.shape), float(a.min()), float(a.max()))))
        return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)  # (N, 1, 1, 1) like LPIPS


@pytest.fixture
def stand_in_lpips(monkeypatch):
    _StandInLPIPS.seen = []
    _StandInLPIPS.download = False
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    fake = types.ModuleType("lpips")
    fake.LPIPS = _StandInLPIPS
    monkeypatch.setitem(sys.modules, "lpips", fake)
    return _StandInLPIPS


def test_measures_mean_over_frames_with_inputs_in_minus_one_one(torch_home, stand_in_lpips):
    hub_before = torch.hub.get_dir()
    fake = VIDEO.copy()
    fake[0, 0] = 255 - fake[0, 0]  # one frame differs
    result = lpips_distance(VIDEO, fake, torch_home=str(torch_home), batch_size=4)
    per_frame = np.abs(VIDEO.astype(float) - fake) / 127.5  # |a - b| after x / 127.5 - 1
    assert result.value == pytest.approx(per_frame.mean(axis=(2, 3, 4)).mean(), rel=1e-6)
    assert stand_in_lpips.seen[0] == ("hub", str(torch_home / "hub"))
    inputs = [v for k, v in stand_in_lpips.seen if k == "input"]
    assert [shape for shape, _, _ in inputs] == [(4, 3, 32, 32), (2, 3, 32, 32)]  # NCHW, 6 frames
    assert min(lo for _, lo, _ in inputs) == -1.0 and max(hi for _, _, hi in inputs) == 1.0
    assert torch.hub.get_dir() == hub_before  # restored


def test_resize_to_feeds_lpips_the_requested_size(torch_home, stand_in_lpips):
    small = VIDEO[..., :16, :16, :]
    result = lpips_distance(small, small, torch_home=str(torch_home), resize_to=64)
    assert result.value == 0.0
    assert [v[0] for k, v in stand_in_lpips.seen if k == "input"] == [(6, 3, 64, 64)]


def test_a_download_attempt_is_refused(torch_home, stand_in_lpips):
    stand_in_lpips.download = True
    download_before = torch.hub.download_url_to_file
    result = lpips_distance(VIDEO, VIDEO, torch_home=str(torch_home))
    assert result.is_na and "refused" in result.reason
    assert torch.hub.download_url_to_file is download_before  # restored

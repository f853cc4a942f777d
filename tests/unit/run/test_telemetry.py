"""Telemetry: the real no-GPU fallback here, and UUID matching against a GPU stand-in.

No GPU exists on the CI machine, so the NVML matching logic is exercised with ``FakeNVML``, a
stand-in for the ``pynvml`` module (named as such: a mock of what cannot exist here). The fallback
path runs the real ``pynvml``, which fails to find the driver on this machine.
"""

from __future__ import annotations

import csv
import time
from types import SimpleNamespace

import pytest
import torch

from text2sign.run.telemetry import NVMLReader, Telemetry


class FakeNVML:
    """GPU stand-in: three GPUs with fixed UUIDs, as NVML lists the whole node."""

    UUIDS = ["GPU-aaaaaaaa-0000-0000-0000-000000000000", "GPU-bbbbbbbb-1111-1111-1111-111111111111",
             "GPU-cccccccc-2222-2222-2222-222222222222"]  # fmt: skip

    def __init__(self, fail_power: bool = False) -> None:
        self.fail_power = fail_power

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.UUIDS)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUUID(self, h):
        return self.UUIDS[h].encode()

    def nvmlDeviceGetName(self, h):
        return f"Stand-in GPU {h}"

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=(h + 1) * 2**30, total=80 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=10 * h)

    def nvmlDeviceGetPowerUsage(self, h):
        if self.fail_power:
            raise RuntimeError("NVMLError_NotSupported")
        return 100_000 + h


def test_nvml_matches_gpus_by_uuid_not_index():
    # CUDA_VISIBLE_DEVICES=2 makes torch's cuda:0 the node's third GPU; torch reports its UUID
    # without the "GPU-" prefix. NVML must pick index 2, not index 0.
    reader = NVMLReader(["cccccccc-2222-2222-2222-222222222222"], nvml=FakeNVML())
    rows = reader.read()
    assert [r["gpu_index"] for r in rows] == [2]
    assert rows[0]["memory_used_bytes"] == 3 * 2**30 and rows[0]["power_w"] == pytest.approx(
        100.002
    )


def test_nvml_unknown_uuid_is_an_error_not_a_wrong_gpu():
    with pytest.raises(RuntimeError, match="no GPU with UUID"):
        NVMLReader(["dddddddd-0000-0000-0000-000000000000"], nvml=FakeNVML())


def test_unsupported_nvml_fields_become_empty_readings():
    rows = NVMLReader([FakeNVML.UUIDS[0]], nvml=FakeNVML(fail_power=True)).read()
    assert rows[0]["power_w"] is None and rows[0]["memory_total_bytes"] == 80 * 2**30


def test_fallback_without_gpu_records_rss_and_says_so_once(tmp_path):
    # The real pynvml: on this machine there is no NVIDIA driver.
    tel = Telemetry(tmp_path / "gpu_memory.csv", interval_s=0.05, device=torch.device("cpu"))
    assert tel.backend == "none"
    meta = tel.metadata()
    assert "no NVIDIA GPU/driver" in meta["reason"] and meta["gpus"] == []
    tel.start()
    tel.step = 7
    time.sleep(0.4)
    tel.stop()
    rows = list(csv.DictReader(open(tmp_path / "gpu_memory.csv")))
    assert len(rows) >= 3
    assert all(int(r["process_rss_bytes"]) > 10**6 and r["memory_used_bytes"] == "" for r in rows)
    assert rows[-1]["step"] == "7"
    peak, reserved, kind = tel.window_peak()
    assert kind == "process_rss" and peak > 10**6 and reserved is None


def test_sampler_thread_survives_a_failing_reader(tmp_path):
    tel = Telemetry(tmp_path / "g.csv", interval_s=0.02, device=torch.device("cpu"))

    def boom():
        raise OSError("device vanished")

    tel.sample_once = boom  # a reader that fails mid-run must not kill the run
    tel.start()
    time.sleep(0.1)
    assert tel._thread.is_alive()
    tel.stop()


def test_gpu_rows_with_stand_in(tmp_path):
    tel = Telemetry(
        tmp_path / "g.csv", interval_s=0.05, device=torch.device("cpu"), nvml=FakeNVML()
    )
    # On CPU torch reports no UUID, so every GPU NVML lists is sampled.
    assert tel.backend == "nvml" and len(tel.metadata()["gpus"]) == 3
    rows = tel.sample_once()
    assert {r["gpu_name"] for r in rows} == {f"Stand-in GPU {i}" for i in range(3)}

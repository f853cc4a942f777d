"""GPU-memory telemetry: an NVML sampler thread, torch peak memory, and a CPU fallback.

NVML enumerates *all* GPUs of the node and ignores CUDA_VISIBLE_DEVICES, so the sampler matches
GPUs by UUID to the device this process uses (torch reports its UUID). Without an NVIDIA GPU or
driver, the metadata says so once and the sampler records the process RSS instead. Telemetry never
crashes the run: every NVML error degrades to "no reading".
"""

from __future__ import annotations

import csv
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import torch

from text2sign.run.writers import truncate_csv

GPU_COLUMNS = (
    "time",
    "elapsed_s",
    "step",
    "rank",
    "gpu_index",
    "gpu_uuid",
    "gpu_name",
    "memory_used_bytes",
    "memory_total_bytes",
    "utilization_percent",
    "power_w",
    "process_rss_bytes",
)


def _norm_uuid(uuid: str) -> str:
    """NVML says 'GPU-1234…', torch says '1234…': compare the bare lowercase hex."""
    return str(uuid).lower().removeprefix("gpu-").replace("-", "")


def torch_device_uuids(device: torch.device) -> list[str]:
    """UUIDs of the CUDA devices this process uses (empty on CPU)."""
    if device.type != "cuda":
        return []
    props = torch.cuda.get_device_properties(device)
    uuid = getattr(props, "uuid", None)
    return [str(uuid)] if uuid is not None else []


class NVMLReader:
    """Reads memory, utilisation and power of the GPUs whose UUIDs this process uses.

    ``nvml`` is the ``pynvml`` module (from nvidia-ml-py); tests pass a stand-in because no GPU
    exists on the CI machine.
    """

    def __init__(self, uuids: list[str], nvml: Any | None = None) -> None:
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py
        self.nvml = nvml
        nvml.nvmlInit()
        wanted = {_norm_uuid(u) for u in uuids}
        self.handles: list[tuple[int, str, str, Any]] = []
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            uuid = _as_str(nvml.nvmlDeviceGetUUID(h))
            if not wanted or _norm_uuid(uuid) in wanted:
                self.handles.append((i, uuid, _as_str(nvml.nvmlDeviceGetName(h)), h))
        if wanted and not self.handles:
            raise RuntimeError(f"NVML sees no GPU with UUID {sorted(wanted)}")

    def gpus(self) -> list[dict[str, Any]]:
        return [{"index": i, "uuid": u, "name": n} for i, u, n, _ in self.handles]

    def read(self) -> list[dict[str, Any]]:
        rows = []
        for index, uuid, name, h in self.handles:
            row: dict[str, Any] = {"gpu_index": index, "gpu_uuid": uuid, "gpu_name": name}
            row["memory_used_bytes"], row["memory_total_bytes"] = self._mem(h)
            row["utilization_percent"] = self._safe(
                lambda h=h: self.nvml.nvmlDeviceGetUtilizationRates(h).gpu
            )
            power = self._safe(lambda h=h: self.nvml.nvmlDeviceGetPowerUsage(h))
            row["power_w"] = power / 1000.0 if power is not None else None
            rows.append(row)
        return rows

    def _mem(self, h: Any) -> tuple[int | None, int | None]:
        info = self._safe(lambda: self.nvml.nvmlDeviceGetMemoryInfo(h))
        return (info.used, info.total) if info is not None else (None, None)

    def _safe(self, fn):
        try:
            return fn()
        except Exception:  # NVMLError_NotSupported on some boards: no reading, not a crash
            return None

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass


def _as_str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Telemetry:
    """Background sampler writing ``gpu_memory.csv`` rows every ``interval_s`` seconds."""

    def __init__(
        self,
        csv_path: Path,
        *,
        interval_s: float,
        device: torch.device,
        rank: int = 0,
        nvml: Any | None = None,
    ) -> None:
        self.csv_path = csv_path
        self.interval_s = interval_s
        self.device = device
        self.rank = rank
        self.step = 0  # updated by the trainer; read by the thread (an int store is atomic)
        self._proc = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self.reader: NVMLReader | None = None
        self.backend = "none"
        self.reason = ""
        try:
            self.reader = NVMLReader(torch_device_uuids(device), nvml=nvml)
            if not self.reader.handles:
                raise RuntimeError("NVML sees no GPU")
            self.backend = "nvml"
        except Exception as e:  # no driver, no GPU, no library: say so once, in the metadata
            self.reader = None
            self.reason = f"no NVIDIA GPU/driver ({type(e).__name__}: {e}); recording process RSS"
        self._peak_rss = 0

    # -- metadata ---------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "reason": self.reason,
            "interval_s": self.interval_s,
            "gpus": self.reader.gpus() if self.reader else [],
        }

    # -- per-window torch peaks ---------------------------------------------------------------

    def window_peak(self) -> tuple[int, int | None, str]:
        """Peaks since the last call: (allocated-or-RSS bytes, reserved bytes or None, kind).

        On CUDA: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``, reset per window.
        On CPU: the peak process RSS seen by the sampler and now (no allocator reserve exists).
        """
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            reserved = torch.cuda.max_memory_reserved(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return int(peak), int(reserved), "cuda_max_allocated"
        rss = self._proc.memory_info().rss
        peak, self._peak_rss = max(self._peak_rss, rss), 0
        return int(peak), None, "process_rss"

    def cuda_peaks(self) -> dict[str, int]:
        if self.device.type != "cuda":
            return {}
        return {
            "max_memory_allocated": int(torch.cuda.max_memory_allocated(self.device)),
            "max_memory_reserved": int(torch.cuda.max_memory_reserved(self.device)),
        }

    # -- sampling thread -------------------------------------------------------------------

    def sample_once(self) -> list[dict[str, Any]]:
        base = {
            "time": time.time(),
            "elapsed_s": round(time.monotonic() - self._t0, 3),
            "step": self.step,
            "rank": self.rank,
        }
        rss = self._proc.memory_info().rss
        self._peak_rss = max(self._peak_rss, rss)
        if self.reader is None:
            return [{**base, "process_rss_bytes": rss}]
        return [{**base, **r, "process_rss_bytes": rss} for r in self.reader.read()]

    def start(self) -> None:
        """Start sampling; rows of an earlier attempt after the current step are dropped first."""
        truncate_csv(self.csv_path, self.step)
        new = not self.csv_path.exists()
        self._f = open(self.csv_path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._w = csv.DictWriter(self._f, fieldnames=GPU_COLUMNS)
        if new:
            self._w.writeheader()
        self._thread = threading.Thread(target=self._loop, name="t2s-telemetry", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._w.writerows(self.sample_once())
                self._f.flush()
            except Exception:  # telemetry must never take the run down
                pass
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.interval_s + 1)
            self._f.close()
        if self.reader is not None:
            self.reader.close()

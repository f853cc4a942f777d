"""The `full` profile's training micro-step, set up as one lever says: what ``make gpu-check`` times.

A :class:`Lever` is a list of config overrides on the profile: the very keys (``perf.*``,
``train.batch_size``, ``train.compile``, ...) that give the same set-up in a run. :class:`Harness`
builds the model, optimizer and DeepSpeed engine through the trainer's own functions
(``build_model``, ``build_optimizer``, ``maybe_compile``, ``deepspeed_config``) and runs
micro-steps in one of two modes:

* ``device``: video, noise, timesteps and caption states made on the device once: the model's
  step alone (forward, backward, and the optimizer every ``grad_accum`` micro-steps);
* ``trainer``: the trainer's micro-step (``micro_step_loss``: CPU noise, tokenizing, the frozen
  text encoder) on batches from a DataLoader over a synthetic set (``data.num_workers``,
  ``perf.pin_memory``), with the loop's per-micro-step NaN agreement and loss read-back.

MFU = model FLOPs (forward + backward, torch's FlopCounterMode, counted once per process on the
eager baseline model at batch 1, so recomputation or a compiled graph never inflates or hides
them) x samples/s / the measured bf16 matmul peak. It runs on a CPU too (tiny profile), which is
how the unit tests check it; the numbers that count come from a GPU.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

CAPTION_WORDS = (19, 11, 27, 8, 15, 23, 13, 30)  # varied lengths: cross-attention sees padding
WORDS = "the signer moves both hands up then left and waves while smiling at camera".split()
_FLOPS: dict[tuple, float] = {}  # (profile, sets) -> FLOPs per sample, counted once


@dataclass(frozen=True)
class Lever:
    """One measured set-up: config overrides on the profile, and the step's mode."""

    name: str
    sets: tuple[str, ...] = ()
    mode: str = "device"  # "device" | "trainer"
    note: str = ""


def captions(n: int) -> list[str]:
    """``n`` captions of the varied lengths of ``CAPTION_WORDS``."""
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(CAPTION_WORDS[i % 8])) for i in range(n)]  # fmt: skip


def matmul_peak(device: torch.device, n: int = 8192, iters: int = 20) -> float:
    """Measured bf16 matmul FLOP/s of an n x n x n product on a CUDA device."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * iters / (start.elapsed_time(end) / 1e3)


class UtilSampler:
    """NVML GPU utilisation (% of time a kernel ran) sampled every ``interval`` s in a thread.

    ``reader``: a ``text2sign.run.telemetry.NVMLReader`` (None: nothing is sampled).
    """

    def __init__(self, reader, interval: float = 0.1) -> None:
        self.values: list[float] = []
        self.reader, self.interval, self._stop = reader, interval, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @classmethod
    def for_device(cls, device: torch.device) -> UtilSampler:
        """On CUDA, the GPU of ``device`` by UUID; no NVML (a container without --nv): none."""
        if device.type != "cuda":
            return cls(None)
        from text2sign.run.telemetry import NVMLReader, torch_device_uuids

        try:
            return cls(NVMLReader(torch_device_uuids(device)))
        except Exception as e:
            print(f"[gpu-harness] no NVML utilisation: {type(e).__name__}: {e}", flush=True)
            return cls(None)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            value = self.reader.read()[0].get("utilization_percent")
            if value is not None:
                self.values.append(float(value))

    def __enter__(self) -> UtilSampler:
        if self.reader is not None and self.reader.handles:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.reader is not None:
            self.reader.close()


@dataclass
class Harness:
    """Model, optimizer and engine of one lever, and its inputs; ``close()`` frees them."""

    lever: Lever
    profile: str = "full"
    base_sets: tuple[str, ...] = ()
    data_root: Path | None = None
    cfg: Any = field(init=False)

    def __post_init__(self) -> None:
        import deepspeed

        from text2sign.config import load_config
        from text2sign.evaluation.sampling import make_diffusion
        from text2sign.models.build import build_model
        from text2sign.runtime import distributed
        from text2sign.training.engine import build_optimizer, deepspeed_config, maybe_compile

        sets = ["text.encoder=tiny", *self.base_sets, *self.lever.sets]
        self.cfg = cfg = load_config(profile=self.profile, overrides=sets)
        self.env = distributed.init()
        self.device = self.env.device
        self.dtype = torch.bfloat16 if cfg.train.precision == "bf16" else torch.float32
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.flops_per_sample = self._flops_per_sample()
        torch.manual_seed(cfg.train.seed)
        with torch.device(self.device):  # parameters initialised on the device: seconds, not tens
            self.built = build_model(cfg, None, captions(64))
        self.built.text.to(self.device)
        maybe_compile(self.built.model, cfg)
        optimizer = build_optimizer(self.built.model, cfg, self.device)
        self.engine, *_ = deepspeed.initialize(
            model=self.built.model, optimizer=optimizer, config=deepspeed_config(cfg, 1)
        )
        self.diffusion = make_diffusion(cfg)
        self.batch, self.accum = cfg.train.batch_size, cfg.train.grad_accum
        self._micro = 0
        if self.lever.mode == "trainer":
            self._open_loader()
        else:
            self._device_inputs()

    # ---- inputs ----------------------------------------------------------------------------
    def _device_inputs(self) -> None:
        cfg, b, dev = self.cfg, self.batch, self.device
        shape = (b, cfg.data.num_frames, 3, cfg.data.image_size, cfg.data.image_size)
        g = torch.Generator(device=dev).manual_seed(0)
        self.x0 = torch.rand(shape, generator=g, device=dev) * 2 - 1  # (B, T, C, H, W)
        self.noise = torch.randn(shape, generator=g, device=dev)
        self.t = torch.randint(0, cfg.diffusion.timesteps, (b,), generator=g, device=dev)
        self.text = self.built.encode(captions(b), dev)

    def _open_loader(self) -> None:
        from text2sign.data import open_dataset
        from text2sign.data.stream import MicroBatchSampler
        from text2sign.training.step import collate

        cfg = self.cfg
        train, _ = open_dataset(self.data_root, num_frames=cfg.data.num_frames,
                                size=cfg.data.image_size, val_fraction=cfg.data.val_fraction,
                                cache_dir=self.data_root / ".t2s_cache")  # fmt: skip
        stream = MicroBatchSampler(len(train), batch_size=self.batch, rank=0, world_size=1, seed=0)
        workers = cfg.data.num_workers
        loader = torch.utils.data.DataLoader(
            train, batch_sampler=stream, num_workers=workers, collate_fn=collate,
            persistent_workers=workers > 0,
            pin_memory=cfg.perf.pin_memory and self.device.type == "cuda",
        )  # fmt: skip
        self.batches = iter(loader)

    # ---- one micro-step ------------------------------------------------------------------------
    def micro_step(self) -> None:
        """Forward + backward of one micro-batch; the optimizer steps at each accumulation boundary."""
        engine = self.engine
        if self.lever.mode == "trainer":  # as text2sign/training/train.py's loop does it
            from text2sign.data.stream import step_generator
            from text2sign.runtime import distributed
            from text2sign.training.step import micro_step_loss

            g = step_generator(0, 0, self._micro // self.accum, self._micro % self.accum)
            loss = micro_step_loss(engine, self.built, self.diffusion, next(self.batches), g,
                                   self.cfg, self.device, self.dtype)  # fmt: skip
            if distributed.all_reduce_max(0.0 if torch.isfinite(loss) else 1.0) > 0:
                raise FloatingPointError("non-finite loss")
            engine.backward(loss)
            engine.step()
            loss.item()
        else:
            with torch.profiler.record_function("t2s.phase.forward"):
                loss = self.diffusion.training_loss(
                    lambda x_t, tt: engine(x_t.to(self.dtype), tt, **self.text),
                    self.x0, self.t, self.noise,
                )  # fmt: skip
            with torch.profiler.record_function("t2s.phase.backward"):
                engine.backward(loss)
            with torch.profiler.record_function("t2s.phase.optimizer"):
                engine.step()
        self._micro += 1

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _flops_per_sample(self) -> float:
        """Forward + backward FLOPs of one sample on the eager, unswitched model (cached)."""
        from torch.utils.flop_counter import FlopCounterMode

        from text2sign.config import load_config
        from text2sign.models.build import build_model

        key = (self.profile, self.base_sets)
        if key not in _FLOPS:
            cfg = load_config(
                profile=self.profile, overrides=["text.encoder=tiny", *self.base_sets]
            )
            with torch.device(self.device):
                built = build_model(cfg, None, captions(8))
            built.text.to(self.device)
            shape = (1, cfg.data.num_frames, 3, cfg.data.image_size, cfg.data.image_size)
            x = torch.randn(shape, device=self.device)
            t = torch.randint(0, cfg.diffusion.timesteps, (1,), device=self.device)
            with FlopCounterMode(display=False) as counter:
                built.model(x, t, **built.encode(captions(1), self.device)).float().pow(
                    2
                ).mean().backward()
            _FLOPS[key] = float(counter.get_total_flops())
            del built
            gc.collect()
        return _FLOPS[key]

    # ---- measurement ---------------------------------------------------------------------------
    def measure(
        self, *, warmup_cycles: int = 1, cycles: int = 2, peak: float | None = None
    ) -> dict:
        """Time ``cycles`` accumulation cycles after ``warmup_cycles``; the lever's numbers."""
        t0 = time.perf_counter()
        for _ in range(warmup_cycles * self.accum):
            self.micro_step()
        self._sync()
        warm_s = time.perf_counter() - t0
        times = []
        with UtilSampler.for_device(self.device) as util:
            for _ in range(cycles):
                start = time.perf_counter()
                for _ in range(self.accum):
                    self.micro_step()
                self._sync()
                times.append((time.perf_counter() - start) / self.accum)
        micro_s = statistics.median(times)
        cfg = self.cfg
        tokens = cfg.data.num_frames * (cfg.data.image_size // self.built.model.dit.patch) ** 2
        samples_per_s = self.batch / micro_s
        cuda = self.device.type == "cuda"
        return {
            "lever": self.lever.name, "sets": list(self.lever.sets), "mode": self.lever.mode,
            "note": self.lever.note, "batch": self.batch, "grad_accum": self.accum,
            "micro_step_s": micro_s, "micro_step_s_all": times, "warmup_s": warm_s,
            "samples_per_s": samples_per_s, "tokens_per_s": samples_per_s * tokens,
            "flops_per_sample": self.flops_per_sample,
            "mfu": self.flops_per_sample * samples_per_s / peak if peak else None,
            "peak_bytes": int(torch.cuda.max_memory_allocated(self.device)) if cuda else None,
            "gpu_util_mean": statistics.mean(util.values) if util.values else None,
            "gpu_util_min": min(util.values) if util.values else None,
        }  # fmt: skip

    def close(self) -> int:
        """Free the engine and the model; return the bytes the device still holds (a leak shows)."""
        for name in ("engine", "built", "x0", "noise", "t", "text", "batches"):
            self.__dict__.pop(name, None)
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            return int(torch.cuda.memory_allocated(self.device))
        return 0

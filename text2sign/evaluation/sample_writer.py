"""The trainer's sample GIFs (+ TensorBoard images and captions) for fixed validation captions.

Every rank holds a writer: each samples its share of the captions on its own device
(:func:`text2sign.evaluation.inference.sample_shared`); rank 0 writes the files.
"""

from __future__ import annotations

from pathlib import Path

import torch

from text2sign import atomic
from text2sign.config import Config
from text2sign.evaluation.inference import sample_shared
from text2sign.evaluation.sampling import initial_noise, load_weights, slug, write_gif
from text2sign.models.build import build_model
from text2sign.run.rundir import RunDir


class SampleWriter:
    """Samples ``train.num_samples`` validation captions with given weights; rank 0 writes."""

    def __init__(self, cfg: Config, diffusion, val_ds, run: RunDir, tb, device) -> None:
        # A clean fp32 copy: the engine's module is bf16 and, under ZeRO-3, partitioned.
        self.cfg, self.diffusion, self.run, self.tb = cfg, diffusion, run, tb
        self.device = torch.device(device)
        self.built = build_model(cfg, run.path, None)
        captions = list(dict.fromkeys(val_ds.captions)) if len(val_ds) else []
        self.captions = captions[: cfg.train.num_samples]

    def write(self, step: int, weights: dict[str, torch.Tensor], kind: str) -> list[Path]:
        """Collective. The written GIF paths on rank 0, [] elsewhere."""
        if not self.captions:
            return []
        load_weights(self.built, weights)
        noise = initial_noise(self.cfg, len(self.captions), self.cfg.train.seed)
        videos = sample_shared(self.built, self.diffusion, self.captions, noise, cfg=self.cfg,
                               device=self.device, batch_size=self.cfg.eval.batch_size)  # fmt: skip
        self._release()
        if videos is None:  # not rank 0
            return []
        self.run.samples.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (caption, frames) in enumerate(zip(self.captions, videos, strict=True)):
            path = self.run.samples / f"step{step:08d}_{i:02d}_{slug(caption)}.gif"
            write_gif(path, frames)
            paths.append(path)
            if self.tb is not None:
                self.tb.add_video(f"samples/{i:02d}", frames, step)
                self.tb.add_text(f"samples/{i:02d}/caption", caption, step)
        atomic.write_json(
            self.run.samples / "index.json",
            {"step": step, "weights": kind, "captions": self.captions, "device": str(self.device),
             "files": [p.name for p in paths]},
        )  # fmt: skip
        return paths

    def _release(self) -> None:
        """Give the accelerator's memory back to training between samples."""
        if self.device.type == "cuda":
            self.built.model.to("cpu")
            self.built.text.to("cpu")
            torch.cuda.empty_cache()

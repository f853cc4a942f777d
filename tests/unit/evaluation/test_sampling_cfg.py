"""Classifier-free guidance in one batched forward per DDIM step (``perf.cfg_batch``) gives what
two forwards give: the guided model output, and the sampled videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from text2sign.config import load_config
from text2sign.evaluation.sampling import guided_batch_fn, make_diffusion, sample_videos, stack_text
from text2sign.models.build import build_model
from text2sign.models.diffusion import guided_eps

CAPTIONS = ["left hand up and over", "right hand down", "hello"]  # three token lengths
SCALE = 3.0


def built_model(finetune: bool):
    cfg = load_config(overrides=["diffusion.sample_steps=4", f"text.finetune={str(finetune).lower()}",
                                 f"diffusion.guidance_scale={SCALE}"])  # fmt: skip
    built = build_model(cfg, None, CAPTIONS)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in built.model.dit.parameters():  # not the zero init: every path contributes
            p.add_(torch.randn_like(p) * 0.05)
    return cfg, built


@pytest.mark.parametrize("finetune", [False, True], ids=["frozen", "finetuned"])
def test_one_batched_forward_equals_the_two_guided_forwards(finetune):
    cfg, built = built_model(finetune)
    model = built.model.eval()
    cond = built.encode(CAPTIONS, torch.device("cpu"))
    uncond = built.encode([""] * len(CAPTIONS), torch.device("cpu"))
    assert next(iter(cond.values())).shape[1] > next(iter(uncond.values())).shape[1]  # padded
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(CAPTIONS), cfg.data.num_frames, 3, cfg.data.image_size,
                    cfg.data.image_size, generator=g)  # fmt: skip
    t = torch.tensor([40, 20, 3])
    with torch.no_grad():
        want = guided_eps(model(x, t, **cond), model(x, t, **uncond), SCALE)
        got = guided_batch_fn(model, cond, uncond, SCALE)(x, t)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_stack_text_pads_with_what_the_model_ignores():
    a = {"text_states": torch.ones(2, 5, 3), "text_mask": torch.ones(2, 5, dtype=torch.bool)}
    b = {"text_states": torch.ones(1, 2, 3), "text_mask": torch.ones(1, 2, dtype=torch.bool)}
    both = stack_text(a, b)
    assert both["text_states"].shape == (3, 5, 3) and both["text_mask"].dtype == torch.bool
    assert both["text_mask"].tolist()[2] == [True, True, False, False, False]
    assert both["text_states"][2, 2:].abs().sum() == 0


def test_sampled_videos_match_with_and_without_the_batched_guidance():
    cfg, built = built_model(False)
    diffusion = make_diffusion(cfg)
    videos = {}
    for batched in (False, True):
        cfg.perf.cfg_batch = batched
        videos[batched] = sample_videos(built, diffusion, CAPTIONS, cfg=cfg, seed=5)
    diff = np.abs(videos[True].astype(int) - videos[False].astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # uint8 rounding of equal floats
    cfg.perf.cfg_batch = False
    unguided = sample_videos(built, diffusion, CAPTIONS, cfg=cfg, seed=5, guidance_scale=1.0)
    assert np.abs(unguided.astype(int) - videos[False].astype(int)).max() > 1  # guidance acts

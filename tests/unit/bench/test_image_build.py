"""BENCHMARKS.md's image-build section: the builds' own records (build-image.sh's SIF.build.json),
recorded copies first, then this checkout's newer ones; and whether CI builds each image."""

from __future__ import annotations

import json

from bench import image_build


def record(image: str, seconds: int, cache: str, cuda: str, date: str) -> dict:
    return {"def": f"containers/{image.replace('.sif', '.def')}", "image": image,
            "seconds": seconds, "bytes": 3_140_521_984, "commit": "99c618ba" + "0" * 32,
            "cpus": 2, "date": date, "pip_cache": cache, "pip_cache_bytes_before": 0,
            "loadavg": [9.1, 11.6],
            "labels": {"org.text2sign.installed.torch": "2.13.0", "org.text2sign.torch.cuda": cuda}}  # fmt: skip


def test_the_section_renders_recorded_and_live_builds_once_each(tmp_path, monkeypatch):
    recorded, live = tmp_path / "recorded", tmp_path / "containers"
    recorded.mkdir()
    live.mkdir()
    cold = record("text2sign.sif", 1180, "cold", "13.0", "2026-12-02T17:28:15+00:00")
    (recorded / "image_build_text2sign_cold.json").write_text(json.dumps(cold))
    (live / "text2sign.sif.build.json").write_text(json.dumps(cold))  # the same build: once
    cpu = record("text2sign-cpu.sif", 300, "warm", "none", "2026-12-02T18:00:00+00:00")
    (live / "text2sign-cpu.sif.build.json").write_text(json.dumps(cpu))
    monkeypatch.setattr(image_build, "RECORDED", recorded)
    monkeypatch.setattr(image_build, "LIVE", live)
    section = image_build.run()
    rows = section["rows"]
    assert [r[0] for r in rows] == ["text2sign.sif", "text2sign-cpu.sif"]
    assert rows[0][2:6] == ["cold", "19.7 min", "3.14 GB", "torch 2.13.0 (CUDA 13.0)"]
    assert rows[0][6] == "2 CPUs, load 9.1 -> 11.6" and rows[1][5] == "torch 2.13.0 (CPU)"
    assert rows[1][8].endswith("(this checkout)")
    # The repository's own CI script decides the last sentence: CPU image only.
    assert section["method"].endswith("Built in CI (.ci/run): text2sign-cpu.sif.")
    assert section["goals"][0]["met"] is True


def test_without_a_cuda_build_the_goal_is_not_met_but_unmeasured(tmp_path, monkeypatch):
    monkeypatch.setattr(image_build, "RECORDED", tmp_path)
    monkeypatch.setattr(image_build, "LIVE", tmp_path)
    section = image_build.run()
    assert section["rows"] == [] and section["goals"][0]["met"] is None

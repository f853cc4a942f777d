"""The datasets of the real size (text2sign/data/fullsize.py), and what they are for: binds and
listing that stay small and fast however many clips a dataset has."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

from jobs import container as C
from text2sign.data import fullsize
from text2sign.data.manifest import iter_manifest
from text2sign.data.samples import Sample
from text2sign.data.sources import MAX_DATA_FOLDERS, common_roots, data_folders

ARG_MAX_ONE = 128 * 1024  # Linux: MAX_ARG_STRLEN, the longest single argument execve accepts


def _rows(manifest: Path) -> list[dict]:
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def test_phoenix_at_full_size_has_the_releases_counts(fullsize_phoenix):
    rows = _rows(fullsize_phoenix)
    assert len(rows) == fullsize.PHOENIX_TRAIN_FOLDERS == 7096
    assert len({r["signer"] for r in rows}) == 9
    recordings = {r["recording"] for r in rows}
    assert len(recordings) == -(-7096 // fullsize.PHOENIX_CLIPS_PER_BROADCAST)
    assert all(r["name"].startswith(r["recording"] + "-") for r in rows)
    # the data lies outside the manifest's folder: the shared-storage layout
    assert not Path(rows[0]["video"]).is_relative_to(fullsize_phoenix.parent)


def test_how2sign_at_full_size_names_clips_after_their_recording(fullsize_how2sign):
    rows = _rows(fullsize_how2sign)
    assert len(rows) == fullsize.HOW2SIGN_TRAIN_ROWS == 31128
    assert all(r["name"].startswith(r["recording"] + "_") for r in rows)
    # what made "the first 32 clips" a poor evaluation set: they come from 3 recordings
    first = sorted(rows, key=lambda r: r["name"])[:32]
    assert len({r["recording"] for r in first}) <= 3


def test_a_full_size_phoenix_manifest_binds_a_few_folders(fullsize_phoenix):
    """7,096 frame folders outside the manifest's folder: one bind per folder was a ~1 MB
    --bind argument, over Linux's 128 KiB per argument (E2BIG on every node)."""
    roots = data_folders(fullsize_phoenix)
    assert len(roots) <= MAX_DATA_FOLDERS
    assert fullsize_phoenix.parent in roots
    videos = [s.source for s in iter_manifest(fullsize_phoenix) if isinstance(s, Sample)]
    assert len(videos) == 7096
    assert all(any(v.is_relative_to(r) for r in roots) for v in videos)
    binds = C.binds(results=fullsize_phoenix.parent / "results", data_root=str(fullsize_phoenix),
                    hf_cache=None, extra=[])  # fmt: skip
    argv = C.container_argv(C.ContainerSpec("apptainer", "/x.sif", binds), ["python"])
    assert max(len(a.encode()) for a in argv) < ARG_MAX_ONE
    assert len(binds) <= MAX_DATA_FOLDERS + 1  # + results


def test_a_full_size_how2sign_manifest_binds_its_clips_folder_and_its_own(fullsize_how2sign):
    rows = _rows(fullsize_how2sign)
    clips = Path(rows[0]["video"]).parent
    assert data_folders(fullsize_how2sign) == sorted([clips, fullsize_how2sign.parent],
                                                     key=lambda p: p.parts)  # fmt: skip


def test_common_roots_cover_every_folder_with_at_most_the_limit(tmp_path):
    rng = random.Random(0)
    for trial in range(200):
        folders = set()
        for _ in range(rng.randint(1, 60)):
            depth = rng.randint(2, 7)
            folders.add(Path("/", *(f"d{rng.randint(0, 3)}" for _ in range(depth))))
        limit = rng.randint(1, 10)
        roots = common_roots(folders, limit)
        assert all(any(f.is_relative_to(r) for r in roots) for f in folders), trial
        assert not any(a != b and a.is_relative_to(b) for a in roots for b in roots), trial
        assert all(len(r.parts) >= 2 for r in roots), "never / itself"
        tops = {f.parts[1] for f in folders}
        assert len(roots) <= max(limit, len(tops)), trial
        # no needless merging: folders that fit the limit as they are stay as they are
        outermost = [f for f in folders if not any(f != g and f.is_relative_to(g) for g in folders)]
        if len(outermost) <= limit:
            assert sorted(roots) == sorted(outermost), trial


def test_a_folder_reached_through_a_link_is_bound_with_its_target(tmp_path):
    store = tmp_path / "store" / "clips"
    store.mkdir(parents=True)
    (store / "a.mp4").write_bytes(b"x")
    project = tmp_path / "project"
    project.mkdir()
    os.symlink(store, project / "clips")
    (project / "m.csv").write_text("video,caption,signer\nclips/a.mp4,hi,s\n")
    got = C.binds(results=tmp_path / "res", data_root=str(project / "m.csv"), hf_cache=None,
                  extra=[], cache_dir=str(tmp_path / "cache"))  # fmt: skip
    assert str(project) in got and str(store) in got  # the link and what it points to
    assert str(tmp_path / "cache") in got and (tmp_path / "cache").is_dir()
    linked = tmp_path / "linked"
    os.symlink(project, linked)  # the manifest's own folder reached through a link
    got = C.binds(results=tmp_path / "res", data_root=str(linked / "m.csv"), hf_cache=None,
                  extra=[])  # fmt: skip
    assert f"{project}:{linked}" in got and str(project) in got

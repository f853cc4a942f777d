"""Which validation clips evaluation scores: a seeded draw, stratified over recordings.

Clips cut from one recording (one How2Sign video, one PHOENIX broadcast) share a signer, a
session, lighting and often a topic: they are not independent, and the first ``n`` clips by name
come from a handful of recordings (How2Sign names start with the video id). So the evaluated
clips are drawn with ``eval.seed`` (the same for every run of a study: runs stay paired on the
same clips):

1. the recordings are sorted by name and shuffled; each recording's clips are sorted by name and
   shuffled;
2. round-robin: one clip of each recording in the shuffled order, then a second of each that has
   one left, ... until ``n`` clips are drawn.

Every recording is represented before any gives a second clip, and the counts per recording
differ by at most one while each still has clips. :class:`EvalClips` says which clips, and how
many clips, recordings and signers the numbers rest on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvalClips:
    """The drawn clips: positions in the validation subset, in draw order, and what they are."""

    positions: list[int]  # val[i] for i in positions
    names: list[str]
    recordings: list[str]  # each clip's recording (the cluster of the audit's test)
    signers: list[str]

    @property
    def counts(self) -> dict[str, int]:
        """How many clips, recordings and signers the evaluation rests on."""
        return {"clips": len(self.positions), "recordings": len(set(self.recordings)),
                "signers": len(set(self.signers))}  # fmt: skip

    def to_json(self, seed: int) -> dict[str, Any]:
        per_recording: dict[str, int] = {}
        for r in self.recordings:
            per_recording[r] = per_recording.get(r, 0) + 1
        return {**self.counts, "seed": seed, "names": self.names,
                "clips_per_recording": per_recording,
                "rule": "seeded shuffle of the recordings, then one clip per recording per round "
                        "(round-robin) until eval.num_videos"}  # fmt: skip


def draw_positions(names: list[str], recordings: list[str], n: int, seed: int) -> list[int]:
    """Positions of ``n`` clips (all when ``n`` ≥ their number), stratified over recordings.

    Depends only on the clips' names and recordings and on ``seed``, not on their order.
    """
    if len(names) != len(recordings):
        raise ValueError(f"{len(names)} names but {len(recordings)} recordings")
    rng = random.Random(seed)
    by_rec: dict[str, list[int]] = {}
    for i in sorted(range(len(names)), key=lambda i: names[i]):
        by_rec.setdefault(recordings[i], []).append(i)
    order = sorted(by_rec)
    rng.shuffle(order)
    queues = [by_rec[r] for r in order]
    for q in queues:
        rng.shuffle(q)
    out: list[int] = []
    depth = 0
    while len(out) < min(n, len(names)):
        for q in queues:
            if depth < len(q) and len(out) < n:
                out.append(q[depth])
        depth += 1
    return out


def draw(val: Any, n: int, seed: int) -> EvalClips:
    """The clips of validation subset ``val`` (a :class:`~text2sign.data.cache.VideoTextDataset`)
    that evaluation scores: ``n`` of them, drawn by :func:`draw_positions`."""
    cache = val.cache
    names = [cache.names[j] for j in val.indices]
    recordings = [cache.recordings[j] for j in val.indices]
    signers = [cache.signers[j] for j in val.indices]
    pos = draw_positions(names, recordings, n, seed)
    return EvalClips(pos, [names[i] for i in pos], [recordings[i] for i in pos],
                     [signers[i] for i in pos])  # fmt: skip

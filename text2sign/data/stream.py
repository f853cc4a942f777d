"""A resumable, deterministic stream of micro-batches for data-parallel training.

Micro-batch ``m`` of rank ``r`` is fully determined by (seed, m, r): epoch ``e = m // per_epoch``
shuffles the training set with a generator seeded by (seed, e), and each global batch is split
across ranks. Resuming at optimizer step ``k`` therefore only needs ``k``: no sampler state.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from text2sign.errors import DataError


class MicroBatchSampler(Sampler[list[int]]):
    """Yields dataset indices of this rank's micro-batches, from micro-batch ``start`` on."""

    def __init__(
        self, n: int, *, batch_size: int, rank: int, world_size: int, seed: int, start: int = 0
    ) -> None:
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world_size
        self.seed, self.start = seed, start
        self.per_epoch = n // (batch_size * world_size)  # the last partial global batch is dropped
        if self.per_epoch < 1:
            raise DataError(
                f"training split has {n} clips, fewer than one global batch "
                f"({batch_size} per rank x {world_size} ranks); lower train.batch_size"
            )

    def position(self, micro: int) -> tuple[int, int]:
        """(epoch, micro-batch within the epoch) of global micro-batch index ``micro``."""
        return divmod(micro, self.per_epoch)

    def indices(self, micro: int) -> list[int]:
        epoch, pos = self.position(micro)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        global_bs = self.batch_size * self.world
        lo = pos * global_bs + self.rank * self.batch_size
        return perm[lo : lo + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        m = self.start
        while True:
            yield self.indices(m)
            m += 1

    def __len__(self) -> int:  # infinite stream; DataLoader only needs it for len()
        return 2**62


def step_generator(seed: int, rank: int, step: int, micro: int) -> torch.Generator:
    """A generator for the noise, timesteps and caption dropout of one micro-batch.

    Stateless by design: derived from (seed, rank, step, micro), so a resumed run draws exactly
    the numbers the uninterrupted run drew.
    """
    return torch.Generator().manual_seed(
        ((seed * 1_000_003 + rank) * 1_000_003 + step) * 64 + micro
    )

"""Samplers: which dataset indices a process reads, in which order, epoch after epoch.

Training reads `training_sampler(...)`: torch's DistributedSampler (a shuffled shard per
process, a function of seed and epoch) wrapped twice: `EpochSampler` hands the epoch to
persistent loader workers with every index, and `ResumableSampler` lets a resumed run skip
the samples of the steps it already took without loading them. Testing reads `ShardSampler`:
every video exactly once over all processes.
"""

from __future__ import annotations

from torch.utils.data import Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler


class EpochSampler(Sampler):
    """Wraps a sampler with `set_epoch` (e.g. DistributedSampler) and yields (epoch, index), so
    persistent loader workers know the epoch without being restarted."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class ResumableSampler(Sampler):
    """Wraps an epoch-aware sampler (`set_epoch`) so a resumed run can skip the samples of the
    steps it already took in an epoch without loading them. `skip_next(n)` drops the first `n`
    indices of the next pass only; `len` stays the full epoch."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def skip_next(self, n: int) -> None:
        self._skip = n

    def __iter__(self):
        skip, self._skip = self._skip, 0
        it = iter(self.sampler)
        for _ in range(skip):
            next(it, None)
        return it

    def __len__(self) -> int:
        return len(self.sampler)


def training_sampler(dataset: Dataset, *, rank: int, world: int, seed: int) -> ResumableSampler:
    """The training order of process `rank` of `world`: shuffled per epoch, whole batches only
    (drop_last), resumable mid-epoch."""
    shard = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                               drop_last=True)
    return ResumableSampler(EpochSampler(shard))


class ShardSampler(Sampler):
    """Evaluation sampler: process `rank` reads indices rank, rank + world, ... - every sample
    exactly once over all processes, no padding duplicates (unlike DistributedSampler)."""

    def __init__(self, length: int, rank: int = 0, world: int = 1):
        self.length = length
        self.rank = rank
        self.world = world

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world))

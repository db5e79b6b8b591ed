"""PyTorch DDP through torchrun: process-group set-up, samplers, and exact metric gathering.

`torchrun --nproc_per_node=N -m reskd distill CONFIG` (multi-node: add --nnodes, --node_rank,
--rdzv_backend=c10d --rdzv_endpoint=HOST:PORT as usual) sets RANK/WORLD_SIZE/LOCAL_RANK;
`init()` then joins the group (NCCL on CUDA, gloo on CPU). Without torchrun everything here
degrades to one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def init(device: torch.device) -> bool:
    """Joins the torchrun process group if launched by torchrun. Returns True when distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return True


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sums(sums: dict, device: torch.device) -> dict:
    """Sums each number of `sums` over processes (float64)."""
    if not dist.is_initialized():
        return dict(sums)
    keys = sorted(sums)
    t = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64,
                     device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return {k: v for k, v in zip(keys, t.tolist())}


def all_gather_objects(obj):
    """List of every process's `obj`, in rank order."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


class ShardSampler(Sampler):
    """Evaluation sampler: process r reads indices r, r + W, r + 2W, ... - every sample exactly
    once over all processes, no padding duplicates (unlike DistributedSampler)."""

    def __init__(self, length: int, rank: int | None = None, world: int | None = None):
        self.length = length
        self.rank_ = rank if rank is not None else globals()["rank"]()
        self.world = world if world is not None else world_size()

    def __iter__(self):
        return iter(range(self.rank_, self.length, self.world))

    def __len__(self) -> int:
        return len(range(self.rank_, self.length, self.world))

"""PyTorch DDP through torchrun: process-group set-up, SyncBatchNorm, exact metrics.

Launch (one node, N processes; one per GPU, or N CPU processes over gloo):

    torchrun --standalone --nproc_per_node=N -m reskd distill CONFIG [--set ...]

Several nodes (run on every node, node_rank 0..M-1, HOST:PORT reachable from all of them):

    torchrun --nnodes=M --node_rank=R --nproc_per_node=N \
        --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT -m reskd distill CONFIG

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; `init()` joins the group (NCCL on CUDA, gloo on
CPU). Without torchrun everything here degrades to one process.

Learning rate: `data.batch_size` is per process, so one optimizer step sees the *global* batch
`batch_size x world_size`, and `optim.lr` is the rate for that global batch. reskd does not
rescale it: when you change the number of processes or the per-process batch, scale `optim.lr`
linearly with the global batch (the paper: lr 0.01 for 8 GPUs x 8 videos = 64 videos; 4 GPUs x
8 videos -> 0.005). Keeping the global batch fixed (1 x 8 or 2 x 4) keeps the run the same, up to
float rounding, when BatchNorm statistics are synchronised (`runtime.sync_bn=true`): without it
each process normalises with its own smaller batch.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


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


def _comm_device(device: torch.device) -> torch.device:
    return device if device.type == "cuda" else torch.device("cpu")


def all_reduce_sums(sums: dict, device: torch.device) -> dict:
    """Sums each number of `sums` over processes (float64)."""
    if not dist.is_initialized():
        return dict(sums)
    keys = sorted(sums)
    t = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64,
                     device=_comm_device(device))
    dist.all_reduce(t)
    return {k: v for k, v in zip(keys, t.tolist())}


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when `flag` is True on any (so all stop at the same step)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device(device))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_gather_objects(obj):
    """List of every process's `obj`, in rank order."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


# ---------------------------------------------------------------------------------------------
# SyncBatchNorm that also runs on CPU (gloo)


class _SyncBatchNormFn(torch.autograd.Function):
    """Batch norm with statistics over every process's batch: one all_reduce of per-channel
    (sum, sum of squares, count) forward, one of (sum dy, sum dy * x_hat) backward. Statistics
    are accumulated in float64, as the CPU BatchNorm kernel does."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum):
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)  # broadcast a (C,) vector over (N, C, ...)
        x64 = x.double()
        local = torch.cat([x64.sum(dims), (x64 * x64).sum(dims),
                           torch.tensor([x.numel() / c], dtype=torch.float64, device=x.device)])
        dist.all_reduce(local)
        count = local[-1]
        mean = local[:c] / count
        var = (local[c:2 * c] / count - mean * mean).clamp_min(0)  # biased, for normalising
        invstd = torch.rsqrt(var + eps)
        if running_mean is not None:
            with torch.no_grad():
                unbiased = var * count / (count - 1).clamp_min(1)
                running_mean.mul_(1 - momentum).add_(momentum * mean.to(running_mean.dtype))
                running_var.mul_(1 - momentum).add_(momentum * unbiased.to(running_var.dtype))
        scale = invstd if weight is None else invstd * weight.double()
        shift = -mean * scale if bias is None else bias.double() - mean * scale
        y = x * scale.to(x.dtype).view(shape) + shift.to(x.dtype).view(shape)
        ctx.save_for_backward(x, weight, mean.to(x.dtype), invstd.to(x.dtype))
        ctx.count = float(count)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, invstd = ctx.saved_tensors
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, c] + [1] * (x.dim() - 2)
        x_hat = (x - mean.view(shape)) * invstd.view(shape)
        sum_dy = dy.sum(dims, dtype=torch.float64)
        sum_dy_xhat = (dy * x_hat).sum(dims, dtype=torch.float64)
        both = torch.cat([sum_dy, sum_dy_xhat])
        dist.all_reduce(both)
        mean_dy = (both[:c] / ctx.count).to(dy.dtype).view(shape)
        mean_dy_xhat = (both[c:] / ctx.count).to(dy.dtype).view(shape)
        gain = invstd if weight is None else invstd * weight
        dx = gain.view(shape) * (dy - mean_dy - x_hat * mean_dy_xhat)
        # Parameter gradients stay local sums: DDP averages them over processes.
        dw = sum_dy_xhat.to(dy.dtype) if ctx.needs_input_grad[1] else None
        db = sum_dy.to(dy.dtype) if ctx.needs_input_grad[2] else None
        return dx, dw, db, None, None, None, None


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """`nn.SyncBatchNorm` for any input rank that also runs on CPU processes (gloo), which
    torch's SyncBatchNorm refuses. Outside training or without a process group it is plain
    batch norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        if self.momentum is None:
            raise ValueError("CPUSyncBatchNorm needs a momentum (cumulative averaging is not "
                             "supported)")
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
        track = self.track_running_stats
        return _SyncBatchNormFn.apply(x, self.weight, self.bias,
                                      self.running_mean if track else None,
                                      self.running_var if track else None, self.eps,
                                      self.momentum)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replaces every BatchNorm of `model` (in place where it is not the root) by one that
    synchronises batch statistics over all processes: torch's SyncBatchNorm on CUDA,
    `CPUSyncBatchNorm` elsewhere. Parameters and buffers are shared, so state-dict keys and an
    optimizer built on the old parameters stay valid."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def convert(module: nn.Module) -> nn.Module:
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
                not isinstance(module, (CPUSyncBatchNorm, nn.SyncBatchNorm)):
            new = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum,
                                   module.affine, module.track_running_stats)
            if module.affine:
                new.weight, new.bias = module.weight, module.bias
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
            new.train(module.training)
            return new
        for name, child in module.named_children():
            module.add_module(name, convert(child))
        return module

    return convert(model)

"""Inference throughput: videos per second of a video model, after warm-up, in inference mode."""

from __future__ import annotations

import os
import platform
import time

import torch
from torch import nn

from reskd.engine.runtime import autocast, precision_name


@torch.inference_mode()
def videos_per_s(model: nn.Module, *, frames: int, size: int, batch: int,
                 device: torch.device, amp_dtype: torch.dtype | None, warmup: int = 2,
                 min_seconds: float = 2.0, max_iters: int = 50) -> float:
    """Times forward passes of (batch, frames, 3, size, size) clips until `min_seconds` pass."""
    model.eval()
    x = torch.randn(batch, frames, 3, size, size, device=device)
    with autocast(device, amp_dtype):
        for _ in range(warmup):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        iters, start = 0, time.perf_counter()
        while iters < max_iters and (iters < 2 or time.perf_counter() - start < min_seconds):
            model(x)
            iters += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return iters * batch / (time.perf_counter() - start)


def machine_facts(device: torch.device, amp_dtype: torch.dtype | None) -> dict:
    """What every stored benchmark number carries alongside it."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"device": f"{device.type}: {name}", "dtype": precision_name(amp_dtype),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "torch": torch.__version__}

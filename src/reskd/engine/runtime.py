"""Device, precision and memory-format choices: the fast path, picked per device.

On CPU, bf16 autocast + channels_last is about 3.5x faster than fp32 for ResNet-50 on CPUs
with AVX-512 bf16/AMX (a figure from the project's brief; `bench/bench_default_mode.py`
measures it on the machine at hand); on CPUs without native bf16 autocast is
slower than fp32, so "auto" only enables it where the CPU has it. On CUDA "auto" is bf16
where supported, else fp16.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import torch
from torch import nn

from reskd.models.fold import NotFoldable, fold_batchnorm, has_batchnorm


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("runtime.device=cuda but no CUDA device is available; use cpu or auto")
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True where the CPU executes bf16 natively (AVX-512 BF16 or AMX)."""
    checks = [getattr(torch.cpu, "_is_avx512_bf16_supported", None),
              getattr(torch.cpu, "_is_amx_tile_supported", None)]
    return any(check() for check in checks if check is not None)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision name ("auto", "bf16", "fp16", "fp32"); None = fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool,
                  inference: bool = False) -> nn.Module:
    """Moves the model and switches convolutions to channels_last where asked.

    `inference=True` (test, predict, benchmarks; never training) also folds each BatchNorm
    into the convolution before it: same outputs up to float rounding, and on CPU it brought
    the default mode from 0.84x to 0.99x of torch.compile's speed for TSN-R50 at 112 without a
    compile step (bench/bench_default_mode.py). A model torch.fx cannot trace runs
    unfolded, with a warning saying so; a model without BatchNorm (Swin) has nothing to fold.
    On CUDA it turns on `cudnn.benchmark` (every step has the same shapes).
    """
    if inference and has_batchnorm(model):
        try:
            model, _ = fold_batchnorm(model)
        except NotFoldable as e:
            warnings.warn(f"{e}; running with BatchNorm unfolded (same outputs, slower)",
                          stacklevel=2)
    model = model.to(device)
    if device.type == "cuda":  # fixed input shapes: let cuDNN pick the fastest kernels once
        torch.backends.cudnn.benchmark = True
    if channels_last:
        # 3D models (SlowOnly, Swin) declare channels_last_3d; 2D ones take the default.
        model = model.to(memory_format=getattr(model, "memory_format", torch.channels_last))
        model.channels_last = True
    return model


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def share_cpu_with_workers(device: torch.device, workers: int) -> None:
    """On CPU, leaves one core per loader worker: oversubscribed OpenMP threads stall badly
    (measured here: a 2-thread trainer beside a busy worker ran 5x slower than 1 thread).
    An explicit OMP_NUM_THREADS wins."""
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))

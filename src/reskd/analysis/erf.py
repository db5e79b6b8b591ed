"""Effective receptive field (ERF; Luo et al. 2016), as in the paper's Figure 4a.

The ERF of one position (i, j) of the last (pre-pool) feature map is |d f[:, :, i, j] / d x|:
the gradient of that position's activations (summed over channels) with respect to the input
pixels. We take its absolute value, sum it over colour channels and frames, average it over
clips and divide by its maximum, giving an (H, W) map in [0, 1] at the input resolution.

Which position: the paper takes "a pixel close to the bottom right" of the map's centre,
because a 112px input gives an even-sized map (4x4 for ResNet-50) with no centre pixel. The
default here is (h // 2, w // 2): the centre when h and w are odd (7x7 at 224px -> (3, 3)),
the bottom-right pixel of the central 2x2 block when they are even (4x4 -> (2, 2)).

The model runs in eval mode (BatchNorm with running statistics), so clips do not interact and
one backward pass over a batch gives each clip's own gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def default_position(h: int, w: int) -> tuple[int, int]:
    """The centre of an (h, w) map, or the bottom-right of its central 2x2 when a side is even."""
    return h // 2, w // 2


def effective_receptive_field(model: nn.Module, clips: torch.Tensor, *,
                              position: tuple[int, int] | None = None,
                              batch: int = 8) -> np.ndarray:
    """ERF of `model.features` at `position` over clips (N, T, C, H, W). -> (H, W) in [0, 1]

    `batch` clips go through each backward pass (memory grows with it).
    """
    if clips.ndim != 5 or clips.shape[0] == 0:
        raise ValueError(f"clips must be (N, T, C, H, W) with N >= 1, got shape "
                         f"{tuple(clips.shape)}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = torch.zeros(clips.shape[-2:], dtype=torch.float64)  # (H, W)
    try:
        for start in range(0, clips.shape[0], batch):
            x = clips[start:start + batch].to(device, torch.float32).requires_grad_(True)
            f = model.features(x)  # (n, T, C', h, w)
            h, w = f.shape[-2:]
            i, j = default_position(h, w) if position is None else position
            if not (0 <= i < h and 0 <= j < w):
                raise ValueError(f"position {(i, j)} is outside the {h}x{w} feature map; give "
                                 f"0 <= row < {h}, 0 <= col < {w}")
            (grad,) = torch.autograd.grad(f[..., i, j].sum(), x)  # (n, T, C, H, W)
            total += grad.abs().sum(dim=(1, 2)).sum(0).double().cpu()  # (H, W)
    finally:
        model.train(was_training)
    peak = total.max()
    if peak <= 0:
        raise ValueError(f"feature position {(i, j)} has zero gradient with respect to every "
                         f"input pixel of these clips (dead activations); pick another position "
                         f"or other clips")
    # Dividing by the peak also divides out the clip count, so this is the normalised mean.
    return (total / peak).float().numpy()

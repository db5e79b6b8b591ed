"""Activation-based attention (Zagoruyko & Komodakis 2017), as in the paper's Figure 4b.

The attention of a frame is the channel-wise mean of the squared activations of the last
(pre-pool) feature map, F(A) = mean_c A_c^2 (their F_sum with p = 2, up to the constant 1/C),
min-max normalised per frame to [0, 1]. A frame whose map is constant has no focus and gets 0
everywhere.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def attention_maps(model: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Clips (N, T, C, H, W) -> attention (N, T, h, w) float32, each frame min-max scaled."""
    if clips.ndim != 5:
        raise ValueError(f"clips must be (N, T, C, H, W), got shape {tuple(clips.shape)}")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        f = model.features(clips.to(device, torch.float32)).float()  # (N, T, C', h, w)
    finally:
        model.train(was_training)
    a = f.pow(2).mean(dim=2)  # (N, T, h, w)
    low = a.amin(dim=(-2, -1), keepdim=True)  # (N, T, 1, 1)
    span = a.amax(dim=(-2, -1), keepdim=True) - low
    return torch.where(span > 0, (a - low) / span.clamp_min(1e-30), torch.zeros_like(a)).cpu()


def upsample_maps(maps: torch.Tensor | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (align_corners=False) resize of maps (..., h, w) to (..., *size), kept in [0, 1]."""
    if isinstance(maps, np.ndarray):
        maps = np.ascontiguousarray(maps)  # torch refuses negative strides (e.g. maps[::-1])
    m = torch.as_tensor(maps, dtype=torch.float32)
    lead = m.shape[:-2]
    flat = m.reshape(-1, 1, *m.shape[-2:])  # (B, 1, h, w)
    up = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)  # (B, 1, H, W)
    return up.reshape(*lead, *size).clamp(0, 1)  # (..., H, W)

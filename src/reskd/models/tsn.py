"""TSN: a 2D backbone applied to every sampled frame, average consensus over frames.

Uniform video-model API (every architecture in reskd has it):
- `features(x)`: clip (N, T, C, H, W) -> pre-pool feature map (N, T, C', h, w);
- `head(f)`: feature map -> clip logits (N, K) (global average pool, dropout, fc, mean over T);
- `frame_logits(f)` -> (N, T, K) and `pixel_logits(f)` -> (N, T, K, h, w): the classifier
  applied per frame / per position, for frame-level and pixel-level logit KD.
"""

from __future__ import annotations

import torch
from torch import nn


class TSN(nn.Module):
    def __init__(self, backbone: nn.Module, feature_channels: int, num_classes: int,
                 dropout: float = 0.5):
        super().__init__()
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)  # a module, so op counters see it (mmcv convention)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(feature_channels, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)
        self.num_classes = num_classes
        self.feature_channels = feature_channels
        self.channels_last = False  # set by reskd.engine.runtime.prepare_model

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        x = x.flatten(0, 1)  # (N*T, C, H, W)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.backbone(x)  # (N*T, C', h, w)
        return f.unflatten(0, (n, t))  # (N, T, C', h, w)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self._pool(f))).mean(dim=1)  # (N, T, K) -> (N, K)

    def frame_logits(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self._pool(f))  # (N, T, K)

    def _pool(self, f: torch.Tensor) -> torch.Tensor:
        # -1 for N keeps the batch axis dynamic in ONNX export (a traced shape would freeze it)
        return self.pool(f.flatten(0, 1)).flatten(1).unflatten(0, (-1, f.shape[1]))  # (N, T, C')

    def pixel_logits(self, f: torch.Tensor) -> torch.Tensor:
        logits = self.fc(f.movedim(2, -1))  # (N, T, h, w, K)
        return logits.movedim(-1, 2)  # (N, T, K, h, w)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """(N, T, C, H, W) -> logits (N, K), or (logits, pre-pool map) with return_features."""
        f = self.features(x)
        return (self.head(f), f) if return_features else self.head(f)

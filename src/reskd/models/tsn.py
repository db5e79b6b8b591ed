"""TSN: a 2D backbone applied to every sampled frame, average consensus over frames.

The uniform video-model API is `reskd.models.base.VideoClassifier`'s. TSN's head pools each
frame, averages the pooled features over the T frames (average consensus), then applies dropout
once and the classifier, as the authors' code and mmaction2 do. Per-frame dropout masks would
average out over the frames (T independent masks: about T times less clip-logit noise variance,
tests/test_models.py measures it);
without dropout (eval) both orders give the same logits, since the classifier is linear.
"""

from __future__ import annotations

import torch
from torch import nn

from reskd.models.base import VideoClassifier


class TSN(VideoClassifier):
    fc_init_std = 0.001  # the authors' RKD2DHead / TSM head (mmaction2's TSNHead default: 0.01)

    def __init__(self, backbone: nn.Module, feature_channels: int, num_classes: int,
                 dropout: float = 0.5):
        super().__init__(feature_channels, num_classes, dropout)
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)  # a module, so op counters see it (mmcv convention)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        x = x.flatten(0, 1)  # (N*T, C, H, W)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.backbone(x)  # (N*T, C', h, w)
        return f.unflatten(0, (n, t))  # (N, T, C', h, w)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self._pool(f).mean(dim=1)))  # (N, T, C') -> (N, C') -> (N, K)

    def frame_logits(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self._pool(f))  # (N, T, K)

    def _pool(self, f: torch.Tensor) -> torch.Tensor:
        # -1 for N keeps the batch axis dynamic in ONNX export (a traced shape would freeze it)
        return self.pool(f.flatten(0, 1)).flatten(1).unflatten(0, (-1, f.shape[1]))  # (N, T, C')

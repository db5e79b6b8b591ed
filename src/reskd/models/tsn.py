"""TSN: a 2D backbone applied to every sampled frame, average consensus over frames.

The uniform video-model API is `reskd.models.base.VideoClassifier`'s. TSN's head pools each
frame and averages over the T frames (average consensus). Where dropout sits is
`model.dropout_at` (`DROPOUT_AT`):

- "frame" (default): a mask per frame, then the classifier, then the average over frames (the
  per-frame logits' consensus; reskd before the authors' recipe was copied in);
- "clip": the frame-averaged feature gets one mask per clip, then the classifier, as the
  authors' RKD2DHead and mmaction2's TSNHead do. T independent masks average out: about T
  times less clip-logit noise variance than one mask (tests/test_models.py measures it).

Without dropout (eval) both give the same logits, since the classifier is linear. The paper's
TSN/TSM configs set "clip"; the default was chosen by measurement (bench/bench_defaults.py).
"""

from __future__ import annotations

import torch
from torch import nn

from reskd.config import DROPOUT_AT
from reskd.models.base import VideoClassifier


class TSN(VideoClassifier):
    def __init__(self, backbone: nn.Module, feature_channels: int, num_classes: int,
                 dropout: float = 0.5, *, fc_init_std: float = 0.01, dropout_at: str = "frame"):
        if dropout_at not in DROPOUT_AT:
            raise ValueError(f"model.dropout_at must be one of {', '.join(DROPOUT_AT)}, got "
                             f"{dropout_at!r}")
        super().__init__(feature_channels, num_classes, dropout, fc_init_std=fc_init_std)
        self.backbone = backbone
        self.dropout_at = dropout_at
        self.pool = nn.AdaptiveAvgPool2d(1)  # a module, so op counters see it (mmcv convention)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        x = x.flatten(0, 1)  # (N*T, C, H, W)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        f = self.backbone(x)  # (N*T, C', h, w)
        return f.unflatten(0, (n, t))  # (N, T, C', h, w)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        pooled = self._pool(f)  # (N, T, C')
        if self.dropout_at == "frame":
            return self.fc(self.dropout(pooled)).mean(dim=1)  # (N, T, K) -> (N, K)
        return self.fc(self.dropout(pooled.mean(dim=1)))  # (N, C') -> (N, K)

    def frame_logits(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self._pool(f))  # (N, T, K)

    def _pool(self, f: torch.Tensor) -> torch.Tensor:
        # -1 for N keeps the batch axis dynamic in ONNX export (a traced shape would freeze it)
        return self.pool(f.flatten(0, 1)).flatten(1).unflatten(0, (-1, f.shape[1]))  # (N, T, C')

"""What every reskd video model shares: the classifier over a pre-pool map, and the uniform API.

- `features(x)`: clip (N, T, C, H, W) -> pre-pool feature map (N, T', C', h, w) (subclasses);
- `head(f)`: feature map -> clip logits (N, K): global average pool over (T', h, w), dropout,
  fc (the I3D head of 3D models; TSN's pools each frame, averages over frames, then dropout and
  fc, as the authors and mmaction2: one dropout mask per clip);
- `frame_logits(f)` -> (N, T', K) and `pixel_logits(f)` -> (N, T', K, h, w): the classifier
  applied per frame / per position, for frame-level and pixel-level logit KD;
- `forward(x, return_features=False)` -> logits, or (logits, pre-pool map).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def read_state_dict(path: str | Path, expected: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (`model.pretrained`): a plain state dict, or one wrapped
    under "state_dict" as many training tools save it; `expected` says what the file should be
    in the error for a missing one."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"model.pretrained: no such file {file} (give {expected})")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


def set_stochastic_depth(backbone: nn.Module, rate: float) -> None:
    """Rescales a torchvision backbone's stochastic depth so its deepest block drops with
    probability `rate`; the rise over the blocks (linear in torchvision) keeps its shape.
    -1 leaves the backbone's own rate. Swin3D's builders fix the rate, so it is set here."""
    if rate == -1:
        return
    layers = [m for m in backbone.modules() if type(m).__name__ == "StochasticDepth"]
    top = max((m.p for m in layers), default=0.0)
    if not top:
        raise ValueError(f"{type(backbone).__name__} has no stochastic depth to set")
    for m in layers:
        m.p = m.p / top * rate


class VideoClassifier(nn.Module):
    # The memory format `reskd.engine.runtime.prepare_model` converts to when channels_last is
    # on; 3D models (5-D Conv3d weights) set channels_last_3d.
    memory_format = torch.channels_last

    def __init__(self, feature_channels: int, num_classes: int, dropout: float = 0.5, *,
                 fc_init_std: float = 0.01):
        # fc_init_std: the classifier's init std (normal, zero bias); 0.01 is mmaction2's
        # TSNHead/I3DHead default, 0.001 the authors' TSN/TSM head (model.fc_init_std)
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(feature_channels, num_classes)
        nn.init.normal_(self.fc.weight, std=fc_init_std)
        nn.init.zeros_(self.fc.bias)
        self.num_classes = num_classes
        self.feature_channels = feature_channels
        self.channels_last = False  # set by reskd.engine.runtime.prepare_model

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _clip_3d(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, C, H, W) -> (N, C, T, H, W) for 3D backbones, channels_last_3d when asked."""
        if x.dim() != 5:
            raise ValueError(f"{type(self).__name__} takes clips (N, T, C, H, W), got shape "
                             f"{tuple(x.shape)}")
        x = x.transpose(1, 2)  # (N, C, T, H, W)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def head(self, f: torch.Tensor) -> torch.Tensor:
        pooled = f.mean(dim=(1, 3, 4))  # (N, C')
        return self.fc(self.dropout(pooled))  # (N, K)

    def frame_logits(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f.mean(dim=(-2, -1)))  # (N, T', K)

    def pixel_logits(self, f: torch.Tensor) -> torch.Tensor:
        logits = self.fc(f.movedim(2, -1))  # (N, T', h, w, K)
        return logits.movedim(-1, 2)  # (N, T', K, h, w)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """(N, T, C, H, W) -> logits (N, K), or (logits, pre-pool map) with return_features."""
        f = self.features(x)
        return (self.head(f), f) if return_features else self.head(f)

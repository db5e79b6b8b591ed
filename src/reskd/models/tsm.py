"""TSM (Lin et al. 2019): a TSN whose ResNet shifts channels along time inside every block.

Any TSN-over-ResNet arch becomes one with `model.temporal: shift` (`build_model(temporal=...)`):
resnet18..152, resnet50s and the small custom `resnet`; tsm_resnet18..152 are resnetX + shift.

"Residual shift": before `conv1` of every residual block, 1/fold_div of the channels take the
next frame's values, another 1/fold_div the previous frame's, the rest stay (zeros enter at the
clip ends). The shift has no parameters and no multiply-adds, so a TSM-R50 has TSN-R50's
parameters, GMACs and state-dict names: torchvision ImageNet weights load unchanged.

The shifted conv is a `nn.Conv2d` subclass (not a wrapper module), so its weight keeps the key
`layerX.Y.conv1.weight` and the MAC counter sees an ordinary convolution.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from reskd.models.tsn import TSN


def temporal_shift(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """(N*T, C, H, W) -> same shape, T = num_segments, shifted as in the official TSM code.

    Channels [0, C/fold_div): frame t takes frame t+1 (the last frame gets zeros).
    Channels [C/fold_div, 2C/fold_div): frame t takes frame t-1 (the first frame gets zeros).
    The remaining channels are untouched.
    """
    nt, c, h, w = x.shape
    if nt % num_segments:
        raise ValueError(f"temporal_shift: the batch dimension {nt} is not a multiple of "
                         f"num_segments={num_segments}; the input must be (N*T, C, H, W) with "
                         f"T = num_segments")
    fold = c // fold_div
    v = x.view(nt // num_segments, num_segments, c, h, w)  # (N, T, C, H, W)
    out = torch.zeros_like(v)
    out[:, :-1, :fold] = v[:, 1:, :fold]  # future -> present
    out[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold]  # past -> present
    out[:, :, 2 * fold:] = v[:, :, 2 * fold:]
    return out.view(nt, c, h, w)  # (N*T, C, H, W)


class TemporalShiftConv2d(nn.Conv2d):
    """A Conv2d that applies `temporal_shift` to its input first; same parameters and names."""

    def __init__(self, *args, num_segments: int, fold_div: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_segments = num_segments
        self.fold_div = fold_div

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, num_segments: int,
                  fold_div: int = 8) -> TemporalShiftConv2d:
        """A shifted copy of `conv` sharing its weight (and bias) tensors."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                  padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                  bias=conv.bias is not None, padding_mode=conv.padding_mode,
                  device=conv.weight.device, dtype=conv.weight.dtype,
                  num_segments=num_segments, fold_div=fold_div)
        new.weight = conv.weight
        if conv.bias is not None:
            new.bias = conv.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(temporal_shift(x, self.num_segments, self.fold_div))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_segments={self.num_segments}, fold_div={self.fold_div}"


def add_temporal_shift(trunk: nn.Module, num_segments: int, fold_div: int = 8) -> nn.Module:
    """Replaces conv1 of every residual block of a ResNet trunk with its shifted copy, in place."""
    blocks = [m for m in trunk.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    if not blocks:
        raise ValueError(f"add_temporal_shift: {type(trunk).__name__} has no ResNet blocks "
                         f"(torchvision BasicBlock / Bottleneck) to shift")
    for block in blocks:
        block.conv1 = TemporalShiftConv2d.from_conv(block.conv1, num_segments, fold_div)
    return trunk


class TSM(TSN):
    """TSN over a temporally shifted trunk; clips must have exactly `num_segments` frames."""

    def __init__(self, backbone: nn.Module, feature_channels: int, num_classes: int,
                 dropout: float = 0.5, *, num_segments: int, fold_div: int = 8,
                 **head_options):
        if num_segments < 1:
            raise ValueError(f"TSM: num_segments must be at least 1, got {num_segments}")
        if fold_div < 2:
            raise ValueError(f"TSM: fold_div must be at least 2 (two folds are shifted), "
                             f"got {fold_div}")
        super().__init__(add_temporal_shift(backbone, num_segments, fold_div), feature_channels,
                         num_classes, dropout, **head_options)
        self.num_segments = num_segments
        self.fold_div = fold_div

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.num_segments:
            raise ValueError(f"TSM was built for clips of num_segments={self.num_segments} frames "
                             f"(N, {self.num_segments}, C, H, W), got {tuple(x.shape)}; sample "
                             f"{self.num_segments} frames or rebuild with num_segments="
                             f"{x.shape[1] if x.dim() == 5 else '?'}")
        return super().features(x)

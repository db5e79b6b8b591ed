"""SlowOnly (Feichtenhofer et al. 2019, the Slow pathway alone) as mmaction2 builds it.

`ResNet3dSlowOnly` R50 8x8: a 3D ResNet-50 without temporal down-sampling. Stem: conv 1x7x7
stride (1, 2, 2), BN, ReLU, max-pool 1x3x3 stride (1, 2, 2). Bottleneck stages (3, 4, 6, 3);
conv1 (1x1 spatially) of every block has temporal kernel 3 (padding 1) in res4 and res5 and 1
in res2 and res3, conv2 is 1x3x3 with the stage's spatial stride (torchvision places it there
too), conv3 1x1x1. Head (mmaction2 I3DHead): average over (T, h, w), dropout 0.5, fc.

Module names follow torchvision's ResNet (conv1, bn1, layer1..4, blockwise conv1..3, bn1..3,
downsample.0/1), so ImageNet ResNet-50 weights inflate key by key (`inflate_from_2d`).
"""

from __future__ import annotations

import torch
from torch import nn

from reskd.models.base import VideoClassifier

# name -> (layers, temporal kernel of each stage's conv1)
SLOWONLY_DEPTHS = {
    "slowonly_r50": ((3, 4, 6, 3), (1, 1, 3, 3)),
}


class Bottleneck3d(nn.Module):
    """Bottleneck with a (k_t, 1, 1) first conv: (N, C, T, H, W) -> (N, 4*width, T, H/s, W/s)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, temporal_kernel: int = 1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv3d(in_channels, width, (temporal_kernel, 1, 1),
                               padding=(temporal_kernel // 2, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = nn.Conv3d(width, width, (1, 3, 3), stride=(1, stride, stride),
                               padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = nn.Conv3d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=(1, stride, stride), bias=False),
                nn.BatchNorm3d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet3dTrunk(nn.Module):
    """SlowOnly 3D ResNet without pooling and classifier: (N, 3, T, H, W) -> (N, C, T, h, w)."""

    def __init__(self, *, layers: tuple[int, ...] = (3, 4, 6, 3),
                 temporal_kernels: tuple[int, ...] = (1, 1, 3, 3),
                 widths: tuple[int, ...] = (64, 128, 256, 512),
                 strides: tuple[int, ...] = (1, 2, 2, 2)):
        super().__init__()
        if not len(layers) == len(temporal_kernels) == len(widths) == len(strides):
            raise ValueError(f"layers, temporal_kernels, widths and strides need one entry per "
                             f"stage, got {layers}, {temporal_kernels}, {widths}, {strides}")
        if any(k < 1 or k % 2 == 0 for k in temporal_kernels):
            raise ValueError(f"temporal_kernels must be odd and positive (so T is kept), got "
                             f"{temporal_kernels}")
        stem_width = widths[0]
        self.conv1 = nn.Conv3d(3, stem_width, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3),
                               bias=False)
        self.bn1 = nn.BatchNorm3d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        channels = stem_width
        for i, (n, width, stride, k_t) in enumerate(zip(layers, widths, strides, temporal_kernels),
                                                    start=1):
            blocks = [Bottleneck3d(channels, width, stride, k_t)]
            channels = width * Bottleneck3d.expansion
            blocks += [Bottleneck3d(channels, width, 1, k_t) for _ in range(1, n)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        self.out_channels = channels
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, Bottleneck3d):
                # mmaction2's zero_init_residual: every block starts as the identity
                nn.init.zeros_(m.bn3.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, T, H/4, W/4)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return x  # (N, C, T, h, w)


class SlowOnly(VideoClassifier):
    """SlowOnly video model with the uniform reskd API (see `reskd.models.base`).

    Clips come in as (N, T, C, H, W) like every reskd model and are permuted to the 3D
    layout (N, C, T, H, W) inside; `features` permutes back to (N, T, C', h, w).
    """

    # reskd.engine.runtime should convert with this format (Conv3d weights are 5-D).
    memory_format = torch.channels_last_3d

    def __init__(self, backbone: nn.Module, feature_channels: int, num_classes: int,
                 dropout: float = 0.5, *, fc_init_std: float = 0.01):
        super().__init__(feature_channels, num_classes, dropout, fc_init_std=fc_init_std)
        self.backbone = backbone

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._clip_3d(x)  # (N, C, T, H, W)
        f = self.backbone(x)  # (N, C', T, h, w)
        return f.transpose(1, 2)  # (N, T, C', h, w)


def inflate_from_2d(trunk: nn.Module, state_dict_2d: dict[str, torch.Tensor]) -> None:
    """Loads a 2D ResNet state dict (torchvision layout) into a 3D trunk by I3D inflation.

    A 2D kernel (O, I, kh, kw) becomes (O, I, kt, kh, kw): repeated kt times along time and
    divided by kt, so a clip of identical frames gives the 2D network's response (away from the
    clip ends, where temporal zero padding cuts the kernel). Tensors whose shape already fits
    (BatchNorm, or a 3D checkpoint) are copied. The classifier (fc.*) is left out. Every trunk
    key must be filled and every state-dict key used, else ValueError.
    """
    own = trunk.state_dict()
    new: dict[str, torch.Tensor] = {}
    unexpected, mismatched = [], []
    for key, value in state_dict_2d.items():
        if key.startswith("fc."):
            continue
        if key not in own:
            unexpected.append(key)
            continue
        target = own[key]
        if value.shape == target.shape:
            new[key] = value
        elif (value.dim() == 4 and target.dim() == 5
              and value.shape == target.shape[:2] + target.shape[3:]):
            k_t = target.shape[2]
            new[key] = value.unsqueeze(2).repeat(1, 1, k_t, 1, 1) / k_t  # (O, I, kt, kh, kw)
        else:
            mismatched.append(f"{key}: {tuple(value.shape)} vs {tuple(target.shape)}")
    missing = [k for k in own if k not in new]
    if missing or unexpected or mismatched:
        raise ValueError(f"cannot inflate these weights into {type(trunk).__name__}: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} "
                         f"unexpected (e.g. {unexpected[:3]}), {len(mismatched)} with shapes that "
                         f"do not inflate (e.g. {mismatched[:3]}); give a torchvision ResNet-50 "
                         f"state dict")
    trunk.load_state_dict(new)


def slowonly(arch: str = "slowonly_r50", *, num_classes: int, dropout: float = 0.5,
             fc_init_std: float = 0.01) -> SlowOnly:
    """SlowOnly-R50 8x8 (mmaction2 `ResNet3dSlowOnly`, I3DHead); random initialisation."""
    if arch not in SLOWONLY_DEPTHS:
        raise ValueError(f"unknown SlowOnly arch {arch!r}; valid: {', '.join(SLOWONLY_DEPTHS)}")
    layers, temporal_kernels = SLOWONLY_DEPTHS[arch]
    trunk = ResNet3dTrunk(layers=layers, temporal_kernels=temporal_kernels)
    return SlowOnly(trunk, trunk.out_channels, num_classes, dropout, fc_init_std=fc_init_std)

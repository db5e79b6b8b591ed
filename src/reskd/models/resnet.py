"""The ResNet family as 2D frame backbones: torchvision-compatible, with configurable stages.

`ResNetTrunk` has torchvision's module names (conv1, bn1, layer1..4), so torchvision ImageNet
weights load into `resnet18..152` unchanged. The same class builds the paper's R50-S
(stage strides (1, 1, 2, 2), Section 3) and small CPU models (narrow widths, a 3x3 stride-2
stem without max-pool) whose last map stays at least 2x2 at low resolution - feature KD needs
that (a 1x1 map upsampled is constant).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}

# name -> (block, layers); widths (64, 128, 256, 512), imagenet stem, strides (1, 2, 2, 2)
TORCHVISION_RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}


class ResNetTrunk(nn.Module):
    """ResNet without pooling and classifier: (B, 3, H, W) -> (B, C, h, w)."""

    def __init__(self, *, block: str = "bottleneck", layers: tuple[int, ...] = (3, 4, 6, 3),
                 widths: tuple[int, ...] = (64, 128, 256, 512),
                 strides: tuple[int, ...] = (1, 2, 2, 2),
                 stem: str = "imagenet"):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
        if not len(layers) == len(widths) == len(strides):
            raise ValueError(f"layers, widths and strides need one entry per stage, got "
                             f"{layers}, {widths}, {strides}")
        block_cls = BLOCKS[block]
        stem_width = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, stem_width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem == "small":
            self.conv1 = nn.Conv2d(3, stem_width, 3, stride=2, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"stem must be 'imagenet' or 'small', got {stem!r}")
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = stem_width
        for i, (n, width, stride) in enumerate(zip(layers, widths, strides), start=1):
            self.add_module(f"layer{i}", self._make_layer(block_cls, width, n, stride))
        self.num_stages = len(layers)
        self.out_channels = widths[-1] * block_cls.expansion
        self.stride = (4 if stem == "imagenet" else 2) * math.prod(strides)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, block_cls: type, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        out = planes * block_cls.expansion
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, out, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(out))
        layers = [block_cls(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        layers += [block_cls(out, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return x

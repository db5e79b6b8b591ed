"""Model builders: one call from an architecture name and keyword options to a video model.

Every model takes clips (N, T, C, H, W) and has `features` / `head` (see `reskd.models.tsn`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from reskd.models.resnet import TORCHVISION_RESNETS, ResNetTrunk
from reskd.models.tsn import TSN

ARCHS = (*TORCHVISION_RESNETS, "resnet50s", "resnet")


def build_model(arch: str, *, num_classes: int, block: str = "basic",
                layers: tuple[int, ...] = (1, 1, 1, 1), widths: tuple[int, ...] = (64, 128, 256, 512),
                stem: str = "imagenet", strides: tuple[int, ...] = (1, 2, 2, 2),
                dropout: float = 0.5, pretrained: str = "") -> TSN:
    """TSN over a ResNet. `arch`: resnet18/34/50/101/152 (torchvision layout), resnet50s (the
    paper's R50-S, strides (1, 1, 2, 2)), or "resnet" built from block/layers/widths/stem/strides.
    `pretrained`: "" (random init), "imagenet" (torchvision's weights API; downloads once into the
    torch hub cache) or a path to a torchvision-layout state dict.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if arch in TORCHVISION_RESNETS:
        block, layers = TORCHVISION_RESNETS[arch]
        trunk = ResNetTrunk(block=block, layers=layers, stem="imagenet", strides=strides)
    elif arch == "resnet50s":
        block, layers = TORCHVISION_RESNETS["resnet50"]
        trunk = ResNetTrunk(block=block, layers=layers, stem="imagenet", strides=(1, 1, 2, 2))
    elif arch == "resnet":
        trunk = ResNetTrunk(block=block, layers=layers, widths=widths, stem=stem, strides=strides)
    else:
        raise ValueError(f"unknown model.arch {arch!r}; valid: {', '.join(ARCHS)}")
    if pretrained:
        load_backbone_weights(trunk, pretrained, arch)
    return TSN(trunk, trunk.out_channels, num_classes, dropout)


def load_backbone_weights(trunk: nn.Module, pretrained: str, arch: str) -> None:
    """Loads ImageNet weights into a trunk; the classifier (fc.*) is left out (new classes)."""
    if pretrained == "imagenet":
        import torchvision

        name = "resnet50" if arch == "resnet50s" else arch
        if name not in TORCHVISION_RESNETS:
            raise ValueError(f"model.pretrained=imagenet needs a torchvision ResNet arch "
                             f"({', '.join(TORCHVISION_RESNETS)}), got {arch!r}")
        weights = torchvision.models.get_model_weights(name).DEFAULT
        state = weights.get_state_dict(progress=True)
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"model.pretrained: no such file {path} (give 'imagenet' or "
                                    f"a path to a torchvision ResNet state dict)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = trunk.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"pretrained weights {pretrained!r} do not fit {arch}: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")

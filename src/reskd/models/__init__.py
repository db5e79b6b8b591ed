"""Model builders: one call from an architecture name and keyword options to a video model.

Every model takes clips (N, T, C, H, W) and has `features` / `head` (see `reskd.models.base`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from reskd.models.resnet import TORCHVISION_RESNETS, ResNetTrunk
from reskd.models.slowonly import SLOWONLY_DEPTHS, inflate_from_2d, slowonly
from reskd.models.swin import SWIN_ARCHS, load_swin_weights, video_swin
from reskd.models.tsm import TSM
from reskd.models.tsn import TSN

TSM_ARCHS = tuple(f"tsm_{name}" for name in TORCHVISION_RESNETS)
ARCHS = (*TORCHVISION_RESNETS, "resnet50s", "resnet", *TSM_ARCHS, *SLOWONLY_DEPTHS, *SWIN_ARCHS)


def build_model(arch: str, *, num_classes: int, block: str = "basic",
                layers: tuple[int, ...] = (1, 1, 1, 1), widths: tuple[int, ...] = (64, 128, 256, 512),
                stem: str = "imagenet", strides: tuple[int, ...] = (1, 2, 2, 2),
                dropout: float = 0.5, num_segments: int = 8, pretrained: str = "") -> nn.Module:
    """A video model with the uniform API of `reskd.models.base`. `arch`:

    - TSN over a ResNet: resnet18/34/50/101/152 (torchvision layout), resnet50s (the paper's
      R50-S, strides (1, 1, 2, 2)), or "resnet" built from block/layers/widths/stem/strides;
    - TSM: tsm_resnet18..152, a torchvision ResNet with residual temporal shift; clips must have
      exactly `num_segments` frames;
    - SlowOnly: slowonly_r50 (SlowOnly-R50 8x8, mmaction2 layout);
    - Video Swin: swin3d_t / swin3d_s / swin3d_b (torchvision).

    `pretrained`: "" (random init), "imagenet" (torchvision's weights API, downloads once into
    the torch hub cache; ResNets, TSM, and SlowOnly by inflation) or a path: a torchvision-layout
    ResNet state dict (ResNets, TSM; SlowOnly inflates it) or a torchvision swin3d state dict.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if arch in TSM_ARCHS:
        base = arch[len("tsm_"):]
        block, layers = TORCHVISION_RESNETS[base]
        trunk = ResNetTrunk(block=block, layers=layers, stem="imagenet", strides=strides)
        if pretrained:
            load_backbone_weights(trunk, pretrained, base)
        return TSM(trunk, trunk.out_channels, num_classes, dropout, num_segments=num_segments)
    if arch in SLOWONLY_DEPTHS:
        model = slowonly(arch, num_classes=num_classes, dropout=dropout)
        if pretrained:
            inflate_from_2d(model.backbone, read_resnet_state_dict(pretrained, "resnet50"))
        return model
    if arch in SWIN_ARCHS:
        model = video_swin(arch, num_classes=num_classes, dropout=dropout)
        if pretrained:
            load_swin_weights(model, pretrained)
        return model
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
    name = "resnet50" if arch == "resnet50s" else arch
    state = read_resnet_state_dict(pretrained, name)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = trunk.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"pretrained weights {pretrained!r} do not fit {arch}: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")


def read_resnet_state_dict(pretrained: str, name: str) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict: "imagenet" (weights API, for ResNet `name`) or a file."""
    if pretrained == "imagenet":
        import torchvision

        if name not in TORCHVISION_RESNETS:
            raise ValueError(f"model.pretrained=imagenet needs a torchvision ResNet arch "
                             f"({', '.join(TORCHVISION_RESNETS)}), got {name!r}")
        weights = torchvision.models.get_model_weights(name).DEFAULT
        return weights.get_state_dict(progress=True)
    path = Path(pretrained)
    if not path.is_file():
        raise FileNotFoundError(f"model.pretrained: no such file {path} (give 'imagenet' or "
                                f"a path to a torchvision ResNet state dict)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state

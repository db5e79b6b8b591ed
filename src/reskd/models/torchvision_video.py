"""torchvision's other video models with the uniform reskd API: the 3D ResNets (R3D-18,
MC3-18, R(2+1)D-18; Tran et al. 2018) and the Multiscale Vision Transformers (MViT V1-B,
Fan et al. 2021; MViT V2-S, Li et al. 2022).

The backbone is torchvision's own module with its classifier removed, so torchvision state dicts
load key by key under `backbone.` (the classifier becomes `fc`, as in every reskd model) and the
logits equal torchvision's (tests/test_imports.py checks <= 1e-5).

- `VideoResNet`: stem and layer1..4, then the reskd head (average over (T', h, w), dropout, fc;
  torchvision has no dropout there, so eval logits are the same). The pre-pool map is layer4's.
- `MViT`: the classifier reads the class token, not an average of the map, so `features` returns
  the patch tokens as the pre-pool map (N, T', C, h, w) and carries the class token along as
  the attribute `class_token` of that tensor; `head` reads it. Position information: V2 uses
  relative position tables that torchvision already interpolates to any size; V1's absolute
  tables are made for 16 frames at 224 px and are interpolated (trilinearly: linear in time,
  bilinear in space) for other sizes, so both run at every size, exactly as torchvision at 224.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reskd.models.base import VideoClassifier, set_stochastic_depth

VIDEO_RESNET_ARCHS = ("r3d_18", "mc3_18", "r2plus1d_18")
MVIT_ARCHS = ("mvit_v1_b", "mvit_v2_s")


class VideoResNet(VideoClassifier):
    """torchvision's VideoResNet: clips (N, T, C, H, W) -> pre-pool map (N, T', 512, h, w),
    T' = T / 8 (rounded up; R3D/R(2+1)D halve time in layer2..4, MC3 too)."""

    memory_format = torch.channels_last_3d

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.5, *,
                 fc_init_std: float = 0.01):
        super().__init__(backbone.fc.in_features, num_classes, dropout, fc_init_std=fc_init_std)
        # the classifier is self.fc; unused parameters would also break DDP
        backbone.fc = nn.Identity()
        backbone.avgpool = nn.Identity()
        self.backbone = backbone

    def features(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.stem(self._clip_3d(x))  # (N, 64, T, H/2, W/2)
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))  # (N, 512, T', h, w)
        return x.transpose(1, 2)  # (N, T', 512, h, w)


class MViT(VideoClassifier):
    """torchvision's MViT; `features` -> patch tokens (N, T', C, h, w) carrying
    `.class_token` (N, C)."""

    memory_format = torch.channels_last_3d

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.5, *,
                 fc_init_std: float = 0.01):
        super().__init__(backbone.norm.normalized_shape[0], num_classes, dropout,
                         fc_init_std=fc_init_std)
        backbone.head = nn.Identity()
        self.backbone = backbone

    def _positions(self, x: torch.Tensor, thw: tuple[int, int, int]) -> torch.Tensor:
        """(N, T'H'W', C) patch tokens -> (N, 1 + T'H'W', C): the class token in front, plus
        V1's absolute position embedding (resized when thw is not the size it was made for)."""
        p = self.backbone.pos_encoding
        cls = p.class_token.expand(x.shape[0], -1).unsqueeze(1)  # (N, 1, C)
        x = torch.cat((cls, x), dim=1)
        if p.spatial_pos is None:  # V2: relative positions, inside the attention
            return x
        c = p.spatial_pos.shape[1]
        spatial = p.spatial_pos.view(1, *p.spatial_size, c).permute(0, 3, 1, 2)  # (1, C, h0, w0)
        temporal = p.temporal_pos.t().unsqueeze(0)  # (1, C, t0)
        if tuple(thw[1:]) != tuple(p.spatial_size):
            spatial = F.interpolate(spatial, size=thw[1:], mode="bilinear", align_corners=False)
        if thw[0] != p.temporal_size:
            temporal = F.interpolate(temporal, size=thw[0], mode="linear", align_corners=False)
        spatial = spatial.flatten(2).squeeze(0).t()  # (h*w, C)
        temporal = temporal.squeeze(0).t()  # (t, C)
        # the same sum as torchvision's PositionalEncoding: time repeated per position + space
        pos = torch.repeat_interleave(temporal, spatial.shape[0], dim=0) + spatial.repeat(thw[0], 1)
        pos = torch.cat((p.class_pos.unsqueeze(0), pos), dim=0)  # (1 + t*h*w, C)
        return x + pos.unsqueeze(0)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip (N, T, C, H, W) -> (patch-token map (N, T', C', h, w), class token (N, C'))."""
        b = self.backbone
        x = b.conv_proj(self._clip_3d(x))  # (N, C0, T', H', W')
        thw = tuple(x.shape[2:])
        x = self._positions(x.flatten(2).transpose(1, 2), thw)  # (N, 1 + T'H'W', C0)
        for block in b.blocks:
            x, thw = block(x, thw)
        x = b.norm(x)  # (N, 1 + t*h*w, C')
        n, c = x.shape[0], x.shape[2]
        f = x[:, 1:].reshape(n, *thw, c).permute(0, 1, 4, 2, 3)  # (N, t, C', h, w)
        return f, x[:, 0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f, class_token = self._encode(x)
        f.class_token = class_token  # read by `head`; a tensor made from f does not carry it
        return f

    def head(self, f: torch.Tensor) -> torch.Tensor:
        class_token = getattr(f, "class_token", None)
        if class_token is None:
            raise ValueError("MViT's classifier reads the class token, which only the tensor "
                             "returned by MViT.features carries (as .class_token); pass that "
                             "tensor itself, or call the model (forward) for logits")
        return self.fc(self.dropout(class_token))  # (N, K)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        f, class_token = self._encode(x)
        logits = self.fc(self.dropout(class_token))  # (N, K)
        if not return_features:
            return logits
        f.class_token = class_token
        return logits, f


def torchvision_video_model(arch: str, *, num_classes: int, dropout: float = 0.5,
                            drop_path: float = -1.0, fc_init_std: float = 0.01) -> nn.Module:
    """R3D-18 / MC3-18 / R(2+1)D-18 / MViT V1-B / MViT V2-S from torchvision, random init.
    `drop_path`: MViT's stochastic depth rate; -1: torchvision's 0.2 (the 3D ResNets have none)."""
    import torchvision.models.video as video

    if arch in VIDEO_RESNET_ARCHS:
        return VideoResNet(getattr(video, arch)(weights=None), num_classes, dropout,
                           fc_init_std=fc_init_std)
    if arch in MVIT_ARCHS:
        backbone = getattr(video, arch)(weights=None)
        set_stochastic_depth(backbone, drop_path)
        return MViT(backbone, num_classes, dropout, fc_init_std=fc_init_std)
    raise ValueError(f"unknown torchvision video arch {arch!r}; valid: "
                     f"{', '.join(VIDEO_RESNET_ARCHS + MVIT_ARCHS)}")

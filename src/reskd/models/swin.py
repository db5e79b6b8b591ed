"""Video Swin Transformer (Liu et al. 2021) T/S/B, torchvision's implementation.

The backbone is torchvision's `SwinTransformer3d` (patch 2x4x4, window 8x7x7) without its
classifier; the head is the original Video Swin head (mmaction2 I3DHead): average over
(T', h, w), dropout 0.5, fc. torchvision shrinks a window that is larger than the feature map
to the map (no shift then), so the model runs at 224 (last map 7x7), 112 (4x4) or 64 (2x2).

State dicts: `backbone.*` holds torchvision's keys minus `head.*`; `load_swin_weights` reads a
torchvision-layout file (e.g. `swin3d_s(weights=...).state_dict()` saved with torch.save).
Checkpoints of the original Video Swin code (mmaction2 layout, `backbone.layers.0...`) use
other names and are not converted here.
"""

from __future__ import annotations

import torch
from torch import nn

from reskd.models.base import VideoClassifier, read_state_dict, set_stochastic_depth

SWIN_ARCHS = ("swin3d_t", "swin3d_s", "swin3d_b")


class VideoSwin(VideoClassifier):
    """Video Swin with the uniform reskd API (see `reskd.models.base`).

    Clips come in as (N, T, C, H, W) and are permuted to (N, C, T, H, W) inside; the patch
    embedding halves T, so `features` returns (N, T/2, C', h, w) (T' = ceil(T / 2)).
    """

    # reskd.engine.runtime should convert with this format (the patch-embedding Conv3d is 5-D).
    memory_format = torch.channels_last_3d

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.5, *,
                 fc_init_std: float = 0.01):
        super().__init__(backbone.num_features, num_classes, dropout, fc_init_std=fc_init_std)
        # The classifier is self.fc (same name in every reskd model); an unused torchvision head
        # would also break DDP (parameters without gradients).
        backbone.head = nn.Identity()
        self.backbone = backbone

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._clip_3d(x)  # (N, C, T, H, W)
        b = self.backbone
        x = b.pos_drop(b.patch_embed(x))  # (N, T', H/4, W/4, C0)
        x = b.norm(b.features(x))  # (N, T', h, w, C')
        return x.permute(0, 1, 4, 2, 3)  # (N, T', C', h, w)


def video_swin(arch: str = "swin3d_s", *, num_classes: int, dropout: float = 0.5,
               drop_path: float = -1.0, fc_init_std: float = 0.01) -> VideoSwin:
    """Video Swin T/S/B from torchvision, random initialisation (weights=None). `drop_path`:
    the stochastic depth rate (rising linearly over the blocks to it); -1: torchvision's 0.1,
    which the authors' ResKD config also uses for Swin-S and Swin-B."""
    if arch not in SWIN_ARCHS:
        raise ValueError(f"unknown Video Swin arch {arch!r}; valid: {', '.join(SWIN_ARCHS)}")
    import torchvision.models.video as video

    backbone = getattr(video, arch)(weights=None)
    set_stochastic_depth(backbone, drop_path)
    return VideoSwin(backbone, num_classes, dropout, fc_init_std=fc_init_std)


def load_swin_weights(model: VideoSwin, path: str) -> None:
    """Loads a torchvision-layout swin3d state dict file; its head is used only if it has
    the model's class count (else dropped: new classes)."""
    state = read_state_dict(path, "a path to a torchvision swin3d state dict saved with "
                                  "torch.save")
    head = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
    body = {k: v for k, v in state.items() if not k.startswith("head.")}
    try:
        missing, unexpected = model.backbone.load_state_dict(body, strict=False)
    except RuntimeError as err:  # shape mismatches raise even with strict=False
        raise ValueError(f"pretrained weights {path!r} do not fit this Video Swin (is it a "
                         f"torchvision swin3d state dict of the same size, t/s/b?): {err}") from err
    if missing or unexpected:
        raise ValueError(f"pretrained weights {path!r} do not fit this Video Swin: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} "
                         f"unexpected (e.g. {unexpected[:3]}); is it a torchvision swin3d state "
                         f"dict of the same size (t/s/b)?")
    if head and head.get("weight") is not None and head["weight"].shape == model.fc.weight.shape:
        model.fc.load_state_dict(head)

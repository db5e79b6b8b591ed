"""Teacher + student wiring for ResKD training.

The teacher is frozen three ways: its parameters have requires_grad False, it is never given to
the optimizer (the trainer only optimises `student`), and it runs under `torch.no_grad`. It is
also never wrapped in DDP. Its BatchNorm mode is a switch: "train" (batch statistics, what the
authors do following Heo et al. 2019; the teacher's running stats drift, harmlessly, since it
is never saved) or "eval" (running statistics).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reskd.distill.losses import (classification_loss, clip_kd, feature_kd, frame_kd,
                                  pixel_logit_kd)


def freeze(teacher: nn.Module) -> nn.Module:
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def set_teacher_mode(teacher: nn.Module, bn: str) -> None:
    """eval() for everything (dropout off), then BatchNorm back to train() when bn == "train"."""
    if bn not in ("train", "eval"):
        raise ValueError(f"teacher BatchNorm mode must be 'train' or 'eval', got {bn!r}")
    teacher.eval()
    if bn == "train":
        for m in teacher.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()


@dataclass(frozen=True)
class KDWeights:
    """Weights of the KD terms (0 = off) and the logit-KD temperature; see DistillConfig."""
    feature: float = 100.0
    clip: float = 0.0
    frame: float = 0.0
    pixel_logit: float = 0.0
    temperature: float = 4.0
    pixel_logit_reduction: str = "paper"


def distill_loss(student: nn.Module, teacher: nn.Module, student_x: torch.Tensor,
                 teacher_x: torch.Tensor, labels: torch.Tensor, *,
                 weights: KDWeights = KDWeights()) -> dict:
    """CE(student logits, labels) + the weighted KD terms. Returns {"loss", "ce", "kd", "logits"}
    plus one entry per active term ("feature_kd", "clip_kd", "frame_kd", "pixel_logit_kd").

    student_x (N, T, C, h, w) is the low-resolution view, teacher_x (N, T, C, H, W) the same
    crop at high resolution. The student is called through its forward (so a DDP wrapper
    synchronises gradients), asking for its pre-pool map too; the logit heads of the variants
    are applied to that map.
    """
    core = student.module if hasattr(student, "module") else student
    with torch.no_grad():
        f_teacher = teacher.features(teacher_x)  # (N, T, C, H', W')
    logits, f_student = student(student_x, return_features=True)  # (N, K), (N, T, C, h', w')
    ce = classification_loss(logits, labels)
    T = weights.temperature
    terms = {}
    if weights.feature:
        terms["feature_kd"] = (weights.feature, feature_kd(f_student, f_teacher))
    if weights.clip:
        with torch.no_grad():
            t_logits = teacher.head(f_teacher)  # (N, K)
        terms["clip_kd"] = (weights.clip, clip_kd(logits, t_logits, T))
    if weights.frame:
        with torch.no_grad():
            t_frames = teacher.frame_logits(f_teacher)  # (N, T, K)
        terms["frame_kd"] = (weights.frame, frame_kd(core.frame_logits(f_student), t_frames, T))
    if weights.pixel_logit:
        with torch.no_grad():
            t_pixels = teacher.pixel_logits(f_teacher)  # (N, T, K, H', W')
        terms["pixel_logit_kd"] = (weights.pixel_logit, pixel_logit_kd(
            core.pixel_logits(f_student), t_pixels, T, reduction=weights.pixel_logit_reduction))
    kd = sum((w * value for w, value in terms.values()), torch.zeros((), device=ce.device))
    out = {"loss": ce + kd, "ce": ce.detach(), "kd": kd.detach(), "logits": logits.detach()}
    out.update({name: value.detach() for name, (_, value) in terms.items()})
    return out

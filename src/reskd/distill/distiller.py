"""Teacher + student wiring for ResKD training.

The teacher is frozen three ways: its parameters have requires_grad False, it is never given to
the optimizer (the trainer only optimises `student`), and it runs under `torch.no_grad`. It is
also never wrapped in DDP. Its BatchNorm mode is a switch: "train" (batch statistics, what the
authors do following Heo et al. 2019; the teacher's running stats drift, harmlessly, since it
is never saved) or "eval" (running statistics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reskd.distill.losses import feature_kd


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


def distill_loss(student: nn.Module, teacher: nn.Module, student_x: torch.Tensor,
                 teacher_x: torch.Tensor, labels: torch.Tensor, *, alpha: float) -> dict:
    """CE(student logits, labels) + alpha * feature KD. Returns {"loss", "ce", "kd", "logits"}.

    student_x (N, T, C, h, w) is the low-resolution view, teacher_x (N, T, C, H, W) the same
    crop at high resolution. The student is called through its forward (so a DDP wrapper
    synchronises gradients), asking for its pre-pool map too.
    """
    with torch.no_grad():
        f_teacher = teacher.features(teacher_x)  # (N, T, C, H', W')
    logits, f_student = student(student_x, return_features=True)  # (N, K), (N, T, C, h', w')
    ce = F.cross_entropy(logits.float(), labels)
    kd = feature_kd(f_student, f_teacher)
    return {"loss": ce + alpha * kd, "ce": ce.detach(), "kd": kd.detach(), "logits": logits.detach()}

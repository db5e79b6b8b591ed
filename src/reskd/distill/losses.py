"""Knowledge-distillation losses: pure functions of student and teacher outputs.

Feature maps are (N, T, C, h, w) pre-pool maps from `model.features`; the teacher's are
expected detached (computed without autograd). Each loss is a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_features(f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Phi of the paper: bilinear resize of (N, T, C, h, w) to (N, T, C, *size)."""
    if tuple(f.shape[-2:]) == tuple(size):
        return f
    n, t = f.shape[:2]
    g = F.interpolate(f.flatten(0, 1), size=size, mode="bilinear", align_corners=False)  # (N*T, C, H', W')
    return g.unflatten(0, (n, t))  # (N, T, C, H', W')


def feature_kd(f_student: torch.Tensor, f_teacher: torch.Tensor) -> torch.Tensor:
    """Pixel-level feature KD (paper Eq. 1): MSE(f_t, Phi(f_s)), mean over every element."""
    if f_student.shape[:3] != f_teacher.shape[:3]:
        raise ValueError(
            f"feature KD needs student and teacher maps with the same (N, T, C); got student "
            f"{tuple(f_student.shape)} and teacher {tuple(f_teacher.shape)}. The channel counts "
            f"are {f_student.shape[2]} (student) and {f_teacher.shape[2]} (teacher): for different "
            f"channel counts use pixel-level logit KD.")
    f_student = resize_features(f_student.float(), tuple(f_teacher.shape[-2:]))
    return F.mse_loss(f_student, f_teacher.float())

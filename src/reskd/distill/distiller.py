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
from reskd.models.size_bn import set_size


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
    """Weights of the KD terms (0 = off) and the logit-KD temperature; see DistillConfig.
    `sizes_per_step` is the any-resolution student's (0: every size each step)."""
    feature: float = 100.0
    clip: float = 0.0
    frame: float = 0.0
    pixel_logit: float = 0.0
    temperature: float = 4.0
    pixel_logit_reduction: str = "mean"
    sizes_per_step: int = 0


@torch.no_grad()
def teacher_targets(teacher: nn.Module, teacher_x: torch.Tensor, weights: KDWeights) -> dict:
    """What the student is distilled towards, from the teacher's view (N, T, C, H, W): its
    pre-pool map "features" (N, T, C, H', W') and, for each active logit term, the teacher's
    clip (N, K), frame (N, T, K) or pixel (N, T, K, H', W') logits."""
    f_teacher = teacher.features(teacher_x)
    targets = {"features": f_teacher}
    if weights.clip:
        targets["clip_kd"] = teacher.head(f_teacher)
    if weights.frame:
        targets["frame_kd"] = teacher.frame_logits(f_teacher)
    if weights.pixel_logit:
        targets["pixel_logit_kd"] = teacher.pixel_logits(f_teacher)
    return targets


def student_loss(student: nn.Module, student_x: torch.Tensor, labels: torch.Tensor,
                 targets: dict, *, weights: KDWeights = KDWeights()) -> dict:
    """CE(student logits, labels) + the weighted KD terms towards the teacher's `targets`
    (`teacher_targets`); the parts as `distill_loss` returns them. Feature KD resizes the
    student's map to the teacher's whatever the student's size."""
    core = student.module if hasattr(student, "module") else student
    logits, f_student = student(student_x, return_features=True)  # (N, K), (N, T, C, h', w')
    ce = classification_loss(logits, labels)
    T = weights.temperature
    terms = {}
    if weights.feature:
        terms["feature_kd"] = (weights.feature, feature_kd(f_student, targets["features"]))
    if weights.clip:
        terms["clip_kd"] = (weights.clip, clip_kd(logits, targets["clip_kd"], T))
    if weights.frame:
        terms["frame_kd"] = (weights.frame, frame_kd(core.frame_logits(f_student),
                                                     targets["frame_kd"], T))
    if weights.pixel_logit:
        terms["pixel_logit_kd"] = (weights.pixel_logit, pixel_logit_kd(
            core.pixel_logits(f_student), targets["pixel_logit_kd"], T,
            reduction=weights.pixel_logit_reduction))
    kd = sum((w * value for w, value in terms.values()), torch.zeros((), device=ce.device))
    out = {"loss": ce + kd, "ce": ce.detach(), "kd": kd.detach(), "logits": logits.detach()}
    out.update({name: value.detach() for name, (_, value) in terms.items()})
    return out


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
    targets = teacher_targets(teacher, teacher_x, weights)
    return student_loss(student, student_x, labels, targets, weights=weights)


def multi_size_distill_loss(student: nn.Module, teacher: nn.Module,
                            student_xs: dict[int, torch.Tensor], teacher_x: torch.Tensor,
                            labels: torch.Tensor, *, size: int,
                            weights: KDWeights = KDWeights()) -> dict:
    """The any-resolution student's loss: the sum over its sizes of `distill_loss` at each,
    the teacher run once. `student_xs` maps each size to its view (N, T, C, s, s) of the same
    crop; `size` is the model's own (data.size), always trained; with
    `weights.sizes_per_step` = k > 0 it and k - 1 other sizes drawn at random (torch RNG) are.
    A student with a BatchNorm per size (`reskd.models.size_bn`) runs each size's own and is
    left at `size`.

    Returns the parts of `distill_loss` summed over the sizes trained ("loss" = "ce" + "kd";
    "logits" are those at `size`), plus per size s: "s{s}_ce", "s{s}_kd" and "s{s}_<term>".
    """
    core = student.module if hasattr(student, "module") else student
    others = [s for s in sorted(student_xs) if s != size]
    if weights.sizes_per_step:
        drawn = torch.randperm(len(others))[:weights.sizes_per_step - 1].tolist()
        others = [others[i] for i in sorted(drawn)]
    targets = teacher_targets(teacher, teacher_x, weights)
    out: dict = {}
    for s in [*others, size]:  # the model's own size last: the student is left at it
        set_size(core, s)
        parts = student_loss(student, student_xs[s], labels, targets, weights=weights)
        for name, value in parts.items():
            if name != "logits":
                out[name] = out[name] + value if name in out else value
                if name != "loss":
                    out[f"s{s}_{name}"] = value
    out["logits"] = parts["logits"]
    return out

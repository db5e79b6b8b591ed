"""Teacher + student wiring for ResKD training.

The teacher is frozen three ways: its parameters have requires_grad False, it is never given to
the optimizer (the trainer only optimises `student`), and it runs under `torch.no_grad`. It is
also never wrapped in DDP. Its BatchNorm mode is a switch: "train" (batch statistics, what the
authors do following Heo et al. 2019; the teacher's running stats drift, harmlessly, since it
is never saved) or "eval" (running statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from reskd.config import CONNECTORS, PIXEL_LOGIT_REDUCTIONS, TEACHER_BN, DistillConfig
from reskd.distill.losses import (
    classification_loss,
    clip_kd,
    feature_kd,
    frame_kd,
    pixel_logit_kd,
    resample_time,
)
from reskd.models.size_bn import set_size


def freeze(teacher: nn.Module) -> nn.Module:
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def set_teacher_mode(teacher: nn.Module, bn: str) -> None:
    """eval() for everything (dropout off), then BatchNorm back to train() when bn == "train"."""
    if bn not in TEACHER_BN:
        raise ValueError(f"teacher BatchNorm mode must be one of {', '.join(TEACHER_BN)}, got "
                         f"{bn!r}")
    teacher.eval()
    if bn == "train":
        for m in teacher.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()


@torch.no_grad()
def feature_map_shape(model: nn.Module, *, frames: int, size: int) -> tuple[int, ...]:
    """The shape (1, T', C', h, w) of `model`'s pre-pool map for one clip (1, frames, 3, size,
    size) of zeros, on the model's device: a model built on the meta device does no arithmetic.
    Run in eval mode (a real model's BatchNorm statistics stay as they were), then the model's
    mode is restored."""
    training = model.training
    device = next(iter(model.parameters())).device
    model.eval()
    try:
        f = model.features(torch.zeros(1, frames, 3, size, size, device=device))
    finally:
        model.train(training)
    return tuple(f.shape)


def flat_map_warning(student_maps: dict[int, tuple[int, ...]], teacher_map: tuple[int, ...], *,
                     teacher_size: int, terms: str, fixes: Sequence[str]) -> str | None:
    """The warning for KD `terms` that compare maps position by position (feature KD,
    pixel-level logit KD) when a student map of `student_maps` (size -> (N, T', C', h, w)) is
    1x1 and the teacher's is larger, else None. Why: the student's map is resized bilinearly
    to the teacher's, and a resized 1x1 map is constant, so the term can only pull the student
    towards the teacher's map averaged over positions: no spatial hint, which is what ResKD
    transfers. `fixes` are the settings that give the student a finer map."""
    flat = {s: tuple(m) for s, m in sorted(student_maps.items()) if tuple(m[-2:]) == (1, 1)}
    h, w = teacher_map[-2:]
    if not flat or h * w <= 1:
        return None
    at = ", ".join(f"{m} at {s} px" for s, m in flat.items())
    return (f"the student's pre-pool map (N, T', C', h, w) is {at}, the teacher's "
            f"{tuple(teacher_map)} at {teacher_size} px: resized to {h}x{w}, a 1x1 map is "
            f"constant, so {terms} carries no spatial hint (only the teacher's map averaged "
            f"over positions); use {' or '.join(fixes)} so the student's map is at least 2x2")


_KD = DistillConfig()  # the defaults below are the config's (one home: reskd.config)


@dataclass(frozen=True)
class KDWeights:
    """Weights of the KD terms (0 = off) and the logit-KD temperature; see DistillConfig.
    `sizes_per_step` is the any-resolution student's (0: every size each step)."""
    feature: float = _KD.alpha
    clip: float = _KD.clip_kd
    frame: float = _KD.frame_kd
    pixel_logit: float = _KD.pixel_logit_kd
    temperature: float = _KD.temperature
    pixel_logit_reduction: str = _KD.pixel_logit_reduction
    sizes_per_step: int = _KD.sizes_per_step

    def __post_init__(self) -> None:
        for name in ("feature", "clip", "frame", "pixel_logit"):
            if getattr(self, name) < 0:
                raise ValueError(f"the {name} KD weight must be >= 0 (0: off), got "
                                 f"{getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"the logit-KD temperature must be > 0, got {self.temperature}")
        if self.pixel_logit_reduction not in PIXEL_LOGIT_REDUCTIONS:
            raise ValueError(f"pixel_logit_reduction must be one of "
                             f"{', '.join(PIXEL_LOGIT_REDUCTIONS)}, got "
                             f"{self.pixel_logit_reduction!r}")


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


class Connector(nn.Module):
    """The learned bridge of cross-family feature KD: a student map (N, T', C_s, h, w) ->
    (N, T_t, C_t, h, w), a 1x1 conv from the student's channels to the teacher's, then linear
    resampling in time when the teacher's map has another number of time steps T_t (e.g. a
    tubelet-2 transformer teacher: T/2). The spatial resize stays feature KD's (Phi). It is
    trained with the student and dropped at deployment: it exists only to compare maps."""

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__()
        self.proj = nn.Conv3d(student_channels, teacher_channels, kernel_size=1)

    def forward(self, f_student: torch.Tensor, teacher_steps: int) -> torch.Tensor:
        x = self.proj(f_student.transpose(1, 2)).transpose(1, 2)  # (N, T', C_t, h, w)
        return resample_time(x, teacher_steps)  # (N, T_t, C_t, h, w)


def student_loss(student: nn.Module, student_x: torch.Tensor, labels: torch.Tensor,
                 targets: dict, *, weights: KDWeights = KDWeights(),
                 connector: Connector | None = None) -> dict:
    """CE(student logits, labels) + the weighted KD terms towards the teacher's `targets`
    (`teacher_targets`); the parts as `distill_loss` returns them. Feature KD resizes the
    student's map to the teacher's whatever the student's size."""
    core = student.module if hasattr(student, "module") else student
    logits, f_student = student(student_x, return_features=True)  # (N, K), (N, T, C, h', w')
    ce = classification_loss(logits, labels)
    T = weights.temperature
    terms = {}
    if weights.feature:
        f_teacher = targets["features"]
        mapped = f_student if connector is None else connector(f_student, f_teacher.shape[1])
        terms["feature_kd"] = (weights.feature, feature_kd(mapped, f_teacher))
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
                 weights: KDWeights = KDWeights(), connector: Connector | None = None) -> dict:
    """CE(student logits, labels) + the weighted KD terms. Returns {"loss", "ce", "kd", "logits"}
    plus one entry per active term ("feature_kd", "clip_kd", "frame_kd", "pixel_logit_kd").

    student_x (N, T, C, h, w) is the low-resolution view, teacher_x (N, T, C, H, W) the same
    crop at high resolution. The student is called through its forward (so a DDP wrapper
    synchronises gradients), asking for its pre-pool map too; the logit heads of the variants
    are applied to that map.
    """
    targets = teacher_targets(teacher, teacher_x, weights)
    return student_loss(student, student_x, labels, targets, weights=weights,
                        connector=connector)


def multi_size_distill_loss(student: nn.Module, teacher: nn.Module,
                            student_xs: dict[int, torch.Tensor], teacher_x: torch.Tensor,
                            labels: torch.Tensor, *, size: int,
                            weights: KDWeights = KDWeights(),
                            connector: Connector | None = None) -> dict:
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
        parts = student_loss(student, student_xs[s], labels, targets, weights=weights,
                             connector=connector)
        for name, value in parts.items():
            if name != "logits":
                out[name] = out[name] + value if name in out else value
                if name != "loss":
                    out[f"s{s}_{name}"] = value
    out["logits"] = parts["logits"]
    return out


class Distiller(nn.Module):
    """ResKD's loss as a module for any training loop: the frozen teacher and the student.

    The teacher is frozen the three ways the CLI does it: its parameters get requires_grad
    False (so `student.parameters()` is what an optimizer takes; the teacher is never in it),
    it runs under `torch.no_grad`, and it is never wrapped in DDP (wrap the student, then hand
    the wrapper in). `teacher_bn` is its BatchNorm mode: "train" (batch statistics, the
    authors') or "eval"; `distiller.train()` / `.eval()` switch the student only.

    `distiller(teacher_view, student_view, labels)` -> {"loss", "ce", "kd", "logits", and one
    entry per active term: "feature_kd", "clip_kd", "frame_kd", "pixel_logit_kd"}: CE on the
    student's logits plus `feature` x MSE(teacher map, student map resized bilinearly to it)
    and the weighted logit-KD terms (KL at `temperature`). Only "loss" carries gradients.
    Views: teacher (N, T, C, H, W), student (N, T, C, h, w), the same crop at two sizes
    (`reskd.Views`); labels (N,) class indices, or (N, K) multi-hot. An any-resolution
    student takes a dict {size: view} as `student_view` and `size=` its own size; the loss is
    summed over the sizes (`multi_size_distill_loss`).

    Feature KD compares maps of the same channels and time steps. For a teacher of another
    family or width, `connector="conv"` adds a learned `Connector` (1x1 conv to the teacher's
    channels, time resampled): optimise `distiller.trainable_parameters()` (the student's and
    the connector's) instead of the student's alone; the connector is not part of the
    student, so `save_student(distiller.student, ...)` saves the plain student.
    """

    def __init__(self, teacher: nn.Module, student: nn.Module, *, feature: float = _KD.alpha,
                 clip: float = _KD.clip_kd, frame: float = _KD.frame_kd,
                 pixel_logit: float = _KD.pixel_logit_kd, temperature: float = _KD.temperature,
                 pixel_logit_reduction: str = _KD.pixel_logit_reduction,
                 teacher_bn: str = _KD.teacher_bn, sizes_per_step: int = _KD.sizes_per_step,
                 connector: str = _KD.connector):
        super().__init__()
        core = student.module if hasattr(student, "module") else student
        for name, model in (("teacher", teacher), ("student", core)):
            missing = [m for m in ("features", "head") if not hasattr(model, m)]
            if missing:
                raise TypeError(
                    f"Distiller's {name} ({type(model).__name__}) has no {', '.join(missing)}: "
                    f"it needs reskd's video model API (features(x) -> pre-pool map (N, T', C, "
                    f"h, w), head(map) -> logits); build it with reskd.build_model or load it "
                    f"with reskd.load_model")
        self.weights = KDWeights(feature=feature, clip=clip, frame=frame,
                                 pixel_logit=pixel_logit, temperature=temperature,
                                 pixel_logit_reduction=pixel_logit_reduction,
                                 sizes_per_step=sizes_per_step)
        if connector not in CONNECTORS:
            raise ValueError(f"connector must be one of {', '.join(CONNECTORS)}, got "
                             f"{connector!r}")
        set_teacher_mode(teacher, teacher_bn)
        self.teacher = freeze(teacher)
        self.student = student
        self.teacher_bn = teacher_bn
        self.connector = (Connector(core.feature_channels, teacher.feature_channels)
                          if connector == "conv" else None)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What an optimizer takes: the student's parameters, and the connector's if any."""
        extra = list(self.connector.parameters()) if self.connector is not None else []
        return [*self.student.parameters(), *extra]

    def train(self, mode: bool = True) -> Distiller:
        """The student's mode; the teacher stays in its own (`teacher_bn`)."""
        self.training = mode
        self.student.train(mode)
        if self.connector is not None:
            self.connector.train(mode)
        set_teacher_mode(self.teacher, self.teacher_bn)
        return self

    def forward(self, teacher_view: torch.Tensor,
                student_view: torch.Tensor | dict[int, torch.Tensor], labels: torch.Tensor, *,
                size: int | None = None) -> dict:
        if isinstance(student_view, dict):
            if size not in student_view:
                raise ValueError(f"an any-resolution student's views {sorted(student_view)} "
                                 f"need size= one of them (the student's own), got {size}")
            return multi_size_distill_loss(self.student, self.teacher, student_view,
                                           teacher_view, labels, size=size,
                                           weights=self.weights, connector=self.connector)
        return distill_loss(self.student, self.teacher, student_view, teacher_view, labels,
                            weights=self.weights, connector=self.connector)

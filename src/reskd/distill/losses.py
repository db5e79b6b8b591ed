"""Knowledge-distillation losses: pure functions of student and teacher outputs.

Feature maps are (N, T, C, h, w) pre-pool maps from `model.features`; the teacher's are
expected detached (computed without autograd). Each loss is a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reskd.config import PIXEL_LOGIT_REDUCTIONS


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy for class indices (N,); binary cross-entropy for multi-hot (N, K)
    targets (multi-label training with data.multi_label_loss=bce)."""
    if labels.dim() == 2:
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
    return F.cross_entropy(logits.float(), labels)


def top1_hits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number of clips whose top class is (one of) its label(s)."""
    top = logits.argmax(1)
    if labels.dim() == 2:
        return (labels.gather(1, top[:, None]) > 0).sum()
    return (top == labels).sum()


def resize_features(f: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Phi of the paper: bilinear resize of (N, T, C, h, w) to (N, T, C, *size)."""
    if tuple(f.shape[-2:]) == tuple(size):
        return f
    n, t = f.shape[:2]
    # (N*T, C, H', W')
    g = F.interpolate(f.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
    return g.unflatten(0, (n, t))  # (N, T, C, H', W')


def resample_time(f: torch.Tensor, steps: int) -> torch.Tensor:
    """(N, T, C, h, w) -> (N, steps, C, h, w), linear in time (align_corners False: for half
    the steps, the mean of each pair of frames, as a tubelet-2 transformer groups them)."""
    if f.shape[1] == steps:
        return f
    x = f.transpose(1, 2)  # (N, C, T, h, w)
    x = F.interpolate(x, size=(steps, *x.shape[-2:]), mode="trilinear", align_corners=False)
    return x.transpose(1, 2)  # (N, steps, C, h, w)


def feature_kd(f_student: torch.Tensor, f_teacher: torch.Tensor) -> torch.Tensor:
    """Pixel-level feature KD (paper Eq. 1): MSE(f_t, Phi(f_s)), mean over every element."""
    for name, f in (("student", f_student), ("teacher", f_teacher)):
        if f.dim() != 5:
            raise ValueError(
                f"feature KD compares pre-pool maps (N, T', C, h, w); the {name}'s features have "
                f"shape {tuple(f.shape)}. A model wrapped by hand must return its last map in "
                f"that layout from `features` (tokens: drop the class token and reshape the grid; "
                f"reskd's Hugging Face wrappers do), or use clip-level logit KD (feature=0, "
                f"clip=1)")
    if f_student.shape[:3] != f_teacher.shape[:3]:
        raise ValueError(
            f"feature KD needs student and teacher maps with the same (N, T', C); got student "
            f"{tuple(f_student.shape)} and teacher {tuple(f_teacher.shape)} (channel counts "
            f"{f_student.shape[2]} (student) and {f_teacher.shape[2]} (teacher)): for a teacher "
            f"of another width or time steps, use pixel-level logit KD (feature=0, "
            f"pixel_logit=500: the best measured for such pairs, docs/results.md), or a learned "
            f"connector (distill.connector=conv; Python: Distiller(..., connector=\"conv\"))")
    f_student = resize_features(f_student.float(), tuple(f_teacher.shape[-2:]))
    return F.mse_loss(f_student, f_teacher.float())


# ---- logit KD variants (paper Table 5 and Appendix A.1) -----------------------------------
# Each takes student logits with autograd and teacher logits, which are detached here so no
# gradient can reach the teacher. Logits are upcast to float32 (softmax under autocast).
# Defaults follow the paper: temperature T = 4 (Appendix A.1: T = 4, alpha = 500 for
# Swin-B -> Swin-S). The authors' released config uses T = 2 with weight 200. Both are in the
# convention of the authors' only released loss, KLDivLoss(reduction='mean'), which also
# divides by the number of classes K: `pixel_logit_kd`'s default reduction "mean". The T^2 factor
# (Hinton et al. 2015) keeps the
# gradient scale independent of T; alpha is applied by the caller.


def _soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) per row: (..., K) -> (...), summed over classes."""
    log_p_s = F.log_softmax(student_logits.float() / T, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / T, dim=-1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)


def _check_temperature(T: float) -> None:
    if not T > 0:
        raise ValueError(f"KD temperature T must be positive, got {T}")


def clip_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            T: float = 4.0) -> torch.Tensor:
    """Clip-level KD: T^2 * KL(teacher || student) of clip logits (N, K), mean over clips
    ("batchmean")."""
    _check_temperature(T)
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(f"clip KD needs student and teacher clip logits of the same shape "
                         f"(N, K); got {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_logits.shape)}")
    return _soft_kl(student_logits, teacher_logits, T).mean() * T * T


def frame_kd(student_frame_logits: torch.Tensor, teacher_frame_logits: torch.Tensor,
             T: float = 4.0) -> torch.Tensor:
    """Frame-level KD: T^2 * KL per frame of (N, T, K) frame logits, mean over clips and frames."""
    _check_temperature(T)
    if student_frame_logits.dim() != 3 or student_frame_logits.shape != teacher_frame_logits.shape:
        raise ValueError(f"frame KD needs student and teacher frame logits of the same shape "
                         f"(N, T, K) (`model.frame_logits(f)`); got "
                         f"{tuple(student_frame_logits.shape)} and "
                         f"{tuple(teacher_frame_logits.shape)}")
    return _soft_kl(student_frame_logits, teacher_frame_logits, T).mean() * T * T


def pixel_logit_kd(student_pixel_logits: torch.Tensor, teacher_pixel_logits: torch.Tensor,
                   T: float = 4.0, reduction: str = "mean") -> torch.Tensor:
    """Pixel-level logit KD (Appendix A.1): the classifier at every position of the pre-pool map.

    Student (N, T, K, h, w) logits are resized bilinearly (Phi) to the teacher's (H, W), and
    resampled linearly in time to the teacher's T' when it has other time steps (a tubelet-2
    transformer teacher: T / 2); then T^2 * KL(teacher || student) over the K classes at each
    position. Resizing logits equals classifying resized features (the released code's order):
    the classifier is linear and the interpolation weights sum to one.

    reduction: "mean" averages over every element, positions and classes (KLDivLoss
    reduction='mean', the authors' code: the convention the paper's alpha = 500, T = 4 is set
    in, 500 x 16 / 400 = 20 x KL per position for Kinetics-400); "sum" sums the KL over the
    classes and averages over the N*T*H*W positions, K times stronger.
    """
    _check_temperature(T)
    if reduction not in PIXEL_LOGIT_REDUCTIONS:
        raise ValueError(f"pixel_logit_kd: reduction must be one of "
                         f"{', '.join(PIXEL_LOGIT_REDUCTIONS)}, got {reduction!r}")
    if (student_pixel_logits.dim() != 5 or teacher_pixel_logits.dim() != 5
            or student_pixel_logits.shape[0] != teacher_pixel_logits.shape[0]
            or student_pixel_logits.shape[2] != teacher_pixel_logits.shape[2]):
        raise ValueError(f"pixel-level logit KD needs (N, T, K, h, w) student and (N, T', K, H, W) "
                         f"teacher logits with the same N and K (`model.pixel_logits(f)`); got "
                         f"{tuple(student_pixel_logits.shape)} and "
                         f"{tuple(teacher_pixel_logits.shape)}")
    size = tuple(teacher_pixel_logits.shape[-2:])
    s = resample_time(student_pixel_logits.float(), teacher_pixel_logits.shape[1])
    s = resize_features(s, size)  # (N, T', K, H, W)
    kl = _soft_kl(s.movedim(2, -1), teacher_pixel_logits.movedim(2, -1), T)  # (N, T, H, W)
    loss = kl.mean() * T * T
    return loss / student_pixel_logits.shape[2] if reduction == "mean" else loss

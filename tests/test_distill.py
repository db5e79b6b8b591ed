import pytest
import torch
import torch.nn.functional as F

from reskd.distill.distiller import KDWeights, distill_loss, freeze, set_teacher_mode
from reskd.distill.losses import feature_kd, resize_features
from reskd.models import build_model

SMALL = dict(arch="resnet", block="basic", layers=(1, 1, 1, 1), widths=(8, 8, 16, 16),
             stem="small", strides=(1, 2, 2, 2), dropout=0.0)


def test_feature_kd_is_zero_for_equal_maps_and_positive_otherwise():
    f = torch.randn(2, 3, 8, 4, 4)
    assert feature_kd(f, f).item() == 0.0
    assert feature_kd(f + 1, f).item() == pytest.approx(1.0)


def test_feature_kd_resizes_student_bilinearly_to_teacher_size():
    fs = torch.randn(2, 3, 8, 2, 2)
    ft = resize_features(fs, (4, 4))
    assert ft.shape == (2, 3, 8, 4, 4)
    assert feature_kd(fs, ft).item() == pytest.approx(0.0, abs=1e-12)
    expected = F.interpolate(fs.flatten(0, 1), size=(4, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(ft.flatten(0, 1), expected)


def test_channel_mismatch_names_both_counts():
    with pytest.raises(ValueError, match=r"8 \(student\) and 16 \(teacher\)"):
        feature_kd(torch.randn(1, 2, 8, 2, 2), torch.randn(1, 2, 16, 4, 4))


def test_gradients_reach_the_student_only_and_teacher_is_unchanged():
    torch.manual_seed(0)
    teacher = freeze(build_model(num_classes=5, **SMALL))
    student = build_model(num_classes=5, **SMALL)
    set_teacher_mode(teacher, "eval")
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    opt = torch.optim.SGD([p for p in student.parameters()], lr=0.1)
    x_t = torch.randn(2, 3, 3, 32, 32)
    x_s = F.avg_pool2d(x_t.flatten(0, 1), 2).unflatten(0, (2, 3))
    parts = distill_loss(student, teacher, x_s, x_t, torch.tensor([1, 3]))
    assert set(parts) >= {"loss", "ce", "kd", "logits"}
    parts["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    opt.step()
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=k)
    torch.testing.assert_close(parts["loss"], parts["ce"] + 100.0 * parts["feature_kd"])


def test_teacher_bn_modes():
    teacher = build_model(num_classes=5, **SMALL)
    set_teacher_mode(teacher, "train")
    bns = [m for m in teacher.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.training for m in bns) and not teacher.dropout.training
    set_teacher_mode(teacher, "eval")
    assert not any(m.training for m in bns)
    with pytest.raises(ValueError):
        set_teacher_mode(teacher, "frozen")


def test_every_kd_variant_can_be_combined_and_only_active_terms_run():
    torch.manual_seed(0)
    teacher = freeze(build_model(num_classes=5, **SMALL))
    student = build_model(num_classes=5, **SMALL)
    set_teacher_mode(teacher, "train")
    x_t = torch.randn(2, 3, 3, 32, 32)
    x_s = F.avg_pool2d(x_t.flatten(0, 1), 2).unflatten(0, (2, 3))
    labels = torch.tensor([0, 4])
    w = KDWeights(feature=0.0, clip=1.0, frame=2.0, pixel_logit=3.0, temperature=2.0)
    parts = distill_loss(student, teacher, x_s, x_t, labels, weights=w)
    assert "feature_kd" not in parts
    expected = parts["ce"] + parts["clip_kd"] + 2 * parts["frame_kd"] + 3 * parts["pixel_logit_kd"]
    torch.testing.assert_close(parts["loss"].detach(), expected)
    parts["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.fc.weight.grad.abs().sum() > 0

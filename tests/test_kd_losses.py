"""Clip-, frame- and pixel-level logit KD (paper Table 5, Appendix A.1) on tiny hand-made logits."""

import math

import pytest
import torch
import torch.nn.functional as F

from reskd.distill.losses import clip_kd, frame_kd, pixel_logit_kd, resize_features


def _logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


CASES = [  # (loss, student shape, teacher shape)
    (clip_kd, (3, 5), (3, 5)),
    (frame_kd, (2, 4, 5), (2, 4, 5)),
    (pixel_logit_kd, (2, 3, 5, 2, 2), (2, 3, 5, 4, 4)),
    (pixel_logit_kd, (2, 3, 5, 4, 4), (2, 3, 5, 4, 4)),
]


@pytest.mark.parametrize("loss,s_shape,t_shape", CASES)
def test_zero_when_the_student_matches_the_teacher(loss, s_shape, t_shape):
    s = _logits(*s_shape)
    t = resize_features(s, t_shape[-2:]) if loss is pixel_logit_kd else s.clone()
    assert loss(s, t).item() == 0.0
    # softmax is shift invariant: a constant added to every class changes nothing
    assert loss(s, t + 3.0).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss,s_shape,t_shape", CASES)
def test_positive_and_gradient_reaches_only_the_student(loss, s_shape, t_shape):
    s = _logits(*s_shape, seed=1).requires_grad_()
    t = _logits(*t_shape, seed=2).requires_grad_()  # even a teacher with grad gets none
    value = loss(s, t)
    assert value.dim() == 0 and value.item() > 0
    value.backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_clip_kd_against_a_hand_computation():
    s = torch.tensor([[0.0, 2.0]])
    t = torch.tensor([[1.0, 0.0]])
    for T in (1.0, 2.0, 4.0):
        ps = [math.exp(0 / T) / (1 + math.exp(2 / T)), math.exp(2 / T) / (1 + math.exp(2 / T))]
        pt = [math.exp(1 / T) / (math.exp(1 / T) + 1), 1 / (math.exp(1 / T) + 1)]
        kl = sum(p * math.log(p / q) for p, q in zip(pt, ps))
        assert clip_kd(s, t, T=T).item() == pytest.approx(T * T * kl, rel=1e-6)


def test_clip_kd_is_batchmean_kl_times_t_squared():
    s, t = _logits(4, 7, seed=3), _logits(4, 7, seed=4)
    T = 4.0
    ref = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean")
    assert clip_kd(s, t, T=T).item() == pytest.approx(ref.item() * T * T, rel=1e-5)


def test_higher_temperature_gives_a_smaller_unscaled_kl():
    s, t = _logits(4, 7, seed=5), _logits(4, 7, seed=6)
    unscaled = [clip_kd(s, t, T=T).item() / T**2 for T in (1.0, 2.0, 4.0, 8.0)]
    assert unscaled == sorted(unscaled, reverse=True)
    assert unscaled[-1] < unscaled[0] / 10


def test_frame_kd_averages_clip_kd_over_frames():
    s, t = _logits(2, 3, 5, seed=7), _logits(2, 3, 5, seed=8)
    per_frame = [clip_kd(s[:, i], t[:, i], T=2.0) for i in range(3)]
    assert frame_kd(s, t, T=2.0).item() == pytest.approx(sum(per_frame).item() / 3, rel=1e-6)


def test_pixel_logit_kd_averages_over_positions():
    s, t = _logits(1, 2, 5, 3, 3, seed=9), _logits(1, 2, 5, 3, 3, seed=10)
    # same size: no resizing; every position is a frame of frame_kd
    def flat(x):  # (N, T*h*w, K)
        return x.permute(0, 1, 3, 4, 2).reshape(1, -1, 5)

    expected = frame_kd(flat(s), flat(t), T=4.0).item()
    assert pixel_logit_kd(s, t, T=4.0, reduction="sum").item() == pytest.approx(expected, rel=1e-6)


def test_pixel_logit_kd_resizes_the_student_bilinearly():
    s, t = _logits(1, 2, 5, 2, 2, seed=11), _logits(1, 2, 5, 4, 4, seed=12)
    up = F.interpolate(s.flatten(0, 1), size=(4, 4), mode="bilinear", align_corners=False)
    expected = pixel_logit_kd(up.unflatten(0, (1, 2)), t).item()  # (1, 2, 5, 4, 4)
    assert pixel_logit_kd(s, t).item() == pytest.approx(expected, rel=1e-6)
    # a 1x1 student map is constant after Phi: same as comparing it with every teacher position
    one = _logits(1, 2, 5, 1, 1, seed=13)
    assert pixel_logit_kd(one, t).item() == pytest.approx(
        pixel_logit_kd(one.expand(1, 2, 5, 4, 4), t).item(), rel=1e-6)


def test_resizing_logits_equals_classifying_resized_features():
    """The released code classifies Phi(features); we resize logits: the same (fc is linear,
    bilinear weights sum to one)."""
    fc = torch.nn.Linear(8, 5)
    f_s, f_t = _logits(1, 2, 8, 2, 2, seed=14), _logits(1, 2, 8, 4, 4, seed=15)
    def classify(f):  # (N, T, K, h, w)
        return fc(f.movedim(2, -1)).movedim(-1, 2)

    with torch.no_grad():
        ours = pixel_logit_kd(classify(f_s), classify(f_t))
        released_order = pixel_logit_kd(classify(resize_features(f_s, (4, 4))), classify(f_t))
    assert ours.item() == pytest.approx(released_order.item(), rel=1e-5)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # the authors' choice, on purpose
def test_mean_reduction_is_the_authors_kldivloss_mean():
    s, t = _logits(2, 2, 5, 2, 2, seed=16), _logits(2, 2, 5, 4, 4, seed=17)
    T = 2.0
    summed = pixel_logit_kd(s, t, T=T, reduction="sum")
    released = pixel_logit_kd(s, t, T=T)
    assert released.item() == pytest.approx(summed.item() / 5, rel=1e-6)
    # what the authors compute: KLDivLoss(reduction='mean') over (positions, K), times T^2
    up = resize_features(s, (4, 4))
    def rows(x):
        return x.permute(0, 1, 3, 4, 2).reshape(-1, 5)

    ref = F.kl_div(F.log_softmax(rows(up) / T, dim=1), F.softmax(rows(t) / T, dim=1),
                   reduction="mean") * T * T
    assert released.item() == pytest.approx(ref.item(), rel=1e-5)


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        clip_kd(_logits(2, 5), _logits(2, 6))
    with pytest.raises(ValueError, match=r"\(N, T, K\)"):
        frame_kd(_logits(2, 3, 5), _logits(2, 4, 5))
    with pytest.raises(ValueError, match="same N and K"):  # T may differ (tubelets)
        pixel_logit_kd(_logits(1, 2, 5, 2, 2), _logits(1, 2, 6, 4, 4))
    with pytest.raises(ValueError, match="reduction"):
        pixel_logit_kd(_logits(1, 2, 5, 2, 2), _logits(1, 2, 5, 4, 4), reduction="paper")
    with pytest.raises(ValueError, match="temperature"):
        clip_kd(_logits(2, 5), _logits(2, 5), T=0.0)


def test_half_precision_logits_give_a_float32_loss():
    s, t = _logits(2, 5).bfloat16(), _logits(2, 5, seed=1).bfloat16()
    assert clip_kd(s, t).dtype == torch.float32

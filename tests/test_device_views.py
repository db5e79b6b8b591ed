"""Training views made on the model's device from uint8 crops: the numbers of the CPU path.

The loader returns the uint8 crop; `Views.views_of` normalises and shrinks it where the
model runs. These tests write out the float path the loader used to run per sample (to_tensor,
short-side resize, crop, resize, flip, normalise, shrink) and compare."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reskd.data import transforms as T

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def float_path(frames: np.ndarray, sizes, *, crop_size, ratio, scales, flip, rng, shrink):
    """The training views as the loader made them before they crossed as uint8."""
    x = T.to_tensor(frames)
    x = T.resize_short_side(x, round(crop_size * ratio))
    x = T.crop(x, T.multiscale_crop_box(x.shape[-2], x.shape[-1], scales, rng))
    x = T.resize(x, (crop_size, crop_size))
    if flip and rng.random() < 0.5:
        x = T.hflip(x)
    x = T.normalize(x, MEAN, STD)
    return [T.shrink(x, s, shrink) for s in sizes]


def clips(n: int, t: int, h: int, w: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("shrink", ["bilinear", "antialias"])
def test_demo_recipe_batched_on_the_device_equals_the_per_clip_float_path_exactly(shrink):
    # the demo: 64 px frames, crop 64, ratio 1, one scale, no flip: nothing is resized before
    # the shrink, so the uint8 crop is the frames and every number must match bit for bit
    spec = T.Views(teacher_size=64, student_size=32, crop_size=64, shrink=shrink,
                   short_side_ratio=1.0, scales=(1.0,), flip=False)
    frames = clips(4, 2, 64, 64)
    crops = torch.stack([spec.train_crop(f, np.random.default_rng(i))
                         for i, f in enumerate(frames)])  # (N, T, C, 64, 64) uint8
    assert crops.dtype == torch.uint8
    views = spec.views_of(crops)
    for i, f in enumerate(frames):
        teacher, student = float_path(f, (64, 32), crop_size=64, ratio=1.0, scales=(1.0,),
                                      flip=False, rng=np.random.default_rng(i), shrink=shrink)
        assert torch.equal(views["teacher"][i], teacher)
        assert torch.equal(views["student"][i], student)


def test_resized_crops_differ_from_the_float_path_by_at_most_half_a_grey_level():
    # 256/224, 4 scales, flip
    spec = T.Views(teacher_size=64, student_size=32, crop_size=64, shrink="bilinear")
    frames = clips(6, 2, 90, 120)
    for i, f in enumerate(frames):
        views = spec.views_of(spec.train_crop(f, np.random.default_rng(i)))
        ref = float_path(f, (64, 32), crop_size=64, ratio=spec.short_side_ratio,
                         scales=spec.scales, flip=True, rng=np.random.default_rng(i),
                         shrink="bilinear")
        bound = 0.5 / (255 * min(STD)) + 1e-5  # rounding to uint8, in normalised units
        assert (views["teacher"] - ref[0]).abs().max() <= bound
        assert (views["student"] - ref[1]).abs().max() <= bound


def test_the_training_loader_returns_uint8_crops():
    from reskd.data.datasets import DECODED, VideoDataset
    from reskd.data.formats import Entry
    from reskd.data.sampling import Sampling

    DECODED["/nonexistent/a.mp4"] = clips(1, 4, 64, 64)[0]
    try:
        ds = VideoDataset([Entry("a.mp4", (3,))], "/nonexistent", sampling=Sampling(2),
                          views=T.Views(teacher_size=64, student_size=32, crop_size=64), train=True,
                          num_classes=5, cache_decoded=True)
        item = ds[0]
    finally:
        DECODED.pop("/nonexistent/a.mp4")
    assert item["clip"].dtype == torch.uint8 and item["clip"].shape == (2, 3, 64, 64)
    assert "student" not in item and "teacher" not in item


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_views_on_cuda_match_the_cpu():
    spec = T.Views(teacher_size=64, student_size=32, crop_size=64)
    crops = torch.stack([spec.train_crop(f, np.random.default_rng(0)) for f in clips(2, 2, 80, 80)])
    cpu, gpu = spec.views_of(crops), spec.views_of(crops.cuda())
    for key in ("teacher", "student"):
        torch.testing.assert_close(gpu[key].cpu(), cpu[key], atol=1e-4, rtol=0)

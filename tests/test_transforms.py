import numpy as np
import torch
import torch.nn.functional as F

from reskd.data import transforms as T


def frames(t=4, h=120, w=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_teacher_and_student_views_share_crop_and_flip():
    x = frames()
    for seed in range(20):
        teacher, student = T.train_views(x, (64, 32), short_side_ratio=256 / 224,
                                         scales=(1, .875, .75, .66), flip=True,
                                         mean=(0.5,) * 3, std=(0.25,) * 3,
                                         rng=np.random.default_rng(seed))
        assert teacher.shape == (4, 3, 64, 64) and student.shape == (4, 3, 32, 32)
        # the student view is exactly the teacher view downsampled (bilinear, no antialias);
        # for a 2x factor that is 2x2 average pooling
        torch.testing.assert_close(student, F.avg_pool2d(teacher, 2), atol=1e-4, rtol=0)


def test_flip_happens_and_is_shared():
    x = frames(t=1, h=64, w=64)
    flipped = 0
    for seed in range(20):
        t, s = T.train_views(x, (64, 32), short_side_ratio=1.0, scales=(1.0,), flip=True,
                             mean=(0.0,) * 3, std=(1 / 255,) * 3, rng=np.random.default_rng(seed))
        same = torch.equal(t[0].round(), torch.from_numpy(x[0]).permute(2, 0, 1).float())
        mirrored = torch.equal(t[0].round(),
                               torch.from_numpy(x[0, :, ::-1].copy()).permute(2, 0, 1).float())
        assert same != mirrored
        flipped += mirrored
    assert 0 < flipped < 20


def test_no_flip_when_disabled_and_full_crop_is_identity():
    x = frames(t=2, h=32, w=32)
    (t,) = T.train_views(x, (32,), short_side_ratio=1.0, scales=(1.0,), flip=False,
                         mean=(0.0,) * 3, std=(1 / 255,) * 3, rng=np.random.default_rng(0))
    torch.testing.assert_close(t, torch.from_numpy(x).permute(0, 3, 1, 2).float())


def test_test_views_resize_short_side_then_centre_crop():
    x = frames(t=3, h=120, w=160)
    v = T.test_views(x, 112, short_side_ratio=128 / 112, crops=1, mean=(0,) * 3, std=(1,) * 3)
    assert v.shape == (1, 3, 3, 112, 112)
    v3 = T.test_views(x, 112, short_side_ratio=128 / 112, crops=3, mean=(0,) * 3, std=(1,) * 3)
    assert v3.shape == (3, 3, 3, 112, 112)
    torch.testing.assert_close(v3[1], v[0])  # the middle of three crops is the centre crop


def test_resize_short_side_keeps_aspect():
    x = torch.zeros(1, 3, 171, 128)
    assert T.resize_short_side(x, 64).shape[-2:] == (86, 64)


def test_normalize():
    x = torch.full((1, 3, 2, 2), 255.0)
    y = T.normalize(x, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    torch.testing.assert_close(y, torch.ones_like(y))

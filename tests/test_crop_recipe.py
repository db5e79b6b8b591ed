"""The paper's crop recipes: mmaction2's multi-scale crop (13 fixed offsets, its crop sizes),
torchvision's random resized crop, and a test short side of its own, recorded in checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_still_videos
from reskd.checkpoint import load_checkpoint
from reskd.config import ConfigError, load_config
from reskd.data import transforms as T
from reskd.data.decoders import shrink_to_short_side
from reskd.predict import video_views
from reskd.runs import make_dataset, run_train, with_checkpoint_views

PAPER_SCALES = (1.0, 0.875, 0.75, 0.66)


def boxes(height, width, scales, positions, draws=2000):
    rng = np.random.default_rng(0)
    return [T.multiscale_crop_box(height, width, scales, rng, positions) for _ in range(draws)]


def test_fixed13_reaches_the_13_offsets_of_mmaction2_and_only_those():
    # 12 x 16 frame, one 6 x 6 crop: steps (16 - 6) // 4 = 2 across and (12 - 6) // 4 = 1 down;
    # the rounded-down step keeps the right-hand crops at left 8, never at the edge (10)
    expected = [(0, 0), (0, 8), (4, 0), (4, 8), (2, 4),  # corners and centre, as (top, left)
                (2, 0), (2, 8), (4, 4), (0, 4), (1, 2), (1, 6), (3, 2), (3, 6)]
    assert T.fixed_crop_offsets(12, 16, 6, 6) == expected
    drawn = boxes(12, 16, (0.5,), "fixed13")
    assert {b[2:] for b in drawn} == {(6, 6)}
    assert {b[:2] for b in drawn} == set(expected)
    counts = np.bincount([expected.index(b[:2]) for b in drawn], minlength=13)
    assert counts.min() > 2000 / 13 * 0.7  # each position about equally often


def test_uniform_reaches_every_offset():
    drawn = boxes(12, 16, (0.5,), "uniform")
    assert {b[:2] for b in drawn} == {(t, left) for t in range(7) for left in range(11)}


def test_uniform_draws_the_rng_as_before_fixed13_was_the_default():
    # one draw for the size, then top and left: seeded runs with "uniform" keep their crops
    for seed in range(20):
        rng = np.random.default_rng(seed)
        pairs = T.multiscale_crop_sizes(256, 341, PAPER_SCALES)
        ch, cw = pairs[int(rng.integers(len(pairs)))]
        old = (int(rng.integers(0, 256 - ch + 1)), int(rng.integers(0, 341 - cw + 1)), ch, cw)
        assert T.multiscale_crop_box(256, 341, PAPER_SCALES, np.random.default_rng(seed),
                                     "uniform") == old


def test_scale_pairs_are_mmaction2s():
    # short side 256: sides 256, 224, 192, 168; (height, width) at most one scale step apart,
    # in mmaction2's order (height's scale outer, width's inner)
    assert T.multiscale_crop_sizes(256, 341, PAPER_SCALES) == [
        (256, 256), (256, 224), (224, 256), (224, 224), (224, 192), (192, 224), (192, 192),
        (192, 168), (168, 192), (168, 168)]
    # the student-size recipe (short side 128): 128, 112, 96, 84 (int() rounds down)
    sides = {h for h, _ in T.multiscale_crop_sizes(128, 170, PAPER_SCALES)}
    assert sorted(sides) == [84, 96, 112, 128]
    # a side within 3 px of the short side is snapped to it (mmaction2's input_size, which the
    # authors set to the short side): at 16 px, 0.875 gives 14 -> 16
    assert set(T.multiscale_crop_sizes(16, 20, (1.0, 0.875))) == {(16, 16)}
    drawn = {b[2:] for b in boxes(256, 341, PAPER_SCALES, "fixed13")}
    assert drawn == set(T.multiscale_crop_sizes(256, 341, PAPER_SCALES))


@pytest.mark.parametrize("shape", [(256, 341), (341, 256), (40, 40)])
def test_random_resized_boxes_lie_inside_with_area_and_aspect_in_range(shape):
    height, width = shape
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(500):
        top, left, h, w = T.random_resized_crop_box(height, width, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width
        # w and h are rounded from the drawn area and aspect: half a pixel either way
        assert (w + 0.5) * (h + 0.5) >= 0.08 * height * width
        assert (w + 0.5) / (h - 0.5) >= 3 / 4 and (w - 0.5) / (h + 0.5) <= 4 / 3
        areas.append(w * h / (height * width))
    assert min(areas) < 0.15 and max(areas) > 0.85  # the whole range is drawn


def test_random_resized_falls_back_to_the_centre_as_torchvision():
    rng = np.random.default_rng(0)
    # a whole-frame area at aspect 2..3 never fits a square: 10 tries, then the frame cut to
    # aspect 2, centred (torchvision's get_params)
    assert T.random_resized_crop_box(32, 32, (1.0, 1.0), (2.0, 3.0), rng) == (8, 0, 16, 32)
    assert T.random_resized_crop_box(32, 32, (1.0, 1.0), (1.0, 1.0), rng) == (0, 0, 32, 32)


def test_random_resized_training_crop_is_resized_to_the_crop_size():
    frames = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    spec = T.Views(teacher_size=32, student_size=16, crop="random_resized", crop_area=(0.2, 0.5))
    crops = [spec.train_crop(frames, np.random.default_rng(seed)) for seed in range(4)]
    assert all(c.shape == (2, 3, 32, 32) and c.dtype == torch.uint8 for c in crops)
    assert not torch.equal(crops[0], crops[1])
    with pytest.raises(ValueError, match="multiscale, random_resized"):
        T.train_crop(frames, 32, short_side_ratio=1.0, scales=(1.0,), flip=False,
                     rng=np.random.default_rng(0), crop_kind="resized")
    with pytest.raises(ValueError, match="fixed13, uniform"):
        T.multiscale_crop_box(48, 64, (1.0,), np.random.default_rng(0), "fixed5")


@pytest.mark.parametrize("override, named", [
    ("data.crop=random_crop", "data.crop: expected one of multiscale, random_resized"),
    ("data.crop_positions=fixed5", "data.crop_positions: expected one of fixed13, uniform"),
    ("data.crop_area=[0.5,0.2]", "data.crop_area"),
    ("data.crop_area=[0.0,1.0]", "data.crop_area"),
    ("data.crop_aspect=[1.5,0.5]", "data.crop_aspect"),
    ("data.test_short_side_ratio=0.5", "data.test_short_side_ratio"),
])
def test_bad_crop_keys_are_errors_naming_the_key(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, [override])


def test_the_test_short_side_is_its_own():
    # crop 32: training from short side 40 (ratio 1.25), testing from short side 32 (1.0)
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    spec = T.Views(student_size=32, short_side_ratio=1.25, test_short_side_ratio=1.0,
                      mean=(0.0,) * 3, std=(1 / 255,) * 3)
    assert spec.short_side(train=True) == 40 and spec.short_side(train=False) == 32
    # short side 32 is the frames' own: the test view is the frames' centre 32 x 32, exactly
    view = spec.test(frames, crops=1)[0]  # (T, C, 32, 32)
    assert torch.equal(view, T.to_tensor(frames[:, :, 8:40]))
    same = T.Views(student_size=32, short_side_ratio=1.25, mean=(0.0,) * 3, std=(1 / 255,) * 3)
    assert same.test_ratio == 1.25 and not torch.equal(same.test(frames, crops=1)[0], view)


def test_the_recipe_records_the_test_short_side_and_old_recipes_test_at_the_train_one():
    record = T.Views(teacher_size=224, student_size=112, short_side_ratio=256 / 224,
                        test_short_side_ratio=1.0).record()
    assert record["test_short_side_ratio"] == 1.0 and record["short_side_ratio"] == 256 / 224
    ckpt = {"size": 112, "views": record}
    assert T.checkpoint_views(ckpt).short_side(train=False) == 224
    old = {k: v for k, v in record.items() if k != "test_short_side_ratio"}
    assert T.checkpoint_views({"size": 112, "views": old}).short_side(train=False) == 256
    assert T.Views(student_size=112).record()["test_short_side_ratio"] == 256 / 224


def test_a_checkpoint_tests_at_its_recorded_short_side(tmp_path):
    root = write_still_videos(tmp_path / "data", 48)
    quiet = lambda *_: None  # noqa: E731
    cfg = load_config(None, [
        f"data.root={root}", "data.train_list=list.txt", "data.classes=classes.txt",
        "data.size=32", "data.short_side_ratio=1.25", "data.test_short_side_ratio=1.0",
        "data.crop=random_resized", "data.batch_size=2", "data.workers=0",
        "data.num_segments=2", "model.arch=resnet", "model.widths=[8,8,16,16]",
        "model.stem=small", "optim.epochs=1", "runtime.progress=false",
        "runtime.precision=fp32", f"runtime.out={tmp_path / 'run'}"])
    ckpt = load_checkpoint(run_train(cfg, distill=False, log=quiet)["model"])
    assert ckpt["views"]["test_short_side_ratio"] == 1.0
    assert ckpt["views"]["short_side_ratio"] == 1.25

    notes = []
    bare = load_config(None, [f"data.root={root}", "data.val_list=list.txt",
                              "data.num_segments=2"])
    test_cfg = with_checkpoint_views(bare, ckpt, log=notes.append)
    assert test_cfg.data.test_short_side_ratio == 1.0
    assert "data.test_short_side_ratio=0.0" in notes[0]
    test_set = make_dataset(test_cfg, "val_list", train=False, sizes=(32,), num_classes=2,
                            log=quiet)
    assert test_set.short_side == 32  # decoded straight to the test short side
    tested = test_set[0]["views"][0]  # (T, C, 32, 32): the 48 px picture shrunk to 32
    assert torch.equal(tested, video_views(root / "v0.mp4", ckpt)[0])
    frames = video_frames(root / "v0.mp4")[:2]  # every frame is the same picture
    # the decoder shrinks frames to the test short side in uint8, then the views are cut
    direct = T.test_views(shrink_to_short_side(frames, 32), 32, short_side_ratio=1.0, crops=1,
                          mean=cfg.data.mean, std=cfg.data.std)[0]
    assert torch.equal(tested, direct)
    at_train_side = T.test_views(shrink_to_short_side(frames, 40), 32, short_side_ratio=1.25,
                                 crops=1, mean=cfg.data.mean, std=cfg.data.std)[0]
    assert (tested - at_train_side).abs().max() > 0.5


def video_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_the_default_crop_is_uniform_multiscale_and_the_paper_configs_set_fixed13():
    d = load_config(None).data
    assert (d.crop, d.crop_positions, d.test_short_side_ratio) == ("multiscale", "uniform", 0.0)

"""Tests for reskd.data.textures: tiny datasets written to tmp folders, decoded back with PyAV."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("skimage")
textures = pytest.importorskip("reskd.data.textures")
from reskd.data.decoders import decode_video  # noqa: E402

FRAMES, SIZE = 4, 48  # not the defaults, so nothing may be hard-coded to 8 x 64
NUM_TRAIN, NUM_VAL = 16, 8
LINE = re.compile(r"^videos/(train|val)/\d{5}\.mp4 \d{1,2}$")


def decode(path: Path) -> np.ndarray:
    frames, _ = decode_video(path, lambda total: np.arange(total))
    return frames  # (T, H, W, 3) uint8


def read_list(path: Path) -> list[tuple[str, int]]:
    return [(p, int(label))
            for p, label in (line.split(" ") for line in path.read_text().splitlines())]


def make(out: Path, **kw) -> dict:
    args = dict(seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL, frames=FRAMES, size=SIZE,
                workers=2) | kw
    return textures.make_texture_dataset(out, **args)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return make(tmp_path_factory.mktemp("textures") / "a" / "b")  # parents do not exist yet


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return textures.load_photos()


def test_returned_metadata_and_layout(tiny):
    root = Path(tiny["root"])
    assert (tiny["train_list"] == str(root / "train.txt")
            and tiny["val_list"] == str(root / "val.txt"))
    assert (tiny["train"], tiny["val"], tiny["num_train"], tiny["num_val"]) == (16, 8, 16, 8)
    assert tiny["reused"] is False and tiny["seconds"] > 0
    assert tiny["classes"] == list(textures.CLASSES) and len(set(textures.CLASSES)) == 16
    assert (root / "classes.txt").read_text().splitlines() == list(textures.CLASSES)
    meta = json.loads((root / "textures.json").read_text())
    assert meta["version"] == textures.GENERATOR_VERSION
    assert meta["params"] == {
        "seed": 0, "num_train": NUM_TRAIN, "num_val": NUM_VAL, "frames": FRAMES, "size": SIZE,
    }
    assert not list(root.parent.glob(".b.*")), "temp folder left behind"


@pytest.mark.parametrize("split,n", [("train", NUM_TRAIN), ("val", NUM_VAL)])
def test_lists_parse_point_at_files_and_are_balanced(tiny, split, n):
    root = Path(tiny["root"])
    text = (root / f"{split}.txt").read_text()
    assert text.endswith("\n") and all(LINE.match(line) for line in text.splitlines())
    entries = read_list(root / f"{split}.txt")
    assert [p for p, _ in entries] == [f"videos/{split}/{i:05d}.mp4" for i in range(n)]
    labels = [label for _, label in entries]
    assert all(0 <= label < len(textures.CLASSES) for label in labels)
    counts = np.bincount(labels, minlength=len(textures.CLASSES))
    assert counts.max() - counts.min() <= 1, "classes must be balanced"
    assert labels == textures.clip_plan(0, split, n).tolist()
    assert (sorted(p.name for p in (root / "videos" / split).iterdir())
            == [Path(p).name for p, _ in entries])


def test_every_video_decodes_to_exact_shape(tiny):
    root = Path(tiny["root"])
    for split in ("train", "val"):
        for rel, _ in read_list(root / f"{split}.txt"):
            frames = decode(root / rel)
            assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8
            assert not np.array_equal(frames[0], frames[-1]), "the window should pan"
            # Gray: the channels agree up to the rounding of the YUV -> RGB conversion.
            spread = frames.astype(np.int16).max(axis=3) - frames.astype(np.int16).min(axis=3)
            assert spread.max() <= 3


def test_same_seed_gives_identical_bytes_independent_of_workers(tiny, tmp_path):
    again = make(tmp_path / "again", workers=0)  # in-process, unlike the fixture's pool of 2
    a, b = Path(tiny["root"]), Path(again["root"])
    for name in ("train.txt", "val.txt", "classes.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    for split in ("train", "val"):
        for rel, _ in read_list(a / f"{split}.txt"):
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_different_seed_differs(tiny, tmp_path):
    other = Path(make(tmp_path / "other", seed=1, num_train=2, num_val=1, workers=0)["root"])
    first = "videos/train/00000.mp4"
    assert (Path(tiny["root"]) / first).read_bytes() != (other / first).read_bytes()


def test_photos_load_offline_equalised(photos):
    assert len(photos) == len(textures.CLASSES) == len(textures.PHOTOS)
    for photo in photos:
        assert photo.ndim == 2 and photo.dtype == np.float32 and 170 <= min(photo.shape) <= 512
        assert 0.0 < photo.min() and photo.max() < 1.0
        assert abs(float(photo.mean()) - 0.5) < 0.01 and abs(float(photo.std()) - 0.289) < 0.01


def test_train_and_val_regions_are_disjoint_and_hold_every_window(photos):
    for photo in photos:
        h, w = photo.shape
        boxes = {split: textures.split_region(photo.shape, split) for split in ("train", "val")}
        for x0, y0, x1, y1 in boxes.values():
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = boxes["train"], boxes["val"]
        overlap_x = min(ax1, bx1) - max(ax0, bx0)
        overlap_y = min(ay1, by1) - max(ay0, by0)
        assert overlap_x <= 0 or overlap_y <= 0, f"train and val overlap in a {photo.shape} photo"
        room = (bx1 - bx0, by1 - by0)  # both splits fit their clips into the val region's size
        for split, (x0, y0, x1, y1) in boxes.items():
            region = photo[y0:y1, x0:x1]
            for i in range(20):
                rng = np.random.default_rng([0, textures.SPLIT_IDS[split], i])
                wins = textures.window_boxes(rng, region, frames=8, room=room)  # (T, 4) region px
                assert wins.shape == (8, 4)
                assert (wins[:, :2] >= 0).all() and (wins[:, 2] <= x1 - x0).all()
                assert (wins[:, 3] <= y1 - y0).all() and (wins[:, 2:] > wins[:, :2]).all()
                span = wins[:, 2:].max(axis=0) - wins[:, :2].min(axis=0)  # (2,) x, y
                assert (span <= np.array(room) + 1e-6).all()


def test_clips_are_rendered_from_their_split_region_only(photos):
    """Workers render from crops equal to the split boxes, so the other split cannot leak in."""
    regions = textures._regions(photos)
    for split in ("train", "val"):
        for photo, region in zip(photos, regions[split]):
            x0, y0, x1, y1 = textures.split_region(photo.shape, split)
            np.testing.assert_array_equal(region, photo[y0:y1, x0:x1])
    region = regions["val"][0]
    clip = textures.render_clip(np.random.default_rng([0, 1, 3]), region, frames=3, size=32)
    assert clip.shape == (3, 32, 32, 3) and clip.dtype == np.uint8
    again = textures.render_clip(np.random.default_rng([0, 1, 3]), region, frames=3, size=32)
    np.testing.assert_array_equal(clip, again)


# Reuse, replacement, interruption, foreign folders and argument checks are synth's shared
# writer (synth.write_video_dataset): tests/test_synth.py runs those tests for both generators.


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="split must be one of"):
        textures.split_region((100, 200), "test")
    with pytest.raises(ValueError, match="split must be one of"):
        textures.clip_plan(0, "test", 4)

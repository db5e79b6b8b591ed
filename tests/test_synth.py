"""Tests for reskd.data.synth: tiny datasets written to tmp folders, decoded back with PyAV."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
synth = pytest.importorskip("reskd.data.synth")
textures = pytest.importorskip("reskd.data.textures")  # shares synth's writer; tested below

FRAMES, SIZE = 6, 48  # not the defaults, so nothing may be hard-coded to 8 x 64
LINE = re.compile(r"^videos/(train|val)/\d{5}\.mp4 \d$")


def decode(path: Path) -> tuple[np.ndarray, int]:
    """All frames of a video as (T, H, W, 3) uint8, and the frame count the stream declares."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, stream.frames


def read_list(path: Path) -> list[tuple[str, int]]:
    return [(p, int(label))
            for p, label in (line.split(" ") for line in path.read_text().splitlines())]


def make(out: Path, **kw) -> dict:
    args = dict(seed=0, num_train=40, num_val=10, frames=FRAMES, size=SIZE, workers=2) | kw
    return synth.make_synth_dataset(out, **args)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return make(tmp_path_factory.mktemp("synth") / "a" / "b")  # parents do not exist yet


def test_returned_metadata_and_layout(tiny):
    root = Path(tiny["root"])
    assert (tiny["train_list"] == str(root / "train.txt")
            and tiny["val_list"] == str(root / "val.txt"))
    assert (tiny["num_train"], tiny["num_val"], tiny["reused"]) == (40, 10, False)
    assert tiny["classes"] == list(synth.CLASSES)
    assert (root / "classes.txt").read_text().splitlines() == list(synth.CLASSES)
    meta = json.loads((root / "synth.json").read_text())
    assert meta["params"] == {"seed": 0, "num_train": 40, "num_val": 10, "frames": FRAMES,
                              "size": SIZE}
    assert not list(root.parent.glob(".b.*")), "temp folder left behind"


@pytest.mark.parametrize("split,n", [("train", 40), ("val", 10)])
def test_lists_parse_and_point_at_files(tiny, split, n):
    root = Path(tiny["root"])
    text = (root / f"{split}.txt").read_text()
    assert text.endswith("\n") and all(LINE.match(line) for line in text.splitlines())
    entries = read_list(root / f"{split}.txt")
    assert [p for p, _ in entries] == [f"videos/{split}/{i:05d}.mp4" for i in range(n)]
    assert all(0 <= label < 10 for _, label in entries)
    assert (sorted(p.name for p in (root / "videos" / split).iterdir())
            == [Path(p).name for p, _ in entries])


def test_every_video_decodes_to_exact_shape(tiny):
    root = Path(tiny["root"])
    for split in ("train", "val"):
        for rel, _ in read_list(root / f"{split}.txt"):
            frames, declared = decode(root / rel)
            assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8
            assert declared == FRAMES
            assert not np.array_equal(frames[0], frames[-1]), "digit and background should move"


def test_all_classes_balanced_in_200_clips(tmp_path):
    info = make(tmp_path / "d", num_train=200, num_val=10, frames=1, size=16, workers=0)
    labels = [label for _, label in read_list(Path(info["train_list"]))]
    assert np.bincount(labels, minlength=10).tolist() == [20] * 10


def test_same_seed_is_identical_and_independent_of_workers(tiny, tmp_path):
    again = make(tmp_path / "again", workers=0)  # in-process, unlike the fixture's pool of 2
    a, b = Path(tiny["root"]), Path(again["root"])
    for name in ("train.txt", "val.txt", "classes.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    for split in ("train", "val"):
        for rel, _ in read_list(a / f"{split}.txt"):
            np.testing.assert_array_equal(decode(a / rel)[0], decode(b / rel)[0])


def test_different_seed_differs(tiny, tmp_path):
    other = Path(make(tmp_path / "other", seed=1, num_train=10, num_val=2, workers=0)["root"])
    a = Path(tiny["root"])
    assert ((a / "train.txt").read_text().splitlines()[:10]
            != (other / "train.txt").read_text().splitlines())
    first = "videos/train/00000.mp4"
    assert not np.array_equal(decode(a / first)[0], decode(other / first)[0])


def test_train_and_val_digit_images_are_disjoint(tiny):
    images, labels = synth.load_mnist()
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    pools = synth.digit_split(0, labels)
    assert len(pools["train"]) == 4000 and len(pools["val"]) == 1000
    assert not set(pools["train"]) & set(pools["val"])
    root = Path(tiny["root"])
    used = {}
    for split, n in (("train", 40), ("val", 10)):
        plan_labels, rows = synth.clip_plan(0, split, n, labels)
        assert set(rows) <= set(pools[split])
        assert (labels[rows] == plan_labels).all(), "a clip's label must be its digit's class"
        assert [label for _, label in read_list(root / f"{split}.txt")] == plan_labels.tolist()
        used[split] = {images[r].tobytes() for r in rows}
    assert not used["train"] & used["val"], "same digit pixels in train and val"


def test_train_and_val_photos_are_disjoint():
    assert not set(synth.PHOTOS["train"]) & set(synth.PHOTOS["val"])
    for split in ("train", "val"):
        photos = synth.load_photos(split)  # must work offline: bundled in the skimage wheel
        assert len(photos) == len(synth.PHOTOS[split])
        assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in photos)


# ----------------------------------------------------------------------------- shared writer
# The folder machinery lives once, in synth.write_video_dataset, and both generators call it, so
# its tests run through each of them. kind -> (module, entry point, clip counts of a small run).

WRITERS = {
    "synth": (synth, synth.make_synth_dataset, {"num_train": 4, "num_val": 2}),
    "textures": (textures, textures.make_texture_dataset, {"num_train": 2, "num_val": 1}),
}


def make_small(kind: str, out: Path, **kw) -> dict:
    """A run of generator `kind` with 2 frames of 16 px, in this process."""
    _, make_dataset, counts = WRITERS[kind]
    return make_dataset(out, **(dict(seed=0, frames=2, size=16, workers=0) | counts | kw))


@pytest.mark.parametrize("kind", WRITERS)
def test_complete_dataset_is_reused_and_other_params_replace_it(tmp_path, kind):
    out = tmp_path / "d"
    make_small(kind, out)
    stamp = (out / "videos/train/00000.mp4").stat().st_mtime_ns
    again = make_small(kind, out)
    assert again["reused"] is True and (out / "videos/train/00000.mp4").stat().st_mtime_ns == stamp
    changed = make_small(kind, out, num_train=3)
    assert changed["reused"] is False and len((out / "train.txt").read_text().splitlines()) == 3
    assert len(list((out / "videos/train").iterdir())) == 3


@pytest.mark.parametrize("kind", WRITERS)
def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, kind):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(WRITERS[kind][0], "write_mp4", boom)
    with pytest.raises(KeyboardInterrupt):
        make_small(kind, tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", WRITERS)
def test_refuses_a_folder_that_is_not_a_dataset_of_its_kind(tmp_path, kind):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=f"not a reskd {kind} dataset"):
        make_small(kind, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("kind", WRITERS)
@pytest.mark.parametrize(
    "kw,err,msg",
    [
        ({"size": 33}, ValueError, "size must be even"),
        ({"size": 8}, ValueError, "size must be >= 16"),
        ({"frames": 0}, ValueError, "frames must be >= 1"),
        ({"num_train": 0}, ValueError, "num_train must be >= 1"),
        ({"num_val": 0}, ValueError, "num_val must be >= 1"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"workers": -1}, ValueError, "workers must be >= 0"),
        ({"num_train": 2.0}, TypeError, "num_train must be an int"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kind, kw, err, msg):
    with pytest.raises(err, match=msg):
        make_small(kind, tmp_path / "d", **kw)
    assert not (tmp_path / "d").exists()

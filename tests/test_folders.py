"""`reskd data convert folders`: a folder per class (UCF-101's layout, torchvision's and Hugging
Face's video folders) -> reskd lists, on tiny real MP4 files written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import write_video
from reskd.data.check import run_check
from reskd.data.converters import convert, parse_folders
from reskd.data.formats import Entry, read_classes, read_list


def clip(path: Path, seed: int) -> Path:
    """A 4-frame 16 x 16 lossless video."""
    rng = np.random.default_rng(seed)
    return write_video(path, rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> Path:
    """ROOT/<class>/<video>: jump 5 videos (one in a sub-folder), run 3, swim 1; a text file in
    a class folder and one beside them."""
    root = tmp_path_factory.mktemp("flat")
    seed = 0
    for name, n in (("swim", 1), ("jump", 5), ("run", 3)):
        for i in range(n):
            sub = "g1/" if (name, i) == ("jump", 4) else ""
            clip(root / name / f"{sub}v_{name}_{i}.mp4", seed)
            seed += 1
    (root / "run" / "notes.txt").write_text("not a video\n")
    (root / "README.md").write_text("about these videos\n")
    (root / ".cache").mkdir()  # hidden: neither a class nor counted
    return root


def test_a_folder_per_class_becomes_a_seeded_stratified_split(flat):
    conv = parse_folders(flat, val_fraction=0.4, seed=0)
    assert conv.classes == ["jump", "run", "swim"]  # folder names, sorted
    train, val = conv.splits["train"], conv.splits["val"]
    by_label = {k: sorted(e.path for e in train + val if e.labels == (k,)) for k in range(3)}
    assert by_label[0] == ["jump/g1/v_jump_4.mp4"] + [f"jump/v_jump_{i}.mp4" for i in range(4)]
    assert by_label[1] == [f"run/v_run_{i}.mp4" for i in range(3)]
    assert by_label[2] == ["swim/v_swim_0.mp4"]
    # round(n * 0.4) of each class, at least one, never the last: 2 of 5, 1 of 3, 0 of 1
    assert [sum(e.labels == (k,) for e in val) for k in range(3)] == [2, 1, 0]
    assert not {e.path for e in train} & {e.path for e in val}
    assert conv.skipped == {"not a video file, by its extension": 1,
                            "file outside a class folder": 1}
    assert conv.notes == ("1 class(es) with one video, kept in train only: swim",)
    again = parse_folders(flat, val_fraction=0.4, seed=0)
    assert again.splits == conv.splits  # the seed fixes the draw
    draws = {tuple(e.path for e in parse_folders(flat, val_fraction=0.4, seed=s).splits["val"])
             for s in range(6)}
    assert len(draws) > 1  # and another seed draws another split


def test_the_lists_are_reskds_and_every_video_decodes(flat, tmp_path, capsys):
    from reskd.cli import main

    out = tmp_path / "lists"
    assert main(["data", "convert", "folders", "--root", str(flat), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[:7] == [
        f"folders -> {out} (video lists)",
        "  train.txt           7 videos",  # 4 jump, 2 run, 1 swim
        "  val.txt             2 videos",  # max(1, round(n * 0.2)): 1 jump, 1 run
        "  classes.txt         3 classes",
        "  skipped 1 (file outside a class folder)",
        "  skipped 1 (not a video file, by its extension)",
        "  note: 1 class(es) with one video, kept in train only: swim"]
    assert f"next: reskd data check {out / 'train.txt'} --root {flat}" in printed
    assert f"reskd config new --data-root {flat} --lists {out} --classes 3" in printed
    assert read_classes(out / "classes.txt") == ["jump", "run", "swim"]
    entries = read_list(out / "train.txt", num_classes=3) + read_list(out / "val.txt",
                                                                      num_classes=3)
    assert len(entries) == 9 and all((flat / e.path).is_file() for e in entries)
    for name in ("train.txt", "val.txt"):  # paths relative to the data root, as reskd reads them
        problems, text = run_check(out / name, root=flat, workers=0)
        assert problems == [], text
    # written into the data root itself, the next command needs no --lists
    assert main(["data", "convert", "folders", "--root", str(flat), "--out", str(flat)]) == 0
    assert f"--data-root {flat} --classes 3 --out reskd.yaml" in capsys.readouterr().out
    for name in ("train.txt", "val.txt", "classes.txt"):
        (flat / name).unlink()


def test_train_and_val_folders_are_kept_as_they_are(tmp_path):
    root = tmp_path / "hf"
    clip(root / "train" / "b" / "1.avi", 0)
    clip(root / "train" / "a" / "2.MP4", 1)  # extensions match whatever their case
    clip(root / "validation" / "a" / "3.mp4", 2)
    clip(root / "test" / "b" / "4.mp4", 3)
    (root / "extras").mkdir()
    conv = parse_folders(root, val_fraction=0.5)
    assert conv.classes == ["a", "b"]
    assert conv.splits == {"train": [Entry("train/a/2.MP4", (0,)), Entry("train/b/1.avi", (1,))],
                           "val": [Entry("validation/a/3.mp4", (0,))],
                           "test": [Entry("test/b/4.mp4", (1,))]}
    assert conv.skipped == {"folder extras/ beside train/ (not val/, validation/ or test/)": 1}
    assert conv.notes == ()
    clip(root / "test" / "c" / "5.mp4", 4)  # a class no training video shows is reported
    assert parse_folders(root).notes == ("1 class(es) with no training video (only in val/ or "
                                         "test/): c",)
    # only train/: its videos are split as a flat root's
    only = tmp_path / "only"
    for i in range(3):
        clip(only / "train" / "a" / f"{i}.mp4", i)
    split = parse_folders(only).splits
    assert len(split["train"]) == 2 and [e.path[:8] for e in split["val"]] == ["train/a/"]


def test_val_fraction_zero_writes_no_val_list(flat, tmp_path):
    report = convert("folders", tmp_path, root=flat, val_fraction=0.0)
    assert report.counts == {"train": 9} and not (tmp_path / "val.txt").exists()
    assert report.notes == ()


def test_unusable_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data root not found: .*nowhere"):
        parse_folders(tmp_path / "nowhere")
    root = tmp_path / "r"
    clip(root / "a" / "1.mp4", 0)
    (root / "b").mkdir()
    (root / "b" / "list.txt").write_text("x\n")
    with pytest.raises(ValueError, match=r"class folder .*b holds no video file \(1 other file"):
        parse_folders(root)
    with pytest.raises(ValueError, match="add its videos, remove the folder, or pass the "
                                         "extensions of its videos with --extensions"):
        parse_folders(root)
    with pytest.raises(ValueError, match="holds no class folder"):
        parse_folders(root / "a")
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\).*got 1.0"):
        parse_folders(root / "a", val_fraction=1.0)
    with pytest.raises(ValueError, match="extensions is empty"):
        parse_folders(root, extensions=[])
    (root / "b" / "list.txt").unlink()
    clip(root / "b" / "two words.mp4", 1)
    with pytest.raises(ValueError, match="1 video path.* contain whitespace.*'b/two words.mp4'.*"
                                         "rename"):
        parse_folders(root)


def test_extensions_choose_the_videos(tmp_path, capsys):
    from reskd.cli import main

    root = tmp_path / "r"
    for i in range(2):
        clip(root / "a" / f"{i}.mp4", i)
        clip(root / "a" / f"{i}.webm.mp4", i)
    (root / "a" / "x.bin").write_bytes(b"\0")
    code = main(["data", "convert", "folders", "--root", str(root), "--out", str(tmp_path / "o"),
                 "--extensions", "bin", ".MP4", "--val-fraction", "0.5", "--seed", "1"])
    assert code == 0
    lines = read_list(tmp_path / "o" / "train.txt") + read_list(tmp_path / "o" / "val.txt")
    assert sorted(e.path for e in lines) == ["a/0.mp4", "a/0.webm.mp4", "a/1.mp4",
                                             "a/1.webm.mp4", "a/x.bin"]
    assert main(["data", "convert", "folders", "--out", str(tmp_path / "p")]) == 2
    assert "reskd data convert folders needs --root" in capsys.readouterr().err

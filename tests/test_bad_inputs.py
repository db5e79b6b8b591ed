"""Bad input, each kind once: a clear error, or a counted and reported skip; never a crash.

Videos are written here with PyAV: every valid oddity must decode to (T, H, W, 3) uint8 RGB
(exactly, where the codec is lossless), every broken file must raise DecodeError naming it, and
`reskd data check` must find every broken file and flag no good one.
"""

from __future__ import annotations

import fractions
import random
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from conftest import numbered_frames, write_data_config, write_video
from reskd.data.decoders import DecodeError, decode_video

TINY = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
        "model.widths=[8,8,16,16]", "model.stem=small", "data.num_segments=4",
        "data.short_side_ratio=1.0", "data.crop_scales=[1.0]", "data.batch_size=4",
        "data.workers=0", "optim.optimizer=adamw", "optim.lr=0.002", "optim.epochs=1",
        "runtime.progress=false", "data.size=32", "runtime.precision=fp32"]


def write_lossless(path: Path, frames: np.ndarray, *, container_options=None, pts=None) -> Path:
    """libx264rgb qp 0; `pts` (ms) gives a variable frame rate; container options e.g. faststart."""
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream("libx264rgb", rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        s.options = {"qp": "0", "preset": "ultrafast"}
        if pts is not None:
            s.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = int(pts[i]), fractions.Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_gray(path: Path, frames: np.ndarray) -> Path:
    """(T, H, W) uint8 as lossless FFV1 in gray pix_fmt."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "gray"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    """name -> (path, expected frames (T, H, W, 3) or None when lossy). Broken ones map to a
    reason substring instead."""
    d = tmp_path_factory.mktemp("odd")
    good = numbered_frames(12, 32, 48)
    gray = np.random.default_rng(1).integers(0, 256, (6, 32, 48), dtype=np.uint8)
    valid = {
        "good.mp4": (write_lossless(d / "good.mp4", good), good),
        "one_frame.mp4": (write_lossless(d / "one_frame.mp4", good[:1]), good[:1]),
        "three_frames.mp4": (write_lossless(d / "three_frames.mp4", good[:3]), good[:3]),
        "odd_171x128_mpeg4.mp4": (write_video(d / "odd_171x128_mpeg4.mp4",
                                              numbered_frames(6, 128, 171), codec="mpeg4"), None),
        "odd_171x128_rgb.mp4": (write_lossless(d / "odd_171x128_rgb.mp4",
                                               numbered_frames(6, 128, 171)),
                                numbered_frames(6, 128, 171)),
        "gray_ffv1.mkv": (write_gray(d / "gray_ffv1.mkv", gray), np.repeat(gray[..., None], 3, -1)),
        "vfr.mp4": (write_lossless(d / "vfr.mp4", good[:10],
                                   pts=np.cumsum([0, 40, 10, 90, 33, 5, 120, 40, 40, 7])),
                    good[:10]),
        "sparse_keyframes.mp4": (write_video(d / "sparse_keyframes.mp4",
                                             numbered_frames(40, 32, 48),
                                             options={"g": "1000", "keyint_min": "1000",
                                                      "sc_threshold": "0"}),
                                 numbered_frames(40, 32, 48)),
    }
    (d / "zero_bytes.mp4").write_bytes(b"")
    (d / "random_bytes.mp4").write_bytes(
        bytes(random.Random(0).randrange(256) for _ in range(5000)))
    whole = (d / "good.mp4").read_bytes()  # moov atom at the end: cut off
    (d / "truncated_tail.mp4").write_bytes(whole[: len(whole) // 2])
    fast = write_lossless(d / "faststart.mp4", numbered_frames(30, 32, 48),
                          container_options={"movflags": "faststart"}).read_bytes()
    (d / "truncated_faststart.mp4").write_bytes(fast[: len(fast) // 2])  # header says 30 frames
    (d / "faststart.mp4").unlink()
    write_audio_only(d / "audio_only.mp4")
    broken = {
        "zero_bytes.mp4": "empty file (0 bytes)",
        "random_bytes.mp4": "InvalidDataError",
        "truncated_tail.mp4": "InvalidDataError",
        "truncated_faststart.mp4": "of the 30 frames its header claims",
        "audio_only.mp4": "no video stream (audio-only or not a video)",
        "missing.mp4": "not found",
    }
    return {"root": d, "valid": valid, "broken": broken}


@pytest.mark.parametrize("name", ["good.mp4", "one_frame.mp4", "three_frames.mp4",
                                  "odd_171x128_mpeg4.mp4", "odd_171x128_rgb.mp4", "gray_ffv1.mkv",
                                  "vfr.mp4", "sparse_keyframes.mp4"])
def test_valid_oddities_decode_to_rgb_uint8(videos, name):
    path, expected = videos["valid"][name]
    from reskd.data.sampling import segment_indices

    # 8 TSN segments, more than the one- and three-frame videos have: indices repeat
    got, idx = decode_video(path, lambda n: segment_indices(n, 8, train=False, rng=None, clip=0,
                                                            num_clips=1))
    h, w = (128, 171) if "171" in name else (32, 48)
    assert got.shape == (8, h, w, 3) and got.dtype == np.uint8
    if expected is not None:
        np.testing.assert_array_equal(got, expected[idx])


@pytest.mark.parametrize("name", ["zero_bytes.mp4", "random_bytes.mp4", "truncated_tail.mp4",
                                  "truncated_faststart.mp4", "audio_only.mp4", "missing.mp4"])
def test_broken_videos_raise_decode_error_naming_file_and_reason(videos, name):
    with pytest.raises(DecodeError) as e:
        decode_video(videos["root"] / name, lambda n: np.arange(n))
    assert name in str(e.value) and videos["broken"][name] in e.value.reason


def write_lists(videos: dict, tmp_path: Path) -> Path:
    """A data root with every odd video (symlinked) in train.txt and val.txt."""
    root = tmp_path / "root"
    root.mkdir()
    names = [*videos["valid"], *videos["broken"]]
    for name in names:
        if (videos["root"] / name).exists():
            (root / name).symlink_to(videos["root"] / name)
    lines = "".join(f"{name} {i % 3}\n" for i, name in enumerate(names))
    (root / "train.txt").write_text(lines)
    (root / "val.txt").write_text(lines)
    return root


def test_data_check_finds_every_broken_video_and_flags_no_good_one(videos, tmp_path, capsys):
    from reskd.cli import main
    from reskd.config import load_config
    from reskd.runs import make_dataset

    root = write_lists(videos, tmp_path)
    bad = tmp_path / "bad.txt"
    code = main(["data", "check", str(root / "train.txt"), "--frames", "4", "--workers", "2",
                 "--out", str(bad)])
    out = capsys.readouterr().out
    assert code == 1
    flagged = {line.split("\t")[0]: line.split("\t")[1] for line in bad.read_text().splitlines()
               if not line.startswith("#")}
    too_short = {"one_frame.mp4": "only 1 frame, fewer than the 4 asked for",
                 "three_frames.mp4": "only 3 frames, fewer than the 4 asked for"}
    assert set(flagged) == set(videos["broken"]) | set(too_short)
    for name, reason in {**videos["broken"], **too_short}.items():
        assert reason in flagged[name], (name, flagged[name])
    assert "checked 14 entries" in out and "8 unusable" in out

    # The report is an exclusion list: those entries are left out, and the count is printed.
    logged: list[str] = []
    cfg = load_config(None, [f"data.root={root}", "data.train_list=train.txt",
                             f"data.exclude={bad}"])
    dataset = make_dataset(cfg, "train_list", train=True, sizes=(32,), num_classes=3,
                           log=logged.append)
    assert sorted(e.path for e in dataset.entries) == sorted(set(videos["valid"]) - set(too_short))
    assert logged == [f"leaving out 8 of 14 entries of {root / 'train.txt'} listed in "
                      f"data.exclude={bad}"]


def test_data_check_of_raw_frame_folders(tmp_path):
    from PIL import Image

    from reskd.data.check import run_check

    for name, count in (("full", 5), ("partial", 3), ("corrupt", 3)):
        (tmp_path / name).mkdir()
        for i in range(count):  # grayscale JPEGs: fine
            Image.fromarray(np.full((8, 10), 40 * i, np.uint8)).save(
                tmp_path / name / f"img_{i + 1:05d}.jpg")
    (tmp_path / "corrupt" / "img_00002.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "list.txt").write_text("full 5 0\npartial 5 1\ncorrupt 3 1\nnowhere 5 1\n")
    problems, text = run_check(tmp_path / "list.txt", format="rawframes")
    assert [(p.path, p.reason.split(":")[0]) for p in problems] == [
        ("partial", "2 of the 5 listed frames are missing (first"),
        ("corrupt", "img_00002.jpg cannot be read"),
        ("nowhere", "frame folder not found")]
    assert text.startswith("checked 4 entries")


def test_training_and_testing_survive_every_broken_video(videos, tmp_path):
    from reskd.config import load_config
    from reskd.runs import run_train

    root = write_lists(videos, tmp_path)
    (root / "missing.mp4").symlink_to(videos["root"] / "good.mp4")  # missing files: test_cli
    out = tmp_path / "run"
    logged: list[str] = []
    cfg = load_config(None, [*TINY, f"data.root={root}", "data.train_list=train.txt",
                             "data.val_list=val.txt", "model.num_classes=3", f"runtime.out={out}"])
    result = run_train(cfg, distill=False, log=logged.append)
    record = [m for m in logged if "skipped" in m and "undecodable" in m]
    assert record and "replaced by other samples" in record[0]
    failed = sorted(f.split("\t")[0].rsplit("/", 1)[-1] for f in result["val"]["failed"])
    assert failed == sorted(set(videos["broken"]) - {"missing.mp4"})
    assert result["val"]["num_videos"] == 14 - len(failed)


def dataset_error(tmp_path: Path, list_text: str, *extra: str):
    from reskd.config import load_config
    from reskd.runs import make_dataset

    (tmp_path / "list.txt").write_text(list_text)
    cfg = load_config(None, [f"data.root={tmp_path}", "data.train_list=list.txt", *extra])
    return make_dataset(cfg, "train_list", train=True, sizes=(32,), num_classes=10,
                        log=lambda _: None)


@pytest.mark.parametrize("text,message", [
    ("a.mp4 3\nb.mp4 12\n",
     "list.txt, line 2: label 12 is out of range for 10 classes (valid: 0..9)"),
    ("a.mp4 3\nb.mp4\n", "list.txt, line 2: missing label in 'b.mp4'"),
    ("a.mp4 three\n", "list.txt, line 1: label 'three' is not an integer"),
    ("a.mp4 3\nnowhere/b.mp4 1\n", "1 of 2 entries of"),
    ("../a.mp4 3\n", "1 of 1 entries of"),
    ("/etc/a.mp4 3\n", "point outside data.root"),
])
def test_list_problems_are_errors_naming_file_and_line(tmp_path, text, message):
    (tmp_path / "a.mp4").write_bytes(b"x")
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        dataset_error(tmp_path, text)
    assert message in str(e.value)


def test_paths_outside_the_root_need_allow_outside_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"Set data.allow_outside_root=true"):
        dataset_error(root, "../outside.mp4 1\n")
    dataset = dataset_error(root, f"../outside.mp4 1\n{tmp_path / 'outside.mp4'} 2\n",
                            "data.allow_outside_root=true")
    assert len(dataset) == 2


def test_wrong_teacher_checkpoints_are_errors(tmp_path):
    from reskd.checkpoint import save_checkpoint
    from reskd.config import load_config
    from reskd.models import build_from_kwargs
    from reskd.runs import load_teacher, model_kwargs

    cfg = load_config(None, [*TINY, "model.num_classes=10"])
    student = model_kwargs(cfg, 10)
    torch.save(torch.randn(3), tmp_path / "random.pt")
    torch.save(build_from_kwargs(student).state_dict(), tmp_path / "state_dict.pt")
    wide = {**student, "widths": [8, 8, 16, 32]}
    save_checkpoint({"model_kwargs": wide, "model": build_from_kwargs(wide).state_dict(),
                     "frames": 4, "size": 64}, tmp_path / "wide.pt")
    cases = {"random.pt": "is not a reskd checkpoint", "state_dict.pt": "a bare state dict",
             "wide.pt": "has 32 feature channels but student resnet has 16"}
    for name, message in cases.items():
        cfg.distill.teacher = str(tmp_path / name)
        with pytest.raises(ValueError) as e:
            load_teacher(cfg, 10, student)
        assert message in str(e.value)


@pytest.mark.parametrize("setting,message", [
    ("data.size=big", "data.size: expected an integer, got 'big'"),
    ("data.batch_size=0", "data.batch_size: must be at least 1, got 0"),
    ("optim.lr=-0.1", "optim.lr: must be positive, got -0.1"),
    ("runtime.keep_checkpoints=two", "runtime.keep_checkpoints: expected an integer"),
    ("data.flip=maybe", "data.flip: expected true or false, got 'maybe'"),
    ("optim.lrr=0.1", "Did you mean 'optim.lr'"),
])
def test_config_errors_name_the_key(tmp_path, capsys, setting, message):
    from reskd.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text("runtime:\n  progress: false\n")
    assert main(["train", str(config), "--set", setting]) == 2
    assert message in capsys.readouterr().err


def test_yaml_that_would_build_python_objects_is_refused(tmp_path, capsys):
    from reskd.cli import main

    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"data: !!python/object/apply:os.system ['touch {marker}']\n")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the config" in err and "python/object/apply:os.system" in err
    assert "yaml.safe_load" in err
    assert not marker.exists()


def test_a_model_option_the_arch_ignores_stops_training_before_it_starts(videos, tmp_path,
                                                                           capsys):
    from reskd.cli import main

    root = write_lists(videos, tmp_path)
    (root / "classes.txt").write_text("a\nb\nc\n")
    config = write_data_config(tmp_path / "c.yaml", root)
    code = main(["train", str(config), "--set", "model.arch=resnet18", "--set",
                 "model.stem=small", "--set", f"runtime.out={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2 and "model.stem='small' has no effect on arch 'resnet18'" in err
    assert "used by: resnet" in err and not (tmp_path / "run" / "metrics.jsonl").exists()

"""`reskd config new`, `reskd --version`, and the path a new user takes: a folder per class ->
`reskd data convert folders` -> `reskd config new` -> the template's own commands (teacher,
ResKD student, `reskd test` with and without a config), on tiny real MP4 files. The CLI runs in
this process (a subprocess adds seconds of start-up per call)."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from conftest import sets, write_video
from reskd.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
# a CPU-sized network and loop; the template's arch, sizes and views are what is tested
TINY = ["model.arch=resnet", "model.layers=[1,1,1,1]", "model.widths=[8,8,16,16]",
        "model.stem=small", "data.short_side_ratio=1.0", "data.batch_size=4", "data.workers=0",
        "optim.optimizer=adamw", "optim.lr=0.002", "optim.epochs=1", "runtime.progress=false",
        "runtime.precision=fp32", "runtime.tensorboard=false"]


def reskd(capsys, *args: str, code: int = 0) -> tuple[str, str]:
    """The real CLI in this process -> (stdout, stderr); fails unless it exits with `code`."""
    from reskd.cli import main

    capsys.readouterr()
    got = main(list(args))
    out, err = capsys.readouterr()
    assert got == code, f"reskd {' '.join(args)} -> {got}:\n{out}\n{err}"
    return out, err


def test_the_default_template_is_a_valid_config_of_reskd_defaults(capsys, tmp_path):
    text, _ = reskd(capsys, "config", "new")
    assert "${" not in text  # every placeholder filled
    path = tmp_path / "c.yaml"
    path.write_text(text)
    cfg, default = load_config(path), Config()
    assert (cfg.data.size, cfg.data.crop_size) == (default.data.size // 2, default.data.size)
    assert cfg.model.arch == default.model.arch
    assert cfg.data.num_segments == default.data.num_segments
    assert cfg.optim.lr == default.optim.lr and cfg.optim.epochs == default.optim.epochs
    assert cfg.distill.teacher == "runs/teacher224/model.pt"
    assert cfg.runtime.out == "runs/reskd112"
    # the teacher run is the header's one override away, and valid too
    teacher = re.search(r"reskd train CONFIG.yaml (--set .*)", text).group(1).split()[1::2]
    assert teacher == ["data.size=224", "runtime.out=runs/teacher224"]
    assert load_config(path, teacher).data.size == 224
    assert all(len(line) <= 100 for line in text.splitlines())


def test_the_options_given_are_in_the_config(capsys, tmp_path):
    out = tmp_path / "sub" / "mine.yaml"
    printed, _ = reskd(capsys, "config", "new", "--teacher-size", "160", "--student-size", "96",
                       "--arch", "tsm_resnet18", "--frames", "4", "--classes", "101",
                       "--data-root", "data/ucf101", "--out", str(out))
    assert printed.startswith(f"wrote {out};")
    cfg = load_config(out)
    assert (cfg.data.size, cfg.data.crop_size, cfg.distill.teacher) == (
        96, 160, "runs/teacher160/model.pt")
    assert (cfg.model.arch, cfg.data.num_segments, cfg.model.num_classes) == ("tsm_resnet18", 4,
                                                                               101)
    assert (cfg.data.root, cfg.data.train_list, cfg.data.val_list, cfg.data.classes) == (
        "data/ucf101", "train.txt", "val.txt", "classes.txt")
    assert f"reskd distill {out}\n" in out.read_text()
    _, err = reskd(capsys, "config", "new", "--out", str(out), code=2)
    assert f"{out} already exists; choose another --out" in err


def test_lists_outside_the_data_root_are_written_absolute(capsys, tmp_path):
    root, lists = tmp_path / "videos", tmp_path / "lists"
    text, _ = reskd(capsys, "config", "new", "--data-root", str(root), "--lists", str(lists))
    assert f"  train_list: {lists / 'train.txt'}  #" in text
    text, _ = reskd(capsys, "config", "new", "--data-root", str(root), "--lists",
                    str(root / "splits"))
    assert "  val_list: splits/val.txt  #" in text


@pytest.mark.parametrize("args, message", [
    (["--student-size", "256"], "--student-size 256 is above --teacher-size 224: the student "
                                "sees the teacher's crop shrunk, never enlarged; give a student "
                                "size of at most 224 (e.g. 112)"),
    (["--arch", "resnet51"], "--arch 'resnet51' is not an architecture reskd builds (did you "
                             "mean 'resnet50'?); choose one of resnet18, resnet34, resnet50,"),
    (["--frames", "0"], "--frames must be at least 1, got 0"),
    (["--classes", "-1"], "--classes must be >= 0"),
])
def test_invalid_options_name_the_value_and_the_fix(capsys, args, message):
    _, err = reskd(capsys, "config", "new", *args, code=2)
    assert message in err


def test_the_template_ships_as_package_data():
    assert files("reskd").joinpath("templates/config.yaml").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib is Python 3.11+)
    section = pyproject.split("[tool.setuptools.package-data]\n", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^reskd = \[.*"templates/\*\.yaml"', section, re.M)


def test_version(capsys):
    from reskd.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"reskd {version('reskd')}\n"


def test_a_new_user_from_class_folders_to_a_tested_student(capsys, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    videos = tmp_path / "videos"
    for name in ("dark", "light"):  # two classes a tiny net can tell apart
        for i in range(5):
            level = 40 if name == "dark" else 210
            frames = np.clip(rng.normal(level, 20, (4, 64, 64, 3)), 0, 255).astype(np.uint8)
            write_video(videos / name / f"{i}.mp4", frames)
    monkeypatch.chdir(tmp_path)  # the template's run folders are relative: runs/...
    out, _ = reskd(capsys, "data", "convert", "folders", "--root", "videos", "--out", "videos")
    next_command = out.splitlines()[-1].split()
    assert next_command[:2] == ["reskd", "config"]
    reskd(capsys, *next_command[1:-1], "my.yaml", "--teacher-size", "64", "--frames", "2")
    header = Path("my.yaml").read_text()
    commands = [line.split()[2:] for line in header.splitlines()
                if line.startswith("#        reskd ")]
    assert [c[0] for c in commands] == ["train", "distill", "train", "test"]
    for command in commands[:2]:  # the teacher, then the ResKD student distilled from it
        reskd(capsys, *command, *sets(*TINY))
    student = Path("runs/reskd32/model.pt")
    assert student.is_file()

    # `reskd test` without a config: the checkpoint's recorded data lists and its views
    out, _ = reskd(capsys, "test", "--checkpoint", str(student), "--json",
                   *sets("runtime.progress=false"))
    bare = json.loads(out)
    assert (bare["num_videos"], bare["size"], bare["crop_size"], bare["shrink"]) == (
        2, 32, 64, "bilinear")
    # with a config whose view keys differ: the checkpoint's views still, said on stderr (the
    # JSON on stdout stays clean); the config's data is used (here: the train list)
    out, err = reskd(capsys, *commands[3], "--json", *sets(
        "data.size=48", "data.crop_size=96", "data.shrink=antialias", "data.mean=[0.5,0.5,0.5]",
        "data.val_list=train.txt", "runtime.progress=false"))
    other = json.loads(out)
    assert (other["num_videos"], other["size"], other["crop_size"], other["shrink"]) == (
        8, 32, 64, "bilinear")
    assert "data.size=48, data.crop_size=96, data.shrink='antialias'" in err
    assert "is not used" in err
    same, _ = reskd(capsys, *commands[3], "--json", *sets("data.size=48", "data.crop_size=96",
                                                          "runtime.progress=false"))
    assert json.loads(same)["top1"] == bare["top1"]  # same videos, same views, same scores

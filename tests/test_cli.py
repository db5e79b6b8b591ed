"""Integration: the real CLI (subprocesses) on tiny real MP4 data: train -> distill -> test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import sets, write_data_config

TINY = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
        "model.widths=[8,8,16,16]", "model.stem=small", "data.num_segments=2",
        "data.short_side_ratio=1.0", "data.crop_scales=[1.0,0.875]", "data.batch_size=8",
        "data.workers=0", "optim.optimizer=adamw", "optim.lr=0.002", "optim.epochs=2",
        "runtime.progress=false"]


def reskd(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "reskd", *args], capture_output=True, text=True,
                          timeout=600)
    if ok and proc.returncode != 0:
        raise AssertionError(f"reskd {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def curve_values(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from reskd.data.synth import make_synth_dataset

    out = tmp_path_factory.mktemp("synth")
    make_synth_dataset(out, seed=1, num_train=48, num_val=16, workers=1)
    return out


@pytest.fixture(scope="module")
def config(data, tmp_path_factory) -> Path:
    return write_data_config(tmp_path_factory.mktemp("cfg") / "tiny.yaml", data)


def test_train_distill_test_chain(config, tmp_path):
    teacher = tmp_path / "teacher"
    reskd("train", str(config), *sets(*TINY, "data.size=64", f"runtime.out={teacher}"))
    assert (teacher / "model.pt").is_file() and (teacher / "checkpoint.pt").is_file()
    assert (teacher / "config.yaml").is_file()
    lines = (teacher / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert "val" in json.loads(lines[-1])

    student = tmp_path / "student"
    reskd("distill", str(config), *sets(*TINY, "data.size=32", f"runtime.out={student}",
                                        f"distill.teacher={teacher / 'model.pt'}"))
    record = json.loads((student / "metrics.jsonl").read_text().splitlines()[-1])
    assert (record["kd"] > 0
            and record["loss"] == pytest.approx(record["ce"] + record["kd"], rel=1e-3))
    assert record["kd"] == pytest.approx(100 * record["feature_kd"], rel=1e-3)
    curves = curve_values(student)  # every KD term raw and weighted (alpha 100), every 10 steps
    assert [step for step, _ in curves["loss/feature_kd"]] == [10]
    raw, weighted = curves["loss/feature_kd"][0][1], curves["loss_weighted/feature_kd"][0][1]
    assert raw > 0 and weighted == pytest.approx(100 * raw, rel=1e-5)
    assert curves["loss/kd"][0][1] == pytest.approx(weighted, rel=1e-5)

    ckpt = torch.load(student / "model.pt", weights_only=True)
    assert ckpt["size"] == 32 and ckpt["classes"][3] == "three" and ckpt["frames"] == 2
    assert not any(k.startswith("teacher") for k in ckpt["model"])  # student only

    out = reskd("test", str(config), "--checkpoint", str(student / "model.pt"), "--json",
                *sets(*TINY, "data.size=32", "data.test_clips=2", "data.test_crops=3"))
    result = json.loads(out.stdout)
    assert result["num_videos"] == 16 and result["views"] == 6 and result["failed"] == []
    assert 0 <= result["top1"] <= result["top5"] <= 100


def test_distill_rejects_a_teacher_with_other_classes(config, tmp_path, data):
    teacher = tmp_path / "t"
    reskd("train", str(config), *sets(*TINY, "optim.epochs=1", "data.size=32",
                                      f"runtime.out={teacher}", "data.val_list="))
    proc = reskd("distill", str(config), *sets(*TINY, "model.num_classes=11", "data.classes=",
                                               f"distill.teacher={teacher / 'model.pt'}",
                                               f"runtime.out={tmp_path / 's'}"), ok=False)
    assert proc.returncode == 2
    assert "10 classes" in proc.stderr and "11" in proc.stderr


def test_config_errors_are_clear(config):
    proc = reskd("train", str(config), "--set", "optim.lrr=0.1", ok=False)
    assert proc.returncode == 2 and "Did you mean 'optim.lr'" in proc.stderr
    proc = reskd("train", str(config), "--set", "data.size=big", ok=False)
    assert "data.size: expected an integer" in proc.stderr


def test_missing_videos_are_reported_before_training(config, data, tmp_path):
    bad = tmp_path / "list.txt"
    bad.write_text((data / "train.txt").read_text()
                   + "videos/nowhere/1.mp4 3\nvideos/nowhere/2.mp4 4\n")
    proc = reskd("train", str(config), *sets(*TINY, f"data.train_list={bad}",
                                             f"runtime.out={tmp_path / 'r'}"), ok=False)
    assert proc.returncode == 2
    assert "2 of 50 entries" in proc.stderr and "videos/nowhere/1.mp4" in proc.stderr


def test_corrupt_videos_are_skipped_in_training_and_listed_in_testing(config, data, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "videos").symlink_to(data / "videos")
    (root / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    (root / "classes.txt").write_text((data / "classes.txt").read_text())
    train = (data / "train.txt").read_text() + "broken.mp4 1\n"
    (root / "train.txt").write_text(train)
    (root / "val.txt").write_text((data / "val.txt").read_text() + "broken.mp4 1\n")
    out = tmp_path / "run"
    reskd("train", str(config), *sets(*TINY, f"data.root={root}", "data.size=32",
                                      f"runtime.out={out}", "data.batch_size=7"))
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["skipped"] for r in records) >= 1  # the broken file was met and replaced
    assert records[-1]["val"]["num_videos"] == 16
    assert (len(records[-1]["val"]["failed"]) == 1
            and "broken.mp4" in records[-1]["val"]["failed"][0])


def test_multi_label_bce_training_and_map_testing(config, data, tmp_path):
    # two labels per video: the digit and its successor (a multi-label list, as ActivityNet's)
    for name in ("train", "val"):
        lines = [line.split() for line in (data / f"{name}.txt").read_text().splitlines()]
        (tmp_path / f"{name}_ml.txt").write_text(
            "".join(f"{p} {lab} {(int(lab) + 1) % 10}\n" for p, lab in lines))
    ml = [f"data.train_list={tmp_path / 'train_ml.txt'}",
          f"data.val_list={tmp_path / 'val_ml.txt'}",
          "data.multi_label=true", "data.size=32", "optim.epochs=1"]
    run = tmp_path / "ml"
    reskd("train", str(config), *sets(*TINY, *ml, "data.multi_label_loss=bce",
                                      f"runtime.out={run}"))
    out = reskd("test", str(config), "--checkpoint", str(run / "model.pt"), "--json",
                *sets(*TINY, *ml, "data.test_clips=2", "data.test_average=logit"))
    result = json.loads(out.stdout)
    assert 0 < result["mAP"] <= 100 and result["num_videos"] == 16 and result["views"] == 2
    single = reskd("test", str(config), "--checkpoint", str(run / "model.pt"), "--json",
                   *sets(*TINY, "data.size=32"))
    assert "mAP" not in json.loads(single.stdout)

"""Checkpoints: atomic writes that survive a full disk, safe loads, and resume fallbacks."""

from __future__ import annotations

import errno
import json
import os
import random
from pathlib import Path

import pytest
import torch

from conftest import write_data_config
from reskd.checkpoint import (
    FORMAT,
    find_resume_checkpoint,
    load_checkpoint,
    prune_epoch_checkpoints,
    save_checkpoint,
)

TINY = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
        "model.widths=[8,8,16,16]", "model.stem=small", "data.num_segments=2",
        "data.short_side_ratio=1.0", "data.crop_scales=[1.0]", "data.batch_size=8",
        "data.workers=0", "optim.optimizer=adamw", "optim.lr=0.002", "optim.epochs=2",
        "runtime.progress=false", "data.size=32", "runtime.precision=fp32", "data.val_list="]


def full_disk(real_save, when=lambda obj: True):
    def save(obj, f, *args, **kwargs):
        if when(obj):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)
    return save


def train_state(epoch: int, **extra) -> dict:
    return {"kind": "train-state", "epoch": epoch, "step": 6 * epoch, "w": torch.full((3,), epoch),
            **extra}


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(train_state(1), path)
    monkeypatch.setattr(torch, "save", full_disk(torch.save))
    with pytest.raises(OSError) as e:
        save_checkpoint(train_state(2), path)
    assert e.value.errno == errno.ENOSPC
    assert "No space left on device" in str(e.value) and "is intact" in str(e.value)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_full_disk_during_training_stops_then_resume_falls_back_past_a_corrupt_checkpoint(
        tmp_path, monkeypatch, capsys):
    from reskd.cli import main
    from reskd.data.synth import make_synth_dataset

    data = tmp_path / "data"
    make_synth_dataset(data, seed=1, num_train=16, num_val=8, workers=1)
    config = write_data_config(tmp_path / "tiny.yaml", data, val_list="")
    out = tmp_path / "run"
    args = ["train", str(config), *[a for p in TINY + [f"runtime.out={out}"]
                                    for a in ("--set", p)]]
    real_save = torch.save
    monkeypatch.setattr(torch, "save", full_disk(real_save, lambda obj: obj.get("epoch") == 2))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "epoch 2 finished but its checkpoint could not be written" in err
    assert "No space left on device" in err and "is intact" in err and "--resume" in err
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert not list(out.glob(".*.tmp"))

    # Space is back, but checkpoint.pt got damaged: resume from the newest readable epoch file.
    monkeypatch.setattr(torch, "save", real_save)
    (out / "checkpoint.pt").write_bytes((out / "checkpoint.pt").read_bytes()[:1000])
    assert main([*args, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "cannot resume from" in printed and "checkpoint.pt" in printed
    assert "falling back to" in printed and "checkpoint-epoch1.pt (epoch 1)" in printed
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2


def test_resume_picks_the_newest_readable_checkpoint(tmp_path):
    for epoch in (1, 2, 3):
        save_checkpoint(train_state(epoch), tmp_path / f"checkpoint-epoch{epoch}.pt")
    save_checkpoint(train_state(3, epoch_step=2), tmp_path / "checkpoint.pt")  # mid-epoch 4
    logged: list[str] = []
    ckpt, path = find_resume_checkpoint(tmp_path, log=logged.append)
    assert path.name == "checkpoint.pt" and ckpt["epoch_step"] == 2 and logged == []

    (tmp_path / "checkpoint.pt").write_bytes(b"\x00" * 10)
    (tmp_path / "checkpoint-epoch3.pt").write_bytes(b"")
    ckpt, path = find_resume_checkpoint(tmp_path, log=logged.append)
    assert path.name == "checkpoint-epoch2.pt" and ckpt["epoch"] == 2
    assert len(logged) == 3 and "checkpoint.pt" in logged[0] and "epoch3" in logged[1]
    assert "falling back to" in logged[2]

    save_checkpoint(train_state(4), tmp_path / "checkpoint-epoch4.pt")  # newer than checkpoint.pt
    save_checkpoint(train_state(3), tmp_path / "checkpoint.pt")
    assert find_resume_checkpoint(tmp_path, log=logged.append)[1].name == "checkpoint-epoch4.pt"
    assert find_resume_checkpoint(tmp_path / "nothing", log=logged.append) is None


def test_prune_keeps_the_newest_epoch_checkpoints(tmp_path):
    for epoch in (1, 2, 3, 10):
        save_checkpoint(train_state(epoch), tmp_path / f"checkpoint-epoch{epoch}.pt")
    prune_epoch_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-epoch10.pt",
                                                          "checkpoint-epoch3.pt"]


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "model": {}, "payload": RunsCode(marker)}, path)
    with pytest.raises(ValueError) as e:
        load_checkpoint(path)
    assert "refusing to load" in str(e.value) and "would import and run code" in str(e.value)
    assert "posix.system" in str(e.value) and "weights_only=True" in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind,expected", [
    ("tensor", "not a reskd checkpoint (no 'reskd-checkpoint/1' marker; it holds Tensor)"),
    ("state_dict", "it holds a bare state dict (parameter name -> tensor)"),
    ("random_bytes", "is not a readable torch checkpoint (corrupt, or a pickle that torch.save"),
    ("truncated", "is not a readable checkpoint (truncated or not a torch file)"),
    ("empty", "is empty (0 bytes)"),
])
def test_files_that_are_not_reskd_checkpoints_get_clear_errors(tmp_path, kind, expected):
    path = tmp_path / "x.pt"
    if kind == "tensor":
        torch.save(torch.randn(3), path)
    elif kind == "state_dict":
        torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    elif kind == "random_bytes":
        path.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    elif kind == "truncated":
        save_checkpoint(train_state(1), path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError) as e:
        load_checkpoint(path)
    assert expected in str(e.value) and str(path) in str(e.value)

"""Never lose a run: SIGKILL / SIGTERM mid-epoch, then --resume, ends exactly where an
uninterrupted run ends (fp32, workers 0; dropout 0.5 so the restored torch RNG matters)."""

from __future__ import annotations

import json
import shutil
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
        "runtime.progress=false", "data.size=32", "runtime.precision=fp32",
        "model.dropout=0.5", "runtime.keep_checkpoints=1", "runtime.log_every=2"]
# 48 training videos / batch 8 = 6 steps per epoch: step 9 is 3 steps into epoch 2.
KILL_AT_STEP = 9
KILL_AT_STEP_SCRIPT = Path(__file__).with_name("kill_at_step.py")


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    from reskd.data.synth import make_synth_dataset

    data = tmp_path_factory.mktemp("synth")
    make_synth_dataset(data, seed=1, num_train=48, num_val=16, workers=1)
    return write_data_config(tmp_path_factory.mktemp("cfg") / "tiny.yaml", data)


def train_in_process(config: Path, out: Path, *, resume: bool = False, extra=()) -> list[str]:
    from reskd.config import load_config
    from reskd.runs import run_train

    logged: list[str] = []
    run_train(load_config(config, [*TINY, f"runtime.out={out}", *extra]), distill=False,
              resume=resume, log=logged.append)
    return logged


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    train_in_process(config, out)
    return out


def kill_run(config: Path, out: Path, signal_name: str) -> subprocess.CompletedProcess:
    """`reskd train` in a process that sends itself SIGNAL after step KILL_AT_STEP."""
    return subprocess.run([sys.executable, str(KILL_AT_STEP_SCRIPT), str(KILL_AT_STEP),
                           signal_name, "train", str(config), *sets(*TINY, f"runtime.out={out}")],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sigterm_run(config, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A run stopped by SIGTERM after step 9; tests resume from copies of it."""
    out = tmp_path_factory.mktemp("sigterm") / "run"
    return out, kill_run(config, out, "TERM")


def curve_steps(run: Path) -> dict[str, list[int]]:
    """{tag: the steps of its points} in the run's TensorBoard events, read by TensorBoard's own
    reader (which drops the points a resumed run's `purge_step` orphans)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def assert_same_run(a: Path, b: Path) -> None:
    ra = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    keys = ("epoch", "step", "lr", "loss", "ce", "train_top1", "skipped")
    assert [{k: r[k] for k in keys} for r in rb] == [{k: r[k] for k in keys} for r in ra]
    assert rb[-1]["val"] == {**ra[-1]["val"], "seconds": rb[-1]["val"]["seconds"]}
    wa = torch.load(a / "model.pt", weights_only=True)["model"]
    wb = torch.load(b / "model.pt", weights_only=True)["model"]
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "weights differ"
    # the resumed run's curves have every point of the uninterrupted run's, each once
    assert curve_steps(b) == curve_steps(a)


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(config, uninterrupted,
                                                                     tmp_path):
    out = tmp_path / "run"
    proc = kill_run(config, out, "KILL")
    assert proc.returncode == -9, proc.stderr
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    logged = train_in_process(config, out, resume=True)
    assert any("resumed from" in m and "after epoch 1" in m for m in logged), logged
    assert_same_run(uninterrupted, out)
    # keep_checkpoints=1: only the last epoch file is kept besides checkpoint.pt
    assert sorted(p.name for p in out.glob("checkpoint*.pt")) == ["checkpoint-epoch2.pt",
                                                                  "checkpoint.pt"]


def test_sigterm_saves_the_position_mid_epoch_and_resume_continues_there(config, uninterrupted,
                                                                         sigterm_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(sigterm_run[0], out)
    proc = sigterm_run[1]
    assert proc.returncode == 143, proc.stderr
    assert "SIGTERM received: finishing the current step" in proc.stderr
    assert "stopped by SIGTERM 3 steps into epoch 2" in proc.stderr and "--resume" in proc.stderr
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["epoch_step"], ckpt["step"]) == (1, 3, KILL_AT_STEP)
    logged = train_in_process(config, out, resume=True)
    assert any("3 steps into epoch 2" in m for m in logged), logged
    assert_same_run(uninterrupted, out)


def test_resume_with_another_global_batch_mid_epoch_is_refused(config, sigterm_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(sigterm_run[0], out)
    with pytest.raises(ValueError, match="global batch of 8 videos.*4 x 1 processes = 4"):
        train_in_process(config, out, resume=True, extra=["data.batch_size=4"])


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(
        config, tmp_path, monkeypatch):
    import torch.nn.functional as F

    from reskd.engine.train import NonFiniteLossError

    calls = {"n": 0}
    real = F.cross_entropy

    def nan_from_step_8(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 8 else loss

    monkeypatch.setattr(F, "cross_entropy", nan_from_step_8)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as e:
        train_in_process(config, out)
    msg = str(e.value)
    assert "loss became nan at epoch 2, step 2 of 6 (global step 8)" in msg
    assert "last good checkpoint is" in msg and "(epoch 1), untouched" in msg
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values()
                                      if v.is_floating_point())
    assert not (out / "model.pt").exists()


def test_huge_learning_rate_is_reported_by_the_cli(config, tmp_path, capsys):
    from reskd.cli import main

    code = main(["train", str(config), *sets(*TINY, f"runtime.out={tmp_path / 'run'}",
                                             "optim.lr=1.0e+30", "optim.epochs=1")])
    err = capsys.readouterr().err
    assert code == 1
    assert "reskd: loss became" in err and "global step" in err and "Lower optim.lr" in err


def test_stop_handler_lets_forked_children_be_terminated():
    """Under `StopOnSignals` (train, distill, study) a forked child inherits the handler; a
    child that is not a loader worker (a process pool's: Pool.terminate() sends SIGTERM) must
    still die on SIGTERM. Ignoring it hung `reskd study` at its second run's decode pool."""
    import multiprocessing
    import signal
    import time

    from reskd.runs import StopOnSignals

    with StopOnSignals() as stop:
        child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
        child.start()
        time.sleep(0.5)  # let the child reach its sleep
        child.terminate()
        child.join(timeout=20)
        alive = child.is_alive()
        if alive:
            child.kill()
    assert not alive and child.exitcode == -signal.SIGTERM
    assert stop() is None  # the parent's own stop reason is untouched


def test_curves_hold_every_loss_part_per_step_and_epoch(uninterrupted):
    steps = curve_steps(uninterrupted)
    every_2nd, epochs = [2, 4, 6, 8, 10, 12], [6, 12]
    for tag in ("loss/loss", "loss/ce", "train/lr", "train/grad_norm", "train/top1",
                "train/clips_per_s", "train/data_wait"):
        assert steps[tag] == every_2nd, tag
    for tag in ("epoch/loss", "epoch/ce", "epoch/train_top1", "epoch/skipped", "epoch/lr"):
        assert steps[tag] == epochs, tag
    assert steps["val/top1"] == [12]
    assert "loss/kd" not in steps  # no teacher, no KD curve

"""DDP through real `torchrun` (2 gloo processes on CPU) against 1 process, same global batch.

1 process x batch 8 and 2 processes x batch 4 see the same videos in the same steps
(DistributedSampler interleaves one permutation; sample randomness is (seed, epoch, index)), and
DDP averages the two half-batch gradients to the full-batch gradient. What makes the runs match
is SyncBatchNorm (`runtime.sync_bn=true`, reskd's CPUSyncBatchNorm on gloo): without it each
process normalises with 4 videos' statistics and the losses already differ in the 4th digit.
With it the remaining differences are float summation order. Measured here (TINY ResNet, fp32,
AdamW, 2 epochs = 12 steps): per-epoch losses within 4e-8 absolute, weights within 7.5e-7.
Asserted: losses rel 1e-6, weights and BN buffers atol 1e-5, identical top-1 / top-5 / mean
class accuracy, every validation video counted exactly once. The 2-process run is stopped by
SIGTERM mid-epoch and resumed on the way (a 2-process resume alone is bit-identical to an
uninterrupted 2-process run; checked by hand, too slow to keep as a second test here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import sets, write_data_config

TINY = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
        "model.widths=[8,8,16,16]", "model.stem=small", "data.num_segments=2",
        "data.short_side_ratio=1.0", "data.crop_scales=[1.0,0.875]", "data.workers=0",
        "optim.optimizer=sgd", "optim.lr=0.02", "optim.epochs=2", "runtime.progress=false",
        "data.size=32", "runtime.precision=fp32", "model.dropout=0", "runtime.sync_bn=true"]
LOSS_RTOL = 1e-6
# SGD, not AdamW: AdamW's step m / (sqrt(v) + eps) is about lr x sign(g) for a weight whose
# gradients are near zero, so the float summation order (an all-reduce of two half batches vs
# one batch mean) can flip whole steps. Measured on this test's run (ddp vs one process, max
# abs weight difference): AdamW 1.8e-5 with biases at 1x or 3x the lr and 6.6e-4 at 2x, where
# the trajectory happens to pass such weights; SGD 7e-7. The losses agree within LOSS_RTOL
# either way.
WEIGHT_ATOL = 1e-5


def torchrun(*args: str, ok: bool = True,
             signal_at: tuple[int, str] | None = None) -> subprocess.CompletedProcess:
    """`reskd ARGS` in 2 processes; `signal_at` (step, signal name): each process sends itself
    that signal after that training step (tests/kill_at_step.py)."""
    reskd = (["-m", "reskd"] if signal_at is None else
             [str(Path(__file__).with_name("kill_at_step.py")), *map(str, signal_at)])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *reskd, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if ok and proc.returncode != 0:
        raise AssertionError(f"torchrun reskd {' '.join(args)} failed:\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from reskd.data.synth import make_synth_dataset

    out = tmp_path_factory.mktemp("synth")
    make_synth_dataset(out, seed=1, num_train=48, num_val=16, workers=1)
    # 15 validation videos: not divisible by 2 processes, so a padded sampler would duplicate one
    lines = (out / "val.txt").read_text().splitlines()
    (out / "val15.txt").write_text("\n".join(lines[:15]) + "\n")
    return out


@pytest.fixture(scope="module")
def config(data, tmp_path_factory) -> Path:
    return write_data_config(tmp_path_factory.mktemp("cfg") / "tiny.yaml", data,
                             val_list="val15.txt")


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def metrics(result: dict) -> dict:
    return {k: result[k] for k in ("num_videos", "failed", "top1", "top5", "mean_class_acc")}


@pytest.mark.slow  # three torchrun launches of three Python processes each
def test_two_processes_stopped_and_resumed_match_one_process(config, tmp_path):
    """2 processes x batch 4 (SIGTERM after step 9, then --resume) vs 1 process x batch 8."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from reskd.config import load_config
    from reskd.runs import run_test, run_train

    one, two = tmp_path / "one", tmp_path / "two"
    run_train(load_config(config, [*TINY, "data.batch_size=8", f"runtime.out={one}"]),
              distill=False, log=lambda _: None)
    args = ["train", str(config), *sets(*TINY, "data.batch_size=4", f"runtime.out={two}")]
    proc = torchrun(*args, ok=False, signal_at=(9, "TERM"))
    assert proc.returncode != 0
    # both processes stop after the same step (they agree by all_reduce); only rank 0 speaks
    assert proc.stderr.count("reskd: stopped by SIGTERM 3 steps into epoch 2") == 1
    assert proc.stdout.count("epoch 1/2") == 1
    proc = torchrun(*args, "--resume")
    assert "resumed from" in proc.stdout and proc.stdout.count("epoch 2/2") == 1

    a, b = records(one), records(two)
    assert [r["epoch"] for r in b] == [1, 2] and [r["step"] for r in b] == [6, 12]
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=LOSS_RTOL)
        assert rb["train_top1"] == ra["train_top1"]
    assert metrics(b[-1]["val"]) == metrics(a[-1]["val"])
    assert b[-1]["val"]["num_videos"] == 15  # every validation video exactly once
    # curves: rank 0 alone wrote them (one events file per launch), each point once
    assert len(list((two / "tensorboard").glob("events.out.tfevents.*"))) == 2
    events = EventAccumulator(str(two / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/loss")] == [10]
    assert [e.step for e in events.Scalars("epoch/loss")] == [6, 12]

    wa = torch.load(one / "model.pt", weights_only=True)["model"]
    wb = torch.load(two / "model.pt", weights_only=True)["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        if wa[k].is_floating_point():
            torch.testing.assert_close(wb[k], wa[k], atol=WEIGHT_ATOL, rtol=0, msg=k)
        else:
            assert torch.equal(wb[k], wa[k]), k  # num_batches_tracked

    # `reskd test` under torchrun: same metrics as one process, 15 videos, none twice.
    proc = torchrun("test", str(config), "--checkpoint", str(two / "model.pt"), "--json",
                    *sets(*TINY, "data.batch_size=4", "data.test_clips=2"))
    assert sum(line.startswith("{") for line in proc.stdout.splitlines()) == 1  # rank 0 only
    together = json.loads(proc.stdout[proc.stdout.index("{"):])
    alone = run_test(load_config(config, [*TINY, "data.batch_size=4", "data.test_clips=2"]),
                     two / "model.pt", log=lambda _: None)
    assert metrics(together) == metrics(alone)
    assert together["num_videos"] == 15


def test_cpu_sync_batchnorm_is_plain_batchnorm_in_one_process():
    from reskd.engine.distributed import CPUSyncBatchNorm, convert_sync_batchnorm

    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    synced = convert_sync_batchnorm(torch.nn.Sequential(*[m for m in plain]), torch.device("cpu"))
    assert isinstance(synced[1], CPUSyncBatchNorm)
    assert synced[1].weight is plain[1].weight  # parameters shared: optimizer and keys stay valid
    assert list(synced.state_dict()) == list(plain.state_dict())
    x = torch.randn(4, 3, 8, 8)  # (N, C, H, W)
    torch.testing.assert_close(synced(x), plain(x), rtol=0, atol=0)  # no process group: plain BN

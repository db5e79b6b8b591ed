"""ResKD training step in the default mode against a plain fp32 NCHW step.

Run: .venv/bin/python bench/bench_kd_step.py [--quick] [--threads N] [--json]

One step = frozen TSN-R50 teacher forward at 224 px under no_grad (BatchNorm in train mode, the
default `distill.teacher_bn`), TSN-R50 student forward + backward at 112 px,
CE + 100 x feature MSE, grad-norm clip 20 and an SGD step (Nesterov, as `optim` defaults):
the product's training step, `reskd.engine.train.train_step`, as `reskd distill` runs it.
8 frames, batch 4. Default mode = channels_last + the precision `runtime.precision=auto`
picks here; baseline = fp32, NCHW, same weights. The two
steps are timed in interleaved rounds; the figure is the median of the per-round ratios of
clips/s (target >= 2.5x). Exits 1 when the target is missed. --quick: 64 -> 32 px, 2 frames,
batch 2, one round; the target is not checked.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from reskd.distill.distiller import Distiller, freeze
from reskd.efficiency.benchmark import (
    bench_arguments,
    fastest_default_mode,
    interleaved_rates,
    machine_facts,
    parse_bench_arguments,
)
from reskd.engine.optim import make_optimizer
from reskd.engine.runtime import autocast_dtype, pick_device, prepare_model
from reskd.engine.train import train_step
from reskd.models import build_model

TARGET = 2.5  # clips/s default / clips/s fp32 NCHW


def make_step(teacher: nn.Module, student: nn.Module, *, teacher_x: torch.Tensor,
              student_x: torch.Tensor, labels: torch.Tensor, amp_dtype: torch.dtype | None,
              device: torch.device):
    """One optimisation step of the student: the product's `reskd.engine.train.train_step`
    (its GradScaler is off: fp32 and bf16 need none), then the loss read back to the host
    as the trainer's logging does."""
    optimizer = make_optimizer(student, optimizer="sgd", lr=0.01, momentum=0.9,
                               nesterov=True, weight_decay=1e-4)
    distiller = Distiller(teacher, student, feature=100.0)  # teacher BatchNorm in train mode
    student.train()
    batch = {"teacher": teacher_x, "student": student_x, "label": labels}

    def step() -> float:
        parts = train_step(student, batch, optimizer=optimizer, device=device,
                           amp_dtype=amp_dtype, distiller=distiller, grad_clip=20.0)
        return parts["loss"].item()  # a host sync, as the trainer's logging does

    return step


def main(argv: list[str] | None = None) -> int:
    p = bench_arguments(__doc__.split("\n")[0], rounds=3)
    args = parse_bench_arguments(p, argv)
    t_size, s_size, frames, batch, rounds = ((64, 32, 2, 2, 1) if args.quick
                                             else (224, 112, 8, args.batch, args.rounds))
    device = pick_device("auto")
    mode = fastest_default_mode(device)
    amp = autocast_dtype("auto", device)
    torch.manual_seed(0)
    teacher = freeze(build_model("resnet50", num_classes=200))
    student = build_model("resnet50", num_classes=200)
    teacher_x = torch.randn(batch, frames, 3, t_size, t_size)  # (N, T, C, H, W)
    # the student view is the teacher view resized, as the authors' code makes it
    student_x = F.interpolate(teacher_x.flatten(0, 1), size=(s_size, s_size), mode="bilinear",
                              align_corners=False).unflatten(0, (batch, frames))
    labels = torch.randint(0, 200, (batch,))
    data = dict(teacher_x=teacher_x.to(device), student_x=student_x.to(device),
                labels=labels.to(device), device=device)
    steps = {
        "default": make_step(prepare_model(copy.deepcopy(teacher), device, True),
                             prepare_model(copy.deepcopy(student), device, True),
                             amp_dtype=amp, **data),
        "fp32_nchw": make_step(copy.deepcopy(teacher).to(device), copy.deepcopy(student).to(device),
                               amp_dtype=None, **data),
    }
    for name, step in steps.items():
        start = time.perf_counter()
        step()
        print(f"[kd] warmed up {name} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    rates = interleaved_rates(steps, rounds=rounds, min_seconds=0.0, device=device)
    clips = {name: [r * batch for r in per] for name, per in rates.items()}
    per_round = [d / b for d, b in zip(clips["default"], clips["fp32_nchw"])]
    ratio = statistics.median(per_round)
    ok = ratio >= TARGET
    facts = machine_facts(device, amp)
    shape = {"teacher": [batch, frames, 3, t_size, t_size],
             "student": [batch, frames, 3, s_size, s_size]}
    if args.json:
        print(json.dumps({"mode": mode, "clips_per_s_rounds": clips, "ratio": ratio,
                          "ratio_per_round": per_round, "target": TARGET, "ok": ok,
                          "shape": shape, "machine": facts, "quick": args.quick}, indent=2))
    else:
        print(f"KD step: TSN-R50 teacher {t_size} px -> TSN-R50 student {s_size} px, {frames} "
              f"frames, batch {batch}; {rounds} interleaved rounds; default mode {mode['mode']} "
              f"({mode['precision']}, channels_last) vs fp32 NCHW")
        print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items() if k != "dtype"))
        for name, per in clips.items():
            print(f"  {name:<10}{statistics.median(per):7.3f} clips/s  (rounds: "
                  + ", ".join(f"{v:.3f}" for v in per) + ")")
        verdict = "(not checked: --quick)" if args.quick else ("ok" if ok else "MISSED")
        print(f"clips/s default / fp32 NCHW: {ratio:.2f}x, median of per-round ratios (target >= "
              f"{TARGET}x) {verdict}; per round: " + ", ".join(f"{v:.2f}" for v in per_round))
    return 0 if args.quick or ok else 1


if __name__ == "__main__":
    sys.exit(main())

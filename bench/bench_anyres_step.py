"""Training cost of one any-resolution student against separate students, per step.

Run: .venv/bin/python bench/bench_anyres_step.py [--quick] [--threads N] [--json]

The demo's networks (`reskd study anyres`): the demo's 64 px teacher (random weights: speed
only), students at 16, 24 and 32 px, 2 frames, batch 32, fp32 + channels_last, the product's
`reskd.engine.train.train_step`. Cases: one ResKD student per size (teacher forward + student
step), and one any-resolution student (a BatchNorm per size) trained at all three sizes per
step or at 32 plus one drawn (`distill.sizes_per_step=2`). Timed in interleaved rounds; the
figure is the median over rounds of (any-resolution step time) / (sum of the three separate
step times): the share of the separate students' training compute that one any-resolution
student of the same epochs costs (target < 1). Exits 1 when the target is missed.
"""

from __future__ import annotations

import json
import statistics
import sys

import torch

from reskd.distill.distiller import Distiller, freeze
from reskd.efficiency.benchmark import (
    bench_arguments,
    interleaved_rates,
    machine_facts,
    parse_bench_arguments,
)
from reskd.engine.optim import make_optimizer
from reskd.engine.runtime import prepare_model
from reskd.engine.train import train_step
from reskd.models import build_from_kwargs

DEMO = {"arch": "resnet", "num_classes": 10, "block": "basic", "layers": [1, 1, 1, 1],
        "widths": [16, 32, 64, 128], "stem": "small", "strides": [1, 2, 2, 2], "dropout": 0.0,
        "num_segments": 2}
SIZES, TEACHER, TARGET = (16, 24, 32), 64, 1.0


def make_step(teacher, size: int, *, batch: int, frames: int, others: tuple[int, ...] = (),
              per_step: int = 0):
    """A step of a student at `size` (with `others`: an any-resolution one, BatchNorm per size)."""
    device = torch.device("cpu")
    kwargs = {**DEMO, **({"bn_sizes": sorted({size, *others})} if others else {})}
    student = prepare_model(build_from_kwargs(kwargs), device, True).train()
    optimizer = make_optimizer(student, optimizer="adamw", lr=2e-3, momentum=0.9,
                               nesterov=False, weight_decay=5e-4)
    batch_ = {"student": torch.randn(batch, frames, 3, size, size),  # (N, T, C, H, W)
              "teacher": torch.randn(batch, frames, 3, TEACHER, TEACHER),
              "label": torch.randint(0, 10, (batch,))}
    if others:
        batch_["students"] = {s: torch.randn(batch, frames, 3, s, s) for s in others}
    distiller = Distiller(teacher, student, sizes_per_step=per_step)  # teacher BatchNorm: train

    def step() -> float:
        parts = train_step(student, batch_, optimizer=optimizer, device=device,
                           distiller=distiller, grad_clip=20.0)
        return parts["loss"].item()

    return step


def main(argv: list[str] | None = None) -> int:
    args = parse_bench_arguments(bench_arguments(__doc__.split("\n")[0], rounds=5), argv)
    batch, rounds = (4, 1) if args.quick else (32, args.rounds)
    frames = 2
    torch.manual_seed(0)
    teacher = prepare_model(freeze(build_from_kwargs(DEMO)), torch.device("cpu"), True)
    cases = {f"reskd{s}": make_step(teacher, s, batch=batch, frames=frames) for s in SIZES}
    cases["anyres_all"] = make_step(teacher, 32, batch=batch, frames=frames, others=(16, 24))
    cases["anyres_k2"] = make_step(teacher, 32, batch=batch, frames=frames, others=(16, 24),
                                   per_step=2)
    for step in cases.values():
        step()  # warm-up
    rates = interleaved_rates(cases, rounds=rounds, min_seconds=0.5)
    seconds = {name: [1 / r for r in per] for name, per in rates.items()}
    separate = [sum(seconds[f"reskd{s}"][i] for s in SIZES) for i in range(rounds)]
    ratio = {name: statistics.median(seconds[name][i] / separate[i] for i in range(rounds))
             for name in ("anyres_all", "anyres_k2")}
    ok = ratio["anyres_all"] < TARGET
    facts = machine_facts(torch.device("cpu"), None)
    if args.json:
        print(json.dumps({"seconds_per_step_rounds": seconds, "ratio_to_separate": ratio,
                          "target": TARGET, "ok": ok, "batch": batch, "frames": frames,
                          "sizes": SIZES, "machine": facts, "quick": args.quick}, indent=2))
    else:
        print(f"any-resolution student vs one student per size ({', '.join(map(str, SIZES))} px) "
              f"from a {TEACHER} px teacher; demo networks, batch {batch}, {frames} frames, fp32 "
              f"channels_last, {rounds} interleaved rounds")
        print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
        for name, per in seconds.items():
            print(f"  {name:<11}{statistics.median(per) * 1000:8.1f} ms / step")
        verdict = "(not checked: --quick)" if args.quick else ("ok" if ok else "MISSED")
        print(f"any-resolution step / the three separate steps: all sizes "
              f"{ratio['anyres_all']:.2f}x, 2 per step {ratio['anyres_k2']:.2f}x "
              f"(target < {TARGET}) {verdict}")
    return 0 if args.quick or ok else 1


if __name__ == "__main__":
    sys.exit(main())

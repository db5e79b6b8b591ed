"""`runtime.precision=auto` keeps the faster precision, on a tiny network and on TSN-R50.

Run: .venv/bin/python bench/bench_precision_auto.py [--quick] [--candidates fp32,bf16]
     [--batch N] [--rounds N] [--threads N] [--json]

Two models, both channels_last (the default): the demo's small ResNet (TSN, basic blocks
[1, 1, 1, 1], widths [16, 32, 64, 128], small stem; 2 frames at 32 px, batch 32) and TSN-R50
(8 frames at 112 px, batch `--batch`, 4 by default). For each, every candidate precision's
training step (the product's `reskd.engine.train.train_step`: forward, CE, backward, SGD step)
is timed on its own copy of the weights, in interleaved rounds (median clips/s per candidate);
then `reskd.engine.runtime.pick_precision` picks on a fresh copy, with an empty cache, as a
training run with `runtime.precision=auto` does (with this script's `--rounds`, 3, where a run
uses 5). Faster means a higher median of per-round ratios of train_step clips/s; the pick is
right when its step is the faster one, or within 3% of it (a tie). Candidates:
`--candidates`, else the device's own (`precision_candidates`: one alone, fp32, on a CPU
without native bf16, where nothing is picked). Exits 1 when a pick is wrong. --quick: the
tiny model at 16 px, batch 4 and TSN-R50 at 2 frames of 32 px, batch 2, one round; the verdict
is not checked.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from reskd.efficiency.benchmark import (
    bench_arguments,
    cpu_flags,
    interleaved_rates,
    machine_facts,
    parse_bench_arguments,
)
from reskd.engine.optim import make_optimizer
from reskd.engine.runtime import (
    autocast_dtype,
    per_round_ratio,
    pick_device,
    pick_precision,
    precision_candidates,
    precision_name,
    prepare_model,
)
from reskd.engine.train import train_step
from reskd.models import build_model

TIE = 0.03  # a pick within 3% of the faster step's clips/s counts as right
TINY = dict(arch="resnet", block="basic", layers=(1, 1, 1, 1), widths=(16, 32, 64, 128),
            stem="small")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def step_rates(model: torch.nn.Module, shape: tuple[int, ...], candidates: list,
               device: torch.device, *, rounds: int) -> dict[str, list[float]]:
    """Clips/s per round of the product's training step in each candidate precision, each on
    its own copy of `model`, interleaved in rounds after one warm-up step each."""
    x = torch.randn(*shape, device=device)  # (N, T, C, H, W)
    labels = torch.randint(0, 10, (shape[0],), device=device)
    steps = {}
    for dtype in candidates:
        m = copy.deepcopy(model).train()
        optimizer = make_optimizer(m, optimizer="sgd", lr=1e-3, momentum=0.9, nesterov=True,
                                   weight_decay=1e-4)

        def step(m=m, optimizer=optimizer, dtype=dtype) -> float:
            parts = train_step(m, {"student": x, "label": labels}, optimizer=optimizer,
                               device=device, amp_dtype=dtype)
            return parts["loss"].item()  # a host sync, as the trainer's logging does

        steps[precision_name(dtype)] = step
    for s in steps.values():
        s()
    rates = interleaved_rates(steps, rounds=rounds, min_seconds=0.5, device=device)
    return {name: [r * shape[0] for r in per] for name, per in rates.items()}


def check_one(name: str, model: torch.nn.Module, shape: tuple[int, ...], candidates: list,
              device: torch.device, *, rounds: int) -> dict:
    """Times the candidates' training steps, lets `pick_precision` pick, judges the pick."""
    start = time.perf_counter()
    clips = step_rates(model, shape, candidates, device, rounds=rounds)
    timed_s = time.perf_counter() - start
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        kept = pick_precision(copy.deepcopy(model), shape, device, candidates=candidates,
                              rounds=rounds, cache_path=Path(cache) / "precision.json",
                              log=lines.append)
        pick_s = time.perf_counter() - start
    median = {n: statistics.median(v) for n, v in clips.items()}
    score = {n: per_round_ratio(clips, n) for n in clips}  # robust to load between rounds
    fastest = max(score, key=score.get)
    picked = precision_name(kept)
    ratio = score[picked] / score[fastest]
    return {"model": name, "shape": list(shape), "clips_per_s": median,
            "clips_per_s_rounds": clips, "ratio_to_first": score, "fastest": fastest,
            "picked": picked, "picked_vs_fastest": ratio, "ok": ratio >= 1 - TIE,
            "pick_log": lines, "timing_s": round(timed_s, 1), "pick_s": round(pick_s, 1)}


def main(argv: list[str] | None = None) -> int:
    p = bench_arguments(__doc__.split("\n")[0], rounds=3)
    p.add_argument("--candidates", default="",
                   help="comma-separated precisions to choose from, e.g. fp32,bf16 (default: "
                        "the device's own, runtime.precision_candidates)")
    args = parse_bench_arguments(p, argv)
    device = pick_device("auto")
    names = [c for c in args.candidates.split(",") if c]
    candidates = ([autocast_dtype(c, device) for c in names] if names
                  else precision_candidates(device))
    tiny_px, tiny_batch, r50_frames, r50_px, r50_batch, rounds = (
        (16, 4, 2, 32, 2, 1) if args.quick else (32, 32, 8, 112, args.batch, args.rounds))
    torch.manual_seed(0)
    cases = [
        ("tiny resnet", build_model(num_classes=10, num_segments=2, **TINY),
         (tiny_batch, 2, 3, tiny_px, tiny_px)),
        ("TSN-R50", build_model("resnet50", num_classes=10, num_segments=r50_frames),
         (r50_batch, r50_frames, 3, r50_px, r50_px)),
    ]
    facts = {**machine_facts(device, None),
             "cpu_flags": " ".join(f for f, on in cpu_flags(CPU_FLAGS).items() if on) or "-"}
    facts.pop("dtype")
    results = [check_one(name, prepare_model(model, device, True), shape, candidates, device,
                         rounds=rounds) for name, model, shape in cases]
    ok = all(r["ok"] for r in results)
    if args.json:
        print(json.dumps({"candidates": [precision_name(c) for c in candidates],
                          "results": results, "tie": TIE, "ok": ok, "machine": facts,
                          "quick": args.quick}, indent=2))
    else:
        print(f"precision auto: training steps per candidate "
              f"({', '.join(precision_name(c) for c in candidates)}), channels_last, "
              f"{rounds} interleaved rounds, then pick_precision with an empty cache")
        print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
        for r in results:
            rates = ", ".join(f"{n} {v:.2f}" for n, v in r["clips_per_s"].items())
            verdict = "ok" if r["ok"] else "WRONG"
            first = next(iter(r["ratio_to_first"]))
            ratios = ", ".join(f"{n}/{first} {v:.2f}x" for n, v in r["ratio_to_first"].items()
                               if n != first)
            ratios = f" ({ratios}, median of per-round ratios)" if ratios else ""
            print(f"  {r['model']} {r['shape']}: train_step clips/s {rates}{ratios}; faster "
                  f"{r['fastest']}, picked {r['picked']} ({r['picked_vs_fastest']:.2f}x the "
                  f"faster) {verdict}; {r['timing_s']} s timing, {r['pick_s']} s picking")
            for line in r["pick_log"]:
                print(f"    {line}")
        tail = "(not checked: --quick)" if args.quick else ("ok" if ok else "WRONG")
        print(f"picks within {TIE:.0%} of the faster step: {tail}")
    return 0 if args.quick or ok else 1


if __name__ == "__main__":
    sys.exit(main())

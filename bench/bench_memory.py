"""Memory stays flat over a long run: train many epochs in one process and watch its RSS.

Run: .venv/bin/python bench/bench_memory.py [--epochs 12] [--num-train 256] [--out DIR]

Trains the demo's student recipe (reskd.experiments.demo.demo_config: small ResNet, 4 frames at
32 px, batch 32, decoded videos cached in memory, AdamW one-cycle) on the embedded synthetic
videos, with loader workers off so every byte lives in this process. After each epoch the
trainer records the process's resident memory (VmRSS) and peak (VmHWM) in metrics.jsonl; this
script prints them per epoch, and the growth from epoch 2 (the decode cache is full after epoch
1) to the last epoch as a ratio. Target: < 1.05 for both. Exits 1 when a ratio is over the
target. Results, with the machine facts, go to OUT/bench_memory.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 1.05


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--num-train", type=int, default=256, help="synthetic training videos")
    p.add_argument("--out", default="", help="folder for data, run and results (default: temp)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.epochs < 3:
        p.error("--epochs must be at least 3 (growth is measured from epoch 2)")

    import torch

    from reskd.data.synth import make_synth_dataset
    from reskd.efficiency.benchmark import machine_facts
    from reskd.engine.runtime import autocast_dtype, pick_device
    from reskd.experiments.demo import STUDENT_SIZE, demo_config
    from reskd.runs import run_train

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="reskd-bench-memory-"))
    start = time.perf_counter()
    data = make_synth_dataset(out / "data", seed=args.seed, num_train=args.num_train, num_val=32)
    cfg = demo_config(data, out / "run", size=STUDENT_SIZE, epochs=args.epochs, seed=args.seed)
    cfg.data.workers = 0  # everything in this process, so its RSS is the whole story
    cfg.data.val_list = ""
    cfg.runtime.progress = False
    run_train(cfg, distill=False, log=lambda _: None)
    records = [json.loads(x) for x in (out / "run" / "metrics.jsonl").read_text().splitlines()]

    device = pick_device(cfg.runtime.device)
    facts = machine_facts(device, autocast_dtype(cfg.runtime.precision, device))
    frames = cfg.data.num_segments
    setup = {"batch": cfg.data.batch_size, "shape": [cfg.data.batch_size, frames, 3,
                                                      cfg.data.size, cfg.data.size],
             "num_train": args.num_train, "epochs": args.epochs, "workers": 0,
             "cache_decoded": cfg.data.cache_decoded, "arch": cfg.model.arch,
             "widths": list(cfg.model.widths)}
    print(f"reskd memory benchmark: {args.epochs} epochs x {args.num_train} videos, batch "
          f"{setup['batch']}, input {tuple(setup['shape'])}, workers 0, decoded-video cache on")
    print(f"machine: {facts}")
    print(f"{'epoch':>5} {'rss_mb':>9} {'peak_rss_mb':>12} {'seconds':>8}")
    for r in records:
        print(f"{r['epoch']:>5} {r['rss_mb']:>9.1f} {r['peak_rss_mb']:>12.1f} {r['seconds']:>8.1f}")
    rss_ratio = records[-1]["rss_mb"] / records[1]["rss_mb"]
    peak_ratio = records[-1]["peak_rss_mb"] / records[1]["peak_rss_mb"]
    ok = rss_ratio < TARGET_RATIO and peak_ratio < TARGET_RATIO
    print(f"growth epoch {args.epochs} / epoch 2: rss x{rss_ratio:.4f}, peak x{peak_ratio:.4f} "
          f"(target < {TARGET_RATIO}) -> {'flat' if ok else 'GROWING'}")
    result = {"per_epoch": [{k: r[k] for k in ("epoch", "rss_mb", "peak_rss_mb", "seconds")}
                            for r in records],
              "rss_ratio_last_over_epoch2": rss_ratio, "peak_ratio_last_over_epoch2": peak_ratio,
              "target_ratio": TARGET_RATIO, "ok": ok, "setup": setup, "machine": facts,
              "torch_threads": torch.get_num_threads(),
              "seconds": time.perf_counter() - start}
    (out / "bench_memory.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'bench_memory.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

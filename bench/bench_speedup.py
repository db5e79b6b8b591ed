"""Resolution speed-up of TSN-R50 (16 frames) inference in the default mode, as in Table 4.

Run: .venv/bin/python bench/bench_speedup.py [--quick] [--batch 4] [--threads N] [--json]

Times 224, 112 and 56 px clips of 16 frames in the default mode (channels_last + the precision
`runtime.precision=auto` picks here), interleaved in rounds so that every size sees the same
machine load, and prints videos/s at 112 / at 224 (target >= 3.8x, the GMACs ratio 65.9 / 17.4)
and at 56 / at 224 (target >= 13.7x, 65.9 / 4.8); each figure is the median of the per-round
ratios. The paper's V100 at batch 64 reached 3.3x and
8.0x. Exits 1 when a target is missed. --quick: 4 frames, batch 1, one round; prints the ratios
but checks no target (a smoke run, well under a minute).
"""

from __future__ import annotations

import json
import statistics
import sys

from reskd.efficiency.benchmark import (
    bench_arguments,
    bench_report,
    fastest_default_mode,
    parse_bench_arguments,
)
from reskd.engine.runtime import pick_device

TARGETS = {112: 3.8, 56: 13.7}  # videos/s at size / videos/s at 224


def main(argv: list[str] | None = None) -> int:
    p = bench_arguments(__doc__.split("\n")[0], rounds=4)
    args = parse_bench_arguments(p, argv)
    frames, batch, rounds = (4, 1, 1) if args.quick else (16, args.batch, args.rounds)
    device = pick_device("auto")
    mode = fastest_default_mode(device)
    rows = bench_report(model_name="resnet50", sizes=[224, 112, 56], frames=frames, batch=batch,
                        modes=[mode["mode"]], device=device, num_classes=200, warmup=1,
                        rounds=rounds, min_seconds=0.0 if args.quick else 1.0,
                        log=lambda m: print(m, file=sys.stderr))
    by_size = {r["size"]: r for r in rows}
    base = by_size[224]
    facts = {k: base[k] for k in ("device", "dtype", "threads", "cpus", "cpu_native_bf16",
                                  "torch", "load_avg_1m", "date")}
    results = []
    for size, target in TARGETS.items():
        r = by_size[size]
        # Rounds are paired in time (each round times every size within a short window), so
        # the median of per-round ratios is the figure least moved by other jobs' load.
        per_round = [a / b for a, b in zip(r["videos_per_s_rounds"], base["videos_per_s_rounds"])]
        ratio = statistics.median(per_round)
        results.append({"size": size, "ratio": ratio, "ratio_per_round": per_round,
                        "ratio_of_medians": r["videos_per_s"] / base["videos_per_s"],
                        "target": target, "ok": ratio >= target})
    failed = [r for r in results if not r["ok"]]
    if args.json:
        print(json.dumps({"mode": mode, "rows": rows, "results": results, "machine": facts,
                          "quick": args.quick}, indent=2))
    else:
        print(f"TSN-R50, {frames} frames, batch {batch}, default mode {mode['mode']} "
              f"({mode['precision']}, channels_last); median of {rounds} interleaved rounds")
        print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
        for size in (224, 112, 56):
            r = by_size[size]
            print(f"  {size:>3} px: {r['videos_per_s']:8.3f} videos/s  (rounds: "
                  + ", ".join(f"{v:.3f}" for v in r["videos_per_s_rounds"]) + ")")
        for r in results:
            verdict = "(not checked: --quick)" if args.quick else ("ok" if r["ok"] else "MISSED")
            print(f"videos/s at {r['size']} / at 224: {r['ratio']:.2f}x, median of per-round "
                  f"ratios (target >= "
                  f"{r['target']}x) {verdict}; per round: "
                  + ", ".join(f"{v:.2f}" for v in r["ratio_per_round"]))
    return 0 if args.quick or not failed else 1


if __name__ == "__main__":
    sys.exit(main())

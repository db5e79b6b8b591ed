"""The default mode against the fastest inference mode, TSN-R50 at 112 px (16 frames).

Run: .venv/bin/python bench/bench_default_mode.py [--quick] [--no-compile] [--threads N] [--json]

Times fp32 (NCHW), channels_last (fp32), bf16 autocast (+channels_last) and torch.compile (of
the channels_last model, default precision) on the same weights, interleaved in rounds, and
checks that the default mode (`runtime.precision=auto` + `runtime.channels_last=true`, see
reskd.efficiency.benchmark.fastest_default_mode) runs at >= 90% of the fastest one. Each mode's
figure is the median of its per-round videos/s; the verdict uses the median of per-round
ratios default / fastest. Also timed, outside the verdict: `fold_bn` (channels_last with every
BatchNorm folded into its convolution, an eager inference fast path that needs no compile).
Exits 1 when the target is missed. --quick: 4 frames, batch 1, one round, no compile; targets
are not checked.
"""

from __future__ import annotations

import json
import statistics
import sys

from reskd.efficiency.benchmark import (
    bench_arguments,
    bench_report,
    default_vs_fastest,
    fastest_default_mode,
    parse_bench_arguments,
)
from reskd.engine.runtime import pick_device

TARGET = 0.90  # default videos/s >= 90% of the fastest mode's


def main(argv: list[str] | None = None) -> int:
    p = bench_arguments(__doc__.split("\n")[0], rounds=4)
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    p.add_argument("--size", type=int, default=112)
    args = parse_bench_arguments(p, argv)
    frames, batch, rounds = (4, 1, 1) if args.quick else (16, args.batch, args.rounds)
    modes = ["fp32", "channels_last", "bf16"]
    device = pick_device("auto")
    mode = fastest_default_mode(device)
    if device.type == "cuda":
        modes.append("fp16")
    if not (args.quick or args.no_compile):
        modes.append("compile")
    modes.append("fold_bn")  # the default on CPUs without native bf16 (inference paths)
    verdict_modes = list(modes)
    rows = bench_report(model_name="resnet50", sizes=[args.size], frames=frames, batch=batch,
                        modes=modes, device=device, num_classes=200, warmup=1, rounds=rounds,
                        min_seconds=0.0 if args.quick else 1.0,
                        log=lambda m: print(m, file=sys.stderr))
    summary = default_vs_fastest([r for r in rows if r["mode"] in verdict_modes],
                                 tolerance=1 - TARGET)[0]
    timed = {r["mode"]: r for r in rows if r["videos_per_s"]}
    default = timed[mode["mode"]]
    per_round = {name: [d / o for d, o in zip(default["videos_per_s_rounds"],
                                             r["videos_per_s_rounds"])]
                 for name, r in timed.items()}
    # the verdict: default / fastest, the fastest by median videos/s, ratio paired per round
    ratio = statistics.median(per_round[summary["fastest_mode"]])
    fold_ratio = None
    if "fold_bn" in timed:
        fold_ratio = statistics.median(
            f / o for f, o in zip(timed["fold_bn"]["videos_per_s_rounds"],
                                  timed[summary["fastest_mode"]]["videos_per_s_rounds"]))
    ok = ratio >= TARGET
    facts = {k: default[k] for k in ("device", "threads", "cpus", "cpu_native_bf16", "torch",
                                     "load_avg_1m", "date")}
    if args.json:
        print(json.dumps({"mode": mode, "rows": rows, "summary": summary, "ratio": ratio,
                          "fold_bn_vs_fastest": fold_ratio,
                          "target": TARGET, "ok": ok, "machine": facts, "quick": args.quick},
                         indent=2))
    else:
        print(f"TSN-R50 at {args.size} px, {frames} frames, batch {batch}; median of {rounds} "
              f"interleaved rounds; default mode: {mode['mode']} ({mode['why']})")
        print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
        for r in rows:
            vps = r["videos_per_s"]
            extra = f", compile {r['compile_s']:.0f} s" if r["compile_s"] else ""
            rel = (f"default / this: {statistics.median(per_round[r['mode']]):.2f}"
                   if r["mode"] in per_round else "")
            print(f"  {r['mode']:<14}{r['dtype']:<6}"
                  + (f"{vps:8.3f} videos/s  {rel}{extra}" if vps else f"   not timed: {r['note']}"))
        verdict = "(not checked: --quick)" if args.quick else ("ok" if ok else "MISSED")
        print(f"default ({mode['mode']}) / fastest of {', '.join(verdict_modes)} "
              f"({summary['fastest_mode']}): {ratio:.2f} (target >= {TARGET:.2f}) {verdict}")
        if fold_ratio is not None:
            print(f"outside the verdict: fold_bn / {summary['fastest_mode']}: "
                  f"{fold_ratio:.2f} (what the default would reach with BatchNorm "
                  f"folding for inference)")
    return 0 if args.quick or ok else 1


if __name__ == "__main__":
    sys.exit(main())

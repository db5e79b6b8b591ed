"""ResKD's effect in the demo: top-1 of the ResKD student minus the baseline student, over seeds.

Runs the full `reskd demo` once per seed (about 12 minutes each on a quiet 2-core CPU) and
prints each seed's teacher / baseline / ResKD top-1, the margin (ResKD - baseline) per seed,
their mean, and the machine facts. Target: mean margin >= 5 top-1 points (exit 1 otherwise).

    .venv/bin/python bench/bench_demo_margin.py --seeds 0,1 --out runs/bench_demo
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--out", default="runs/bench_demo")
    p.add_argument("--target", type=float, default=5.0)
    args = p.parse_args()
    from reskd.experiments.demo import run_demo

    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        r = run_demo(Path(args.out) / f"seed{seed}", seed=seed, log=lambda *_: None)
        rows.append({"seed": seed, **{k: r[k]["top1"] for k in ("teacher", "baseline", "reskd")},
                     "margin": r["reskd"]["top1"] - r["baseline"]["top1"],
                     "minutes": r["seconds"] / 60, "machine": r["machine"]})
        print(f"seed {seed}: teacher {rows[-1]['teacher']:.1f}  baseline {rows[-1]['baseline']:.1f}"
              f"  ResKD {rows[-1]['reskd']:.1f}  margin {rows[-1]['margin']:+.1f}  "
              f"({rows[-1]['minutes']:.1f} min)", flush=True)
    margins = [r["margin"] for r in rows]
    mean = statistics.mean(margins)
    spread = statistics.stdev(margins) if len(margins) > 1 else 0.0
    print(f"mean margin (ResKD - baseline top-1) over {len(rows)} seeds: {mean:+.2f} "
          f"(+/- {spread:.2f}); target >= {args.target:+.1f}")
    print("machine:", json.dumps(rows[0]["machine"]))
    (Path(args.out) / "margin.json").write_text(json.dumps({"rows": rows, "mean_margin": mean,
                                                            "stdev": spread}, indent=2))
    return 0 if mean >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())

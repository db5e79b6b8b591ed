"""Which loss for a teacher and a student whose feature maps differ (issue: cross-family KD).

At demo scale (the demo's data and recipe, `reskd.experiments.demo.demo_overrides`): a teacher
at 64 px whose last map has 128 channels (the demo's teacher, `reskd demo` writes it) and a
narrower student at 32 px (widths 8-16-32-64: a 64-channel map, so feature KD cannot compare
the maps as they are). Per seed, four students on the same views (the teacher's 64 px crop
shrunk):

- `baseline`: cross-entropy only;
- `clip_kd`: clip-level logit KD (KL at T = 4, weight 1), no feature KD;
- `pixel_logit_kd`: pixel-level logit KD (the teacher's classifier on each map position, KL at
  T = 4, weight 500 as the paper's Swin pair), no feature KD;
- `feature_kd_conv`: feature KD (alpha 100) through the learned 1x1 connector
  (`distill.connector=conv`).

Prints mean ± std (sample) of validation top-1 per variant over the seeds, with the per-seed
values and the machine facts; finished runs are reused.

    .venv/bin/python bench/bench_cross_family.py --teacher runs/demo/teacher/model.pt \\
        --data runs/demo/data --out runs/bench_cross_family --seeds 0,1
    .venv/bin/python bench/bench_cross_family.py --config bench/defaults/textures.yaml \\
        --teacher runs/textures_teacher/model.pt --data runs/textures_data \\
        --out runs/bench_cross_family_textures --seeds 0,1

The second needs the texture videos (`reskd data synth --kind textures --out
runs/textures_data`) and their teacher (`reskd train bench/defaults/textures.yaml --set
data.root=runs/textures_data --set runtime.out=runs/textures_teacher`: 64 px, 128 channels).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from reskd.config import load_config
from reskd.efficiency.benchmark import cpu_flags
from reskd.engine.runtime import device_name
from reskd.experiments.demo import demo_overrides
from reskd.runs import run_train

STUDENT = ("model.widths=[8,16,32,64]",)
VARIANTS = {
    "baseline": (),
    "clip_kd": ("distill.alpha=0", "distill.clip_kd=1", "distill.temperature=4"),
    "pixel_logit_kd": ("distill.alpha=0", "distill.pixel_logit_kd=500",
                       "distill.temperature=4"),
    "feature_kd_conv": ("distill.alpha=100", "distill.connector=conv"),
}


def run_variant(name: str, *, seed: int, data: Path, teacher: Path, out: Path, epochs: int,
                config: Path | None = None) -> dict:
    folder = out / f"{name}_s{seed}"
    done = folder / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    recipe = (demo_overrides({"root": str(data)}, folder, size=32, epochs=epochs, seed=seed)
              if config is None else
              [f"data.root={data}", "data.size=32", "data.crop_size=64",
               f"runtime.out={folder}", f"runtime.seed={seed}"])
    overrides = [*recipe, *STUDENT, "runtime.progress=false", "runtime.tensorboard=false"]
    distill = name != "baseline"
    if distill:
        overrides += [f"distill.teacher={teacher}", *VARIANTS[name]]
    result = run_train(load_config(config, overrides), distill=distill, log=lambda _: None)
    record = {"top1": result["val"]["top1"], "seed": seed, "variant": name}
    done.write_text(json.dumps(record) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--teacher", type=Path, required=True, help="the 64 px teacher's model.pt")
    p.add_argument("--data", type=Path, required=True, help="the demo's data folder")
    p.add_argument("--out", type=Path, default=Path("runs/bench_cross_family"))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--epochs", type=int, default=12, help="the demo recipe's epochs")
    p.add_argument("--config", type=Path, default=None,
                   help="the data's own recipe (e.g. bench/defaults/textures.yaml, its epochs); "
                        "default: the demo's")
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {}
    for name in args.variants.split(","):
        tops = [run_variant(name, seed=s, data=args.data, teacher=args.teacher, out=args.out,
                            epochs=args.epochs, config=args.config)["top1"] for s in seeds]
        spread = statistics.stdev(tops) if len(tops) > 1 else 0.0
        rows[name] = (statistics.mean(tops), spread, tops)
        print(f"{name:16s} {rows[name][0]:5.1f} ± {spread:4.1f}  "
              f"({', '.join(f'{t:.1f}' for t in tops)})", flush=True)
    flags = cpu_flags(["avx2", "avx512_bf16", "amx_tile"])
    epochs = (load_config(args.config).optim.epochs if args.config is not None
              else args.epochs)
    print(f"machine: {device_name('cpu')}, {flags}; seeds {seeds}, {epochs} epochs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

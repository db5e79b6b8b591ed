"""`reskd demo`: the whole ResKD story on the embedded synthetic videos, in minutes on a CPU.

1. write the synthetic MNIST-over-photos MP4 dataset (`reskd data synth`);
2. train the teacher at 64 px (the demo's "high resolution");
3. train the baseline student at 32 px with cross-entropy only;
4. distil the ResKD student at 32 px from the teacher (feature KD, alpha 100);
   both students see the same views, in training and testing: the 64 px crop shrunk to 32 px
   with data.shrink (`data.crop_size=64`), so the two differ only in the KD;
5. test all three on the validation videos (every epoch, for the curves), measure GMACs per
   video and videos/s, and write `report.md` and `compare.png` (`reskd compare` of the three
   runs: the table and the validation and loss curves), `results.json` and the runs' folders.

Scale: a small ResNet (basic blocks [1, 1, 1, 1], widths 16-128, 3x3 stride-2 stem, no
max-pool; total stride 16) so the last map is 4x4 for the teacher and 2x2 for the student.
With a stride-32 network at 32 px the student map is 1x1 and feature KD cannot carry spatial
hints (an upsampled 1x1 map is constant). The config written for each run is in its folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from reskd.config import Config, load_config

TEACHER_SIZE, STUDENT_SIZE = 64, 32


def demo_overrides(data: dict, out: Path, *, size: int, epochs: int, seed: int) -> list[str]:
    """The demo's recipe as config overrides: AdamW 2e-3, wd 5e-4, one warm-up epoch then
    cosine, batch 32, 2 TSN segments per clip (the 8-frame clips are near-duplicates frame to
    frame; 2 halve the cost). `reskd study` builds its demo-scale runs on it too."""
    return [
        f"data.root={data['root']}", "data.train_list=train.txt", "data.val_list=val.txt",
        "data.classes=classes.txt", "data.num_segments=2", f"data.size={size}",
        # both students shrink the teacher's 64 px crop: they differ only in the KD
        f"data.crop_size={TEACHER_SIZE}",
        "data.short_side_ratio=1.0", "data.crop_scales=[1.0]", "data.flip=false",
        # every video decoded once into memory; no loader workers: transforming a cached
        # 64 px clip is cheap, and both cores go to the model (276 vs 180 clips/s measured)
        "data.batch_size=32", "data.cache_decoded=true", "data.workers=0",
        "model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
        "model.widths=[16,32,64,128]", "model.stem=small", "model.strides=[1,2,2,2]",
        "model.dropout=0.0",
        "optim.optimizer=adamw", "optim.lr=0.002", "optim.weight_decay=0.0005",
        "optim.schedule=cosine", "optim.warmup_epochs=1", f"optim.epochs={epochs}",
        "optim.grad_clip=20",
        # validating the 1,000 cached clips takes about a second: every epoch, for the curves
        "runtime.val_every=1",
        f"runtime.out={out}", f"runtime.seed={seed}",
    ]


def demo_config(data: dict, out: Path, *, size: int, epochs: int, seed: int) -> Config:
    return load_config(None, demo_overrides(data, out, size=size, epochs=epochs, seed=seed))


def run_demo(out: Path, *, quick: bool = False, seed: int = 0, log=print) -> dict:
    """Runs the demo into `out`; returns the results dict also written to results.json."""
    from reskd.analysis.compare import compare_runs, record_speed
    from reskd.data.synth import make_synth_dataset
    from reskd.efficiency.benchmark import machine_facts, videos_per_s
    from reskd.engine.runtime import autocast_dtype, pick_device, prepare_model
    from reskd.models import load_model_checkpoint
    from reskd.runs import run_train

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = dict(num_train=256, num_val=128) if quick else {}
    epochs = 2 if quick else 12
    log(f"[demo] 1/5 writing the synthetic video dataset into {out / 'data'}")
    data = make_synth_dataset(out / "data", seed=seed, **sizes)
    runs = {
        "teacher": (TEACHER_SIZE, False),
        "baseline": (STUDENT_SIZE, False),
        "reskd": (STUDENT_SIZE, True),
    }
    results: dict = {}
    for step, (name, (size, distill)) in enumerate(runs.items(), start=2):
        cfg = demo_config(data, out / name, size=size, epochs=epochs, seed=seed)
        if distill:
            cfg.distill.teacher = results["teacher"]["checkpoint"]
        what = {"teacher": f"training the teacher at {size}px",
                "baseline": f"training the baseline student at {size}px (cross-entropy only)",
                "reskd": f"distilling the ResKD student at {size}px from the {TEACHER_SIZE}px "
                         f"teacher"}[name]
        log(f"[demo] {step}/5 {what}")
        run = run_train(cfg, distill=distill, log=log)
        results[name] = {"top1": run["val"]["top1"], "size": size, "checkpoint": run["model"]}

    log("[demo] 5/5 measuring GMACs per video and throughput")
    device = pick_device("auto")
    amp = autocast_dtype("auto", device)
    for r in results.values():
        model, ckpt = load_model_checkpoint(r["checkpoint"])
        model = prepare_model(model, device, channels_last=True, inference=True)
        r["gmacs"] = ckpt["gmacs"]
        r["videos_per_s"] = videos_per_s(model, frames=ckpt["frames"], size=r["size"], batch=32,
                                         device=device, amp_dtype=amp, min_seconds=1.0)
        r["top5"] = ckpt["metrics"].get("top5")
    facts = {**machine_facts(device, amp), "batch": 32}
    for name, r in results.items():
        record_speed(out / name, r["videos_per_s"], facts)
    table = compare_runs([out / name for name in runs], out)["table"]
    report = format_report(results, table, facts, quick=quick,
                           seconds=time.perf_counter() - start, seed=seed)
    (out / "report.md").write_text(report)
    payload = {**results, "machine": facts, "quick": quick, "seed": seed,
               "seconds": time.perf_counter() - start}
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    log(report)
    log(f"[demo] wrote {out / 'report.md'}, {out / 'compare.png'} and {out / 'results.json'}")
    return payload


def format_report(results: dict, table: list[str], facts: dict, *, quick: bool,
                  seconds: float, seed: int) -> str:
    """The demo's report: `reskd compare`'s table of the teacher, baseline and ResKD runs, and
    what the KD bought."""
    gain = results["reskd"]["top1"] - results["baseline"]["top1"]
    return "\n".join([
        f"# reskd demo{' (quick: accuracy is not meaningful)' if quick else ''}", "", *table, "",
        f"ResKD student vs baseline student at the same cost: {gain:+.1f} top-1 points.",
        f"Seed {seed}; {seconds / 60:.1f} min in all; throughput on {facts['device']}, "
        f"{facts['dtype']}, {facts['threads']} threads, batch 32, torch {facts['torch']}. "
        f"Curves: compare.png.", ""])

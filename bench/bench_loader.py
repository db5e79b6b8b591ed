"""Does the demo's data loader keep up with the demo's training step?

Run: .venv/bin/python bench/bench_loader.py [--quick] [--num-train N] [--json]

Writes a small synthetic dataset (reskd.data.synth.make_synth_dataset, the demo's data), builds
each demo run's config (reskd.experiments.demo.demo_config: teacher at 64 px, baseline at
32 px, ResKD student at 32 px with a 64 px teacher) and its training loader with the functions
`reskd train` / `reskd distill` use (reskd.runs.make_dataset + reskd.runs.make_train_loader:
batch 32, data.workers -1 = one worker per spare core, decoded videos cached). Then, per run,
in interleaved rounds:

* loader clips/s: one whole epoch through the loader, timed from `iter(loader)` to the last
  batch, nothing else running (the first, decoding epoch is timed apart as `cold`; the demo
  runs 15 epochs, so the cached epochs are the steady state);
* step clips/s: the product's training step (reskd.engine.train.train_step: forward, loss,
  backward, grad clip, AdamW) on a real batch in the run's mode (channels_last + auto
  precision), with torch threads set as the trainer sets them
  (reskd.engine.runtime.share_cpu_with_workers).

The figure is loader clips/s / step clips/s, the median of per-round ratios, for every run;
the target (>= 1.5x) applies to the lowest. The first, decoding epoch is reported as
`cold epoch loader / step` without a target (the demo's first of 15 epochs). Exits 1 when the
target is missed. --quick: 64 clips, one
round; the target is not checked.

--paper: the paper's shape instead (16 segments, teacher view 224 and student view 112 from one
224 crop, as `reskd distill` with configs/table1_activitynet_r50_reskd112.yaml) on the long
clips of bench/bench_decode.py (2 minutes of 1280x720 H.264, a keyframe every 60 or every 250
frames; written into --data or reused from it) and their prepared copies (`reskd data
prepare`). Per route: loader videos/s over --paper-videos videos with the machine's workers
(`default_workers()`), the loader's videos/s per worker, and videos/s of one KD step here
(R152 teacher at 224 -> R50 student at 112, 16 frames, batch 1, the product's `train_step`).
From the paper's V100 throughput (Table 4: R50 at 224 78.7, at 112 262.8 videos/s, batch 64) a
KD step there consumes about 1 / (R152/R50 GMACs at 224 / 78.7 + 3 / 262.8) videos/s (teacher
forward; student forward + backward taken as 3 forwards); dividing by the per-worker rate
gives the workers per GPU each route needs. No target: the figures size a machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

TARGET = 1.5  # loader clips/s / step clips/s


def build_run(data: dict, out: Path, *, name: str, size: int, teacher_size: int | None):
    """(loader, step function, thread setter, config) of one demo run."""
    from reskd.distill.distiller import freeze, set_teacher_mode
    from reskd.engine.optim import make_optimizer
    from reskd.engine.runtime import (
        autocast_dtype,
        pick_device,
        prepare_model,
        share_cpu_with_workers,
    )
    from reskd.engine.train import train_step
    from reskd.experiments.demo import demo_config
    from reskd.models import build_from_kwargs
    from reskd.runs import distiller_for, make_dataset, make_train_loader, model_kwargs

    cfg = demo_config(data, out / name, size=size, epochs=15, seed=0)
    num_classes = len(data["classes"])
    sizes = (teacher_size, size) if teacher_size else (size,)
    dataset = make_dataset(cfg, "train_list", train=True, sizes=sizes, num_classes=num_classes,
                           log=lambda m: print(m, file=sys.stderr))
    loader = make_train_loader(cfg, dataset)
    device = pick_device(cfg.runtime.device)
    amp = autocast_dtype(cfg.runtime.precision, device)
    kwargs = model_kwargs(cfg, num_classes)
    model = prepare_model(build_from_kwargs(kwargs), device, cfg.runtime.channels_last).train()
    teacher = None
    if teacher_size:
        teacher = prepare_model(freeze(build_from_kwargs(kwargs)), device,
                                cfg.runtime.channels_last)
        set_teacher_mode(teacher, cfg.distill.teacher_bn)
    o = cfg.optim
    optimizer = make_optimizer(model, optimizer=o.optimizer, lr=o.lr, momentum=o.momentum,
                               nesterov=o.nesterov, weight_decay=o.weight_decay,
                               bias_lr_mult=o.bias_lr_mult, backbone_lr_mult=o.backbone_lr_mult,
                               no_decay_names=o.no_decay_names)
    batch = next(iter(loader))
    distiller = distiller_for(cfg, teacher, model) if teacher is not None else None

    def step() -> float:  # the views are made on the device from the uint8 crops, as train()
        views = {**batch, **dataset.views.views_of(batch["clip"].to(device))}
        parts = train_step(model, views, optimizer=optimizer, device=device, amp_dtype=amp,
                           distiller=distiller, grad_clip=o.grad_clip)
        return parts["loss"].item()

    def threads() -> None:
        share_cpu_with_workers(device, loader.num_workers)

    return loader, step, threads, cfg


def time_epoch(loader, epoch: int) -> tuple[float, int]:
    """(seconds, clips) of one epoch through the loader, from iter() to the last batch."""
    loader.sampler.set_epoch(epoch)
    start, clips = time.perf_counter(), 0
    for batch in loader:
        clips += batch["label"].shape[0]
    return time.perf_counter() - start, clips


def paper_shape(data: Path, *, videos: int, quick: bool) -> dict:
    """The --paper measurement (see the module docstring). -> printable results."""
    import os

    from bench_decode import SHORT_SIDE, write_clip
    from bench_kd_step import make_step

    from reskd.data.datasets import VideoDataset, default_workers, make_loader
    from reskd.data.extract import prepare_video
    from reskd.data.formats import Entry
    from reskd.data.samplers import training_sampler
    from reskd.data.sampling import Sampling
    from reskd.data.transforms import Views
    from reskd.distill.distiller import freeze
    from reskd.efficiency.flops import gmacs_per_video
    from reskd.experiments.sweep import PAPER_TABLE4
    from reskd.models import build_model

    seconds, width, height = (20, 640, 360) if quick else (120, 1280, 720)
    routes = {}
    for keyint in (60, 250):  # the files bench_decode.py writes, reused when there
        original = data / f"key{keyint}_{seconds}s_{width}x{height}.mp4"
        prepared = data / f"key{keyint}_{seconds}s_{width}x{height}_prepared.mp4"
        if not original.is_file():
            write_clip(original, seconds=seconds, width=width, height=height, keyint=keyint)
        if not prepared.is_file():
            prepare_video(original, prepared, short_side=SHORT_SIDE, keyint=16)
        routes[f"original, keyframe every {keyint}"] = original
        routes[f"prepared copy of the key-{keyint} clip"] = prepared
    workers = default_workers()
    views = Views(teacher_size=224, student_size=112, crop_size=224)
    batch = 2
    results = {}
    for name, path in routes.items():
        links = data / f"links_{path.stem}"
        links.mkdir(exist_ok=True)
        entries = []
        for i in range(videos):  # one file under many names: the page cache holds it once
            link = links / f"{i:03d}.mp4"
            if not link.exists():
                os.link(path, link)
            entries.append(Entry(link.name, (i % 2,)))
        dataset = VideoDataset(entries, links, sampling=Sampling(num_segments=16), views=views,
                               train=True, num_classes=2)
        loader = make_loader(dataset, batch_size=batch, workers=workers,
                             sampler=training_sampler(dataset, rank=0, world=1, seed=0),
                             drop_last=True)
        start, count = time.perf_counter(), 0
        for item in loader:
            count += item["label"].shape[0]
        rate = count / (time.perf_counter() - start)
        results[name] = {"videos_per_s": rate, "videos_per_s_per_worker": rate / max(workers, 1),
                         "videos": count}
        del loader
    # one KD step here, in the product's train_step
    torch.manual_seed(0)
    teacher = freeze(build_model("resnet152", num_classes=200))
    student = build_model("resnet50", num_classes=200)
    t_size, s_size = (64, 32) if quick else (224, 112)
    teacher_x = torch.randn(1, 16, 3, t_size, t_size)
    student_x = torch.nn.functional.interpolate(
        teacher_x.flatten(0, 1), size=(s_size, s_size), mode="bilinear",
        align_corners=False).unflatten(0, (1, 16))  # (N, T, C, H, W)
    device = torch.device("cpu")
    step = make_step(teacher, student, teacher_x=teacher_x, student_x=student_x,
                     labels=torch.zeros(1, dtype=torch.int64), amp_dtype=None, device=device)
    step()  # warm-up
    start = time.perf_counter()
    step()
    kd_videos_per_s = 1 / (time.perf_counter() - start)
    r152, r50 = (gmacs_per_video(m, 16, 224) for m in (teacher, student))
    v100 = 1 / (r152 / r50 / PAPER_TABLE4[224][2] + 3 / PAPER_TABLE4[112][2])
    for r in results.values():
        r["loader_per_kd_step_here"] = r["videos_per_s"] / kd_videos_per_s
        r["workers_per_v100"] = v100 / r["videos_per_s_per_worker"]
    return {"routes": results, "workers": workers, "batch": batch,
            "kd_step_videos_per_s_here": kd_videos_per_s, "v100_kd_videos_per_s": v100,
            "r152_over_r50_gmacs": r152 / r50, "clip": f"{seconds} s {width}x{height}",
            "kd_sizes": [t_size, s_size]}


def main(argv: list[str] | None = None) -> int:
    from reskd.data.synth import make_synth_dataset
    from reskd.efficiency.benchmark import machine_facts
    from reskd.experiments.demo import STUDENT_SIZE, TEACHER_SIZE

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run; the target is not checked")
    p.add_argument("--num-train", type=int, default=256, help="clips in the train list")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", default="", help="reuse/keep the dataset here (default: a temp dir)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--paper", action="store_true", help="the paper's shape on long clips and "
                   "their prepared copies (see the docstring); --data keeps the clips")
    p.add_argument("--paper-videos", type=int, default=16, help="--paper: videos per route")
    args = p.parse_args(argv)
    if args.paper:
        from reskd.efficiency.benchmark import machine_facts

        with tempfile.TemporaryDirectory(prefix="reskd-bench-loader-") as tmp:
            folder = Path(args.data or tmp)
            folder.mkdir(parents=True, exist_ok=True)
            out = paper_shape(folder, videos=args.paper_videos, quick=args.quick)
        out["machine"] = machine_facts(torch.device("cpu"), None)
        if args.json:
            print(json.dumps(out, indent=2))
            return 0
        print(f"paper shape: 16 segments, views 224 + 112 from one 224 crop, {out['clip']} "
              f"H.264 clips; loader batch {out['batch']}, {out['workers']} worker(s)")
        print("machine: " + ", ".join(f"{k} {v}" for k, v in out["machine"].items()))
        t_size, s_size = out["kd_sizes"]
        print(f"one KD step here (R152 {t_size} -> R50 {s_size}, 16 frames, batch 1, fp32): "
              f"{out['kd_step_videos_per_s_here']:.3f} videos/s; on a V100 (paper Table 4, "
              f"R152/R50 GMACs {out['r152_over_r50_gmacs']:.2f}): about "
              f"{out['v100_kd_videos_per_s']:.1f} videos/s")
        for name, r in out["routes"].items():
            print(f"  {name:<36} loader {r['videos_per_s']:6.2f} videos/s "
                  f"({r['videos_per_s_per_worker']:.2f} per worker) = "
                  f"{r['loader_per_kd_step_here']:.1f}x a KD step here; workers per V100: "
                  f"{r['workers_per_v100']:.0f}")
        return 0
    num_train, rounds = (64, 1) if args.quick else (args.num_train, args.rounds)
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="reskd-bench-loader-") as tmp:
        root = Path(args.data) if args.data else Path(tmp) / "data"
        start = time.perf_counter()
        data = make_synth_dataset(root, seed=0, num_train=num_train, num_val=8)
        print(f"[loader] dataset of {num_train} clips ready in {time.perf_counter() - start:.0f} s"
              f" ({root})", file=sys.stderr)
        runs = {"teacher": (TEACHER_SIZE, None), "baseline": (STUDENT_SIZE, None),
                "reskd": (STUDENT_SIZE, TEACHER_SIZE)}
        results = {}
        for name, (size, teacher_size) in runs.items():
            torch.set_num_threads(default_threads)
            loader, step, trainer_threads, cfg = build_run(data, Path(tmp), name=name, size=size,
                                                           teacher_size=teacher_size)
            cold_s, cold_clips = time_epoch(loader, 0)  # decodes and fills the caches
            trainer_threads()
            step()  # warm-up
            loader_rates, step_rates = [], []
            for r in range(rounds):
                torch.set_num_threads(default_threads)
                seconds, clips = time_epoch(loader, r + 1)
                loader_rates.append(clips / seconds)
                trainer_threads()
                n, start = 0, time.perf_counter()
                while n < 2 or time.perf_counter() - start < min(seconds, 5.0):
                    step()
                    n += 1
                step_rates.append(n * cfg.data.batch_size / (time.perf_counter() - start))
            per_round = [a / b for a, b in zip(loader_rates, step_rates)]
            results[name] = {
                "size": size, "teacher_size": teacher_size, "batch": cfg.data.batch_size,
                "workers": loader.num_workers, "trainer_threads": torch.get_num_threads(),
                "cold_loader_clips_per_s": cold_clips / cold_s,
                "loader_clips_per_s": statistics.median(loader_rates),
                "loader_clips_per_s_rounds": loader_rates,
                "step_clips_per_s": statistics.median(step_rates),
                "step_clips_per_s_rounds": step_rates,
                "ratio": statistics.median(per_round), "ratio_per_round": per_round,
                # the first epoch decodes every video (no cache yet): 1 of the demo's 15
                "cold_ratio": (cold_clips / cold_s) / statistics.median(step_rates),
            }
            del loader  # stops its persistent workers before the next run starts its own
        torch.set_num_threads(default_threads)
    from reskd.engine.runtime import autocast_dtype, pick_device

    device = pick_device("auto")
    facts = machine_facts(device, autocast_dtype("auto", device))
    worst = min(results, key=lambda k: results[k]["ratio"])
    ok = results[worst]["ratio"] >= TARGET
    if args.json:
        print(json.dumps({"runs": results, "worst": worst, "target": TARGET, "ok": ok,
                          "num_train": num_train, "machine": facts, "quick": args.quick},
                         indent=2))
    else:
        print(f"demo loader vs demo training step; {num_train} train clips, batch 32, "
              f"{rounds} interleaved rounds")
        print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
        for name, r in results.items():
            view = f"{r['teacher_size']}+{r['size']} px" if r["teacher_size"] else f"{r['size']} px"
            print(f"  {name:<9}{view:<11} loader {r['loader_clips_per_s']:7.1f} clips/s "
                  f"(cold epoch {r['cold_loader_clips_per_s']:.1f}; {r['workers']} worker)  "
                  f"step {r['step_clips_per_s']:7.1f} clips/s ({r['trainer_threads']} thread)  "
                  f"loader / step {r['ratio']:.2f}x  per round: "
                  + ", ".join(f"{v:.2f}" for v in r["ratio_per_round"])
                  + f"; cold epoch loader / step {r['cold_ratio']:.2f}x")
        verdict = "(not checked: --quick)" if args.quick else ("ok" if ok else "MISSED")
        print(f"lowest loader / step: {results[worst]['ratio']:.2f}x ({worst}) "
              f"(target >= {TARGET}x) {verdict}")
    return 0 if args.quick or ok else 1


if __name__ == "__main__":
    sys.exit(main())

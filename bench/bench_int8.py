"""INT8 vs fp32 in ONNX Runtime (CPU): TSN-R50 speed, and the demo's ResKD student's accuracy.

Run: .venv/bin/python bench/bench_int8.py [--quick] [--batch 4] [--threads N] [--json]
                                          [--checkpoint runs/demo3/reskd/model.pt] [--data-root D]

1. TSN-R50 at 112 px, 16 frames, random weights: exported as `reskd export` does, quantized as
   `reskd export --int8` does (`reskd.export.quantize_int8`: QDQ, per-channel int8 weights, uint8
   activations, min-max ranges; calibrated here on random clips, which sets the ranges but not
   the speed), and timed against the fp32 graph, interleaved in rounds (`ort_speeds`). Target:
   INT8 >= 2x the videos/s of fp32 (median of per-round ratios). The two other choices
   `quantize_int8` offers, per-tensor weights and the QOperator format, are timed in the same
   rounds for the record (no target).
2. The demo's ResKD student (a `reskd demo` run's reskd/model.pt; `reskd demo --quick --out D`
   makes one in minutes): `reskd.export.run_export(..., int8=True)` on its own data, every
   validation video. Target: INT8 top-1 no more than 1 point below fp32; its speed ratio is
   reported, whatever it is.

Machine facts include ONNX Runtime's version and the CPU's int8-relevant flags (VNNI lets int8
dot products accumulate without the saturation that `reduce_range` works around). Exits 1 when
a target is missed. --quick: 4 frames, batch 1, one round, 100 demo validation videos; targets
are not checked.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from reskd.efficiency.benchmark import (
    bench_arguments,
    cpu_flags,
    machine_facts,
    parse_bench_arguments,
)
from reskd.export import export_onnx, ort_speeds, quantize_int8, run_export
from reskd.models import build_model

SPEEDUP_TARGET = 2.0  # TSN-R50 int8 videos/s / fp32 videos/s
MAX_TOP1_LOSS = 1.0  # demo student: fp32 top-1 - int8 top-1, points
INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile")
VARIANTS = {"int8": {}, "int8_per_tensor": {"per_channel": False},
            "int8_qoperator": {"quant_format": "qoperator"}}


def r50_context(frames: int, size: int) -> dict:
    """What `export_onnx` embeds; a random-weight model has no run, so a minimal one."""
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    return {"classes": [str(i) for i in range(400)], "size": size, "frames": frames,
            "mean": mean, "std": std, "gmacs": None, "test_average": "prob",
            "sampling": {"num_segments": frames, "clip_len": 0, "frame_interval": 1,
                         "test_clips": 1, "test_crops": 1, "short_side_ratio": 256 / 224},
            "views": {"size": size, "crop_size": size, "shrink": "bilinear",
                      "short_side_ratio": 256 / 224, "downsample_to": 0, "mean": mean,
                      "std": std}}


def bench_r50(tmp: Path, *, frames: int, size: int, batch: int, rounds: int,
              log) -> dict:
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=400, num_segments=frames).eval()
    fp32 = export_onnx(model, r50_context(frames, size), tmp / "r50.onnx", batch=batch)["path"]
    rng = np.random.default_rng(0)
    paths = {"fp32": fp32}
    for name, options in VARIANTS.items():
        calibration = [rng.standard_normal((1, frames, 3, size, size), np.float32)
                       for _ in range(2)]
        paths[name] = tmp / f"r50.{name}.onnx"
        quantize_int8(fp32, paths[name], calibration, **options)
        log(f"[int8] quantized TSN-R50 as {name}")
    rates = ort_speeds(paths, frames=frames, size=size, batch=batch,
                       threads=torch.get_num_threads(), rounds=rounds)
    ratios = {name: [i / f for i, f in zip(rates[name], rates["fp32"])] for name in VARIANTS}
    return {"model": "resnet50 (TSN, random weights)", "frames": frames, "size": size,
            "batch": batch, "rounds": rounds,
            "videos_per_s": {k: statistics.median(v) for k, v in rates.items()},
            "videos_per_s_rounds": rates,
            "speedup": {k: statistics.median(v) for k, v in ratios.items()},
            "speedup_rounds": ratios,
            "bytes": {k: Path(p).stat().st_size for k, p in paths.items()}}


def bench_demo(tmp: Path, checkpoint: str, *, data_root: str | None, batch: int,
               validation_videos: int) -> dict:
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"demo student {checkpoint} not found; train one with "
                                f"`.venv/bin/reskd demo --quick --out /tmp/demo_q` and pass "
                                f"--checkpoint /tmp/demo_q/reskd/model.pt")
    info = run_export(checkpoint, out=tmp / "demo.onnx", batch=batch, int8=True,
                      data_root=data_root, validation_videos=validation_videos)
    q = info["int8"]
    return {"checkpoint": checkpoint, "validation_videos": q["validation_videos"],
            "top1_fp32": q["top1_fp32"], "top1_int8": q["top1_int8"],
            "top1_loss": q["top1_fp32"] - q["top1_int8"], "top1_agreement": q["top1_agreement"],
            "videos_per_s_fp32": q["videos_per_s_fp32"],
            "videos_per_s_int8": q["videos_per_s_int8"], "speedup": q["speedup"],
            "batch": batch, "input_shape": q["input_shape"],
            "calibration_videos": q["calibration_videos"],
            "bytes": {"fp32": info["bytes"], "int8": q["bytes"]}}


def main(argv: list[str] | None = None) -> int:
    import onnxruntime

    p = bench_arguments(__doc__.split("\n")[0], rounds=3)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--checkpoint", default="runs/demo3/reskd/model.pt",
                   help="the demo's ResKD student (a `reskd demo` run's reskd/model.pt)")
    p.add_argument("--data-root", default=None, help="its data folder (default: the recorded "
                   "data.root, relative to the working directory)")
    args = parse_bench_arguments(p, argv)
    frames, batch, rounds = (4, 1, 1) if args.quick else (16, args.batch, args.rounds)

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    facts = {**machine_facts(torch.device("cpu"), None), "onnxruntime": onnxruntime.__version__,
             "cpu_int8_flags": cpu_flags(INT8_FLAGS)}
    facts["dtype"] = "fp32 vs int8 (onnxruntime CPUExecutionProvider)"
    with tempfile.TemporaryDirectory() as tmp:
        r50 = bench_r50(Path(tmp), frames=frames, size=args.size, batch=batch, rounds=rounds,
                        log=log)
        demo = bench_demo(Path(tmp), args.checkpoint, data_root=args.data_root, batch=batch,
                          validation_videos=100 if args.quick else 0)
    facts["load_avg_1m_end"] = machine_facts(torch.device("cpu"), None)["load_avg_1m"]
    ok = {"r50_speedup": r50["speedup"]["int8"] >= SPEEDUP_TARGET,
          "demo_top1_loss": demo["top1_loss"] <= MAX_TOP1_LOSS}
    if args.json:
        print(json.dumps({"r50": r50, "demo": demo, "ok": ok, "machine": facts,
                          "quick": args.quick}, indent=2))
    else:
        def verdict(key: str) -> str:
            return "(not checked: --quick)" if args.quick else ("ok" if ok[key] else "MISSED")

        print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
        print(f"TSN-R50 (random weights), {frames} frames, {args.size} px, batch {batch}; median "
              f"of {rounds} interleaved rounds")
        for name, vps in r50["videos_per_s"].items():
            speedup = f"  {r50['speedup'][name]:.2f}x fp32" if name in VARIANTS else ""
            print(f"  {name:<16}{vps:8.3f} videos/s{speedup}  (rounds: "
                  + ", ".join(f"{v:.3f}" for v in r50["videos_per_s_rounds"][name]) + ")")
        print(f"TSN-R50 int8 / fp32 videos/s: {r50['speedup']['int8']:.2f}x, median of "
              f"per-round ratios (target >= {SPEEDUP_TARGET}x) {verdict('r50_speedup')}; per "
              f"round: " + ", ".join(f"{v:.2f}" for v in r50["speedup_rounds"]["int8"]))
        print(f"demo ResKD student {demo['checkpoint']} on {demo['validation_videos']} "
              f"validation videos: top-1 fp32 {demo['top1_fp32']:.2f}%, int8 "
              f"{demo['top1_int8']:.2f}% (loss {demo['top1_loss']:+.2f} points, target <= "
              f"{MAX_TOP1_LOSS}) {verdict('demo_top1_loss')}; top-1 agreement "
              f"{demo['top1_agreement']:.2f}%")
        print(f"demo student videos/s at batch {batch}: fp32 {demo['videos_per_s_fp32']:.0f}, "
              f"int8 {demo['videos_per_s_int8']:.0f}, {demo['speedup']:.2f}x")
    return 0 if args.quick or all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

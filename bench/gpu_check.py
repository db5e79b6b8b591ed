"""GPU check: TSN-R50 inference at Table 4's sizes, the KD step in bf16 / fp16 / fp32, and the
data path that feeds it, on one GPU, in under 8 minutes (bench/README.md, "GPU check").

Run: bash bench/gpu_check.sh   (on the GPU machine: nvidia-smi facts, then
     `PYTHONPATH=src python3 bench/gpu_check.py`, JSON to $OUT/gpu_check.json when OUT is set)
     PYTHONPATH=src python3 bench/gpu_check.py --smoke --json   (CPU smoke run)

1. inference: TSN-R50, 16 segments, batch 64, videos/s at 224 / 112 / 56 px in the default
   mode (channels_last + the precision `runtime.precision=auto` picks: bf16 on a GPU that has
   it), in the inference path's mode (`fold_bn`: test and predict also fold BatchNorm) and in
   fp32 NCHW, timed in interleaved rounds (`reskd.efficiency.benchmark.bench_report`); each
   against the paper's V100 figures (Table 4, batch 64: 78.7 / 262.8 / 631.5 videos/s).
2. kd_step: the product's training step (`reskd.engine.train.train_step`, as `reskd distill`
   runs it): frozen TSN-R152 teacher at 224 px (BatchNorm in train mode), TSN-R50 student at
   112 px, 16 segments, batch 64 (the paper's mini-batch), CE + 100 x feature KD, grad clip 20,
   SGD Nesterov; channels_last; student dropout 0 (dropout masks are RNG draws, and every
   precision must compute the same function). Step time in bf16, fp16 (with a GradScaler)
   and fp32, timed in interleaved rounds; and the first step's loss parts (loss, ce,
   feature_kd) of each precision against a strict fp32 step (TF32 off) on the same weights
   and batch, within `RTOL`.
3. data_path: what feeds the step on the GPU side, on tensors (no decoding: the GPU machine has
   no PyAV): uint8 clip batches (N, T, H, W, C) at the teacher's crop size pinned in host
   memory, copied non_blocking to the GPU, normalised and shrunk to the student's size there;
   each part per batch against one KD step in the default precision, and how many decoded
   videos/s the step consumes (what the loaders must deliver).

No timing targets: the figures are recorded (bench/README.md). Exits 1 when a precision's loss
parts miss the tolerance. --smoke: TSN-R18 for every model, inference at 64 / 32 / 16 px and
the KD step 64 -> 32 px, 2 frames, batch 2, one timed call per case (a step's first call is its
time), on whatever device there is (tests/test_gpu_check.py runs it on CPU).

Imports only torch, torchvision, numpy, pyyaml and the standard library (the GPU machine has
nothing else): `reskd.engine.train` imports tqdm at module level for `train()`'s progress bar,
which this check never calls, so a missing tqdm is replaced by a stub and said so in the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.machinery
import json
import math
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn

PAPER_V100 = {224: 78.7, 112: 262.8, 56: 631.5}  # Table 4: TSN-R50, 16 frames, batch 64, V100
PAPER_SPEEDUP = {112: 3.3, 56: 8.0}  # Table 4: videos/s at the size / at 224 on the V100

# Relative tolerance of each loss part (loss, ce, feature_kd) against a strict fp32 step (TF32
# off) on the same weights and batch. Autocast keeps the reductions (BatchNorm statistics, the
# losses' means, softmax) in fp32; what a half-precision step changes is the rounding of each
# convolution's inputs and outputs: 2^-9 relative in bf16, 2^-12 in fp16 and in TF32 (fp16's
# 10-bit mantissa). How far that moves the losses, measured on CPU with the check's own models
# (R152@224 -> R50@112, 2 frames, batch 2; bench/README.md "GPU check"): bf16 0.50% (loss),
# 0.09% (ce), 0.51% (feature_kd); fp16 0.073%, 0.019%, 0.074%. The tolerances are about 6x
# those, room for other kernels (cuDNN picks its own under cudnn.benchmark). Per element the
# models differ far more: at random init with BatchNorm in train mode, batch statistics of a
# few images amplify any change (there, bf16 moved the R152 teacher's feature map by 92% rms,
# and a 1e-6 change of the input moved it by 0.4%), while the losses, means over whole maps,
# move little. So the check catches what moves a loss (an fp16 overflow, a loss reduced in half
# precision, views made differently), not per-element drift; `logits_rel_rms` (the student's
# logits against the reference's, shown, not judged) says how far the elements moved.
RTOL = {"bf16": 3e-2, "fp16": 5e-3, "fp32": 5e-3}  # fp32: torch's CUDA default, TF32 convolutions
COMPARED = ("loss", "ce", "feature_kd")


def _stub_tqdm_if_missing() -> str:
    """'' when tqdm imports, else a note: a stub stands in (calling it raises)."""
    try:
        import tqdm  # noqa: F401
        return ""
    except ImportError:
        stub = types.ModuleType("tqdm")
        # a spec without a file: importlib.util.find_spec (torch._dynamo asks) needs one
        stub.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)

        def tqdm(*args, **kwargs):
            raise RuntimeError("tqdm is not installed; the GPU check never calls train()")

        stub.tqdm = tqdm
        sys.modules["tqdm"] = stub
        return ("tqdm not installed: stubbed (reskd.engine.train imports it for train(), "
                "unused here)")


TQDM_NOTE = _stub_tqdm_if_missing()

from reskd.data.transforms import Views, normalize, shrink, to_tensor  # noqa: E402
from reskd.distill.distiller import Distiller, freeze  # noqa: E402
from reskd.efficiency.benchmark import (  # noqa: E402
    bench_report,
    fastest_default_mode,
    interleaved_rates,
    machine_facts,
)
from reskd.engine.optim import make_optimizer  # noqa: E402
from reskd.engine.runtime import autocast_dtype, pick_device, precision_name, prepare_model  # noqa: E402
from reskd.engine.train import train_step  # noqa: E402
from reskd.models import build_model  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def facts(device: torch.device) -> dict:
    """machine_facts plus what a GPU figure needs beside it."""
    amp = autocast_dtype("auto", device)
    out = {**machine_facts(device, amp), "python": platform.python_version(),
           "torchvision": __import__("torchvision").__version__,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
           "cudnn_benchmark": torch.backends.cudnn.benchmark,
           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
           "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
           "default_mode": fastest_default_mode(device)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        out.update(gpu=p.name, capability=f"{p.major}.{p.minor}",
                   gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   multiprocessors=p.multi_processor_count)
    return out


# ---------------------------------------------------------------------------------------------
# 1. Inference


def inference(device: torch.device, *, arch: str, sizes: tuple[int, ...], frames: int,
              batch: int, warmup: int, rounds: int, min_seconds: float) -> dict:
    """TSN videos/s per size and mode, and the ratios to the paper's V100 figures."""
    default = fastest_default_mode(device)["mode"]
    modes = list(dict.fromkeys([default, "fold_bn", "fp32"]))
    rows = bench_report(model_name=arch, sizes=sizes, frames=frames, batch=batch, modes=modes,
                        device=device, num_classes=200, warmup=warmup, rounds=rounds,
                        min_seconds=min_seconds, log=log)
    paper_sizes = dict(zip(sizes, PAPER_V100))  # smoke sizes stand for 224 / 112 / 56
    for r in rows:
        v100 = PAPER_V100[paper_sizes[r["size"]]]
        r["paper_v100_videos_per_s"] = v100
        r["vs_paper_v100"] = r["videos_per_s"] / v100 if r["videos_per_s"] else None
    speedups = []
    for mode in modes:
        by_size = {r["size"]: r for r in rows if r["mode"] == mode}
        base = by_size[sizes[0]]
        for size in sizes[1:]:
            per_round = [a / b for a, b in zip(by_size[size]["videos_per_s_rounds"],
                                               base["videos_per_s_rounds"])]
            speedups.append({"mode": mode, "size": size, "vs_size": sizes[0],
                             "ratio": statistics.median(per_round) if per_round else None,
                             "paper_v100_ratio": PAPER_SPEEDUP[paper_sizes[size]]})
    return {"model": f"TSN-{arch}", "default_mode": default, "rows": rows, "speedups": speedups,
            "peak_gib": peak_gib(device)}


def print_inference(section: dict) -> None:
    r0 = section["rows"][0]
    print(f"\n[1] inference: {section['model']}, {r0['frames']} frames, batch {r0['batch']}, "
          f"{r0['device']}; median of {len(r0['videos_per_s_rounds'])} interleaved rounds; "
          f"default mode {section['default_mode']}")
    print(f"  {'size':>4} {'mode':<9}{'dtype':<6}{'shape':<22}{'videos/s':>10}{'ms/batch':>10}"
          f"{'V100':>8}{'vs V100':>9}")
    for r in section["rows"]:
        vps = r["videos_per_s"]
        print(f"  {r['size']:>4} {r['mode']:<9}{r['dtype']:<6}{str(tuple(r['shape'])):<22}"
              f"{vps:>10.1f}{r['latency_ms']:>10.1f}{r['paper_v100_videos_per_s']:>8.1f}"
              f"{r['vs_paper_v100']:>8.2f}x")
    for s in section["speedups"]:
        print(f"  {s['mode']}: videos/s at {s['size']} / at {s['vs_size']} = {s['ratio']:.2f}x "
              f"(paper's V100: {s['paper_v100_ratio']}x)")
    print_peak(section)


def print_peak(section: dict) -> None:
    if section["peak_gib"] is not None:
        print(f"  peak GPU memory allocated: {section['peak_gib']:.1f} GiB")


# ---------------------------------------------------------------------------------------------
# Views on the device


def device_views(clips: torch.Tensor, *, student_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, H, W, C) uint8 clips at the crop size, on any device -> (teacher view
    (N, T, C, H, W), student view (N, T, C, s, s)), float32, on that device: the product's
    `Views.views_of`, what the training loop runs on each batch (normalise, then shrink
    "bilinear", the default data.shrink)."""
    spec = Views(teacher_size=clips.shape[2], student_size=student_size)
    views = spec.views_of(clips.permute(0, 1, 4, 2, 3))  # (N, T, C, H, W) uint8
    return views["teacher"], views["student"]


def cpu_path_difference(clip: torch.Tensor, device: torch.device, student_size: int) -> float:
    """Max |device views - the CPU path's views| for one (T, H, W, C) uint8 clip."""
    spec = Views(teacher_size=clip.shape[1], student_size=student_size)
    teacher = normalize(to_tensor(clip.numpy()), spec.mean, spec.std)  # (T, C, H, W)
    student = shrink(teacher, student_size, "bilinear")
    t_dev, s_dev = device_views(clip[None].to(device), student_size=student_size)
    return max((t_dev[0].cpu() - teacher).abs().max().item(),
               (s_dev[0].cpu() - student).abs().max().item())


# ---------------------------------------------------------------------------------------------
# 2. The KD step


def make_kd_step(teacher: nn.Module, student: nn.Module, *, device: torch.device,
                 amp_dtype: torch.dtype | None):
    """bench/bench_kd_step.py's make_step, with a GradScaler for fp16 (as `train()` makes one):
    step(batch) runs the product's `train_step` and returns its parts."""
    optimizer = make_optimizer(student, optimizer="sgd", lr=0.01, momentum=0.9,
                               nesterov=True, weight_decay=1e-4)
    scaler = (torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None)
    distiller = Distiller(teacher, student, feature=100.0)  # teacher BatchNorm: train
    student.train()

    def step(batch: dict) -> dict:
        return train_step(student, batch, optimizer=optimizer, device=device,
                          amp_dtype=amp_dtype, distiller=distiller, grad_clip=20.0,
                          scaler=scaler)

    step.scaler = scaler
    return step


@contextlib.contextmanager
def ieee_fp32(device: torch.device):
    """Full fp32 convolutions and matmuls (TF32 off; cuDNN allows TF32 by default)."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def read_parts(parts: dict) -> dict:
    """The compared parts and the grad norm as numbers, the student's logits (N, K) on the host."""
    return {**{k: parts[k].item() for k in (*COMPARED, "grad_norm")},
            "logits": parts["logits"].float().cpu()}


def compare(parts: dict, reference: dict, rtol: float) -> dict:
    """Relative differences of the loss parts from the reference's, and pass/fail. The grad
    norm and the logits are shown, not judged; the grad norm is None where a GradScaler found
    inf/nan gradients at its first scale and skipped the update (as it does while it finds
    its scale)."""
    diffs = {k: abs(parts[k] - reference[k]) / max(abs(reference[k]), 1e-12) for k in COMPARED}
    g = parts["grad_norm"] if math.isfinite(parts["grad_norm"]) else None
    numbers = {k: v for k, v in parts.items() if k != "logits"}
    logits, ref_logits = parts["logits"], reference["logits"]
    return {"parts": {**numbers, "grad_norm": g}, "rel_diff": diffs, "rtol": rtol,
            "ok": all(d <= rtol for d in diffs.values()),
            "grad_norm_rel_diff": (None if g is None else abs(g - reference["grad_norm"])
                                   / max(abs(reference["grad_norm"]), 1e-12)),
            "logits_rel_rms": ((logits - ref_logits).norm() / ref_logits.norm()).item()}


def kd_step(device: torch.device, *, teacher_arch: str, student_arch: str, teacher_size: int,
            student_size: int, frames: int, batch: int, warmup: int, rounds: int,
            min_seconds: float, clips: torch.Tensor) -> tuple[dict, dict]:
    """(section, the default precision's step and batch for the data path). `rounds` 0 (the
    smoke run) times no more steps: the first step's time stands for the step time."""
    torch.manual_seed(0)
    # dropout 0: the precisions must see the same function (dropout masks are RNG draws)
    teacher = freeze(build_model(teacher_arch, num_classes=200, num_segments=frames))
    student = build_model(student_arch, num_classes=200, num_segments=frames, dropout=0.0)
    teacher_x, student_x = device_views(clips.to(device), student_size=student_size)
    labels = torch.randint(0, 200, (batch,), generator=torch.Generator().manual_seed(0))
    batch_views = {"teacher": teacher_x, "student": student_x, "label": labels.to(device)}

    def fresh(amp):
        return make_kd_step(prepare_model(copy.deepcopy(teacher), device, True),
                            prepare_model(copy.deepcopy(student), device, True),
                            device=device, amp_dtype=amp)

    log("[kd] strict fp32 reference step (TF32 off)")
    with ieee_fp32(device):
        reference = read_parts(fresh(None)(batch_views))
    if device.type == "cuda":
        torch.cuda.empty_cache()
    precisions = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
    steps, comparison, first_s = {}, {}, {}
    for name, amp in precisions.items():
        step = fresh(amp)
        sync(device)
        start = time.perf_counter()
        parts = read_parts(step(batch_views))  # the first step: the weights are still the same
        first_s[name] = time.perf_counter() - start
        comparison[name] = compare(parts, reference, RTOL[name])
        if step.scaler is not None:
            comparison[name]["scaler_scale_after"] = step.scaler.get_scale()
        log(f"[kd] {name}: first step {first_s[name]:.2f} s, "
            f"{'ok' if comparison[name]['ok'] else 'FAILED'}")
        for _ in range(warmup - 1):  # the first step warmed up too (cudnn.benchmark's search)
            step(batch_views)
        steps[name] = step
    rates = (interleaved_rates({n: (lambda s=s: s(batch_views)) for n, s in steps.items()},
                               rounds=rounds, min_seconds=min_seconds, device=device)
             if rounds else {n: [1 / t] for n, t in first_s.items()})
    shape = {"teacher": list(teacher_x.shape), "student": list(student_x.shape)}
    timing = {}
    for name, per_round in rates.items():
        rate = statistics.median(per_round)
        timing[name] = {"dtype": name, "batch": batch, "shape": shape,
                        "step_s": 1 / rate, "step_s_rounds": [1 / r for r in per_round],
                        "videos_per_s": rate * batch, "first_step_s": first_s[name],
                        "note": ("torch's default fp32 on CUDA: cuDNN convolutions in TF32"
                                 if name == "fp32" and device.type == "cuda" else "")}
    default = precision_name(autocast_dtype("auto", device))
    section = {"teacher": f"TSN-{teacher_arch}@{teacher_size}",
               "student": f"TSN-{student_arch}@{student_size}", "frames": frames,
               "batch": batch, "shape": shape, "default_precision": default,
               "reference": {"dtype": "fp32 (TF32 off)",
                             "parts": {k: v for k, v in reference.items() if k != "logits"}},
               "comparison": comparison, "timing": timing, "peak_gib": peak_gib(device)}
    return section, {"step": steps[default], "batch": batch_views, "precision": default}


def print_kd(section: dict) -> None:
    sh = section["shape"]
    print(f"\n[2] KD step (reskd.engine.train.train_step): teacher {section['teacher']} -> "
          f"student {section['student']}, batch {section['batch']}, teacher view "
          f"{tuple(sh['teacher'])}, student view {tuple(sh['student'])}, channels_last")
    ref = section["reference"]["parts"]
    print("  loss parts of the first step vs strict fp32 (TF32 off): "
          + ", ".join(f"{k} {ref[k]:.6g}" for k in (*COMPARED, "grad_norm")))
    for name, c in section["comparison"].items():
        print(f"  {name:<5} " + ", ".join(f"{k} {c['parts'][k]:.6g} ({c['rel_diff'][k]:.1e})"
                                         for k in COMPARED)
              + "; grad_norm " + (f"{c['parts']['grad_norm']:.4g} ({c['grad_norm_rel_diff']:.1e})"
                                  if c["parts"]["grad_norm"] is not None else
                                  "inf/nan (the GradScaler skipped this update)")
              + (f", scale now {c['scaler_scale_after']:g}" if "scaler_scale_after" in c else "")
              + f"; logits {c['logits_rel_rms']:.1e} rms"
              + f"; rtol {c['rtol']:g}: {'pass' if c['ok'] else 'FAIL'}")
    for name, t in section["timing"].items():
        print(f"  {name:<5} step {t['step_s'] * 1000:8.1f} ms, {t['videos_per_s']:8.1f} videos/s"
              f" (rounds: " + ", ".join(f"{s * 1000:.1f}" for s in t["step_s_rounds"])
              + f" ms; first step {t['first_step_s']:.2f} s) {t['note']}")
    print_peak(section)


# ---------------------------------------------------------------------------------------------
# 3. The data path


def data_path(device: torch.device, *, clips: torch.Tensor, student_size: int, kd: dict,
              warmup: int, rounds: int, min_seconds: float) -> dict:
    """ms per batch of each GPU-side part of the data path against one KD step, interleaved."""
    cuda = device.type == "cuda"
    pinned = clips.pin_memory() if cuda else clips
    step, fixed = kd["step"], kd["batch"]
    labels = fixed["label"]

    def views():
        x = pinned.to(device, non_blocking=True)  # (N, T, H, W, C) uint8
        return device_views(x, student_size=student_size)

    def views_and_step():
        teacher_x, student_x = views()
        return step({"teacher": teacher_x, "student": student_x, "label": labels})

    cases = {"copy": lambda: pinned.to(device, non_blocking=True), "views": views,
             "step": lambda: step(fixed), "views+step": views_and_step}
    if cuda:  # what the DataLoader's pin-memory thread does to each batch, on the host
        cases = {"pin_memory": clips.pin_memory, **cases}
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    rates = interleaved_rates(cases, rounds=rounds, min_seconds=min_seconds, device=device)
    batch = clips.shape[0]
    ms = {name: 1000 / statistics.median(r) for name, r in rates.items()}
    step_ms = ms["step"]
    nbytes = clips.numel() * clips.element_size()
    return {"clips": {"dtype": "uint8", "shape": list(clips.shape), "pinned": cuda,
                      "mib": nbytes / 2**20},
            "precision": kd["precision"], "batch": batch, "ms_per_batch": ms,
            "ms_per_batch_rounds": {n: [1000 / v for v in r] for n, r in rates.items()},
            "copy_gb_per_s": nbytes / ms["copy"] / 1e6,
            "views_over_step": ms["views"] / step_ms,
            "views_and_step_over_step": ms["views+step"] / step_ms,
            "step_consumes_videos_per_s": batch * 1000 / step_ms,
            "cpu_path_max_abs_diff": cpu_path_difference(clips[0], device, student_size),
            "note": ("pin_memory runs on the host (the loader's pin thread), in parallel with "
                     "the GPU in a real run" if cuda else
                     "CPU: no pinned memory, the copy is a no-op")}


def print_data(section: dict) -> None:
    c = section["clips"]
    print(f"\n[3] data path: uint8 clips {tuple(c['shape'])} (N, T, H, W, C), {c['mib']:.0f} MiB "
          f"per batch, {'pinned' if c['pinned'] else 'not pinned'}; views (normalise + "
          f"shrink) on {section['precision']} step's device")
    for name, v in section["ms_per_batch"].items():
        print(f"  {name:<11}{v:9.2f} ms per batch of {section['batch']}")
    print(f"  copy {section['copy_gb_per_s']:.1f} GB/s; views / step "
          f"{section['views_over_step']:.3f}; "
          f"(views + step) / step {section['views_and_step_over_step']:.3f}; device views vs the "
          f"CPU path: max |diff| {section['cpu_path_max_abs_diff']:.2e}")
    print(f"  the {section['precision']} KD step consumes "
          f"{section['step_consumes_videos_per_s']:.1f} decoded videos/s: what the loaders "
          f"(all workers of this GPU) must deliver. {section['note']}")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, ResNet-18, one round (a CPU smoke run; no targets)")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the text")
    p.add_argument("--out", type=Path, help="also write the JSON here (after every section)")
    p.add_argument("--batch", type=int, default=64, help="inference batch (Table 4: 64)")
    p.add_argument("--kd-batch", type=int, default=64, help="KD step batch (the paper's: 64)")
    p.add_argument("--kd-frames", type=int, default=16, help="KD step segments")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--sections", default="inference,kd_step,data_path",
                   help="comma-separated subset of inference,kd_step,data_path "
                        "(data_path needs kd_step)")
    args = p.parse_args(argv)
    sections = args.sections.split(",")
    unknown = set(sections) - {"inference", "kd_step", "data_path"}
    if unknown or ("data_path" in sections and "kd_step" not in sections):
        raise ValueError(f"--sections: expected a subset of inference,kd_step,data_path with "
                         f"kd_step whenever data_path, got {args.sections!r}")
    start = time.perf_counter()
    device = pick_device("auto")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
    if args.smoke:
        inf = dict(arch="resnet18", sizes=(64, 32, 16), frames=2, batch=2, warmup=1)
        kd = dict(teacher_arch="resnet18", student_arch="resnet18", teacher_size=64,
                  student_size=32, frames=2, batch=2, warmup=1)
        rounds, min_seconds = 0, 0.0  # one step per precision, one call per data-path part
    else:
        inf = dict(arch="resnet50", sizes=tuple(PAPER_V100), frames=16, batch=args.batch,
                   warmup=2)
        kd = dict(teacher_arch="resnet152", student_arch="resnet50", teacher_size=224,
                  student_size=112, frames=args.kd_frames, batch=args.kd_batch, warmup=2)
        rounds, min_seconds = args.rounds, 1.0
    report = {"smoke": args.smoke, "machine": facts(device), "rtol": RTOL,
              "notes": [n for n in [TQDM_NOTE] if n], "elapsed_s": {}}

    def save(name: str, t0: float) -> None:
        report["elapsed_s"][name] = round(time.perf_counter() - t0, 1)
        report["elapsed_s"]["total"] = round(time.perf_counter() - start, 1)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2))

    m = report["machine"]
    log(f"[gpu_check] {m['device']}, torch {m['torch']}, CUDA {m['cuda']}, cudnn {m['cudnn']}, "
        f"cudnn.benchmark {m['cudnn_benchmark']}, default mode {m['default_mode']['mode']}")
    if "inference" in sections:
        t0 = time.perf_counter()
        report["inference"] = inference(device, rounds=max(rounds, 1), min_seconds=min_seconds,
                                        **inf)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        save("inference", t0)
    if "kd_step" in sections:
        t0 = time.perf_counter()
        size = kd["teacher_size"]
        # (N, T, H, W, C) uint8 at the teacher's crop size, as the loaders hand clips over
        clips = torch.randint(0, 256, (kd["batch"], kd["frames"], size, size, 3),
                              dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        report["kd_step"], default_step = kd_step(device, rounds=rounds, min_seconds=min_seconds,
                                                  clips=clips, **kd)
        save("kd_step", t0)
        if "data_path" in sections:
            t0 = time.perf_counter()
            report["data_path"] = data_path(device, clips=clips, student_size=kd["student_size"],
                                            kd=default_step, warmup=1 if rounds else 0,
                                            rounds=max(rounds, 1), min_seconds=min_seconds)
            save("data_path", t0)
    failed = [n for n, c in report.get("kd_step", {}).get("comparison", {}).items()
              if not c["ok"]]
    report["ok"] = not failed
    save("total", start)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"GPU check{' (smoke: tiny sizes, no targets)' if args.smoke else ''}: "
              f"{m['device']}; torch {m['torch']}, torchvision {m['torchvision']}, CUDA "
              f"{m['cuda']}, cudnn {m['cudnn']}, cudnn.benchmark {m['cudnn_benchmark']}, "
              f"TF32 convolutions {m['cudnn_allow_tf32']}; default mode "
              f"{m['default_mode']['mode']} ({m['default_mode']['precision']}, channels_last); "
              f"{m['cpus']} CPUs, load {m['load_avg_1m']}, {m['date']}")
        for note in report["notes"]:
            print(f"note: {note}")
        if "inference" in report:
            print_inference(report["inference"])
        if "kd_step" in report:
            print_kd(report["kd_step"])
        if "data_path" in report:
            print_data(report["data_path"])
        print(f"\nprecision check: {'pass' if not failed else 'FAILED: ' + ', '.join(failed)}; "
              f"{report['elapsed_s']['total']:.0f} s in all")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())

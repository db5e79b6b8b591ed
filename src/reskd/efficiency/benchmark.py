"""Inference throughput: videos per second of a video model, after warm-up, in inference mode.

Two ways to time:

* :func:`videos_per_s` times one model in one mode (what `reskd demo` reports).
* :func:`interleaved_rates` / :func:`bench_report` time several cases *in rounds*: round r
  times case A, then B, then C ... (the order rotates every round) and each case's figure is
  the median over rounds. On a machine shared with other jobs the load changes minute by
  minute; interleaving makes a *ratio* between cases (112 vs 224 px, default vs fp32) fair,
  because every case sees the same mix of quiet and busy moments. Absolute videos/s from a
  shared machine are not worth quoting; ratios measured in one run are.

Modes (:data:`MODES`), all on the same weights:

==================  ===========================================================================
``fp32``            plain fp32, NCHW (contiguous) memory format
``channels_last``   fp32, channels_last (NHWC; channels_last_3d for 3D models)
``bf16``            bf16 autocast + channels_last
``fp16``            fp16 autocast + channels_last (CUDA only; skipped with a note elsewhere)
``compile``         ``torch.compile`` of the channels_last model, in the default precision
                    (``runtime.autocast_dtype("auto")``); its compile time is stored apart
``fold_bn``         channels_last, default precision, every BatchNorm that directly follows a
                    convolution folded into it (:func:`fold_batchnorm`; inference only)
==================  ===========================================================================

The default mode (``runtime.precision=auto``, ``runtime.channels_last=true``) is described by
:func:`fastest_default_mode`; :func:`default_vs_fastest` compares it with the fastest mode a
:func:`bench_report` found. Training does not take that mode on trust: where a device has
two candidate precisions it times both on the run's own model
(:func:`reskd.engine.runtime.pick_precision`, built on :func:`interleaved_rates`, which lives
in the runtime layer for that reason).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from reskd.engine.runtime import (
    autocast,
    autocast_dtype,
    cpu_has_fast_bf16,
    device_name,
    interleaved_rates,
    pick_device,
    precision_name,
    prepare_model,
    synchronize,
)
from reskd.models.fold import fold_batchnorm

__all__ = ["MODES", "videos_per_s", "machine_facts", "interleaved_rates", "bench_report",
           "format_bench", "fastest_default_mode", "default_vs_fastest", "mode_settings"]

MODES = ("fp32", "channels_last", "bf16", "fp16", "compile", "fold_bn")


@torch.inference_mode()
def videos_per_s(model: nn.Module, *, frames: int, size: int, batch: int,
                 device: torch.device, amp_dtype: torch.dtype | None, warmup: int = 2,
                 min_seconds: float = 2.0, max_iters: int = 50) -> float:
    """Times forward passes of (batch, frames, 3, size, size) clips until `min_seconds` pass."""
    model.eval()
    x = torch.randn(batch, frames, 3, size, size, device=device)
    with autocast(device, amp_dtype):
        for _ in range(warmup):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        iters, start = 0, time.perf_counter()
        while iters < max_iters and (iters < 2 or time.perf_counter() - start < min_seconds):
            model(x)
            iters += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return iters * batch / (time.perf_counter() - start)


def cpu_flags(names: Sequence[str]) -> dict[str, bool]:
    """Which of the CPU flags `names` /proc/cpuinfo lists (as `lscpu` shows them); all False
    where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:
        flags = []
    return {name: name in flags for name in names}


def machine_facts(device: torch.device, amp_dtype: torch.dtype | None) -> dict:
    """What every stored benchmark number carries alongside it.

    `load_avg_1m` is the 1-minute load average when the facts were taken: above the number of
    CPUs the machine was shared and absolute numbers are noisy (ratios measured in one
    interleaved run stay usable).
    """
    device = torch.device(device)
    name = device_name(device)
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:  # not available on every platform
        load = None
    return {"device": f"{device.type}: {name}", "dtype": precision_name(amp_dtype),
            "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "cpu_native_bf16": cpu_has_fast_bf16(), "torch": torch.__version__,
            "load_avg_1m": load, "date": datetime.datetime.now().isoformat(timespec="seconds")}


# ---------------------------------------------------------------------------------------------
# Interleaved timing


def bench_arguments(description: str, *, rounds: int) -> argparse.ArgumentParser:
    """The options the bench/ scripts share; add a script's own, then `parse_bench_arguments`."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smoke run; targets are not checked")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", action="store_true")
    return p


def parse_bench_arguments(parser, argv: list[str] | None):
    """Parses and applies --threads before anything is measured."""
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


# ---------------------------------------------------------------------------------------------
# Modes


def mode_settings(mode: str, device: torch.device) -> dict:
    """{"channels_last", "amp_dtype", "compile", "fold_bn", "skip"} of one mode on `device`.

    `skip` is None, or the reason the mode cannot run there (it is then reported, not timed).
    """
    if mode not in MODES:
        raise ValueError(f"unknown benchmark mode {mode!r}; valid: {', '.join(MODES)}")
    device = torch.device(device)
    skip = None
    if mode == "fp16" and device.type != "cuda":
        skip = "fp16 autocast is benchmarked on CUDA only (no fast fp16 kernels on CPU)"
    amp = {"fp32": None, "channels_last": None, "bf16": torch.bfloat16,
           "fp16": torch.float16}.get(mode, autocast_dtype("auto", device))
    return {"channels_last": mode != "fp32", "amp_dtype": amp, "compile": mode == "compile",
            "fold_bn": mode == "fold_bn", "skip": skip}


def fastest_default_mode(device: torch.device | str) -> dict:
    """The mode `runtime.precision=auto` + `runtime.channels_last=true` runs in, and why.

    The precision is `auto`'s unmeasured guess (reskd.engine.runtime.autocast_dtype): on
    CUDA bf16 where the GPU supports it, else fp16; on CPU bf16 only where the CPU executes it
    natively (AVX-512 BF16 or AMX), else fp32, because emulated bf16 is slower than fp32
    (about 4x slower for ResNet-50 on an AVX2-only AMD EPYC). Where there are two candidates
    (CUDA, native bf16), training measures instead of guessing
    (reskd.engine.runtime.pick_precision) and may keep fp32; the inference benchmarks here
    time the guess. channels_last is on by default: oneDNN (CPU) and tensor cores (CUDA) run
    NHWC convolutions faster than NCHW (about 1.5-2x on CPU). torch.compile is not part of
    the default: it costs tens of seconds per input shape.
    """
    device = torch.device(device)
    amp = autocast_dtype("auto", device)
    # inference paths (test, predict) also fold BatchNorm (runtime.prepare_model(inference=True))
    name = {None: "fold_bn", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp]
    if device.type == "cuda":
        why = ("CUDA: bf16 autocast where the GPU supports it, else fp16; channels_last for "
               "tensor-core convolutions")
    elif amp is None:
        why = ("CPU without native bf16 (no AVX-512 BF16 / AMX): fp32, since emulated bf16 "
               "autocast is slower than fp32; channels_last (NHWC oneDNN convolutions) with "
               "BatchNorm folded into the convolutions")
    else:
        why = ("CPU with native bf16 (AVX-512 BF16 / AMX): bf16 autocast + channels_last "
               "(training times bf16 against fp32 on the run's model and keeps the faster)")
    return {"mode": name, "precision": precision_name(amp), "channels_last": True,
            "compile": False, "device": str(device), "why": why}


def default_vs_fastest(rows: Sequence[dict], *, tolerance: float = 0.10) -> list[dict]:
    """Per (model, size, frames, batch): the default mode's videos/s against the fastest mode's.

    `rows` are :func:`bench_report` rows; the default mode is read from their `default_mode`
    field. `ratio` = default / fastest (1.0 when the default is the fastest); `ok` is
    ratio >= 1 - tolerance. Groups without a timed default row are left out.
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["model"], row["size"], row["frames"], row["batch"])
        groups.setdefault(key, []).append(row)
    out = []
    for (model, size, frames, batch), group in groups.items():
        timed = [r for r in group if r.get("videos_per_s")]
        default = next((r for r in timed if r["mode"] == r["default_mode"]), None)
        if default is None or not timed:
            continue
        fastest = max(timed, key=lambda r: r["videos_per_s"])
        ratio = default["videos_per_s"] / fastest["videos_per_s"]
        out.append({"model": model, "size": size, "frames": frames, "batch": batch,
                    "default_mode": default["mode"],
                    "default_videos_per_s": default["videos_per_s"],
                    "fastest_mode": fastest["mode"],
                    "fastest_videos_per_s": fastest["videos_per_s"],
                    "ratio": ratio, "tolerance": tolerance, "ok": ratio >= 1 - tolerance})
    return out


# ---------------------------------------------------------------------------------------------
# The benchmark


def _build(model_name: str | None, checkpoint: str | None, *, frames: int,
           num_classes: int) -> tuple[nn.Module, str]:
    """(model in eval mode on CPU, its name); random weights for a name, stored ones for a file."""
    if (model_name is None) == (checkpoint is None):
        raise ValueError("give exactly one of model_name (an architecture, e.g. resnet50) or "
                         f"checkpoint (a reskd model.pt); got model_name={model_name!r}, "
                         f"checkpoint={checkpoint!r}")
    if checkpoint is not None:
        from reskd.models import load_model_checkpoint

        model, ckpt = load_model_checkpoint(checkpoint)  # an any-resolution one: at its size
        return model, ckpt["model_kwargs"]["arch"]
    from reskd.models import ARCHS, build_model

    if model_name not in ARCHS:
        raise ValueError(f"unknown model {model_name!r}; valid: {', '.join(ARCHS)}")
    return build_model(model_name, num_classes=num_classes, num_segments=frames).eval(), model_name


def _check_positive(name: str, value) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be positive integers, got {value!r}")


def bench_report(*, model_name: str | None = None, checkpoint: str | None = None,
                 sizes: Sequence[int], frames: int, batch: int,
                 modes: Sequence[str] = ("fp32", "channels_last", "bf16", "fold_bn", "compile"),
                 device: str | torch.device = "auto", num_classes: int = 400, warmup: int = 1,
                 rounds: int = 3, min_seconds: float = 1.0, log: Callable[[str], None] | None = None
                 ) -> list[dict]:
    """Videos/s of one model for every size x mode, timed in interleaved rounds.

    Input clips are (batch, frames, 3, size, size) random tensors, run under inference_mode
    after `warmup` calls (compile: the first call compiles; `compile_s` is its wall time).
    Returns one dict per size x mode with `videos_per_s` (median over rounds; None when the
    mode was skipped or failed, with `note` saying why), `videos_per_s_rounds`, `latency_ms`
    (per batch), the shape, mode settings, `default_mode`, `machine_facts` (load average taken
    before timing) and `load_avg_1m_end` (after).
    """
    _check_positive("sizes", list(sizes))
    _check_positive("frames", frames)
    _check_positive("batch", batch)
    device = pick_device(device) if isinstance(device, str) else torch.device(device)
    if not modes or len(set(modes)) != len(modes):
        raise ValueError(f"modes must be distinct names from {', '.join(MODES)}, got {modes!r}")
    settings = {mode: mode_settings(mode, device) for mode in modes}  # validates names early
    if checkpoint is not None:  # an any-resolution student runs at the sizes it supports only
        _check_checkpoint_sizes(checkpoint, sizes)
    base, name = _build(model_name, checkpoint, frames=frames, num_classes=num_classes)
    default = fastest_default_mode(device)["mode"]
    models, folded = _mode_models(base, settings, device)

    rows: dict[tuple[int, str], dict] = {}
    cases: dict[str, Callable[[], object]] = {}
    for size in sizes:
        x = torch.randn(batch, frames, 3, size, size, device=device)  # (N, T, C, H, W)
        for mode in modes:
            s = settings[mode]
            row = {"model": name, "mode": mode, "size": size, "frames": frames, "batch": batch,
                   "shape": list(x.shape), "channels_last": s["channels_last"],
                   "compile": s["compile"], "fold_bn": s["fold_bn"], "default_mode": default,
                   "videos_per_s": None,
                   "videos_per_s_rounds": [], "latency_ms": None, "compile_s": None,
                   "note": s["skip"] or "",
                   **machine_facts(device, s["amp_dtype"])}
            rows[(size, mode)] = row
            if s["skip"] is not None:
                continue
            if mode == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
                row["note"] = "bf16 is emulated on this CPU (no AVX-512 BF16 / AMX): slower"
            if s["fold_bn"]:
                row["note"] = f"{folded[mode]} BatchNorms folded into convolutions"
            call = _warmed_up(models[mode], x, s, row, device=device, warmup=warmup, log=log)
            if call is not None:
                cases[f"{size}/{mode}"] = call

    rates = interleaved_rates(cases, rounds=rounds, min_seconds=min_seconds, device=device)
    _add_rates(rows, rates, batch=batch, load_end=machine_facts(device, None)["load_avg_1m"])
    return list(rows.values())


def _check_checkpoint_sizes(checkpoint: str, sizes: Sequence[int]) -> None:
    """An any-resolution student is timed only at the sizes it supports."""
    from reskd.checkpoint import check_size, checkpoint_sizes, load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    if len(checkpoint_sizes(ckpt)) > 1:
        for size in sizes:
            check_size(ckpt, size, checkpoint)


def _mode_models(base: nn.Module, settings: dict[str, dict], device: torch.device
                 ) -> tuple[dict[str, nn.Module], dict[str, int]]:
    """The model of every mode not skipped (a copy of `base` on `device`, BatchNorms folded,
    channels_last or compiled as the mode says), and the BatchNorms folded per mode. A mode
    whose BatchNorms cannot be folded is marked skipped in `settings`, with the reason."""
    models: dict[str, nn.Module] = {}
    folded: dict[str, int] = {}
    for mode, s in settings.items():
        if s["skip"] is not None:
            continue
        try:
            m, n_folded = fold_batchnorm(base) if s["fold_bn"] else (copy.deepcopy(base), 0)
        except ValueError as e:  # reported in the rows of this mode, never hidden
            settings[mode] = {**s, "skip": str(e)}
            continue
        folded[mode] = n_folded
        m = prepare_model(m, device, s["channels_last"]) if s["channels_last"] else m.to(device)
        # static shapes: one graph per size (automatic dynamic shapes would kick in at the
        # second size and time a slower, shape-generic graph)
        models[mode] = torch.compile(m, dynamic=False) if s["compile"] else m
    return models, folded


def _warmed_up(model: nn.Module, x: torch.Tensor, s: dict, row: dict, *, device: torch.device,
               warmup: int, log: Callable[[str], None] | None) -> Callable[[], object] | None:
    """The timed call of one size x mode after its warm-up calls; None (with the reason in
    `row["note"]`) when compiling failed. A compiled mode's `compile_s` goes into `row`."""

    def call(model=model, x=x, amp=s["amp_dtype"]):
        with torch.inference_mode(), autocast(device, amp):
            return model(x)

    size, mode = row["size"], row["mode"]
    start = time.perf_counter()
    n_warmup = max(warmup, 2 if s["compile"] else 1)
    try:
        for _ in range(n_warmup):
            call()
            synchronize(device)
    except Exception as e:  # noqa: BLE001 - reported in the row, never hidden
        if not s["compile"]:
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        row["note"] = f"torch.compile failed, not timed: {type(e).__name__}: {first}"
        if log:
            log(f"[bench] {size}px {mode}: {row['note']}")
        return None
    if s["compile"]:
        row["compile_s"] = time.perf_counter() - start
        row["note"] = (f"compile_s = wall time of the {n_warmup} warm-up calls, "
                       f"compilation included")
    if log:
        log(f"[bench] warmed up {size}px {mode} ({time.perf_counter() - start:.1f} s)")
    return call


def _add_rates(rows: dict[tuple[int, str], dict], rates: dict[str, list[float]], *, batch: int,
               load_end: float | None) -> None:
    """Videos/s (median over rounds), every round's and the latency per batch into the timed
    rows; the load average after timing into every row."""
    for row in rows.values():
        row["load_avg_1m_end"] = load_end  # with load_avg_1m: how busy the machine was
    for key, per_round in rates.items():
        size, mode = key.split("/")
        row = rows[(int(size), mode)]
        calls_per_s = statistics.median(per_round)
        row["videos_per_s"] = calls_per_s * batch
        row["videos_per_s_rounds"] = [r * batch for r in per_round]
        row["latency_ms"] = 1000.0 / calls_per_s


def format_bench(rows: Sequence[dict]) -> str:
    """A plain-text table of :func:`bench_report` rows, then the default-vs-fastest summary."""
    if not rows:
        return "no results"
    f = rows[0]
    lines = [f"{f['model']}, {f['frames']} frames, batch {f['batch']}, {f['device']}, "
             f"{f['threads']} threads, torch {f['torch']}, load avg {f['load_avg_1m']} on "
             f"{f['cpus']} CPUs; median over {len(f['videos_per_s_rounds']) or '-'} interleaved "
             f"rounds; default mode here: {f['default_mode']}",
             f"{'size':>5}  {'mode':<14}{'dtype':<6}{'videos/s':>10}{'vs fp32':>9}"
             f"{'latency ms':>12}{'compile s':>11}  note"]
    fp32 = {r["size"]: r["videos_per_s"] for r in rows if r["mode"] == "fp32"}
    for r in rows:
        vps, latency, compile_s = r["videos_per_s"], r["latency_ms"], r["compile_s"]
        rel = f"{vps / fp32[r['size']]:.2f}x" if vps and fp32.get(r["size"]) else "-"
        lines.append(
            f"{r['size']:>5}  {r['mode']:<14}{r['dtype']:<6}"
            f"{(f'{vps:.2f}' if vps else '-'):>10}{rel:>9}"
            f"{(f'{latency:.0f}' if latency else '-'):>12}"
            f"{(f'{compile_s:.1f}' if compile_s else '-'):>11}  {r['note']}")
    for c in default_vs_fastest(rows):
        lines.append(f"{c['size']}px: default ({c['default_mode']}) runs at {c['ratio']:.0%} of "
                     f"the fastest mode ({c['fastest_mode']})")
    return "\n".join(lines)

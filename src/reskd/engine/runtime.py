"""Device, precision and memory-format choices: the fast path, picked per device.

`runtime.precision=auto` is measured, not assumed, the way `cudnn.benchmark` picks kernels.
Native bf16 is no promise of speed: the KD step of TSN-R50 ran 2.53x (AMD EPYC, AVX-512 BF16)
and 2.78x (Xeon with AMX) faster in bf16 + channels_last than in fp32 NCHW, but 1.07x on
another Xeon with AVX-512 BF16, and bf16 autocast was slower than fp32 for small networks.
So where a device has more than one candidate precision (:func:`precision_candidates`: CUDA
and CPUs with native bf16), :func:`pick_precision` times a few steps of the run's own model
in each and keeps the faster, caching the answer per model shape and machine. A CPU without
native bf16 (emulated bf16 ran 4-5x slower than fp32 for ResNet-50 on an AVX2 AMD EPYC) has
fp32 only, and nothing is timed. channels_last is on by default everywhere.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from reskd.checkpoint import write_text_atomic
from reskd.models.fold import NotFoldable, fold_batchnorm, has_batchnorm


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("runtime.device=cuda but no CUDA device is available; use cpu or auto")
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True where the CPU executes bf16 natively (AVX-512 BF16 or AMX)."""
    checks = [getattr(torch.cpu, "_is_avx512_bf16_supported", None),
              getattr(torch.cpu, "_is_amx_tile_supported", None)]
    return any(check() for check in checks if check is not None)


def precision_candidates(device: torch.device) -> list[torch.dtype | None]:
    """The precisions `runtime.precision=auto` chooses between on `device` (None = fp32), the
    usual winner for large networks first: bf16 (fp16 where the GPU lacks bf16) and fp32 on
    CUDA; bf16 and fp32 on a CPU with native bf16 (AVX-512 BF16 / AMX); fp32 alone on any
    other CPU, where bf16 is emulated."""
    device = torch.device(device)
    if device.type == "cuda":
        return [torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16, None]
    return [torch.bfloat16, None] if cpu_has_fast_bf16() else [None]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision name ("auto", "bf16", "fp16", "fp32"); None = fp32.

    "auto" here is the unmeasured guess, the first of :func:`precision_candidates`; training
    measures it instead (:func:`pick_precision`)."""
    named = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision in named:
        return named[precision]
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}; valid: auto, {', '.join(named)}")
    return precision_candidates(device)[0]


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool,
                  inference: bool = False) -> nn.Module:
    """Moves the model and switches convolutions to channels_last where asked.

    `inference=True` (test, predict, benchmarks; never training) also folds each BatchNorm
    into the convolution before it: same outputs up to float rounding, and on CPU it brought
    the default mode from 0.84x to 0.99x of torch.compile's speed for TSN-R50 at 112 without a
    compile step (bench/bench_default_mode.py). A model torch.fx cannot trace runs
    unfolded, with a warning saying so; a model without BatchNorm (Swin) has nothing to fold.
    On CUDA it turns on `cudnn.benchmark` (every step has the same shapes).
    """
    if inference and has_batchnorm(model):
        try:
            model, _ = fold_batchnorm(model)
        except NotFoldable as e:
            warnings.warn(f"{e}; running with BatchNorm unfolded (same outputs, slower)",
                          stacklevel=2)
    model = model.to(device)
    if device.type == "cuda":  # fixed input shapes: let cuDNN pick the fastest kernels once
        torch.backends.cudnn.benchmark = True
    if channels_last:
        # 3D models (SlowOnly, Swin) declare channels_last_3d; 2D ones take the default.
        model = model.to(memory_format=getattr(model, "memory_format", torch.channels_last))
        model.channels_last = True
    return model


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def share_cpu_with_workers(device: torch.device, workers: int) -> None:
    """On CPU, leaves one core per loader worker: oversubscribed OpenMP threads stall badly
    (measured here: a 2-thread trainer beside a busy worker ran 5x slower than 1 thread).
    An explicit OMP_NUM_THREADS wins."""
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))


def device_name(device: torch.device) -> str:
    """The device's model name: the GPU's, or the CPU's from /proc/cpuinfo."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------
# Timing, and `runtime.precision=auto`


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_rates(cases: dict[str, Callable[[], object]], *, rounds: int = 3,
                      min_seconds: float = 1.0, max_calls: int = 50,
                      device: torch.device | str = "cpu") -> dict[str, list[float]]:
    """Calls per second of every case, once per round; the case order rotates each round.

    Each case is called at least once per round and until `min_seconds` have passed (at most
    `max_calls` times). Warm-up is the caller's job (call each case once or twice first).
    On a machine shared with other jobs the load changes minute by minute; interleaving makes
    a ratio between cases fair, because every case sees the same mix of quiet and busy moments.
    Returns {case name: [calls/s of round 0, round 1, ...]}.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    device = torch.device(device)
    names = list(cases)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)] if names else []
        for name in order:
            fn = cases[name]
            synchronize(device)
            calls, start = 0, time.perf_counter()
            while calls < 1 or (calls < max_calls and time.perf_counter() - start < min_seconds):
                fn()
                calls += 1
            synchronize(device)
            rates[name].append(calls / (time.perf_counter() - start))
    return rates


def per_round_ratio(rates: dict[str, list[float]], name: str) -> float:
    """The median over rounds of `name`'s rate / the first case's rate in the same round: a
    ratio that a load changing between rounds moves little (the cases of a round share it)."""
    first = next(iter(rates))
    return statistics.median(r / f for r, f in zip(rates[name], rates[first]))


def precision_cache_path() -> Path:
    """Where :func:`pick_precision` keeps its answers: `$RESKD_CACHE_DIR/precision.json`, else
    `$XDG_CACHE_HOME/reskd/precision.json`, else `~/.cache/reskd/precision.json`."""
    if os.environ.get("RESKD_CACHE_DIR"):
        return Path(os.environ["RESKD_CACHE_DIR"]) / "precision.json"
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "reskd" / "precision.json"


def _read_cache(path: Path) -> dict:
    """The cache's entries; {} for a missing file, and for an unreadable one after a warning
    (it is rewritten with the next answer)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        warnings.warn(f"ignoring the precision cache {path} ({type(e).__name__}: {e}); it will "
                      f"be rewritten", stacklevel=3)
        return {}
    if not isinstance(data, dict):
        warnings.warn(f"ignoring the precision cache {path}: it holds a {type(data).__name__}, "
                      f"not a JSON object; it will be rewritten", stacklevel=3)
        return {}
    return data


def _write_cache(path: Path, cache: dict) -> None:
    """Writes atomically (`write_text_atomic`): a reader sees the old file or the new one.
    A cache that cannot be written costs a warning, never the run."""
    try:
        write_text_atomic(path, json.dumps(cache, indent=1, sort_keys=True))
    except OSError as e:
        warnings.warn(f"could not write the precision cache {path} ({e}); the next run with "
                      f"runtime.precision=auto times again", stacklevel=3)


def _usable(entry: object, names: Sequence[str]) -> bool:
    """Whether a cache entry names one of the candidates and holds numeric rates (an entry
    edited by hand into something else is timed afresh and overwritten)."""
    return (isinstance(entry, dict) and entry.get("precision") in names
            and isinstance(entry.get("clips_per_s"), dict)
            and all(isinstance(v, (int, float)) for v in entry["clips_per_s"].values()))


def _cache_key(model: nn.Module, input_shape: Sequence[int], teacher: nn.Module | None,
               teacher_shape: Sequence[int] | None, *, training: bool, device: torch.device,
               candidates: Sequence[torch.dtype | None]) -> str:
    """The model's shape (class, parameter count, input shape, channels_last; the teacher's
    too), training vs inference, the candidates and the machine (device model, torch, threads)."""
    def shape(m: nn.Module, x: Sequence[int]) -> dict:
        return {"class": type(m).__name__, "params": sum(p.numel() for p in m.parameters()),
                "input": list(x), "channels_last": bool(getattr(m, "channels_last", False))}

    return json.dumps({
        "model": shape(model, input_shape),
        "teacher": shape(teacher, teacher_shape) if teacher is not None else None,
        "training": training, "candidates": [precision_name(c) for c in candidates],
        "device": f"{device.type}: {device_name(device)}", "torch": torch.__version__,
        "threads": torch.get_num_threads()}, sort_keys=True)


@contextlib.contextmanager
def _restored(modules: Sequence[nn.Module], device: torch.device) -> Iterator[None]:
    """On exit puts back every module's weights and buffers (BatchNorm running statistics),
    gradients and train/eval flags, and the torch RNG (dropout draws from it): what runs
    inside leaves no trace in the run."""
    saved = [({k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()},
              [None if p.grad is None else p.grad.detach().clone() for p in m.parameters()],
              [s.training for s in m.modules()]) for m in modules]
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        yield
    finally:
        for m, (state, grads, flags) in zip(modules, saved):
            m.load_state_dict(state)
            for p, grad in zip(m.parameters(), grads):
                p.grad = grad
            for s, flag in zip(m.modules(), flags):
                s.training = flag
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)


def _timing_step(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None,
                 device: torch.device, *, training: bool, teacher: nn.Module | None,
                 teacher_x: torch.Tensor | None) -> Callable[[], None]:
    """The part of a step whose cost depends on the precision: training, the frozen teacher's
    forward and the model's forward + backward; inference, one forward. The optimizer step
    (fp32 weights either way) and data loading are the same in every precision."""
    def step() -> None:
        if not training:
            with torch.inference_mode(), autocast(device, dtype):
                model(x)
            return
        with autocast(device, dtype):
            if teacher is not None:
                with torch.no_grad():
                    teacher(teacher_x)
            loss = model(x).float().mean()
        loss.backward()  # outside autocast, as reskd.engine.train.train_step does
        model.zero_grad(set_to_none=True)

    return step


def pick_precision(model: nn.Module, input_shape: Sequence[int], device: torch.device, *,
                   training: bool = True, teacher: nn.Module | None = None,
                   teacher_shape: Sequence[int] | None = None,
                   candidates: Sequence[torch.dtype | None] | None = None, rounds: int = 5,
                   min_seconds: float = 0.5, timer: Callable[..., dict] = interleaved_rates,
                   cache_path: str | Path | None = None,
                   log: Callable[[str], None] = print) -> torch.dtype | None:
    """The faster of the `candidates` (default :func:`precision_candidates`; None = fp32) for
    this model on `device`, measured: what `runtime.precision=auto` trains in.

    Why measure: native bf16 sped the KD step of TSN-R50 up 2.5-2.8x on some CPUs, 1.07x on
    another, and slowed small networks down (module doc); the hardware is the only reliable
    judge, as for `cudnn.benchmark`. A single candidate (a CPU without native bf16) is
    returned at once, at no cost. Otherwise each candidate's step (:func:`_timing_step` on a
    random batch of `input_shape` (N, T, C, H, W), the teacher's of `teacher_shape`) runs once
    to warm up, then `timer` (:func:`interleaved_rates`: `rounds` interleaved rounds of at
    least `min_seconds`) times it; the highest median per-round ratio to the first candidate
    (:func:`per_round_ratio`) wins, ties to the earlier candidate. One line is logged: the
    kept precision and every candidate's median clips/s.
    The answer is cached in `cache_path` (default :func:`precision_cache_path`), keyed by the
    model's shape and the machine (:func:`_cache_key`): the same run again times nothing.
    Weights, BatchNorm statistics, gradients, train/eval flags and the RNG are restored, so
    the run is bit-identical to one started with the kept precision given explicitly.
    """
    device = torch.device(device)
    candidates = list(precision_candidates(device) if candidates is None else candidates)
    if not candidates:
        raise ValueError("candidates must name at least one precision (None = fp32), got []")
    if len(candidates) == 1:
        return candidates[0]
    if teacher is not None and teacher_shape is None:
        raise ValueError("pick_precision: a teacher needs teacher_shape, the shape of its batch")
    by_name = {precision_name(c): c for c in candidates}
    path = Path(cache_path) if cache_path is not None else precision_cache_path()
    key = _cache_key(model, input_shape, teacher, teacher_shape, training=training,
                     device=device, candidates=candidates)
    cache = _read_cache(path)
    hit = cache.get(key)
    if _usable(hit, by_name):
        log(f"precision auto: {hit['precision']} (cached in {path}; "
            + ", ".join(f"{n} {v:.2f}" for n, v in hit["clips_per_s"].items())
            + " clips/s when measured)")
        return by_name[hit["precision"]]
    gen = torch.Generator().manual_seed(0)  # random inputs without touching the global RNG
    x = torch.randn(*input_shape, generator=gen).to(device)
    teacher_x = (torch.randn(*teacher_shape, generator=gen).to(device)
                 if teacher is not None else None)
    with _restored([m for m in (model, teacher) if m is not None], device):
        model.train(training)
        steps = {name: _timing_step(model, x, dtype, device, training=training,
                                    teacher=teacher, teacher_x=teacher_x)
                 for name, dtype in by_name.items()}
        for step in steps.values():  # warm-up: kernel selection, oneDNN primitives, cuDNN
            step()
        rates = timer(steps, rounds=rounds, min_seconds=min_seconds, device=device)
    clips = {name: statistics.median(rates[name]) * input_shape[0] for name in by_name}
    kept = max(by_name, key=lambda name: per_round_ratio(rates, name))  # first of equals
    cache[key] = {"precision": kept, "clips_per_s": clips,
                  "date": datetime.datetime.now().isoformat(timespec="seconds")}
    _write_cache(path, cache)
    log(f"precision auto: {kept} ("
        + ", ".join(f"{n} {v:.2f}" for n, v in clips.items())
        + f" clips/s, {'training' if training else 'inference'} steps of the run's model "
          f"timed in {rounds} interleaved rounds; cached in {path})")
    return by_name[kept]

"""The training loop for plain training (teacher or baseline) and for ResKD distillation.

One loop for both, built from one step (`train_step`, also what the benchmarks time): with a
teacher, each batch carries a "teacher" and a "student" view and the loss is CE + the weighted
KD terms (default: alpha * feature KD); without, the "student" view alone and CE. `train()`
reads as its parts: `_resume` (the state to start from), then per epoch `_Loop.run_epoch` (its
steps: `train_step`, `_add_step`, the curves) and `_Loop.end_epoch` (`_epoch_record`,
validation, checkpoint; `plateau_message`: a run whose train top-1 has not left its first
epoch's). Each epoch appends a line to `metrics.jsonl` and writes
`checkpoint-epochK.pt` and `checkpoint.pt` atomically (model, optimizer, schedule, grad scaler,
torch RNG, position, history), keeping the last `keep_checkpoints` epoch files.

Nothing is lost when a run stops:
- `resume=True` continues from the newest readable checkpoint (see
  `checkpoint.find_resume_checkpoint`), mid-epoch included, and ends bit-identical to an
  uninterrupted run in fp32 with the same loader settings: data randomness is a function of
  (seed, epoch, index), and the torch RNG (dropout) is restored with the weights;
- `should_stop()` (the CLI wires SIGINT / SIGTERM to it) is polled after every step: the run
  finishes that step, saves its position (epoch + step within it) and raises `Interrupted`;
- a non-finite loss raises `NonFiniteLossError` naming the step, before the bad update, so the
  last checkpoint stays good; a checkpoint that cannot be written raises `CheckpointWriteError`
  and leaves the previous one intact.

Learning rate: one step sees the global batch (per-process batch x processes x accumulated
batches); `lr` is for that batch and is not rescaled here (see `reskd.engine.distributed`).
The optimizer and its schedule are `reskd.engine.optim`'s.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from reskd.checkpoint import (
    LATEST,
    copy_checkpoint,
    epoch_checkpoint_path,
    epoch_checkpoints,
    find_resume_checkpoint,
    prune_epoch_checkpoints,
    save_checkpoint,
)
from reskd.distill.distiller import Distiller, KDWeights
from reskd.distill.losses import classification_loss, top1_hits
from reskd.engine import distributed as dist_utils
from reskd.engine.optim import Schedule, base_lr
from reskd.engine.runtime import autocast
from reskd.engine.tensorboard import open_writer, write_scalars


class TrainingStopped(RuntimeError):
    """The run stopped before its last epoch; the message says why and how to go on."""
    exit_code = 1


class NonFiniteLossError(TrainingStopped):
    pass


class CheckpointWriteError(TrainingStopped):
    pass


class Interrupted(TrainingStopped):
    """Stopped on request (a signal); the position was saved and `--resume` continues."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps taken in all
    history: list = field(default_factory=list)
    epoch_step: int = 0  # steps already taken in epoch `epoch` (a mid-epoch checkpoint)


def _write_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _rewrite_jsonl(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)


def memory_mb() -> tuple[float, float]:
    """(resident, peak resident) memory of this process in MiB (Linux /proc; else peak only)."""
    try:
        status = Path("/proc/self/status").read_text()
        kb = {k: float(v.split()[0]) for k, v in
              (line.split(":", 1) for line in status.splitlines() if line.startswith("Vm"))}
        return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _zero_sums() -> dict:
    return {"loss": 0.0, "ce": 0.0, "kd": 0.0, "correct": 0.0, "clips": 0, "skipped": 0,
            "seconds": 0.0, "grad_norm": 0.0, "steps": 0}


def _on_host(sums: dict) -> dict:
    """The epoch sums as Python numbers (one device sync)."""
    tensors = [k for k, v in sums.items() if isinstance(v, torch.Tensor)]
    if not tensors:
        return dict(sums)
    values = torch.stack([sums[k] for k in tensors]).tolist()
    return {**sums, **dict(zip(tensors, values))}


_NO_SCALING = torch.amp.GradScaler("cpu", enabled=False)  # passes loss and step through


def _loss_parts(model: nn.Module, batch: dict, *, device: torch.device,
                amp_dtype: torch.dtype | None,
                distiller: Distiller | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """(loss parts, labels) of one batch: the forward passes of `train_step`."""
    student_x = batch["student"].to(device, non_blocking=True)
    labels = batch["label"].to(device)
    with autocast(device, amp_dtype):
        if distiller is not None:
            teacher_x = batch["teacher"].to(device, non_blocking=True)
            if "students" in batch:  # an any-resolution student: every size, its own last
                size = student_x.shape[-1]
                views = {s: x.to(device, non_blocking=True) for s, x in batch["students"].items()}
                parts = distiller(teacher_x, {**views, size: student_x}, labels, size=size)
            else:
                parts = distiller(teacher_x, student_x, labels)
        else:
            logits = model(student_x)
            ce = classification_loss(logits, labels)
            parts = {"loss": ce, "ce": ce.detach(), "logits": logits.detach()}
    return parts, labels


def _mean_parts(micro: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The parts of k micro-batches as one step's: each loss part the mean over them (a part
    one lacks, e.g. a size not drawn there, counts 0 in it), logits concatenated, hits summed."""
    if len(micro) == 1:
        return micro[0]
    names = dict.fromkeys(name for parts in micro for name in parts)
    merged = {}
    for name in names:
        values = [parts[name] for parts in micro if name in parts]
        if name == "logits":
            merged[name] = torch.cat(values)  # (k * N, K)
        elif name == "hits":
            merged[name] = sum(values)
        else:
            merged[name] = sum(values) / len(micro)
    return merged


def train_step(model: nn.Module, batch: dict | list[dict], *,
               optimizer: torch.optim.Optimizer, device: torch.device,
               amp_dtype: torch.dtype | None = None, distiller: Distiller | None = None,
               grad_clip: float = 0.0,
               scaler: torch.amp.GradScaler | None = None) -> dict[str, torch.Tensor]:
    """One optimisation step of `model` on one batch: forward (and the frozen teacher's, when
    distilling), loss, backward, grad-norm clip, optimizer step; autocast to `amp_dtype`,
    gradients scaled by `scaler` (fp16) when given.

    `batch` holds "student" (N, T, C, h, w), "label" and, with a `distiller` (whose student
    is `model`), "teacher" (N, T, C, H, W); the loss is CE, or the distiller's CE + weighted
    KD terms. Returns the
    loss parts, detached: "loss", "ce", each "*kd" term, "logits", "hits" (clips whose top
    class is a label, for train top-1) and "grad_norm" (before clipping). Raises
    `NonFiniteLossError`
    before the update when the loss is not finite, so the weights stay good. The learning-rate
    schedule is the caller's.

    Gradient accumulation: a list of k batches (micro-batches) makes one step. Each
    micro-batch's loss / k is backpropagated, so the gradients are those of the mean loss over
    the k x N clips; under DDP the first k - 1 backward passes skip the all-reduce (`no_sync`);
    then one clip and one optimizer step. The parts are then the means over the micro-batches
    (logits concatenated, hits summed).

    An any-resolution student's batch also holds "students" {size: (N, T, C, s, s)}, the same
    crop at its other sizes: the loss is summed over the sizes (`multi_size_distill_loss`),
    with per-size parts "s{size}_ce", "s{size}_kd", "s{size}_<term>" besides the sums.
    """
    batches = batch if isinstance(batch, list) else [batch]
    if not batches:
        raise ValueError("train_step needs a batch, or a non-empty list of micro-batches")
    scaler = scaler or _NO_SCALING
    k = len(batches)
    optimizer.zero_grad(set_to_none=True)
    micro = []
    for i, one in enumerate(batches):
        last = i == k - 1
        with model.no_sync() if hasattr(model, "no_sync") and not last else nullcontext():
            parts, labels = _loss_parts(model, one, device=device, amp_dtype=amp_dtype,
                                        distiller=distiller)
            scaler.scale(parts["loss"] / k).backward()
        micro.append({**parts, "loss": parts["loss"].detach(),
                      "hits": top1_hits(parts["logits"], labels)})
    parts = _mean_parts(micro)
    if not torch.isfinite(parts["loss"]):  # one device sync a step, before the update
        raise NonFiniteLossError(f"loss became {parts['loss'].item()}")
    scaler.unscale_(optimizer)  # the true gradients, for clipping and the curves
    if grad_clip > 0:
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    else:
        grad_norm = nn.utils.get_total_norm([p.grad for p in model.parameters()
                                             if p.grad is not None])
    scaler.step(optimizer)
    scaler.update()
    return {**parts, "grad_norm": grad_norm.detach()}


def _resume(out_dir: Path, *, resume: bool, core: nn.Module, optimizer, scheduler, scaler,
            device: torch.device, global_batch: int, batch_size: int, accumulate: int,
            log, connector: nn.Module | None = None) -> tuple[TrainState, dict | None]:
    """(state, partial epoch sums or None): from the newest readable checkpoint when `resume`,
    else a fresh state (and a fresh metrics.jsonl). Loads weights, optimizer, schedule, grad
    scaler and torch RNG into the objects given."""
    is_main, world = dist_utils.is_main(), dist_utils.world_size()
    metrics_path = out_dir / "metrics.jsonl"
    found = find_resume_checkpoint(out_dir, log=log if is_main else _quiet) if resume else None
    if found is None:
        if is_main:
            if resume:
                log(f"--resume: no readable checkpoint in {out_dir}; starting from scratch")
            elif (out_dir / LATEST).is_file() or epoch_checkpoints(out_dir):
                log(f"warning: {out_dir} holds checkpoints of an earlier run; starting a new run "
                    f"that replaces them (use --resume to continue that run instead)")
                prune_epoch_checkpoints(out_dir, 0)
            _rewrite_jsonl(metrics_path, [])
        return TrainState(), None
    ckpt, path = found
    core.load_state_dict(ckpt["model"])
    if connector is not None:  # distill.connector: resumable, never part of model.pt
        if "connector" not in ckpt:
            raise ValueError(f"{path} holds no feature-KD connector but this run uses "
                             f"distill.connector: resume with the distill.connector it was "
                             f"trained with, or start a new run without --resume")
        connector.load_state_dict(ckpt["connector"])
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except ValueError as e:  # other parameter groups: the lr multipliers or no-decay names changed
        saved = ckpt.get("config", {}).get("optim", {})
        keys = ("bias_lr_mult", "backbone_lr_mult", "no_decay_names")
        was = ", ".join(f"optim.{k}={saved[k]!r}" for k in keys if k in saved) or "unknown"
        raise ValueError(
            f"{path}: its optimizer state does not fit this run's parameter groups ({e}); "
            f"optim.bias_lr_mult, optim.backbone_lr_mult or optim.no_decay_names differ from "
            f"the run that saved it (it had: {was}): resume with those, or start a new run "
            f"without --resume") from None
    scheduler.load_state_dict(ckpt["scheduler"])
    if "scaler" in ckpt:
        scaler.load_state_dict(ckpt["scaler"])
    state = TrainState(ckpt["epoch"], ckpt["step"], list(ckpt.get("history", [])),
                       ckpt.get("epoch_step", 0))
    partial = None
    if state.epoch_step:
        if ckpt.get("global_batch", global_batch) != global_batch:
            raise ValueError(
                f"{path} was saved {state.epoch_step} steps into epoch {state.epoch + 1} "
                f"with a global batch of {ckpt['global_batch']} videos, but this run has "
                f"{batch_size} x {world} processes"
                + (f" x {accumulate} accumulated" if accumulate > 1 else "")
                + f" = {global_batch}; resume with the "
                f"same global batch, or delete {path} to resume from the last epoch end")
        if is_main:  # the saved sums are over all processes already
            partial = {**_zero_sums(), **ckpt.get("partial", {})}
    if "rng" in ckpt:
        _set_rng_state(ckpt["rng"], device)
    if is_main:
        where = (f"{state.epoch_step} steps into epoch {state.epoch + 1}" if state.epoch_step
                 else f"after epoch {state.epoch}")
        log(f"resumed from {path} {where}")
        _rewrite_jsonl(metrics_path, state.history)  # drop lines newer than the checkpoint
    return state, partial


def _add_step(sums: dict, parts: dict, n: int, skipped: list[str]) -> None:
    """Adds one step's loss parts (per clip, `n` clips), top-1 hits, grad norm and skipped
    videos to the epoch sums. The parts stay float64 tensors on the model's device, added in
    the order a float sum would be (the same numbers): no device sync until `_on_host`."""
    sums["clips"] += n
    sums["steps"] += 1
    for name in parts:  # "loss", "ce", "kd" (weighted total) and each term ("feature_kd", ...)
        if name in ("loss", "ce") or name.endswith("kd"):
            sums[name] = sums.get(name, 0.0) + parts[name].double() * n
    sums["correct"] = sums["correct"] + parts["hits"].double()
    sums["grad_norm"] = sums["grad_norm"] + parts["grad_norm"].double()
    sums["skipped"] += sum(1 for s in skipped if s)


def _interval_curves(now: dict, last: dict, *, lr: float, seconds: float, waited: float,
                     kd_weights: KDWeights | None) -> dict:
    """The curve points of the steps between two readings of the epoch sums: mean loss parts
    per clip, each KD term raw and weighted, lr, grad norm, train top-1, clips/s, data wait."""
    clips = max(1, now["clips"] - last.get("clips", 0))
    steps = max(1, now["steps"] - last.get("steps", 0))
    terms = [k for k in now if k.endswith("_kd")]  # none without a teacher: no "kd" curve
    mean = {k: (now[k] - last.get(k, 0.0)) / clips
            for k in ["loss", "ce", *(["kd", *terms] if terms else [])]}
    weighted = {k: getattr(kd_weights, k[:-3]) * v for k, v in mean.items()
                if k.endswith("_kd") and hasattr(kd_weights, k[:-3])}
    return {"loss": mean, "loss_weighted": weighted,
            "train": {"lr": lr,
                      "grad_norm": (now["grad_norm"] - last.get("grad_norm", 0.0)) / steps,
                      "top1": 100 * (now["correct"] - last.get("correct", 0.0)) / clips,
                      "clips_per_s": clips / max(seconds, 1e-9),
                      "data_wait": waited / max(seconds, 1e-9)}}


def _epoch_record(totals: dict, *, epoch: int, step: int, lr: float, world: int,
                  distilled: bool) -> dict:
    """The metrics.jsonl line of one epoch from its sums over all processes."""
    seconds = totals["seconds"] / world
    clips = max(1, totals["clips"])
    rss_mb, peak_rss_mb = memory_mb()
    record = {"epoch": epoch, "step": step, "lr": lr,
              "loss": totals["loss"] / clips, "ce": totals["ce"] / clips,
              "train_top1": 100 * totals["correct"] / clips,
              "grad_norm": totals["grad_norm"] / max(1, totals["steps"]),
              "clips_per_s": totals["clips"] / max(seconds, 1e-9), "seconds": seconds,
              "skipped": int(totals["skipped"]), "rss_mb": round(rss_mb, 1),
              "peak_rss_mb": round(peak_rss_mb, 1)}
    if distilled:  # "kd": the weighted KD total; "*_kd": each term, unweighted
        record.update({k: v / clips for k, v in totals.items() if k.endswith("kd")})
    return record


def train(*, model: nn.Module, loader, optimizer: torch.optim.Optimizer, schedule: Schedule,
          epochs: int, device: torch.device, amp_dtype: torch.dtype | None, out_dir: Path,
          context: dict, distiller: Distiller | None = None, grad_clip: float = 0.0,
          resume: bool = False,
          evaluate_fn: Callable[[nn.Module], dict] | None = None, val_every: int = 0,
          keep_checkpoints: int = 2, should_stop: Callable[[], str | None] | None = None,
          progress: bool = True, tensorboard: bool = True, log_every: int = 10,
          transform: Callable[[torch.Tensor], dict] | None = None, accumulate: int = 1,
          on_step: Callable[[int], None] | None = None,
          log: Callable[[str], None] = print) -> TrainState:
    """Trains `model` and returns the final state; with a `distiller` (`reskd.Distiller`,
    whose student is `model`), distils it from the distiller's teacher.

    `model` may be DDP-wrapped; checkpoints store the unwrapped weights. `context` (config,
    classes, sizes, ...) goes into every checkpoint. `evaluate_fn(model)` returns metrics.
    `loader.sampler` needs `set_epoch`; a `ResumableSampler` lets a mid-epoch resume skip the
    done steps without decoding them. `should_stop()` returns a reason (e.g. "SIGTERM") to
    stop after the current step, or None. Each step is `train_step`; a loader that returns
    uint8 training crops ("clip", as `VideoDataset` does) has them copied to `device` and made
    into the step's views there by `transform` (e.g. `reskd.Views.views_of`: normalised,
    shrunk to each size, {"student", "teacher", "students"}), so
    uint8 crosses the process boundary and the device does the resizing. Every `log_every` steps
    the loss parts are read from the device (the only sync of the loop besides the step's own
    finiteness check) for the progress bar and, with `tensorboard`, the curves
    (`reskd.engine.tensorboard`). `on_step(step)` is called with the global step after each
    optimizer step, before `should_stop` is asked (e.g. a test that signals the process there).

    `accumulate` = k > 1: each optimizer step takes k loader batches (`train_step` on a list);
    an epoch is len(loader) // k steps and the last len(loader) % k batches are not loaded.
    Steps, the schedule, `log_every`, the curves and mid-epoch positions count optimizer steps.
    """
    _check_loop_options(loader, accumulate=accumulate, keep_checkpoints=keep_checkpoints)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    core = model.module if hasattr(model, "module") else model
    world = dist_utils.world_size()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    global_batch = loader.batch_size * world * accumulate
    if loader.generator is None:
        # Loader iterators draw their worker seed from this generator instead of the global
        # torch RNG, so that RNG (dropout) is a function of the steps taken, which resume needs.
        loader.generator = torch.Generator().manual_seed(0)
    state, partial = _resume(out_dir, resume=resume, core=core, optimizer=optimizer,
                             scheduler=scheduler, scaler=scaler, device=device,
                             global_batch=global_batch, batch_size=loader.batch_size,
                             accumulate=accumulate, log=log,
                             connector=distiller.connector if distiller is not None else None)
    if distiller is not None:
        if distiller.student is not model:
            raise ValueError("train(): the distiller's student must be the model being trained "
                             "(the same object, DDP wrapper included)")
        distiller.train()
    writer = (open_writer(out_dir, resume_step=state.step + 1 if state.step > 0 else None,
                          log=log) if tensorboard and dist_utils.is_main() else None)
    loop = _Loop(model=model, core=core, loader=loader, optimizer=optimizer, scheduler=scheduler,
                 scaler=scaler, device=device, amp_dtype=amp_dtype, distiller=distiller,
                 grad_clip=grad_clip, accumulate=accumulate, transform=transform,
                 out_dir=out_dir, context=context, epochs=epochs, state=state, writer=writer,
                 global_batch=global_batch, should_stop=should_stop, on_step=on_step,
                 progress=progress, log_every=log_every, log=log)
    for epoch in range(state.epoch, epochs):
        sums, skipped = loop.run_epoch(epoch, partial)
        partial = None
        loop.end_epoch(epoch, sums, skipped, evaluate_fn=evaluate_fn, val_every=val_every,
                       keep_checkpoints=keep_checkpoints)
    loop.finish()
    return state


def _check_loop_options(loader, *, accumulate: int, keep_checkpoints: int) -> None:
    """`train`'s options that a config can get wrong, checked before anything is written."""
    if accumulate < 1:
        raise ValueError(f"optim.accumulate must be >= 1 (loader batches per optimizer step), "
                         f"got {accumulate}")
    if len(loader) < accumulate:
        raise ValueError(f"optim.accumulate={accumulate} needs at least that many batches an "
                         f"epoch; the loader has {len(loader)}: lower it or data.batch_size")
    if keep_checkpoints < 0:
        raise ValueError(f"keep_checkpoints must be >= 0 (0 keeps only {LATEST}), got "
                         f"{keep_checkpoints}")


@dataclass
class _Loop:
    """One `train` call's parts, sharing what it steps and where it writes: `run_epoch` (the
    steps of one epoch), `end_epoch` (its record, validation, checkpoint and logs), `finish`
    (model.pt), and `interrupt` (the position saved when a run is asked to stop)."""
    model: nn.Module  # what steps, DDP-wrapped or not
    core: nn.Module  # the unwrapped model: what checkpoints store and evaluate_fn tests
    loader: object
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None
    distiller: Distiller | None
    grad_clip: float
    accumulate: int
    transform: Callable[[torch.Tensor], dict] | None
    out_dir: Path
    context: dict
    epochs: int
    state: TrainState
    writer: object | None
    global_batch: int
    should_stop: Callable[[], str | None] | None
    on_step: Callable[[int], None] | None
    progress: bool
    log_every: int
    log: Callable[[str], None]
    is_main: bool = field(default_factory=dist_utils.is_main)
    world: int = field(default_factory=dist_utils.world_size)

    @property
    def ckpt_path(self) -> Path:
        return self.out_dir / LATEST

    @property
    def steps(self) -> int:
        """Optimizer steps an epoch."""
        return len(self.loader) // self.accumulate

    def payload(self, **extra) -> dict:
        """The resumable state as a checkpoint holds it (`extra`: a mid-epoch position)."""
        s = self.state
        return {**self.context, "kind": "train-state", "model": self.core.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng": _rng_state(self.device), "epoch": s.epoch, "step": s.step,
                "history": s.history, "global_batch": self.global_batch,
                **({"connector": self.distiller.connector.state_dict()}
                   if self.distiller is not None and self.distiller.connector is not None
                   else {}), **extra}

    def stop_requested(self) -> str | None:
        reason = self.should_stop() if self.should_stop is not None else None
        if self.world > 1:  # every process must stop at the same step: all of them ask each other
            anyone = dist_utils.any_process(reason is not None, self.device)
            reason = reason or ("a signal on another process" if anyone else None)
        return reason

    def interrupt(self, reason: str, sums: dict, done: int, epoch: int) -> TrainingStopped:
        """Saves the position `done` steps into `epoch` (0-based) and returns the exception."""
        # the epoch so far, all processes
        sums = dist_utils.all_reduce_sums(_on_host(sums), self.device)
        if self.writer is not None:
            self.writer.flush()
        if self.is_main:
            extra = {"epoch_step": done, "partial": sums} if done else {}
            try:
                save_checkpoint(self.payload(**extra), self.ckpt_path)
            except OSError as e:
                return CheckpointWriteError(f"stopped by {reason}, but {e}")
        where = (f"{done} steps into epoch {epoch + 1}" if done
                 else f"after epoch {self.state.epoch}")
        return Interrupted(f"stopped by {reason} {where}; saved {self.ckpt_path}. Continue with "
                           f"--resume.", _exit_code(reason))

    def _batches(self, epoch: int, done: int):
        """The loader's iterator for `epoch`, past the `done` steps already taken."""
        loader = self.loader
        loader.dataset.set_epoch(epoch)
        loader.sampler.set_epoch(epoch)
        can_skip = hasattr(loader.sampler, "skip_next")
        if done and can_skip:
            loader.sampler.skip_next(done * self.accumulate * loader.batch_size)  # not loaded
        batches = iter(loader)
        for _ in range(0 if can_skip else done * self.accumulate):  # a plain sampler: load, drop
            next(batches)
        return batches

    def run_epoch(self, epoch: int, partial: dict | None) -> tuple[dict, list[str]]:
        """The steps of `epoch` (0-based) from where the state stands; returns the epoch's sums
        (`partial`: those of the steps a mid-epoch checkpoint already took) and the skipped
        videos. Raises `Interrupted` (the position saved) when asked to stop."""
        state, steps = self.state, self.steps
        self.model.train()
        done = state.epoch_step if epoch == state.epoch else 0  # steps already taken
        sums = partial if done and partial is not None else _zero_sums()
        batches = self._batches(epoch, done)
        start = time.perf_counter()
        last, last_time, waited = _on_host(sums), start, 0.0  # the previous curve point
        skipped: list[str] = []
        bar = tqdm(total=steps, initial=done, desc=f"epoch {epoch + 1}/{self.epochs}",
                   disable=not (self.progress and self.is_main), leave=False, dynamic_ncols=True)
        while done < steps:
            wait_start = time.perf_counter()
            try:
                micro = [next(batches) for _ in range(self.accumulate)]
                waited += time.perf_counter() - wait_start
            except StopIteration:
                break
            except Exception:
                # A loader worker killed by the same Ctrl-C / SIGTERM: the position is good.
                reason = self.should_stop() if self.should_stop is not None else None
                if reason is None:
                    raise
                sums["seconds"] += time.perf_counter() - start
                raise self._stopped_while_loading(reason, sums, done, epoch) from None
            skipped += [s for batch in micro for s in batch["skipped"] if s]
            parts = self._step(micro, done, epoch)
            done += 1
            _add_step(sums, parts, sum(b["label"].shape[0] for b in micro),
                      [s for b in micro for s in b["skipped"]])
            bar.update()
            if state.step % self.log_every == 0:
                now, t = _on_host(sums), time.perf_counter()
                self._curves(now, last, seconds=t - last_time, waited=waited, bar=bar)
                last, last_time, waited = now, t, 0.0
            if self.on_step is not None:
                self.on_step(state.step)
            reason = self.stop_requested()
            if reason is not None and done < steps:
                sums["seconds"] += time.perf_counter() - start
                raise self.interrupt(reason, sums, done, epoch)
        bar.close()
        sums["seconds"] += time.perf_counter() - start
        return sums, skipped

    def _stopped_while_loading(self, reason: str, sums: dict, done: int,
                               epoch: int) -> TrainingStopped:
        """Stopped by `reason` while loading the next batch: in one process the position is
        still good and is saved; with several, the others may be mid-step: the last epoch's
        checkpoint is the position."""
        if self.world > 1:
            return Interrupted(f"stopped by {reason} while loading data; the last checkpoint "
                               f"is {self.ckpt_path} (epoch {self.state.epoch}). Continue with "
                               f"--resume.", _exit_code(reason))
        return self.interrupt(reason, sums, done, epoch)

    def _step(self, micro: list[dict], done: int, epoch: int) -> dict[str, torch.Tensor]:
        """One optimizer step on the micro-batches (their uint8 "clip" made into views on the
        device first), then the schedule's; a non-finite loss is reported with its position."""
        state = self.state
        for i, batch in enumerate(micro):
            if "clip" in batch:
                micro[i] = {**batch, **self.transform(batch["clip"].to(self.device,
                                                                       non_blocking=True))}
        try:
            parts = train_step(self.model, micro, optimizer=self.optimizer, device=self.device,
                               amp_dtype=self.amp_dtype, distiller=self.distiller,
                               grad_clip=self.grad_clip, scaler=self.scaler)
        except NonFiniteLossError as e:
            have = (f"The last good checkpoint is {self.ckpt_path} (epoch {state.epoch}), "
                    f"untouched" if state.epoch or self.ckpt_path.is_file()
                    else "No checkpoint was written yet")
            raise NonFiniteLossError(
                f"{e} at epoch {epoch + 1}, step {done + 1} of {self.steps} (global step "
                f"{state.step + 1}); stopped before updating the weights. {have}. Lower "
                f"optim.lr (or set optim.grad_clip), or check the data.") from None
        self.scheduler.step()
        state.step += 1
        return parts

    def _curves(self, now: dict, last: dict, *, seconds: float, waited: float, bar) -> None:
        """The progress bar's loss and the curve points since the last reading."""
        curves = _interval_curves(now, last, lr=base_lr(self.optimizer), seconds=seconds,
                                  waited=waited,
                                  kd_weights=self.distiller.weights if self.distiller else None)
        bar.set_postfix(loss=f"{curves['loss']['loss']:.3f}")
        if self.writer is not None:
            write_scalars(self.writer, "", curves, self.state.step)

    def end_epoch(self, epoch: int, sums: dict, skipped: list[str], *,
                  evaluate_fn: Callable[[nn.Module], dict] | None, val_every: int,
                  keep_checkpoints: int) -> None:
        """The epoch's record (validated when due, plateau flagged) into the state, the curves,
        metrics.jsonl and the epoch's checkpoint; then a stop request ends the run here."""
        state, epochs = self.state, self.epochs
        state.epoch_step = 0
        totals = dist_utils.all_reduce_sums(_on_host(sums), self.device)
        record = _epoch_record(totals, epoch=epoch + 1, step=state.step,
                               lr=base_lr(self.optimizer), world=self.world,
                               distilled=self.distiller is not None)
        if skipped and self.is_main:
            self.log(f"epoch {epoch + 1}: skipped {int(totals['skipped'])} undecodable video(s), "
                     f"replaced by other samples: "
                     + "; ".join(s.split("\t")[0] for s in skipped[:5]))
        last = epoch + 1 == epochs
        if evaluate_fn is not None and (last or (val_every and (epoch + 1) % val_every == 0)):
            record["val"] = evaluate_fn(self.core)
        plateau = _flag_plateau(record, state.history, epochs,
                                len(self.context.get("classes") or ()))
        state.epoch = epoch + 1
        state.history.append(record)
        if self.writer is not None:  # before the checkpoint: a resume from it keeps these points
            write_scalars(self.writer, "epoch", {k: v for k, v in record.items()
                                                 if k not in ("epoch", "step", "val")}, state.step)
            write_scalars(self.writer, "val", record.get("val", {}), state.step)
            self.writer.flush()
        if self.is_main:
            _write_jsonl(self.out_dir / "metrics.jsonl", record)
            _save_epoch(self.payload(), self.out_dir, state.epoch, keep_checkpoints)
            self.log(_epoch_line(record, epochs))
            if plateau:
                self.log(f"warning: {plateau}")
        if not last:
            reason = self.stop_requested()
            if reason is not None:  # the epoch's checkpoint is the position
                raise Interrupted(f"stopped by {reason} after epoch {state.epoch}; saved "
                                  f"{self.ckpt_path}. Continue with --resume.",
                                  _exit_code(reason))

    def finish(self) -> None:
        """Closes the curves and writes model.pt (the weights, context and last metrics)."""
        if self.writer is not None:
            self.writer.close()
        if self.is_main:
            final = self.state.history[-1] if self.state.history else {}
            try:
                save_checkpoint({**self.context, "kind": "model", "model": self.core.state_dict(),
                                 "epoch": self.state.epoch, "metrics": final.get("val", {})},
                                self.out_dir / "model.pt")
            except OSError as e:
                raise CheckpointWriteError(f"training finished but {e}; {self.ckpt_path} holds "
                                           f"the final weights too") from e


# What `plateau_message` counts as having left the first epoch: train top-1 above epoch 1's by
# more than this share of the way from epoch 1's to 100%.
PLATEAU_RISE = 0.1


def plateau_message(train_top1: Sequence[float], epochs: int, num_classes: int) -> str | None:
    """The warning for a run whose train top-1 has not left its first epoch's, else None.

    `train_top1` holds the run's epochs so far (%, epoch 1 first); the run has `epochs` in all.
    With e = len(train_top1), it is on a plateau when epochs >= 3, e >= max(2, ceil(epochs / 3)),
    and both:
    - no epoch 2..e beat epoch 1 by more than `PLATEAU_RISE` (a tenth) of the way from epoch 1's
      top-1 to 100%: 8 points from 20% (the coarse-class plateau of the demo's 10 classes), 4.5
      from 55%. Relative to what is left to learn, so it holds for 2 classes and for 400, and it
      stays far above the epoch-to-epoch noise of a real training set (0.5 points at 20% on
      6,000 clips);
    - none reached halfway from chance (100 / `num_classes`; 0 when unknown) to 100%: a run
      that starts high, such as a fine-tune of pretrained weights, is not stuck when it rises
      slowly.
    Why: a run can sit on a plateau for many epochs (the demo's runs learn the coarse classes
    first, train top-1 ~22%); one still there after a third of its schedule points at the
    learning rate, the classifier's init or the warm-up, and saying so then leaves two thirds
    of the run to stop and fix it. The best epoch counts, so a run that has risen once is not
    flagged later; `train` logs the message once per run.
    """
    done = len(train_top1)
    if epochs < 3 or done < max(2, math.ceil(epochs / 3)):
        return None
    first, best = train_top1[0], max(train_top1[1:])
    chance = 100 / num_classes if num_classes > 0 else 0.0
    if best - first > PLATEAU_RISE * (100 - first) or best >= (100 + chance) / 2:
        return None
    chance_text = f", chance {chance:.1f}%" if num_classes > 0 else ""
    return (f"plateau: train top-1 has stayed at {train_top1[-1]:.1f}% (epoch 1: {first:.1f}%"
            f"{chance_text}) for {done} of {epochs} epochs; likely knobs: optim.lr (try x0.3 "
            f"or x3), model.fc_init_std (the classifier's init), optim.warmup_epochs (a longer "
            f"or shorter warm-up)")


def _flag_plateau(record: dict, history: list[dict], epochs: int, num_classes: int) -> str | None:
    """`plateau_message` for the run with `record` as its newest epoch, kept in the record
    ("plateau", also in metrics.jsonl and the checkpoint's history, where `reskd compare` reads
    it) unless an earlier epoch has it: one warning per run, across resumes too."""
    if any("plateau" in r for r in history):
        return None
    message = plateau_message([r["train_top1"] for r in (*history, record)], epochs, num_classes)
    if message:
        record["plateau"] = message
    return message


def _epoch_line(record: dict, epochs: int) -> str:
    return (f"epoch {record['epoch']}/{epochs}  loss {record['loss']:.4f}  ce {record['ce']:.4f}"
            + (f"  kd {record['kd']:.5f}" if "kd" in record else "")
            + f"  train top-1 {record['train_top1']:.1f}%"
            + f"  {record['clips_per_s']:.1f} clips/s"
            + (f"  val top-1 {record['val']['top1']:.2f}%" if "val" in record else ""))


def _save_epoch(payload: dict, out_dir: Path, epoch: int, keep: int) -> None:
    """checkpoint-epochK.pt (when keep > 0), then checkpoint.pt, then prunes old epoch files."""
    latest = out_dir / LATEST
    try:
        if keep > 0:
            path = epoch_checkpoint_path(out_dir, epoch)
            save_checkpoint(payload, path)
            copy_checkpoint(path, latest)
            prune_epoch_checkpoints(out_dir, keep)
        else:
            save_checkpoint(payload, latest)
    except OSError as e:
        kept = (f"{latest} still holds epoch {epoch - 1}, intact" if epoch > 1 and latest.is_file()
                else "no earlier checkpoint exists")
        raise CheckpointWriteError(
            f"epoch {epoch} finished but its checkpoint could not be written: {e}. {kept}. "
            f"Free space (or fix the folder's permissions) and continue with --resume.") from e


def _quiet(_: str) -> None:
    pass


def _exit_code(reason: str) -> int:
    """128 + the signal number, as a shell reports a process killed by it (130 for SIGINT)."""
    sig = getattr(signal, reason, None) if reason.startswith("SIG") else None
    return 128 + int(sig if sig is not None else signal.SIGINT)

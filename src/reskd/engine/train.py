"""The training loop for plain training (teacher or baseline) and for ResKD distillation.

One loop for both: with a teacher, each batch carries (teacher view, student view) and the
loss is CE + the weighted KD terms (default: alpha * feature KD); without, one view and CE. Each epoch appends a line to
`metrics.jsonl` and rewrites `checkpoint.pt` atomically (model, optimizer, schedule, epoch),
so `resume=True` continues after the last finished epoch.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from reskd.distill.distiller import KDWeights, distill_loss, set_teacher_mode
from reskd.engine import distributed as dist_utils
from reskd.engine.checkpoint import load_checkpoint, save_checkpoint
from reskd.engine.runtime import autocast


class NonFiniteLossError(RuntimeError):
    pass


@dataclass
class Schedule:
    """Per-step learning-rate factor: linear warm-up from `start_factor`, then cosine to zero."""
    total_steps: int
    warmup_steps: int = 0
    start_factor: float = 1.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - self.warmup_steps) / span)))


def make_optimizer(params, *, optimizer: str, lr: float, momentum: float, nesterov: bool,
                   weight_decay: float) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum, the paper's default) or AdamW; no weight decay on norms and biases."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")


def make_schedule(*, schedule: str, epochs: int, steps_per_epoch: int,
                  warmup_epochs: float) -> Schedule:
    """"cosine": warm-up (optional) then cosine; "onecycle": 30% warm-up from lr/25, then cosine
    (torch's OneCycleLR shape)."""
    total = epochs * steps_per_epoch
    if schedule == "onecycle":
        warm = warmup_epochs * steps_per_epoch or 0.3 * total
        return Schedule(total, int(warm), 1 / 25)
    return Schedule(total, int(warmup_epochs * steps_per_epoch), 0.0 if warmup_epochs else 1.0)


@dataclass
class TrainState:
    epoch: int = 0  # epochs finished
    step: int = 0
    history: list = field(default_factory=list)


def _write_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def train(*, model: nn.Module, loader, optimizer: torch.optim.Optimizer, schedule: Schedule,
          epochs: int, device: torch.device, amp_dtype: torch.dtype | None, out_dir: Path,
          context: dict, teacher: nn.Module | None = None, kd_weights: KDWeights = KDWeights(),
          teacher_bn: str = "train", grad_clip: float = 0.0, resume: bool = False,
          evaluate_fn: Callable[[nn.Module], dict] | None = None, val_every: int = 0,
          progress: bool = True, log: Callable[[str], None] = print) -> TrainState:
    """Trains `model` (the student when `teacher` is given) and returns the final state.

    `model` may be DDP-wrapped; checkpoints store the unwrapped weights. `context` (config,
    classes, sizes, ...) goes into every checkpoint. `evaluate_fn(model)` returns metrics.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    core = model.module if hasattr(model, "module") else model
    is_main = dist_utils.is_main()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    state = TrainState()
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        core.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        state = TrainState(ckpt["epoch"], ckpt["step"], ckpt.get("history", []))
        log(f"resumed from {ckpt_path} after epoch {state.epoch}")
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    metrics_path = out_dir / "metrics.jsonl"
    if teacher is not None:
        set_teacher_mode(teacher, teacher_bn)

    for epoch in range(state.epoch, epochs):
        model.train()
        loader.dataset.set_epoch(epoch)
        loader.sampler.set_epoch(epoch)
        sums = {"loss": 0.0, "ce": 0.0, "kd": 0.0, "correct": 0.0, "clips": 0}
        skipped: list[str] = []
        start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not (progress and is_main),
                   leave=False, dynamic_ncols=True)
        for batch in bar:
            skipped += [s for s in batch["skipped"] if s]
            views = [v.to(device, non_blocking=True) for v in batch["views"]]
            labels = batch["label"].to(device)
            with autocast(device, amp_dtype):
                if teacher is not None:
                    parts = distill_loss(model, teacher, views[1], views[0], labels, weights=kd_weights)
                else:
                    logits = model(views[0])
                    ce = F.cross_entropy(logits.float(), labels)
                    parts = {"loss": ce, "ce": ce.detach(), "logits": logits.detach()}
            loss = parts["loss"]
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {state.step + 1}; "
                    f"stopped. The last good checkpoint is {ckpt_path} (epoch {state.epoch}). "
                    f"Lower optim.lr or check the data.")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(core.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            state.step += 1
            n = labels.shape[0]
            sums["clips"] += n
            sums["loss"] += loss.item() * n
            sums["ce"] += parts["ce"].item() * n
            sums["kd"] += parts["kd"].item() * n if "kd" in parts else 0.0
            sums["correct"] += (parts["logits"].argmax(1) == labels).sum().item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        seconds = time.perf_counter() - start
        totals = dist_utils.all_reduce_sums(sums, device)
        clips = max(1, totals["clips"])
        record = {"epoch": epoch + 1, "step": state.step, "lr": optimizer.param_groups[0]["lr"],
                  "loss": totals["loss"] / clips, "ce": totals["ce"] / clips,
                  "train_top1": 100 * totals["correct"] / clips,
                  "clips_per_s": totals["clips"] / seconds, "seconds": seconds,
                  "skipped": len(skipped)}
        if teacher is not None:
            record["kd"] = totals["kd"] / clips
        if skipped and is_main:
            log(f"epoch {epoch + 1}: skipped {len(skipped)} undecodable video(s), replaced by "
                f"other samples: " + "; ".join(s.split("\t")[0] for s in skipped[:5]))
        last = epoch + 1 == epochs
        if evaluate_fn is not None and (last or (val_every and (epoch + 1) % val_every == 0)):
            record["val"] = evaluate_fn(model)
        state.epoch = epoch + 1
        state.history.append(record)
        if is_main:
            _write_jsonl(metrics_path, record)
            save_checkpoint({**context, "kind": "train-state", "model": core.state_dict(),
                             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "epoch": state.epoch, "step": state.step, "history": state.history},
                            ckpt_path)
            msg = (f"epoch {epoch + 1}/{epochs}  loss {record['loss']:.4f}  ce {record['ce']:.4f}"
                   + (f"  kd {record['kd']:.5f}" if "kd" in record else "")
                   + f"  train top-1 {record['train_top1']:.1f}%  {record['clips_per_s']:.1f} clips/s")
            if "val" in record:
                msg += f"  val top-1 {record['val']['top1']:.2f}%"
            log(msg)
    if is_main:
        final = state.history[-1] if state.history else {}
        save_checkpoint({**context, "kind": "model", "model": core.state_dict(),
                         "epoch": state.epoch, "metrics": final.get("val", {})},
                        out_dir / "model.pt")
    return state

"""The optimizer and its learning-rate schedule: what `reskd.engine.train.train` steps.

`param_groups` puts the trainable parameters into groups by (lr multiplier, weight decay): bias
and backbone lr multipliers, no weight decay on 1-D parameters and named ones; each group
carries its multiplier through the schedule and a resume. `make_optimizer` builds SGD or AdamW
over them; `make_schedule` the per-step factor (`Schedule`, for LambdaLR) of each of
`reskd.config.SCHEDULES`. `lr` is the rate for the global batch (per-process batch x processes
x accumulated batches) and is not rescaled here (see `reskd.engine.distributed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from reskd.config import SCHEDULES


@dataclass
class Schedule:
    """Per-step learning-rate factor: linear warm-up from `start_factor` to 1 over the first
    `warmup_steps`, then `decay`: "cosine" to zero over the remaining steps, or "step": x `gamma`
    at each of `milestones` (steps from the start, warm-up included, as mmcv counts them; the
    warm-up multiplies the step factor, so a milestone inside it applies there too)."""
    total_steps: int
    warmup_steps: int = 0
    start_factor: float = 1.0
    decay: str = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __call__(self, step: int) -> float:
        if self.decay == "step":
            factor = self.gamma ** sum(step >= m for m in self.milestones)
            if step < self.warmup_steps:
                factor *= self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
            return factor
        if step < self.warmup_steps:
            return self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - self.warmup_steps) / span)))


# Modules whose "bias" is a norm's shift: 1x lr under bias_lr_mult, as in TSN/TSM's optimizer
# policies (BatchNorm weight and bias: base lr, no weight decay).
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def param_groups(model: nn.Module, *, lr: float, weight_decay: float, bias_lr_mult: float = 1.0,
                 backbone_lr_mult: float = 1.0, no_decay_names: tuple[str, ...] = ()) -> list[dict]:
    """The trainable parameters of `model` in optimizer groups, one per (lr multiplier, weight
    decay): biases of convolutions and linear layers get lr x `bias_lr_mult` (norm biases 1x),
    every parameter under a `backbone` module lr x `backbone_lr_mult` (the two multiply), and
    no weight decay goes to 1-D parameters (norms, biases) or to those whose name contains one
    of `no_decay_names`. Each group carries its "lr_mult"; its "lr" is `lr` x lr_mult, which
    LambdaLR keeps as the group's initial rate and an optimizer state dict restores.
    """
    for key, mult in (("bias_lr_mult", bias_lr_mult), ("backbone_lr_mult", backbone_lr_mult)):
        if mult <= 0:
            raise ValueError(f"optim.{key} must be positive, got {mult}")
    grouped: dict[tuple[float, float], list[nn.Parameter]] = {}
    seen: set[int] = set()
    backbone = 0
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:  # frozen, or shared with an earlier module
                continue
            seen.add(id(p))
            full = f"{module_name}.{name}" if module_name else name
            mult = 1.0
            if "backbone" in full.split("."):
                mult, backbone = backbone_lr_mult, backbone + 1
            if name == "bias" and not isinstance(module, _NORMS):
                mult *= bias_lr_mult
            decay = p.ndim > 1 and not any(s in full for s in no_decay_names)
            grouped.setdefault((mult, weight_decay if decay else 0.0), []).append(p)
    if backbone_lr_mult != 1.0 and not backbone:
        raise ValueError(f"optim.backbone_lr_mult={backbone_lr_mult}, but {type(model).__name__} "
                         f"has no parameters under a 'backbone' module; set it to 1.0")
    return [{"params": params, "lr": lr * mult, "lr_mult": mult, "weight_decay": wd}
            for (mult, wd), params in grouped.items()]


def make_optimizer(model: nn.Module, *, optimizer: str, lr: float, momentum: float,
                   nesterov: bool, weight_decay: float, bias_lr_mult: float = 1.0,
                   backbone_lr_mult: float = 1.0,
                   no_decay_names: tuple[str, ...] = ()) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum, the paper's default) or AdamW over `param_groups(model, ...)`.

    Takes the model, not its parameters: the groups need the names (backbone, no-decay names)
    and the module types (a norm's bias is not a bias under `bias_lr_mult`). `lr` is the rate
    for the global batch (batch_size x processes x accumulated batches); scale it linearly.
    """
    groups = param_groups(model, lr=lr, weight_decay=weight_decay, bias_lr_mult=bias_lr_mult,
                          backbone_lr_mult=backbone_lr_mult, no_decay_names=no_decay_names)
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The scheduled rate before per-group multipliers (optim.lr x schedule), for the logs."""
    groups = optimizer.param_groups
    g = next((g for g in groups if g.get("lr_mult", 1.0) == 1.0), groups[0])
    return g["lr"] / g.get("lr_mult", 1.0)


def make_schedule(*, schedule: str, epochs: int, steps_per_epoch: int, warmup_epochs: float,
                  warmup_start_factor: float = 0.0, milestones: tuple[int, ...] = (),
                  gamma: float = 0.1) -> Schedule:
    """The per-step factor of each schedule, in optimizer steps (`steps_per_epoch` of them an
    epoch):
    - "cosine": linear warm-up over `warmup_epochs` from `warmup_start_factor` x lr (0: today's
      default; mmcv's recipes: 0.1), then cosine to zero;
    - "step": the same warm-up, lr x `gamma` at each epoch of `milestones` (mmaction2's
      SlowOnly: [90, 130], 0.1; warm-up 10 epochs from 0.1);
    - "onecycle": torch's OneCycleLR shape, warm-up (`warmup_epochs`, else 30% of the run) from
      lr/25 (its div_factor; `warmup_start_factor` does not apply), then cosine.
    """
    total = epochs * steps_per_epoch
    warm = int(warmup_epochs * steps_per_epoch)
    if schedule == "onecycle":
        return Schedule(total, warm or int(0.3 * total), 1 / 25)
    start = warmup_start_factor if warm else 1.0
    if schedule == "cosine":
        return Schedule(total, warm, start)
    if schedule == "step":
        return Schedule(total, warm, start, "step", tuple(m * steps_per_epoch for m in milestones),
                        gamma)
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")

"""Runs: the one place where a whole `Config` meets the library.

Every function here takes a resolved `Config` and turns it into the explicit arguments of the
library below it (datasets, models, the teacher, the trainer, the evaluator): `run_train`
(reskd train / distill), `run_test` (reskd test), and their building blocks. The CLI, the demo,
the studies and the sweep call these; nothing below this module imports it.
"""

from __future__ import annotations

import copy
import os
import posixpath
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import get_worker_info

from reskd.checkpoint import checkpoint_context, save_checkpoint
from reskd.config import Config, ConfigError, save_config
from reskd.data.check import paths_outside_root, read_exclusion_list
from reskd.data.datasets import VideoDataset, make_loader, missing_files, prefetch_decoded
from reskd.data.formats import read_classes, read_list
from reskd.data.samplers import ShardSampler, training_sampler
from reskd.data.sampling import Sampling
from reskd.data.transforms import Views, checkpoint_views
from reskd.distill.distiller import Distiller, feature_map_shape, flat_map_warning, freeze
from reskd.efficiency import flops
from reskd.engine import distributed as dist_utils
from reskd.engine.evaluate import evaluate
from reskd.engine.optim import make_optimizer, make_schedule
from reskd.engine.runtime import (
    autocast_dtype,
    pick_device,
    pick_precision,
    precision_name,
    prepare_model,
    share_cpu_with_workers,
)
from reskd.engine.train import train
from reskd.models import ARCH_OPTIONS, build_from_kwargs, load_model_checkpoint
from reskd.models.hf import hf_source_config
from reskd.models.imports import (
    Renormalized,
    check_classes,
    convert_to_mmaction,
    load_model_source,
    renormalized,
)
from reskd.models.weights import file_kind, is_torchvision_name, read_weights_file, split_half


def read_classes_for(cfg: Config) -> list[str]:
    if cfg.data.classes:
        return read_classes(Path(cfg.data.root) / cfg.data.classes
                            if not Path(cfg.data.classes).is_absolute() else cfg.data.classes)
    if cfg.model.num_classes < 1:
        raise ConfigError("set data.classes (a class-name file) or model.num_classes")
    return [str(i) for i in range(cfg.model.num_classes)]


def _list_path(cfg: Config, name: str) -> Path:
    path = Path(getattr(cfg.data, name))
    if not str(path):
        raise ConfigError(f"data.{name} is empty; set it to an annotation list")
    return path if path.is_absolute() else Path(cfg.data.root) / path


def model_kwargs(cfg: Config, num_classes: int) -> dict:
    m = cfg.model
    return {"arch": m.arch, "num_classes": num_classes, "block": m.block, "layers": list(m.layers),
            "widths": list(m.widths), "stem": m.stem, "strides": list(m.strides),
            "temporal": m.temporal, "dropout": m.dropout, "drop_path": m.drop_path,
            "fc_init_std": m.fc_init_std, "dropout_at": m.dropout_at,
            "num_segments": cfg.data.clip_len or cfg.data.num_segments,
            # the any-resolution student's BatchNorm per size (reskd.models.size_bn)
            **({"bn_sizes": sorted(cfg.distill.student_sizes)}
               if cfg.distill.student_sizes and cfg.distill.size_bn == "private" else {}),
            # a Hugging Face student's transformers config, so its checkpoint rebuilds offline
            **({"hf_config": hf_source_config(m.pretrained)}
               if m.arch == "hf" and m.pretrained else {})}


def distiller_for(cfg: Config, teacher: torch.nn.Module, student: torch.nn.Module) -> Distiller:
    """The `Distiller` of distill.* (the KD weights, temperature, teacher_bn)."""
    k = cfg.distill
    return Distiller(teacher, student, feature=k.alpha, clip=k.clip_kd, frame=k.frame_kd,
                     pixel_logit=k.pixel_logit_kd, temperature=k.temperature,
                     pixel_logit_reduction=k.pixel_logit_reduction, teacher_bn=k.teacher_bn,
                     sizes_per_step=k.sizes_per_step, connector=k.connector)


def make_dataset(cfg: Config, list_name: str, *, train: bool, sizes: tuple[int, ...],
                 num_classes: int, crop_size: int = 0, student_sizes: tuple[int, ...] = (),
                 log=print):
    """The dataset of one annotation list; missing files are an error unless data.skip_missing.

    Views of `sizes` (and of an any-resolution student's `student_sizes`) are shrunk from one
    crop of `crop_size` (0: sizes[0]) with data.shrink.

    Paths must stay under data.root unless data.allow_outside_root; entries named in the
    data.exclude file (e.g. from `reskd data check --out`) are left out and counted.
    """
    d = cfg.data
    path = _list_path(cfg, list_name)
    entries = read_list(path, format=d.format, num_classes=num_classes)
    outside = [] if d.allow_outside_root else paths_outside_root([e.path for e in entries])
    if outside:
        raise ValueError(
            f"{len(outside)} of {len(entries)} entries of {path} point outside data.root="
            f"{d.root!r} (first: {', '.join(outside[:3])}); list paths must be relative to the "
            f"data root and stay inside it. Set data.allow_outside_root=true if that is intended.")
    if d.exclude:
        exclude = Path(d.exclude) if Path(d.exclude).is_absolute() else Path(d.root) / d.exclude
        excluded = read_exclusion_list(exclude)
        kept = [e for e in entries if posixpath.normpath(e.path) not in excluded]
        if len(kept) < len(entries):
            log(f"leaving out {len(entries) - len(kept)} of {len(entries)} entries of {path} "
                f"listed in data.exclude={exclude}")
        entries = kept
    missing = missing_files(entries, d.root, d.format)
    if missing:
        head = ", ".join(missing[:3])
        if not d.skip_missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(entries)} entries of {path} do not exist under data.root="
                f"{d.root!r} (first: {head}). Fix data.root, or set data.skip_missing=true to "
                f"leave them out.")
        log(f"warning: leaving out {len(missing)} missing entries of {path} (first: {head})")
        gone = set(missing)
        entries = [e for e in entries if e.path not in gone]
    views = Views(student_size=sizes[-1], teacher_size=sizes[0] if len(sizes) == 2 else 0,
                  crop_size=crop_size, shrink=d.shrink,
                     short_side_ratio=d.short_side_ratio,
                     test_short_side_ratio=d.test_short_side_ratio, crop=d.crop,
                     scales=d.crop_scales, crop_positions=d.crop_positions,
                     crop_area=d.crop_area, crop_aspect=d.crop_aspect, flip=d.flip,
                     mean=d.mean, std=d.std, downsample_to=d.downsample_to,
                     student_sizes=tuple(student_sizes))
    sampling = Sampling(d.num_segments, d.clip_len, d.frame_interval)
    return VideoDataset(entries, d.root, sampling=sampling, views=views, train=train,
                        num_classes=num_classes, format=d.format, frame_template=d.frame_template,
                        multi_label=d.multi_label, test_clips=d.test_clips,
                        test_crops=d.test_crops, seed=cfg.runtime.seed,
                        cache_decoded=d.cache_decoded, multi_label_loss=d.multi_label_loss)


def make_train_loader(cfg: Config, dataset):
    """The training loader of this process, as `reskd train` / `distill` read it: a shuffled
    shard per process (seed runtime.seed), whole batches, resumable mid-epoch."""
    sampler = training_sampler(dataset, rank=dist_utils.rank(), world=dist_utils.world_size(),
                               seed=cfg.runtime.seed)
    return make_loader(dataset, batch_size=cfg.data.batch_size, workers=cfg.data.workers,
                       sampler=sampler, drop_last=True, pin_memory=_on_cuda(cfg))


def make_test_loader(cfg: Config, dataset):
    """The test loader of this process: its shard of the list, every video exactly once over
    all processes."""
    return make_loader(dataset, batch_size=cfg.data.batch_size, workers=cfg.data.workers,
                       sampler=ShardSampler(len(dataset), dist_utils.rank(),
                                            dist_utils.world_size()), pin_memory=_on_cuda(cfg))


def _on_cuda(cfg: Config) -> bool:
    return pick_device(cfg.runtime.device).type == "cuda"


def load_teacher(cfg: Config, num_classes: int, student_kwargs: dict, log=print):
    """The frozen teacher and its input size; mismatches with the config are errors naming both.

    distill.teacher is a reskd checkpoint, a torchvision weights name or file, or an mmaction2
    checkpoint (`reskd.models.imports`). Its preprocessing travels with it: its input size
    (distill.teacher_size overrides it), its mean/std (a teacher normalised otherwise than
    data.mean/std gets the dataset's views renormalised to its own, exactly) and, for a reskd
    teacher, its frames; its classes must be the dataset's (count and, where both have names,
    names). The teacher's views in distillation are the crop of data.crop_size (0: the
    teacher's size) shrunk with data.shrink; when that is not how its own training views were
    made, says so."""
    if not cfg.distill.teacher:
        raise ConfigError("distill.teacher is empty: give the checkpoint of a teacher trained "
                          "with `reskd train` (e.g. --set distill.teacher=runs/teacher/model.pt), "
                          "a torchvision weights name (torchvision:ENUM.MEMBER) or an mmaction2 "
                          "checkpoint")
    s_frames = cfg.data.clip_len or cfg.data.num_segments
    teacher, ckpt = load_model_source(cfg.distill.teacher, num_segments=s_frames)
    check_classes(cfg.distill.teacher, ckpt["model_kwargs"]["num_classes"], ckpt.get("classes"),
                  read_classes_for(cfg))
    t_frames = ckpt["frames"]
    if t_frames is not None and t_frames != s_frames:
        raise ValueError(f"teacher {cfg.distill.teacher} was trained on {t_frames} frames per "
                         f"clip but the student config uses {s_frames}; they must see the same "
                         f"frames")
    if t_frames is None and ckpt.get("recipe_frames") not in (None, s_frames):
        log(f"note: teacher {cfg.distill.teacher} was trained and evaluated on clips of "
            f"{ckpt['recipe_frames']} frames; here it sees {s_frames} (data.clip_len / "
            f"data.num_segments)")
    if ckpt.get("mean") is not None:
        teacher = renormalized(teacher, data_mean=cfg.data.mean, data_std=cfg.data.std,
                               mean=ckpt["mean"], std=ckpt["std"])
        if isinstance(teacher, Renormalized):
            log(f"note: teacher {cfg.distill.teacher} takes frames normalised with mean "
                f"{ckpt['mean']} / std {ckpt['std']}; its views are renormalised from data.mean "
                f"/ data.std to those")
    with torch.device("meta"):
        student_channels = build_from_kwargs(student_kwargs).feature_channels
    if (cfg.distill.alpha > 0 and cfg.distill.connector == "none"
            and teacher.feature_channels != student_channels):
        raise ValueError(
            f"teacher {ckpt['model_kwargs']['arch']} has {teacher.feature_channels} feature "
            f"channels but student {student_kwargs['arch']} has {student_channels}; feature KD "
            f"needs equal channel counts. Use pixel-level logit KD (--set distill.alpha=0 --set "
            f"distill.pixel_logit_kd=500; the best measured for such pairs, docs/results.md), "
            f"clip-level logit KD for a class-token teacher (--set distill.alpha=0 --set "
            f"distill.clip_kd=1), or feature KD through a learned connector (--set "
            f"distill.connector=conv)")
    size = cfg.distill.teacher_size or ckpt["size"]
    if size is None:
        size = 224
        log(f"note: teacher {cfg.distill.teacher} does not record its input size (mmaction2 "
            f"checkpoints do not); assuming {size} px, mmaction2's: set distill.teacher_size")
    crop = cfg.data.crop_size or size
    if "views" in ckpt and size == ckpt["views"]["size"]:
        own = ckpt["views"]
        if (own["crop_size"], own["shrink"] if own["crop_size"] > size else "") != (
                crop, cfg.data.shrink if crop > size else ""):
            log(f"note: teacher {cfg.distill.teacher} was trained on views shrunk from a "
                f"{own['crop_size']} px crop ({own['shrink']}); here it sees a {crop} px crop "
                f"shrunk to {size} px ({cfg.data.shrink}). Set data.crop_size / data.shrink to "
                f"match if that is not intended.")
    return freeze(teacher), size


def warn_flat_student_map(cfg: Config, teacher, teacher_size: int, student_kwargs: dict,
                          log=print) -> None:
    """Warns before training when feature KD (distill.alpha) or pixel-level logit KD would
    compare a 1x1 student map (at data.size or one of distill.student_sizes) with a larger
    teacher map (`flat_map_warning`): the stock stride-32 stem gives a 32 px student a 1x1 map,
    and nothing else would say that its KD carries no spatial hint. The student's maps come
    from a forward on the meta device (no arithmetic); the teacher's from one clip of zeros,
    run only when a student map is 1x1."""
    k = cfg.distill
    terms = [t for t, on in (("feature KD", k.alpha > 0),
                             ("pixel-level logit KD", k.pixel_logit_kd > 0)) if on]
    if not terms:
        return
    frames = student_kwargs["num_segments"]
    with torch.device("meta"):
        student = build_from_kwargs(student_kwargs)
    maps = {s: feature_map_shape(student, frames=frames, size=s)
            for s in sorted({cfg.data.size, *k.student_sizes})}
    if all(m[-2:] != (1, 1) for m in maps.values()):
        return
    message = flat_map_warning(maps, feature_map_shape(teacher, frames=frames, size=teacher_size),
                               teacher_size=teacher_size, terms=" and ".join(terms),
                               fixes=_finer_map_fixes(student_kwargs))
    if message:
        log(f"warning: {message}")


def _finer_map_fixes(kwargs: dict) -> list[str]:
    """The settings of the student's arch that give it a finer last map (a larger input
    where it has none)."""
    options = ARCH_OPTIONS.get(kwargs["arch"], ("", ()))[1]
    fixes = []
    if "stem" in options and kwargs.get("stem") == "imagenet":
        fixes.append("model.stem=small (no max-pool: half the stride)")
    strides = list(kwargs.get("strides") or ())
    if "strides" in options and any(s > 1 for s in strides):
        i = next(i for i, s in enumerate(strides) if s > 1)
        example = strides[:i] + [1] + strides[i + 1:]
        fixes.append(f"smaller model.strides (e.g. [{','.join(map(str, example))}])")
    return fixes or [f"a larger data.size (arch {kwargs['arch']} fixes its strides)"]


def run_convert(cfg: Config, source: str, out: str | Path, *, half: str = "student",
                size: int | None = None) -> dict:
    """`reskd convert`. A reskd checkpoint becomes an mmaction2 checkpoint
    (`convert_to_mmaction`); anything else `load_model_source` reads (an mmaction2
    checkpoint - the `half` of an authors' ResKD one -, torchvision weights by name or file)
    becomes a reskd model.pt that test, predict, export and distill use on their own.

    Its context comes from the source where the source has it (input size, mean/std, class
    names) and from `cfg` otherwise: data.size (`size` overrides both), frames
    (data.num_segments / clip_len; a TSM is built for them), data.classes or model.num_classes
    (checked against the source's), the test-view recipe. A source key with no reskd
    counterpart is an error naming it. Returns {"out", "arch", "to", "report": one line per
    key, "summary"}."""
    if not is_torchvision_name(source) and file_kind(
            read_weights_file(split_half(source, half)[0])) == "reskd":
        result = convert_to_mmaction(source, out, size=size)
        return {**result, "to": "mmaction2"}
    d = cfg.data
    frames = d.clip_len or d.num_segments
    model, ctx = load_model_source(source, half=half, num_segments=frames,
                                   dropout=cfg.model.dropout)
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in ctx["model_kwargs"].items()}
    num_classes = kwargs["num_classes"]
    if d.classes or cfg.model.num_classes:
        classes = read_classes_for(cfg)
        check_classes(source, num_classes, ctx.get("classes"), classes)
    else:
        classes = ctx.get("classes") or [str(i) for i in range(num_classes)]
    cfg = copy.deepcopy(cfg)
    cfg.model.arch, cfg.model.num_classes = kwargs["arch"], num_classes
    d = cfg.data
    d.size = size or ctx.get("size") or d.size
    if ctx.get("mean") is not None:
        d.mean, d.std = tuple(ctx["mean"]), tuple(ctx["std"])
    views = Views(student_size=d.size, crop_size=d.crop_size, shrink=d.shrink,
                     short_side_ratio=d.short_side_ratio,
                     test_short_side_ratio=d.test_short_side_ratio, mean=d.mean, std=d.std,
                     downsample_to=d.downsample_to).record()
    gmacs = flops.gmacs_per_video(model, frames, d.size, d.test_clips * d.test_crops)
    context = checkpoint_context(cfg, classes, kwargs, gmacs, views)
    save_checkpoint({**context, "kind": "model", "model": model.state_dict(),
                     "converted_from": source}, out)
    return {"out": str(out), "arch": kwargs["arch"], "to": "reskd", "report": ctx["report"],
            "summary": f"{num_classes} classes, {d.size} px, {frames} frames, {gmacs:.3f} "
                       f"GMACs per video"}


# ---------------------------------------------------------------------------------------------
# Runs


def run_train(cfg: Config, *, distill: bool, resume: bool = False, log=print,
              should_stop=None, on_step: Callable[[int], None] | None = None) -> dict:
    """Trains (or distils) per `cfg`, tests the final model on data.val_list when set.

    Under torchrun, data.batch_size is per process and optim.lr is for the global batch
    (batch_size x processes): scale lr linearly with it (see reskd.engine.distributed).
    `should_stop()` -> reason or None is polled after every step (the CLI wires signals to it);
    `on_step(step)` is called after every step (`reskd.engine.train.train`).

    Returns {"out": run folder, "model": path of model.pt, "val": metrics or {}}.
    """
    r, o = cfg.runtime, cfg.optim
    device = pick_device(r.device)
    distributed = dist_utils.init(device)
    torch.manual_seed(r.seed)
    out = Path(r.out)
    out.mkdir(parents=True, exist_ok=True)
    classes = read_classes_for(cfg)
    num_classes = cfg.model.num_classes or len(classes)
    if cfg.model.num_classes and cfg.model.num_classes != len(classes) and cfg.data.classes:
        raise ConfigError(f"model.num_classes={cfg.model.num_classes} but {cfg.data.classes} "
                          f"lists {len(classes)} classes; set one to match the other")
    kwargs = model_kwargs(cfg, num_classes)
    teacher, sizes, crop_size = _teacher_and_sizes(
        cfg, distill=distill, distributed=distributed, num_classes=num_classes,
        student_kwargs=kwargs, log=log)
    model = build_from_kwargs(kwargs, pretrained=cfg.model.pretrained)
    gmacs = _gmacs(cfg, model, cfg.data.size)
    train_set = make_dataset(cfg, "train_list", train=True, sizes=sizes, num_classes=num_classes,
                             crop_size=crop_size, student_sizes=tuple(cfg.distill.student_sizes),
                             log=log)
    context = checkpoint_context(cfg, classes, kwargs, gmacs, train_set.views.record())
    if cfg.distill.student_sizes:  # what `checkpoint_at_size` reports for each size
        context["gmacs_by_size"] = {s: _gmacs(cfg, model, s)
                                    for s in sorted(cfg.distill.student_sizes)}
    if dist_utils.is_main():
        save_config(cfg, out / "config.yaml")
    amp = autocast_dtype(r.precision, device)
    model = prepare_model(model, device, r.channels_last)
    if teacher is not None:
        teacher = prepare_model(teacher, device, r.channels_last)
    loader = make_train_loader(cfg, train_set)
    share_cpu_with_workers(device, loader.num_workers)
    if len(loader) == 0:
        raise ConfigError(f"the training list has {len(train_set)} videos, fewer than one batch "
                          f"of data.batch_size={cfg.data.batch_size} per process")
    if r.precision == "auto":
        amp = _picked_precision(cfg, model, teacher, device, teacher_size=sizes[0], log=log)
    train_model, teacher = _for_processes(cfg, model, teacher, device, distributed=distributed)
    distiller = None if teacher is None else distiller_for(cfg, teacher, train_model).to(device)
    optimizer, schedule = optimizer_for(cfg, model, steps_per_epoch=len(loader) // o.accumulate,
                                        connector=distiller and distiller.connector)
    val_set, evaluate_fn = _validation(cfg, device=device, amp=amp, num_classes=num_classes,
                                       crop_size=crop_size, log=log)
    if cfg.data.cache_decoded:
        _decode_into_memory([train_set] + ([val_set] if val_set is not None else []),
                            should_stop=should_stop, log=log)
    if dist_utils.is_main():
        what = "distilling" if distill else "training"
        log(f"{what} {cfg.model.arch} at {cfg.data.size}px"
            + (f" from a {sizes[0]}px teacher" if distill else "")
            + f" on {len(train_set)} videos, {o.epochs} epochs, {device}, "
              f"{precision_name(amp)}{', channels_last' if r.channels_last else ''}; "
              f"{gmacs:.3f} GMACs per video; run folder {out}")
    state = train(model=train_model, loader=loader, optimizer=optimizer, schedule=schedule,
                  epochs=o.epochs, device=device, amp_dtype=amp, out_dir=out, context=context,
                  distiller=distiller, grad_clip=o.grad_clip, resume=resume,
                  evaluate_fn=evaluate_fn, val_every=r.val_every,
                  keep_checkpoints=r.keep_checkpoints, should_stop=should_stop,
                  progress=r.progress, tensorboard=r.tensorboard, log_every=r.log_every,
                  transform=train_set.views.views_of, accumulate=o.accumulate,
                  on_step=on_step, log=log)
    val = state.history[-1].get("val", {}) if state.history else {}
    return {"out": str(out), "model": str(out / "model.pt"), "val": val}


def optimizer_for(cfg: Config, model: torch.nn.Module, *, steps_per_epoch: int,
                  connector: torch.nn.Module | None = None):
    """(the optimizer over `model`'s parameter groups, its per-step schedule) per `optim.*`;
    a feature-KD `connector` (distill.connector) is trained with it at optim.lr."""
    o = cfg.optim
    optimizer = make_optimizer(model, optimizer=o.optimizer, lr=o.lr, momentum=o.momentum,
                               nesterov=o.nesterov, weight_decay=o.weight_decay,
                               bias_lr_mult=o.bias_lr_mult, backbone_lr_mult=o.backbone_lr_mult,
                               no_decay_names=o.no_decay_names)
    if connector is not None:
        optimizer.add_param_group({"params": list(connector.parameters()), "lr": o.lr,
                                   "lr_mult": 1.0, "weight_decay": o.weight_decay})
    schedule = make_schedule(schedule=o.schedule, epochs=o.epochs,
                             steps_per_epoch=steps_per_epoch, warmup_epochs=o.warmup_epochs,
                             warmup_start_factor=o.warmup_start_factor,
                             milestones=o.milestones, gamma=o.gamma)
    return optimizer, schedule


def _teacher_and_sizes(cfg: Config, *, distill: bool, distributed: bool, num_classes: int,
                       student_kwargs: dict, log
                       ) -> tuple[torch.nn.Module | None, tuple[int, ...], int]:
    """(the frozen teacher or None, the view sizes: (teacher's, student's) or (student's,),
    the crop size they are shrunk from), after checking that the sizes,
    distill.student_sizes and data.crop_size fit together."""
    teacher, sizes = None, (cfg.data.size,)
    if distill:
        teacher, teacher_size = load_teacher(cfg, num_classes, student_kwargs, log=log)
        sizes = (teacher_size, cfg.data.size)
        if teacher_size < max((cfg.data.size, *cfg.distill.student_sizes)):
            raise ConfigError(f"teacher size {teacher_size} is below the student size "
                              f"{max((cfg.data.size, *cfg.distill.student_sizes))}; ResKD "
                              f"distils from high to low resolution")
        warn_flat_student_map(cfg, teacher, teacher_size, student_kwargs,
                              log=log if dist_utils.is_main() else _quiet)
    student_sizes = tuple(cfg.distill.student_sizes)
    if student_sizes and not distill:
        raise ConfigError(f"distill.student_sizes={list(student_sizes)} trains an "
                          f"any-resolution student from a teacher: use `reskd distill`, or "
                          f"set distill.student_sizes=[] to train one size")
    if student_sizes and distributed:
        raise ConfigError("distill.student_sizes (several forwards per step) is not supported "
                          "under torchrun yet; train the any-resolution student in one process")
    if distill and distributed and cfg.distill.connector != "none":
        raise ConfigError("distill.connector=conv is not supported under torchrun yet (the "
                          "connector sits outside the student's DDP wrapper, so its gradients "
                          "would not be averaged); distil with a connector in one process")
    crop_size = cfg.data.crop_size or sizes[0]
    if crop_size < sizes[0]:
        raise ConfigError(f"data.crop_size={crop_size} is below the teacher size {sizes[0]}: "
                          f"the teacher's and student's views are shrunk from that crop; set "
                          f"data.crop_size=0 (the teacher's size) or at least {sizes[0]}")
    return teacher, sizes, crop_size


def _gmacs(cfg: Config, model: torch.nn.Module, size: int) -> float:
    """GMACs per video of `model` at `size`, with the config's frames and test views."""
    return flops.gmacs_per_video(model, cfg.data.clip_len or cfg.data.num_segments, size,
                                 cfg.data.test_clips * cfg.data.test_crops)


def _picked_precision(cfg: Config, model: torch.nn.Module, teacher: torch.nn.Module | None,
                      device: torch.device, *, teacher_size: int, log) -> torch.dtype | None:
    """runtime.precision=auto: the autocast dtype timed on this run's model and batch
    (`pick_precision`), rank 0's choice for every process."""
    shape = (cfg.data.batch_size, cfg.data.clip_len or cfg.data.num_segments, 3)
    return dist_utils.all_gather_objects(pick_precision(
        model, (*shape, cfg.data.size, cfg.data.size), device, teacher=teacher,
        teacher_shape=(*shape, teacher_size, teacher_size),
        log=log if dist_utils.is_main() else _quiet))[0]


def _for_processes(cfg: Config, model: torch.nn.Module, teacher: torch.nn.Module | None,
                   device: torch.device, *, distributed: bool):
    """(the model to train, the teacher): under torchrun the model DDP-wrapped, with
    runtime.sync_bn both models' BatchNorms synchronised (the teacher's when it trains them)."""
    train_model = model
    if distributed:
        if cfg.runtime.sync_bn:  # batch statistics over the global batch, teacher's too
            train_model = dist_utils.convert_sync_batchnorm(train_model, device)
            if teacher is not None and cfg.distill.teacher_bn == "train":
                teacher = dist_utils.convert_sync_batchnorm(teacher, device)
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)
    return train_model, teacher


def _validation(cfg: Config, *, device: torch.device, amp: torch.dtype | None,
                num_classes: int, crop_size: int, log):
    """(the validation set, evaluate_fn(model) -> its metrics), or (None, None) without
    data.val_list."""
    if not cfg.data.val_list:
        return None, None
    val_set = make_dataset(cfg, "val_list", train=False, sizes=(cfg.data.size,),
                           num_classes=num_classes, crop_size=crop_size, log=log)
    val_loader = make_test_loader(cfg, val_set)

    def evaluate_fn(m):
        return evaluate(m, val_loader, device=device, amp_dtype=amp,
                        multi_label=cfg.data.multi_label, average=cfg.data.test_average,
                        progress=cfg.runtime.progress)

    return val_set, evaluate_fn


def _decode_into_memory(sets: list, *, should_stop, log) -> None:
    """data.cache_decoded: every video of `sets` decoded once, on every core."""
    start = time.perf_counter()
    count = prefetch_decoded(sets, workers=os.cpu_count() or 1, should_stop=should_stop)
    if count:
        log(f"decoded {count} videos into memory in {time.perf_counter() - start:.0f} s "
            f"(data.cache_decoded)")


def with_checkpoint_views(cfg: Config, ckpt: dict, path: str | Path = "checkpoint",
                       log=print) -> Config:
    """`cfg` with the data keys that make test views replaced by the checkpoint's recipe (the
    views it was trained on; an any-resolution student's at one size: `checkpoint_at_size`); a
    key the config sets otherwise is named in a note."""
    v = checkpoint_views(ckpt, path)
    cfg = copy.deepcopy(cfg)
    d = cfg.data
    recipe = {"size": v.sizes[0], "crop_size": v.crop_size, "shrink": v.shrink,
              "short_side_ratio": v.short_side_ratio, "test_short_side_ratio": v.test_ratio,
              "downsample_to": v.downsample_to, "mean": tuple(v.mean), "std": tuple(v.std)}
    given = {k: getattr(d, k) for k in recipe}
    given["test_short_side_ratio"] = d.test_short_side_ratio or d.short_side_ratio  # 0: same
    differ = [f"data.{k}={getattr(d, k)!r}" for k, value in recipe.items()
              if given[k] != value and not (k == "crop_size" and d.crop_size == 0)
              and not (k == "shrink" and v.crop_size == v.sizes[0])]
    if differ:
        log(f"note: testing {path} on the views it was trained on ({v.sizes[0]} px shrunk from a "
            f"{v.crop_size} px crop, {v.shrink}); the config's {', '.join(differ)} is not used")
    for key, value in recipe.items():
        setattr(d, key, value)
    return cfg


def run_test(cfg: Config, checkpoint: str | Path, *, log=print, scores: bool = False,
             size: int | None = None) -> dict:
    """Multi-view test of a checkpoint on data.val_list, on views made as its training views
    were (the checkpoint's recipe: size, crop, shrink); clips, crops and averaging from `cfg`.
    `scores`: the result also holds every video's scores (see `evaluate`). `size`: one of the
    sizes the checkpoint supports (an any-resolution student's; None: its own)."""
    device = pick_device(cfg.runtime.device)
    dist_utils.init(device)
    model, ckpt = load_model_checkpoint(checkpoint, size)
    classes = ckpt["classes"]
    if size is not None:  # the size asked for, not the config's, is the test's
        cfg = copy.deepcopy(cfg)
        cfg.data.size = size
    cfg = with_checkpoint_views(cfg, ckpt, checkpoint, log=log if dist_utils.is_main() else _quiet)
    dataset = make_dataset(cfg, "val_list", train=False, sizes=(cfg.data.size,),
                           num_classes=len(classes), crop_size=cfg.data.crop_size, log=log)
    loader = make_test_loader(cfg, dataset)
    model = prepare_model(model, device, cfg.runtime.channels_last, inference=True)
    amp = autocast_dtype(cfg.runtime.precision, device)
    result = evaluate(model, loader, device=device, amp_dtype=amp,
                      multi_label=cfg.data.multi_label, average=cfg.data.test_average,
                      progress=cfg.runtime.progress, return_scores=scores)
    result["videos_per_s"] = result["num_videos"] / max(result["seconds"], 1e-9)
    result["size"] = cfg.data.size
    result["crop_size"], result["shrink"] = cfg.data.crop_size, cfg.data.shrink
    result["views"] = cfg.data.test_clips * cfg.data.test_crops
    return result


def _quiet(*_) -> None:
    pass


def format_test(result: dict) -> str:
    lines = [f"videos: {result['num_videos']}  failed: {len(result['failed'])}  "
             f"views per video: {result['views']}  size: {result['size']}"
             + (f" (shrunk from a {result['crop_size']} px crop, {result['shrink']})"
                if result["crop_size"] > result["size"] else ""),
             f"top-1: {result['top1']:.2f}%  top-5: {result['top5']:.2f}%  "
             f"mean class accuracy: {result['mean_class_acc']:.2f}%"]
    if "mAP" in result:
        lines.append(f"mAP: {result['mAP']:.2f}%")
    for f in result["failed"][:20]:
        lines.append(f"failed: {f}")
    return "\n".join(lines)


class StopOnSignals:
    """While active, SIGINT / SIGTERM ask the trainer to finish its step, save and exit; a
    second SIGINT stops at once (KeyboardInterrupt). Forked loader workers ignore both (the
    trainer stops them); other forked children, such as a process pool's, die on SIGTERM.
    `doing` is what the message on a signal says happens next."""

    def __init__(self, doing: str = "finishing the current step, then saving a checkpoint"):
        self.doing = doing
        self.reason: str | None = None
        self._old: dict = {}
        self._pid = os.getpid()

    def __call__(self) -> str | None:
        return self.reason

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._pid:  # a forked child inherited this handler
            if signum == signal.SIGTERM and get_worker_info() is None:
                # not a loader worker (e.g. a multiprocessing pool's, which Pool.terminate()
                # stops with SIGTERM): die as without this handler
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return  # a loader worker: ignore, the trainer decides when to stop
        name = signal.Signals(signum).name
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = name
        if os.environ.get("RANK", "0") == "0":  # torchrun signals every process
            print(f"reskd: {name} received: {self.doing} (Ctrl-C again to stop at once)",
                  file=sys.stderr, flush=True)

    def __enter__(self):
        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

"""The `reskd` command line: the one place where a config meets the library.

    reskd train CONFIG [--set key=value ...] [--resume]
    reskd distill CONFIG [--set ...] [--resume]
    reskd test CONFIG --checkpoint CKPT [--set ...] [--json]
    reskd demo [--out DIR] [--quick] [--seed S]
    reskd data synth --out DIR [--kind digits|textures] [--seed S]
    reskd data extract LIST --root R --out DIR [--short-side 256] [--fps F]
    reskd data convert DATASET --out DIR [--csv/--json/--labels/--train/--val ...]
    reskd flops (--model NAME | --checkpoint CKPT) [--size S --frames F] [--views V] [--json]
    reskd bench (--model NAME | --checkpoint CKPT) --sizes 224,112,56 --frames F --batch B
    reskd sweep [--model NAME] [--checkpoints S=CKPT,...] --sizes ... --frames F --out DIR
    reskd study resolution [--out DIR] [--config YAML --set ...] [--sizes ...] [--seeds 0,1]
    reskd study ablation [--out DIR] [--config YAML --set ...] [--teacher-size N] [--seeds 0,1]
    reskd study views [--out DIR] [--data DIR] [--config YAML --high N --sizes ...] [--seeds 0,1]
    reskd data check LIST [--root R] [--format F] [--frames N] [--workers W] [--out BAD]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from reskd.config import Config, ConfigError, load_config, save_config, to_dict


# ---------------------------------------------------------------------------------------------
# Building blocks shared by the commands


def read_classes_for(cfg: Config) -> list[str]:
    from reskd.data.formats import read_classes

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
            "dropout": m.dropout, "num_segments": cfg.data.clip_len or cfg.data.num_segments}


def kd_weights(cfg: Config):
    from reskd.distill.distiller import KDWeights

    k = cfg.distill
    return KDWeights(feature=k.alpha, clip=k.clip_kd, frame=k.frame_kd,
                     pixel_logit=k.pixel_logit_kd, temperature=k.temperature,
                     pixel_logit_reduction=k.pixel_logit_reduction)


def build_from_kwargs(kwargs: dict, pretrained: str = "") -> torch.nn.Module:
    from reskd.models import build_model

    k = dict(kwargs)
    for key in ("layers", "widths", "strides"):
        k[key] = tuple(k[key])
    return build_model(**k, pretrained=pretrained)


def make_dataset(cfg: Config, list_name: str, *, train: bool, sizes: tuple[int, ...],
                 num_classes: int, crop_size: int = 0, log=print):
    """The dataset of one annotation list; missing files are an error unless data.skip_missing.

    Views of `sizes` are shrunk from one crop of `crop_size` (0: sizes[0]) with data.shrink.

    Paths must stay under data.root unless data.allow_outside_root; entries named in the
    data.exclude file (e.g. from `reskd data check --out`) are left out and counted.
    """
    import posixpath

    from reskd.data.check import paths_outside_root, read_exclusion_list
    from reskd.data.datasets import Sampling, VideoDataset, ViewSpec, missing_files
    from reskd.data.formats import read_list

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
    views = ViewSpec(sizes=sizes, crop_size=crop_size, shrink=d.shrink,
                     short_side_ratio=d.short_side_ratio, scales=d.crop_scales, flip=d.flip,
                     mean=d.mean, std=d.std, downsample_to=d.downsample_to)
    sampling = Sampling(d.num_segments, d.clip_len, d.frame_interval)
    return VideoDataset(entries, d.root, sampling=sampling, views=views, train=train,
                        num_classes=num_classes, format=d.format, frame_template=d.frame_template,
                        multi_label=d.multi_label, test_clips=d.test_clips,
                        test_crops=d.test_crops, seed=cfg.runtime.seed,
                        cache_decoded=d.cache_decoded, multi_label_loss=d.multi_label_loss)


def checkpoint_context(cfg: Config, classes: list[str], kwargs: dict, gmacs: float | None,
                       views: dict) -> dict:
    """What a checkpoint carries besides weights; `views` is the test-view recipe
    (`ViewSpec.record()`), followed by test, predict and the analysis commands."""
    d = cfg.data
    return {"config": to_dict(cfg), "classes": classes, "model_kwargs": kwargs, "size": d.size,
            "views": views, "test_average": d.test_average,
            "frames": d.clip_len or d.num_segments,
            "sampling": {"num_segments": d.num_segments, "clip_len": d.clip_len,
                         "frame_interval": d.frame_interval, "test_clips": d.test_clips,
                         "test_crops": d.test_crops, "short_side_ratio": d.short_side_ratio},
            "mean": list(d.mean), "std": list(d.std), "gmacs": gmacs}


def gmacs_per_video(model: torch.nn.Module, frames: int, size: int, views: int = 1) -> float:
    """GMACs per video as the paper counts them (per view x views)."""
    import copy

    from reskd.efficiency.flops import count_macs

    m = copy.deepcopy(model).float().to("cpu", memory_format=torch.contiguous_format)
    if hasattr(m, "channels_last"):
        m.channels_last = False
    return count_macs(m, torch.zeros(1, frames, 3, size, size)).gmacs * views


def share_cpu_with_workers(device: torch.device, workers: int) -> None:
    """On CPU, leaves one core per loader worker: oversubscribed OpenMP threads stall badly
    (measured here: a 2-thread trainer beside a busy worker ran 5x slower than 1 thread).
    An explicit OMP_NUM_THREADS wins."""
    import os

    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - workers))


def load_model_checkpoint(path: str | Path):
    """(model, checkpoint) from any reskd checkpoint; the model is on CPU in eval mode."""
    from reskd.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    model = build_from_kwargs(ckpt["model_kwargs"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def load_teacher(cfg: Config, num_classes: int, student_kwargs: dict, log=print):
    """The frozen teacher and its input size; mismatches with the config are errors naming both.

    The teacher's views in distillation are the crop of data.crop_size (0: the teacher's size)
    shrunk with data.shrink; when that is not how its own training views were made, says so."""
    from reskd.distill.distiller import freeze

    if not cfg.distill.teacher:
        raise ConfigError("distill.teacher is empty: give the checkpoint of a teacher trained "
                          "with `reskd train` (e.g. --set distill.teacher=runs/teacher/model.pt)")
    teacher, ckpt = load_model_checkpoint(cfg.distill.teacher)
    t_classes = ckpt["model_kwargs"]["num_classes"]
    if t_classes != num_classes:
        raise ValueError(f"teacher {cfg.distill.teacher} has {t_classes} classes but this config "
                         f"has {num_classes}; distil on the dataset the teacher was trained on")
    t_frames, s_frames = ckpt["frames"], cfg.data.clip_len or cfg.data.num_segments
    if t_frames != s_frames:
        raise ValueError(f"teacher {cfg.distill.teacher} was trained on {t_frames} frames per "
                         f"clip but the student config uses {s_frames}; they must see the same "
                         f"frames")
    with torch.device("meta"):
        student_channels = build_from_kwargs(student_kwargs).feature_channels
    if cfg.distill.alpha > 0 and teacher.feature_channels != student_channels:
        raise ValueError(
            f"teacher {ckpt['model_kwargs']['arch']} has {teacher.feature_channels} feature "
            f"channels but student {student_kwargs['arch']} has {student_channels}; feature KD "
            f"needs equal channel counts: use a teacher of the same width, or pixel-level "
            f"logit KD (--set distill.alpha=0 --set distill.pixel_logit_kd=500)")
    size = cfg.distill.teacher_size or ckpt["size"]
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


# ---------------------------------------------------------------------------------------------
# Runs


def run_train(cfg: Config, *, distill: bool, resume: bool = False, log=print,
              should_stop=None) -> dict:
    """Trains (or distils) per `cfg`, tests the final model on data.val_list when set.

    Under torchrun, data.batch_size is per process and optim.lr is for the global batch
    (batch_size x processes): scale lr linearly with it (see reskd.engine.distributed).
    `should_stop()` -> reason or None is polled after every step (the CLI wires signals to it).

    Returns {"out": run folder, "model": path of model.pt, "val": metrics or {}}.
    """
    from reskd.data.datasets import EpochSampler, make_loader
    from reskd.engine import distributed as dist_utils
    from reskd.engine.evaluate import evaluate
    from reskd.engine.runtime import autocast_dtype, pick_device, precision_name, prepare_model
    from reskd.engine.train import ResumableSampler, make_optimizer, make_schedule, train

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
    teacher, sizes = None, (cfg.data.size,)
    if distill:
        teacher, teacher_size = load_teacher(cfg, num_classes, kwargs, log=log)
        sizes = (teacher_size, cfg.data.size)
        if teacher_size < cfg.data.size:
            raise ConfigError(f"teacher size {teacher_size} is below the student size "
                              f"{cfg.data.size}; ResKD distils from high to low resolution")
    crop_size = cfg.data.crop_size or sizes[0]
    if crop_size < sizes[0]:
        raise ConfigError(f"data.crop_size={crop_size} is below the teacher size {sizes[0]}: "
                          f"the teacher's and student's views are shrunk from that crop; set "
                          f"data.crop_size=0 (the teacher's size) or at least {sizes[0]}")
    model = build_from_kwargs(kwargs, pretrained=cfg.model.pretrained)
    gmacs = gmacs_per_video(model, cfg.data.clip_len or cfg.data.num_segments, cfg.data.size,
                            cfg.data.test_clips * cfg.data.test_crops)
    train_set = make_dataset(cfg, "train_list", train=True, sizes=sizes, num_classes=num_classes,
                             crop_size=crop_size, log=log)
    context = checkpoint_context(cfg, classes, kwargs, gmacs, train_set.views.record())
    if dist_utils.is_main():
        save_config(cfg, out / "config.yaml")
    amp = autocast_dtype(r.precision, device)
    model = prepare_model(model, device, r.channels_last)
    if teacher is not None:
        teacher = prepare_model(teacher, device, r.channels_last)
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(train_set, num_replicas=dist_utils.world_size(),
                                 rank=dist_utils.rank(), shuffle=True, seed=r.seed, drop_last=True)
    loader = make_loader(train_set, batch_size=cfg.data.batch_size, workers=cfg.data.workers,
                         sampler=ResumableSampler(EpochSampler(sampler)), drop_last=True)
    share_cpu_with_workers(device, loader.num_workers)
    if len(loader) == 0:
        raise ConfigError(f"the training list has {len(train_set)} videos, fewer than one batch "
                          f"of data.batch_size={cfg.data.batch_size} per process")
    train_model = model
    if distributed:
        if cfg.runtime.sync_bn:  # batch statistics over the global batch, teacher's too
            train_model = dist_utils.convert_sync_batchnorm(train_model, device)
            if teacher is not None and cfg.distill.teacher_bn == "train":
                teacher = dist_utils.convert_sync_batchnorm(teacher, device)
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model.parameters(), optimizer=o.optimizer, lr=o.lr,
                               momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)
    schedule = make_schedule(schedule=o.schedule, epochs=o.epochs, steps_per_epoch=len(loader),
                             warmup_epochs=o.warmup_epochs)
    evaluate_fn = None
    if cfg.data.val_list:
        val_set = make_dataset(cfg, "val_list", train=False, sizes=(cfg.data.size,),
                               num_classes=num_classes, crop_size=crop_size, log=log)
        from reskd.engine.distributed import ShardSampler

        val_loader = make_loader(val_set, batch_size=cfg.data.batch_size, workers=cfg.data.workers,
                                 sampler=ShardSampler(len(val_set)))

        def evaluate_fn(m):
            return evaluate(m, val_loader, device=device, amp_dtype=amp,
                            multi_label=cfg.data.multi_label, average=cfg.data.test_average, progress=r.progress)

    if cfg.data.cache_decoded:
        from reskd.data.datasets import prefetch_decoded

        sets = [train_set] + ([val_set] if cfg.data.val_list else [])
        start = time.perf_counter()
        count = prefetch_decoded(sets, workers=os.cpu_count() or 1)
        if count:
            log(f"decoded {count} videos into memory in {time.perf_counter() - start:.0f} s "
                f"(data.cache_decoded)")
    if dist_utils.is_main():
        what = "distilling" if distill else "training"
        log(f"{what} {cfg.model.arch} at {cfg.data.size}px"
            + (f" from a {sizes[0]}px teacher" if distill else "")
            + f" on {len(train_set)} videos, {o.epochs} epochs, {device}, "
              f"{precision_name(amp)}{', channels_last' if r.channels_last else ''}; "
              f"{gmacs:.3f} GMACs per video; run folder {out}")
    state = train(model=train_model, loader=loader, optimizer=optimizer, schedule=schedule,
                  epochs=o.epochs, device=device, amp_dtype=amp, out_dir=out, context=context,
                  teacher=teacher, kd_weights=kd_weights(cfg), teacher_bn=cfg.distill.teacher_bn,
                  grad_clip=o.grad_clip, resume=resume, evaluate_fn=evaluate_fn,
                  val_every=r.val_every, keep_checkpoints=r.keep_checkpoints,
                  should_stop=should_stop, progress=r.progress, log=log)
    val = state.history[-1].get("val", {}) if state.history else {}
    return {"out": str(out), "model": str(out / "model.pt"), "val": val}


def with_checkpoint_views(cfg: Config, ckpt: dict, path: str | Path = "checkpoint",
                       log=print) -> Config:
    """`cfg` with the data keys that make test views replaced by the checkpoint's recipe (the
    views it was trained on); a key the config sets otherwise is named in a note."""
    import copy

    from reskd.data.datasets import checkpoint_views

    v = checkpoint_views(ckpt, path)
    cfg = copy.deepcopy(cfg)
    d = cfg.data
    recipe = {"size": v.sizes[0], "crop_size": v.crop_size, "shrink": v.shrink,
              "short_side_ratio": v.short_side_ratio, "downsample_to": v.downsample_to,
              "mean": tuple(v.mean), "std": tuple(v.std)}
    differ = [f"data.{k}={getattr(d, k)!r}" for k, value in recipe.items()
              if getattr(d, k) != value and not (k == "crop_size" and d.crop_size == 0)
              and not (k == "shrink" and v.crop_size == v.sizes[0])]
    if differ:
        log(f"note: testing {path} on the views it was trained on ({v.sizes[0]} px shrunk from a "
            f"{v.crop_size} px crop, {v.shrink}); the config's {', '.join(differ)} is not used")
    for key, value in recipe.items():
        setattr(d, key, value)
    return cfg


def run_test(cfg: Config, checkpoint: str | Path, *, log=print) -> dict:
    """Multi-view test of a checkpoint on data.val_list, on views made as its training views
    were (the checkpoint's recipe: size, crop, shrink); clips, crops and averaging from `cfg`."""
    from reskd.data.datasets import make_loader
    from reskd.engine import distributed as dist_utils
    from reskd.engine.distributed import ShardSampler
    from reskd.engine.evaluate import evaluate
    from reskd.engine.runtime import autocast_dtype, pick_device, prepare_model

    device = pick_device(cfg.runtime.device)
    dist_utils.init(device)
    model, ckpt = load_model_checkpoint(checkpoint)
    classes = ckpt["classes"]
    cfg = with_checkpoint_views(cfg, ckpt, checkpoint, log=log if dist_utils.is_main() else _quiet)
    dataset = make_dataset(cfg, "val_list", train=False, sizes=(cfg.data.size,),
                           num_classes=len(classes), crop_size=cfg.data.crop_size, log=log)
    loader = make_loader(dataset, batch_size=cfg.data.batch_size, workers=cfg.data.workers,
                         sampler=ShardSampler(len(dataset)))
    model = prepare_model(model, device, cfg.runtime.channels_last, inference=True)
    amp = autocast_dtype(cfg.runtime.precision, device)
    result = evaluate(model, loader, device=device, amp_dtype=amp,
                      multi_label=cfg.data.multi_label, average=cfg.data.test_average, progress=cfg.runtime.progress)
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


# ---------------------------------------------------------------------------------------------
# Commands


def _config_from(args) -> Config:
    return load_config(args.config, args.set or [])


class _StopOnSignals:
    """While active, SIGINT / SIGTERM ask the trainer to finish its step, save and exit; a
    second SIGINT stops at once (KeyboardInterrupt)."""

    def __init__(self):
        self.reason: str | None = None
        self._old: dict = {}
        self._pid = os.getpid()

    def __call__(self) -> str | None:
        return self.reason

    def _handle(self, signum, frame) -> None:
        import signal

        if os.getpid() != self._pid:
            return  # a forked loader worker: ignore, the trainer decides when to stop
        name = signal.Signals(signum).name
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = name
        if os.environ.get("RANK", "0") == "0":  # torchrun signals every process
            print(f"reskd: {name} received: finishing the current step, then saving a "
                  f"checkpoint (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self):
        import signal
        import threading

        self._pid = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def cmd_train(args) -> int:
    with _StopOnSignals() as stop:
        result = run_train(_config_from(args), distill=False, resume=args.resume,
                           should_stop=stop)
    print(json.dumps(result, indent=2))
    return 0


def cmd_distill(args) -> int:
    with _StopOnSignals() as stop:
        result = run_train(_config_from(args), distill=True, resume=args.resume,
                           should_stop=stop)
    print(json.dumps(result, indent=2))
    return 0


def cmd_test(args) -> int:
    from reskd.engine import distributed as dist_utils

    result = run_test(_config_from(args), args.checkpoint)
    if dist_utils.is_main():
        print(json.dumps(result, indent=2) if args.json else format_test(result))
    return 0


def cmd_demo(args) -> int:
    from reskd.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, seed=args.seed)
    return 0


def cmd_data_synth(args) -> int:
    if args.kind == "textures":
        from reskd.data.textures import make_texture_dataset as make_synth_dataset
    else:
        from reskd.data.synth import make_synth_dataset

    kwargs = {"seed": args.seed}
    if args.num_train:
        kwargs["num_train"] = args.num_train
    if args.num_val:
        kwargs["num_val"] = args.num_val
    info = make_synth_dataset(args.out, **kwargs)
    print(json.dumps(info, indent=2))
    return 0


def cmd_predict(args) -> int:
    from reskd.predict import format_predictions, predict_checkpoint

    results = predict_checkpoint(args.checkpoint, args.videos, topk=args.topk,
                                 device=args.device, precision=args.precision)
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 1 if results and all("error" in r for r in results) else 0


def cmd_export(args) -> int:
    from reskd.export import run_export

    print(json.dumps(run_export(args.checkpoint, format=args.format, out=args.out,
                                batch=args.batch, opset=args.opset), indent=2))
    return 0


def cmd_viz_erf(args) -> int:
    from reskd.analysis.viz import viz_erf

    pos = tuple(args.position) if args.position else None
    print(json.dumps(viz_erf(args.baseline, args.reskd, args.videos, args.out,
                             teacher_ckpt=args.teacher, position=pos), indent=2))
    return 0


def cmd_viz_attention(args) -> int:
    from reskd.analysis.viz import viz_attention

    print(json.dumps(viz_attention(args.baseline, args.reskd, args.video, args.out,
                                   max_frames=args.max_frames), indent=2))
    return 0


def _command_line() -> str:
    import shlex

    return " ".join(["reskd", *map(shlex.quote, sys.argv[1:])])


def cmd_study_resolution(args) -> int:
    from reskd.studies import run_resolution_study

    run_resolution_study(args.out, config=args.config, overrides=args.set or [],
                         sizes=args.sizes, high=args.high, s_sizes=args.s_sizes,
                         s_set=args.s_set, seeds=args.seeds, epochs=args.epochs,
                         quick=args.quick, command=_command_line(), data_dir=args.data)
    return 0


def cmd_study_ablation(args) -> int:
    from reskd.studies import run_ablation_study

    run_ablation_study(args.out, config=args.config, overrides=args.set or [],
                       teacher_size=args.teacher_size, big_set=args.teacher_set,
                       seeds=args.seeds, epochs=args.epochs, quick=args.quick,
                       command=_command_line(), data_dir=args.data)
    return 0


def cmd_study_views(args) -> int:
    from reskd.studies import run_views_study

    run_views_study(args.out, config=args.config, overrides=args.set or [], sizes=args.sizes,
                    high=args.high, s_sizes=args.s_sizes, s_set=args.s_set, seeds=args.seeds,
                    epochs=args.epochs, quick=args.quick, command=_command_line(),
                    data_dir=args.data)
    return 0


def add_study_commands(sub) -> None:
    """Inside build_parser(): `reskd study resolution|ablation` (reskd.studies)."""
    study = sub.add_parser("study", help="the paper's studies: Figure 1, Tables 5 and 6; and "
                           "how student views are shrunk")
    study = study.add_subparsers(dest="study_command", required=True)

    def common(q, out: str) -> None:
        q.add_argument("--out", default=out, help=f"study folder (default: {out}); a rerun "
                       f"reuses its finished runs and resumes an interrupted one")
        q.add_argument("--config", default=None, help="base YAML for paper scale (default: the "
                       "demo recipe on the embedded synthetic videos)")
        q.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override on the base recipe (repeatable)")
        q.add_argument("--seeds", type=_int_list, default=None, help="e.g. 0,1,2")
        q.add_argument("--epochs", type=int, default=None, help="epochs of every run "
                       "(default at demo scale: 10 for resolution, 6 for ablation; else the config's)")
        q.add_argument("--data", default=None, help="demo scale: folder of the synthetic videos "
                       "(default OUT/data); a complete set there, e.g. the other study's or the "
                       "demo's, is reused; a folder with train.txt, val.txt and classes.txt but "
                       "no synth.json (e.g. `reskd data synth --kind textures`) is used as it is")
        q.add_argument("--quick", action="store_true", help="tiny smoke run: numbers are "
                       "not meaningful")

    q = study.add_parser("resolution", help="Figure 1a (native vs up-sampled low-resolution "
                         "frames) and 1b (-H vs -S network)")
    common(q, "study_resolution")
    q.add_argument("--sizes", type=_int_list, default=None,
                   help="resolutions (default at demo scale: 64,32,16)")
    q.add_argument("--high", type=int, default=None, help="the high resolution frames are "
                   "up-sampled back to (default: 64 at demo scale, else max of --sizes)")
    q.add_argument("--s-sizes", type=_int_list, default=None,
                   help="resolutions of Figure 1b (default: 32,16 at demo scale, else --sizes)")
    q.add_argument("--s-set", action="append", metavar="KEY=VALUE", default=None,
                   help="what makes the -S network (default: model.strides=[1,1,2,2] for "
                        "arch resnet, model.arch=resnet50s for resnet50)")
    q.set_defaults(func=cmd_study_resolution)

    q = study.add_parser("ablation", help="Table 5 (clip/frame/pixel-level KD) and Table 6 "
                         "(model vs resolution distillation), over seeds")
    common(q, "study_ablation")
    q.add_argument("--teacher-size", type=int, default=None,
                   help="teachers' resolution (default 64 at demo scale; required with --config)")
    q.add_argument("--teacher-set", action="append", metavar="KEY=VALUE", default=None,
                   help="what makes the high-capacity teacher (default: model.layers=[1,1,2,2] "
                        "for arch resnet, model.arch=resnet152 for resnet50)")
    q.set_defaults(func=cmd_study_ablation)

    q = study.add_parser("views", help="CE baseline vs ResKD student on views shrunk from the "
                         "teacher's crop bilinearly (authors) or with antialiasing, at 2x and 4x")
    common(q, "study_views")
    q.add_argument("--high", type=int, default=None, help="the teacher's size = the crop size "
                   "(default 64 at demo scale; required with --config)")
    q.add_argument("--sizes", type=_int_list, default=None,
                   help="student sizes (default at demo scale: 32,16; required with --config)")
    q.add_argument("--s-sizes", type=_int_list, default=None, help="student sizes that use the "
                   "-S network, baseline and student alike (default at demo scale: 16, where the "
                   "stock net's last map would be 1x1)")
    q.add_argument("--s-set", action="append", metavar="KEY=VALUE", default=None,
                   help="what makes the -S network (as in `reskd study resolution`)")
    q.set_defaults(func=cmd_study_views)


def cmd_data_check(args) -> int:
    from reskd.data.check import run_check

    problems, text = run_check(args.list, root=args.root, format=args.format,
                               min_frames=args.frames, workers=args.workers,
                               out=Path(args.out).absolute() if args.out else None,
                               progress=sys.stderr.isatty())
    print(text)
    return 1 if problems else 0


def cmd_data_extract(args) -> int:
    from reskd.data.extract import extract_dataset

    report = extract_dataset(args.list, args.root, args.out, short_side=args.short_side,
                             fps=args.fps, workers=args.workers)
    print(report.summary())
    print(f"train on it with: --set data.format=rawframes --set data.root={Path(args.out) / 'frames'}"
          f" --set data.train_list={report.list_path.resolve()}")
    return 1 if report.failed else 0


def cmd_data_convert(args) -> int:
    from reskd.data.formats import convert

    d = args.dataset
    need = {"kinetics400": ["csv"], "activitynet": ["json"], "sthv2": ["labels", "train", "val"],
            "fcvid": ["train", "val"], "minikinetics": ["train", "val"]}.get(d, [])
    missing = [f"--{n}" for n in need if not getattr(args, n)]
    if missing:
        raise ValueError(f"reskd data convert {d} needs {', '.join(missing)}")
    sources = {"kinetics400": {"csv_paths": args.csv}, "activitynet": {"json_path": args.json},
               "sthv2": {"labels_json": args.labels, "train_json": args.train,
                         "val_json": args.val, "test_json": args.test},
               "fcvid": {"train_list": args.train, "val_list": args.val,
                         "classes_path": args.classes, "label_base": args.label_base},
               "minikinetics": {"train_list": args.train, "val_list": args.val,
                                "classes_path": args.classes, "label_base": args.label_base}}[d]
    if args.path_template:
        sources["path_template"] = args.path_template
    if args.format and d in ("fcvid", "minikinetics"):
        sources["format"] = args.format
    report = convert(d, args.out, overwrite=args.overwrite, **sources)
    print(report.summary())
    return 0


def _int_list(text: str) -> list[int]:
    """argparse type: "224,112,56" -> [224, 112, 56]."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as "
                                         f"224,112,56, got {text!r}")
    return values


def _size_paths(text: str) -> dict[int, str]:
    """argparse type: "112=runs/s112/model.pt,56=runs/s56/model.pt" -> {112: ..., 56: ...}."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        size, sep, path = item.partition("=")
        if not sep or not size.strip().isdigit() or not path:
            raise argparse.ArgumentTypeError(f"expected SIZE=CHECKPOINT[,SIZE=CHECKPOINT...], "
                                             f"e.g. 112=runs/s112/model.pt; got {item!r}")
        out[int(size)] = path.strip()
    return out


def cmd_flops(args) -> int:
    from reskd.efficiency.sweep import flops_report, format_flops

    report = flops_report(model_name=args.model, checkpoint=args.checkpoint, size=args.size,
                          frames=args.frames, views=args.views, num_classes=args.num_classes)
    print(json.dumps(report, indent=2) if args.json else format_flops(report))
    return 0


def cmd_bench(args) -> int:
    from reskd.efficiency.benchmark import bench_report, format_bench

    rows = bench_report(model_name=args.model, checkpoint=args.checkpoint, sizes=args.sizes,
                        frames=args.frames, batch=args.batch,
                        modes=[m.strip() for m in args.modes.split(",") if m.strip()],
                        device=args.device, num_classes=args.num_classes, rounds=args.rounds,
                        min_seconds=args.min_seconds, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(rows, indent=2) if args.json else format_bench(rows))
    return 0


def cmd_sweep(args) -> int:
    from reskd.efficiency.sweep import sweep

    sweep(model_name=args.model, sizes=args.sizes, frames=args.frames, out=args.out,
          checkpoints=args.checkpoints, config=args.config, overrides=args.set or [],
          views=args.views, num_classes=args.num_classes, batch=args.batch, rounds=args.rounds,
          device=args.device)
    print((Path(args.out) / "sweep.md").read_text())
    return 0


def add_efficiency_commands(sub) -> None:
    """Inside build_parser(), after the `export` command."""
    q = sub.add_parser("flops", help="GMACs per view and per video as the paper counts them")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="architecture (e.g. resnet50, tsm_resnet50, swin3d_s)")
    g.add_argument("--checkpoint", help="a reskd model.pt (its architecture and classes)")
    q.add_argument("--size", type=int, default=None, help="input side (default: checkpoint's)")
    q.add_argument("--frames", type=int, default=None, help="frames per view (default: "
                   "checkpoint's)")
    q.add_argument("--views", type=int, default=1, help="test views per video (clips x crops)")
    q.add_argument("--num-classes", type=int, default=400, help="with --model (default 400)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_flops)

    q = sub.add_parser("bench", help="inference videos/s per size and mode (interleaved rounds)")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--model")
    g.add_argument("--checkpoint")
    q.add_argument("--sizes", type=_int_list, default=[224, 112, 56], help="e.g. 224,112,56")
    q.add_argument("--frames", type=int, required=True)
    q.add_argument("--batch", type=int, default=4)
    q.add_argument("--modes", default="fp32,channels_last,bf16,fold_bn,compile",
                   help="comma-separated from fp32, channels_last, bf16, fp16 (CUDA), compile, "
                        "fold_bn")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--num-classes", type=int, default=400)
    q.add_argument("--rounds", type=int, default=3)
    q.add_argument("--min-seconds", type=float, default=1.0, help="per case and round")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench)

    q = sub.add_parser("sweep", help="Table 4 for a model: GMACs, videos/s, accuracy per size")
    q.add_argument("--model", help="architecture (random init); with --checkpoints it must "
                   "name theirs")
    q.add_argument("--checkpoints", type=_size_paths, metavar="S=CKPT,...", default=None,
                   help="a checkpoint trained for each listed size (give --model, this, or both)")
    q.add_argument("--sizes", type=_int_list, default=[224, 144, 112, 96, 72, 56])
    q.add_argument("--frames", type=int, required=True)
    q.add_argument("--views", type=int, default=1)
    q.add_argument("--config", default=None, help="YAML used to test each checkpoint at its "
                   "size (data.size is set per size); without it accuracy stays blank")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override")
    q.add_argument("--out", required=True)
    q.add_argument("--batch", type=int, default=4)
    q.add_argument("--rounds", type=int, default=3)
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--num-classes", type=int, default=400)
    q.set_defaults(func=cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reskd", description="Cross-resolution knowledge "
                                "distillation (ResKD) for efficient video recognition.")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(name: str, help: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help)
        q.add_argument("config", help="YAML config (see configs/)")
        q.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a config value, e.g. --set optim.lr=0.02 (repeatable)")
        return q

    q = with_config("train", "train a model (a teacher, or a baseline at any resolution)")
    q.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    q.set_defaults(func=cmd_train)
    q = with_config("distill", "distil a low-resolution student from a teacher checkpoint")
    q.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    q.set_defaults(func=cmd_distill)
    q = with_config("test", "multi-view test of a checkpoint on data.val_list")
    q.add_argument("--checkpoint", required=True, help="model.pt or checkpoint.pt of a run")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.set_defaults(func=cmd_test)

    q = sub.add_parser("demo", help="the whole ResKD story on embedded synthetic video data")
    q.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    q.add_argument("--quick", action="store_true", help="tiny smoke run (< 3 min)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_demo)

    q = sub.add_parser("predict", help="top-k classes of video files from a checkpoint alone")
    q.add_argument("videos", nargs="+", metavar="VIDEO")
    q.add_argument("--checkpoint", required=True, help="model.pt (or checkpoint.pt) of a run")
    q.add_argument("--topk", type=int, default=5)
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    q.set_defaults(func=cmd_predict)

    q = sub.add_parser("export", help="the student alone: verified ONNX, or a model-only checkpoint")
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--format", default="onnx", choices=["onnx", "checkpoint"])
    q.add_argument("--out", default=None, help="default: CKPT with .onnx / <stem>.student.pt")
    q.add_argument("--batch", type=int, default=1, help="batch used for tracing and timing")
    q.add_argument("--opset", type=int, default=17)
    q.set_defaults(func=cmd_export)

    add_efficiency_commands(sub)
    add_study_commands(sub)

    viz = sub.add_parser("viz", help="Figure 4: ERF and attention, baseline vs ResKD")
    viz = viz.add_subparsers(dest="viz_command", required=True)
    q = viz.add_parser("erf", help="effective receptive fields averaged over the videos' test clips")
    q.add_argument("videos", nargs="+", metavar="VIDEO")
    q.add_argument("--baseline", required=True, help="baseline student checkpoint")
    q.add_argument("--reskd", required=True, help="ResKD student checkpoint")
    q.add_argument("--teacher", default=None, help="also show the teacher's ERF at its size")
    q.add_argument("--position", type=int, nargs=2, metavar=("ROW", "COL"), default=None,
                   help="feature-map pixel (default: centre, or bottom-right of the central 2x2)")
    q.add_argument("--out", default="erf.png")
    q.set_defaults(func=cmd_viz_erf)
    q = viz.add_parser("attention", help="activation-based attention overlays on one video")
    q.add_argument("video", metavar="VIDEO")
    q.add_argument("--baseline", required=True)
    q.add_argument("--reskd", required=True)
    q.add_argument("--max-frames", type=int, default=8)
    q.add_argument("--out", default="attention.png")
    q.set_defaults(func=cmd_viz_attention)

    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command",
                                                                        required=True)
    q = data.add_parser("synth", help="write an embedded video dataset (MP4 + lists)")
    q.add_argument("--out", required=True)
    q.add_argument("--kind", default="digits", choices=["digits", "textures"],
                   help="digits: MNIST digits over photos, the demo's (default 6000 + 1000 "
                        "clips); textures: which of 16 real photos a panning window shows "
                        "(default 1600 + 400 clips)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--num-train", type=int, default=0, help="clips (default: the kind's)")
    q.add_argument("--num-val", type=int, default=0, help="clips (default: the kind's)")
    q.set_defaults(func=cmd_data_synth)
    q = data.add_parser("extract", help="videos -> raw-frame folders + raw-frame list (resumable)")
    q.add_argument("list", help="video list (relative/path.mp4 label ...)")
    q.add_argument("--root", default=".", help="folder the list's paths are relative to")
    q.add_argument("--out", required=True, help="writes OUT/frames/... and OUT/<list name>")
    q.add_argument("--short-side", type=int, default=256, help="256 or 320, as mmaction2")
    q.add_argument("--fps", type=float, default=0.0, help="resample to this rate (0: all frames)")
    q.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    q.set_defaults(func=cmd_data_extract)
    q = data.add_parser("convert", help="official annotations -> train.txt/val.txt/classes.txt")
    q.add_argument("dataset", choices=["kinetics400", "activitynet", "sthv2", "fcvid", "minikinetics"])
    q.add_argument("--out", required=True, help="folder for the lists")
    q.add_argument("--csv", nargs="+", help="kinetics400: the official CSV file(s)")
    q.add_argument("--json", help="activitynet: activity_net.v1-3.min.json")
    q.add_argument("--labels", help="sthv2: something-something-v2-labels.json")
    q.add_argument("--train", help="sthv2: train JSON; fcvid/minikinetics: train split list")
    q.add_argument("--val", help="sthv2: validation JSON; fcvid/minikinetics: val/test split list")
    q.add_argument("--test", help="sthv2: test JSON (unlabelled, counted and skipped)")
    q.add_argument("--classes", help="fcvid/minikinetics: class-name file (one per line)")
    q.add_argument("--label-base", type=int, default=0, help="1 for 1-based labels in split lists")
    q.add_argument("--format", choices=["video", "rawframes"], help="fcvid/minikinetics list kind")
    q.add_argument("--path-template", help="file name template, e.g. 'v_{video_id}.mp4'")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_data_convert)
    q = data.add_parser("check", help="find videos that cannot be decoded or are too short; "
                        "exit status 1 when any is found")
    q.add_argument("list", help="annotation list to check")
    q.add_argument("--root", default=None, help="data root of the list's paths (default: the "
                   "list's folder)")
    q.add_argument("--format", default="video", choices=["video", "rawframes"])
    q.add_argument("--frames", type=int, default=1,
                   help="flag videos with fewer frames than this (default 1)")
    q.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)),
                   help="checking processes (default: one per core; 0: this process)")
    q.add_argument("--out", default="", help="write the unusable entries here, one "
                   "'path<TAB>reason' per line; use the file as data.exclude")
    q.set_defaults(func=cmd_data_check)
    return p


def main(argv: list[str] | None = None) -> int:
    import yaml

    from reskd.engine import distributed as dist_utils
    from reskd.engine.train import Interrupted, TrainingStopped

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TrainingStopped as e:  # NaN loss, failed checkpoint write, SIGINT / SIGTERM
        if dist_utils.is_main() or not isinstance(e, Interrupted):
            print(f"reskd: {e}", file=sys.stderr)
        return e.exit_code
    except yaml.YAMLError as e:
        print(f"reskd: error: cannot read the config: {e}\nConfigs are plain YAML read with "
              f"yaml.safe_load: tags that build Python objects (!!python/...) are refused.",
              file=sys.stderr)
        return 2
    except (ConfigError, OSError, ValueError, TypeError, ImportError, RuntimeError) as e:
        if os.environ.get("RESKD_DEBUG"):
            raise
        print(f"reskd: error: {e}  (set RESKD_DEBUG=1 for a traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reskd: interrupted", file=sys.stderr)
        return 130
    finally:
        from reskd.engine import distributed as dist_utils

        dist_utils.shutdown()


if __name__ == "__main__":
    sys.exit(main())

"""Typed run configuration: small dataclasses, strict YAML loading, `--set a.b=value` overrides.

Every key of a YAML file must be a field here; an unknown key is an error that suggests the
closest valid one. The resolved config is saved beside every run and inside every checkpoint.
Library functions never take a whole `Config`: the CLI unpacks what each one needs.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SHRINK_FILTERS = ("bilinear", "antialias")  # how a crop is shrunk to a model's size
CROPS = ("multiscale", "random_resized")  # how the training crop is drawn
CROP_POSITIONS = ("fixed13", "uniform")  # where a multi-scale crop may sit
DROPOUT_AT = ("frame", "clip")  # where a TSN/TSM head drops out (reskd.models.tsn)
# The authors' TSN/TSM fine-tuning choices (their released mmaction2 configs), made for
# ImageNet-pretrained ResNets trained 100-200 epochs. The global defaults do not carry them
# (bench/bench_defaults.py measures both on from-scratch runs); the paper's TSN/TSM configs
# write each of them (tests/test_configs.py).
AUTHORS_TSN_RECIPE = {"model.fc_init_std": 0.001, "model.dropout_at": "clip",
                      "optim.bias_lr_mult": 2.0, "data.crop_positions": "fixed13"}
# distill.pixel_logit_reduction's old names: "released" divided by K as "mean" does; "paper"
# summed over classes, read from the paper's text but 400x the strength its alpha was set for
# The allowed values of the choice keys, each list's one home (`validate` and the library
# modules that take the same values import them from here).
FORMATS = ("video", "rawframes")  # data.format: annotation-list kinds (reskd.data.formats)
MULTI_LABEL_LOSSES = ("sample", "bce")  # data.multi_label_loss
TEST_AVERAGES = ("prob", "logit")  # data.test_average: how test views are averaged
BLOCKS = ("basic", "bottleneck")  # model.block (the custom "resnet" arch)
STEMS = ("imagenet", "small")  # model.stem (the custom "resnet" arch)
TEMPORAL = ("none", "shift")  # model.temporal: TSN or TSM (reskd.models)
OPTIMIZERS = ("sgd", "adamw")  # optim.optimizer (reskd.engine)
SCHEDULES = ("cosine", "step", "onecycle")  # optim.schedule (reskd.engine)
PIXEL_LOGIT_REDUCTIONS = ("mean", "sum")  # distill.pixel_logit_reduction (reskd.distill)
TEACHER_BN = ("train", "eval")  # distill.teacher_bn: the frozen teacher's BatchNorm mode
CONNECTORS = ("none", "conv")  # distill.connector: how a student map meets another width
SIZE_BN = ("private", "shared")  # distill.size_bn: an any-resolution student's BatchNorms
PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # runtime.precision (reskd.engine.runtime)
DEVICES = ("auto", "cpu", "cuda")  # runtime.device
RENAMED_REDUCTIONS = {"released": "mean", "paper": "sum"}


class ConfigError(ValueError):
    """A config value or key that cannot be used; the message says how to fix it."""


@dataclass
class DataConfig:
    root: str = ""  # data root; list paths are relative to it
    train_list: str = ""
    val_list: str = ""
    classes: str = ""  # class-name file, one name per line, line i = label i
    format: str = "video"  # "video" (path label ...) or "rawframes" (dir total_frames label ...)
    frame_template: str = "img_{:05d}.jpg"  # raw-frame file names, 1-based index
    num_segments: int = 8  # TSN segments per clip (frames per clip)
    # > 0: dense sampling of clip_len frames (SlowOnly 8, Swin 32) instead of segments
    clip_len: int = 0
    frame_interval: int = 1  # dense sampling: frames between sampled frames
    test_clips: int = 1  # temporal views at test time
    test_crops: int = 1  # 1 = centre crop, 3 = three crops along the long side
    size: int = 224  # input size of the model being trained or tested
    # Views are cut as one crop of crop_size and shrunk to each model's size
    # (reskd.data.transforms).
    # 0: the largest model's size (the teacher's when distilling, else data.size). A CE baseline
    # compared with a ResKD student takes the student's crop_size (its teacher's size).
    crop_size: int = 0
    # crop -> model size: "bilinear" (no antialias, authors) or "antialias"
    shrink: str = "bilinear"
    # > 0: frames keep only downsample_to x downsample_to pixels of information: shrunk and
    # back up to the crop size (Figure 1a's up-sampled frames; `reskd study resolution`)
    downsample_to: int = 0
    short_side_ratio: float = 256 / 224  # short side = round(crop size * ratio) before cropping
    # the test short side as a ratio of the crop size; 0: short_side_ratio (Swin tests at 1.0)
    test_short_side_ratio: float = 0.0
    crop: str = "multiscale"  # training crop: "multiscale" (TSN, crop_scales) or "random_resized"
    crop_scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)  # multiscale: sides x short side
    # multiscale: the crop's offset, anywhere ("uniform", the default) or one of 13 fixed
    # positions ("fixed13", the authors' mmaction2 num_fixed_crops=13; the paper's configs)
    crop_positions: str = "uniform"
    crop_area: tuple[float, float] = (0.08, 1.0)  # random_resized: fraction of the frame's area
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)  # random_resized: width / height range
    flip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    multi_label: bool = False
    multi_label_loss: str = "sample"  # "sample": one label per sample + softmax CE (authors); "bce"
    test_average: str = "prob"  # average test views' softmax probabilities ("prob") or logits
    batch_size: int = 8
    workers: int = -1  # -1: sized to the machine
    cache_decoded: bool = False  # keep decoded training videos in memory (small datasets)
    skip_missing: bool = False  # leave out list entries whose files do not exist (else: error)
    # file of paths to leave out (e.g. `reskd data check --out`); relative to root
    exclude: str = ""
    allow_outside_root: bool = False  # allow list paths that are absolute or climb out with ../


@dataclass
class ModelConfig:
    arch: str = "resnet50"  # resnet18/34/50/101/152 or "resnet" (custom, see below)
    num_classes: int = 0  # 0: the number of lines in data.classes
    # "" | "imagenet" (IMAGENET1K_V1, the paper's) | "imagenet_v2" | weights | path
    pretrained: str = ""
    # Custom ResNet family (arch "resnet"): small CPU models and the paper's R50-S strides.
    block: str = "basic"  # "basic" or "bottleneck"
    layers: tuple[int, ...] = (1, 1, 1, 1)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem: str = "imagenet"  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "small": 3x3/2 conv only
    strides: tuple[int, ...] = (1, 2, 2, 2)  # per stage; R50-S is (1, 1, 2, 2)
    # "shift": any TSN-over-ResNet arch (resnet18..152, resnet50s, resnet) becomes a TSM
    temporal: str = "none"  # "none" | "shift"
    dropout: float = 0.5
    # TSN/TSM only: "frame" (a dropout mask per frame, then the classifier, then the average)
    # or "clip" (one mask on the frame-averaged feature: the authors' and mmaction2's TSN head)
    dropout_at: str = "frame"
    # the classifier's init std (normal, zero bias): 0.01 is mmaction2's TSNHead/I3DHead
    # default; the authors' TSN/TSM head uses 0.001 (the paper's configs set it)
    fc_init_std: float = 0.01
    # stochastic depth rate of Video Swin / MViT (rising over the blocks to it); -1: the arch's
    # own (torchvision: 0.1 for every Swin3D, as the authors' Swin-S and Swin-B; 0.2 for MViT)
    drop_path: float = -1.0


@dataclass
class OptimConfig:
    optimizer: str = "sgd"  # "sgd" (Nesterov) or "adamw"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine", "step" (x gamma at each milestone) or "onecycle"
    milestones: tuple[int, ...] = ()  # "step": epochs where lr is x gamma (SlowOnly: [90, 130])
    gamma: float = 0.1  # "step": the decay factor at each milestone
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.0  # warm-up starts at this x lr (mmcv: 0.1); onecycle: lr/25
    epochs: int = 50
    grad_clip: float = 20.0  # max grad norm; 0 disables
    # Parameter groups. Biases of convs and linear layers get lr x bias_lr_mult and no weight
    # decay; 1.0 is the default, 2.0 the authors' TSN/TSM optimizer policy (norm biases stay
    # 1x; the paper's TSN/TSM configs set it). Video Swin: 1.0.
    bias_lr_mult: float = 1.0
    backbone_lr_mult: float = 1.0  # lr x this for parameters under model.backbone (Video Swin: 0.1)
    # No weight decay for parameters whose name contains one of these (besides every 1-D one):
    # Swin's bias tables and position embeddings, torchvision MViT's pos_encoding.
    no_decay_names: tuple[str, ...] = ("relative_position_bias_table", "pos_embed", "pos_encoding")
    accumulate: int = 1  # loader batches per optimizer step (official Swin-B: 8); lr is for all


@dataclass
class DistillConfig:
    teacher: str = ""  # checkpoint made by `reskd train`
    teacher_size: int = 0  # 0: the size stored in the teacher checkpoint
    # KD variants (paper Table 5, Appendix A.1); each term is used when its weight is > 0.
    alpha: float = 100.0  # pixel-level feature KD: MSE(f_t, Phi(f_s)) (the paper's default)
    clip_kd: float = 0.0  # clip-level logit KD (KL on clip logits)
    frame_kd: float = 0.0  # frame-level logit KD (KL on per-frame logits)
    pixel_logit_kd: float = 0.0  # pixel-level logit KD (paper's Swin-B -> Swin-S: 500)
    temperature: float = 4.0  # for the logit KD terms (paper: 4; authors' released Swin config: 2)
    # "mean": KL averaged over positions and classes (KLDivLoss reduction='mean', the authors'
    # code; the paper's 500 and T = 4 are in this convention); "sum": summed over classes, K x
    pixel_logit_reduction: str = "mean"
    teacher_bn: str = "train"  # "train" (batch statistics, as the authors) or "eval"
    # Feature KD between maps of different channels or time steps (another family, a wider
    # teacher): "conv" learns a 1x1 conv from the student's channels to the teacher's (time
    # resampled linearly when T' differs), trained with the student and never saved with it;
    # "none": the maps must match (an error says so otherwise)
    connector: str = "none"
    # The any-resolution student (`reskd study anyres`): with two or more sizes, one student
    # is trained on the same crop at every size, each distilled from the one teacher by the
    # terms above; data.size must be one of them (what the checkpoint tests at by default).
    # (): one student at data.size, as the paper.
    student_sizes: tuple[int, ...] = ()
    sizes_per_step: int = 0  # 0: every size each step; k: data.size plus k - 1 others drawn
    size_bn: str = "private"  # "private": one BatchNorm per size; "shared": one for all


@dataclass
class RuntimeConfig:
    out: str = "runs/default"
    seed: int = 0
    device: str = "auto"  # "auto", "cpu", "cuda"
    precision: str = "auto"  # "bf16", "fp16", "fp32"; "auto": the faster, timed (pick_precision)
    channels_last: bool = True
    progress: bool = True
    val_every: int = 0  # validate every N epochs (0: only at the end)
    sync_bn: bool = False  # SyncBatchNorm for the student under DDP
    keep_checkpoints: int = 2  # epoch checkpoints kept besides checkpoint.pt (0: none)
    tensorboard: bool = True  # curves in OUT/tensorboard when the package is installed
    log_every: int = 10  # steps between per-step curve points (and device syncs)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


# ---------------------------------------------------------------------------------------------
# Loading, overriding, saving


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Converts a YAML value to the field's type, or raises a ConfigError naming the key."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(annotation)
        item = args[0]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, item, where) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if value is None:  # `--set data.val_list=` or an empty YAML value
            return ""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported field type {annotation!r}")  # pragma: no cover


def _unknown_key(key: str, valid: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{where}{close[0]}'?" if close else ""
    return ConfigError(f"unknown config key '{where}{key}'.{hint} Valid keys: {', '.join(valid)}")


def _update(obj: Any, values: dict, where: str = "") -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{where.rstrip('.') or 'config'}: expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        if key not in fields:
            raise _unknown_key(str(key), list(fields), where)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _update(current, value, f"{where}{key}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], f"{where}{key}"))


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. optim.lr=0.1), got {text!r}")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Loads a YAML config (or the defaults) and applies `a.b=value` overrides, strictly."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        with open(path) as f:
            values = yaml.safe_load(f) or {}
        _update(cfg, values)
    for text in overrides:
        keys, value = parse_override(text)
        nested: Any = value
        for k in reversed(keys):
            nested = {k: nested}
        _update(cfg, nested)
    validate(cfg)
    return cfg


def _check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")


def validate(cfg: Config) -> None:
    """Range and choice checks that types alone cannot express."""
    d, m, o, k, r = cfg.data, cfg.model, cfg.optim, cfg.distill, cfg.runtime
    _check_choice(d.format, FORMATS, "data.format")
    _check_choice(d.multi_label_loss, MULTI_LABEL_LOSSES, "data.multi_label_loss")
    _check_choice(d.test_average, TEST_AVERAGES, "data.test_average")
    _check_choice(d.shrink, SHRINK_FILTERS, "data.shrink")
    _check_choice(m.block, BLOCKS, "model.block")
    _check_choice(m.stem, STEMS, "model.stem")
    _check_choice(m.temporal, TEMPORAL, "model.temporal")
    _check_choice(m.dropout_at, DROPOUT_AT, "model.dropout_at")
    if m.fc_init_std <= 0:
        raise ConfigError(f"model.fc_init_std: must be positive (0.01: mmaction2's heads; 0.001: "
                          f"the authors' TSN/TSM), got {m.fc_init_std}")
    _check_choice(o.optimizer, OPTIMIZERS, "optim.optimizer")
    _check_choice(o.schedule, SCHEDULES, "optim.schedule")
    _check_choice(k.teacher_bn, TEACHER_BN, "distill.teacher_bn")
    _check_choice(k.connector, CONNECTORS, "distill.connector")
    _check_choice(r.precision, PRECISIONS, "runtime.precision")
    _check_choice(r.device, DEVICES, "runtime.device")
    _check_choice(str(d.test_crops), ("1", "3"), "data.test_crops")
    for key, value in [("data.num_segments", d.num_segments), ("data.size", d.size),
                       ("data.batch_size", d.batch_size), ("data.test_clips", d.test_clips),
                       ("optim.epochs", o.epochs)]:
        if value < 1:
            raise ConfigError(f"{key}: must be at least 1, got {value}")
    if r.log_every < 1:
        raise ConfigError(f"runtime.log_every: must be >= 1 (steps between curve points), "
                          f"got {r.log_every}")
    if r.keep_checkpoints < 0:
        raise ConfigError(f"runtime.keep_checkpoints: must be >= 0, got {r.keep_checkpoints}")
    if o.lr <= 0:
        raise ConfigError(f"optim.lr: must be positive, got {o.lr}")
    _check_optim(o)
    if not d.crop_scales or any(not 0 < s <= 1 for s in d.crop_scales):
        raise ConfigError(f"data.crop_scales: each scale must be in (0, 1], got {d.crop_scales}")
    if d.crop_size and d.crop_size < d.size:
        raise ConfigError(f"data.crop_size: must be 0 (the model's size) or at least data.size="
                          f"{d.size}: views are shrunk from the crop, never enlarged; got "
                          f"{d.crop_size}")
    if d.crop_size < 0:
        raise ConfigError(f"data.crop_size: must be >= 0, got {d.crop_size}")
    top = max(d.size, d.crop_size)
    if d.downsample_to < 0 or d.downsample_to > top:
        raise ConfigError(f"data.downsample_to: must be 0 (off) or between 1 and the crop size "
                          f"{top} (data.crop_size, else data.size), got {d.downsample_to}")
    if d.short_side_ratio < 1:
        raise ConfigError(f"data.short_side_ratio: must be >= 1, got {d.short_side_ratio}")
    if d.test_short_side_ratio != 0 and d.test_short_side_ratio < 1:
        raise ConfigError(f"data.test_short_side_ratio: must be 0 (data.short_side_ratio) or >= 1 "
                          f"(a test crop of the crop size must fit), got {d.test_short_side_ratio}")
    _check_choice(d.crop, CROPS, "data.crop")
    _check_choice(d.crop_positions, CROP_POSITIONS, "data.crop_positions")
    if not 0 < d.crop_area[0] <= d.crop_area[1] <= 1:
        raise ConfigError(f"data.crop_area: expected [low, high] with 0 < low <= high <= 1 "
                          f"(fractions of the frame's area; torchvision's [0.08, 1.0]), got "
                          f"{list(d.crop_area)}")
    if not 0 < d.crop_aspect[0] <= d.crop_aspect[1]:
        raise ConfigError(f"data.crop_aspect: expected [low, high] with 0 < low <= high (width / "
                          f"height; torchvision's [0.75, 1.333]), got {list(d.crop_aspect)}")
    if len(m.layers) != len(m.widths) or len(m.layers) != len(m.strides):
        raise ConfigError(
            f"model.layers, model.widths and model.strides need one entry per stage; got "
            f"{len(m.layers)}, {len(m.widths)} and {len(m.strides)}")
    for key in ("alpha", "clip_kd", "frame_kd", "pixel_logit_kd"):
        if getattr(k, key) < 0:
            raise ConfigError(f"distill.{key}: must be >= 0, got {getattr(k, key)}")
    if k.temperature <= 0:
        raise ConfigError(f"distill.temperature: must be positive, got {k.temperature}")
    if k.pixel_logit_reduction in RENAMED_REDUCTIONS:
        raise ConfigError(f"distill.pixel_logit_reduction: {k.pixel_logit_reduction!r} was "
                          f"renamed; use {RENAMED_REDUCTIONS[k.pixel_logit_reduction]!r}")
    _check_choice(k.pixel_logit_reduction, PIXEL_LOGIT_REDUCTIONS, "distill.pixel_logit_reduction")
    _check_choice(k.size_bn, SIZE_BN, "distill.size_bn")
    _check_student_sizes(k.student_sizes, k.sizes_per_step, d.size)


def _check_optim(o: OptimConfig) -> None:
    """The schedule and parameter-group keys (optim.*)."""
    if o.schedule == "step":
        m = list(o.milestones)
        if not m or m != sorted(set(m)) or m[0] < 1 or m[-1] >= o.epochs:
            raise ConfigError(f"optim.milestones: optim.schedule=step needs increasing epochs "
                              f"between 1 and optim.epochs - 1 = {o.epochs - 1} (e.g. [90, 130] "
                              f"for 150 epochs), got {m}")
        if not 0 < o.gamma <= 1:
            raise ConfigError(f"optim.gamma: must be in (0, 1] (0.1 divides lr by 10), got "
                              f"{o.gamma}")
    elif o.milestones:
        raise ConfigError(f"optim.milestones={list(o.milestones)} is only used by "
                          f"optim.schedule=step (got {o.schedule!r}); set optim.milestones=[] or "
                          f"optim.schedule=step")
    if o.warmup_epochs < 0:
        raise ConfigError(f"optim.warmup_epochs: must be >= 0, got {o.warmup_epochs}")
    if not 0 <= o.warmup_start_factor <= 1:
        raise ConfigError(f"optim.warmup_start_factor: must be in [0, 1] (mmcv: 0.1), got "
                          f"{o.warmup_start_factor}")
    if o.schedule == "onecycle" and o.warmup_start_factor:
        raise ConfigError(f"optim.warmup_start_factor={o.warmup_start_factor} does not apply to "
                          f"optim.schedule=onecycle (it warms up from lr/25, torch's OneCycleLR); "
                          f"set it to 0 or use optim.schedule=cosine")
    for key in ("bias_lr_mult", "backbone_lr_mult"):
        if getattr(o, key) <= 0:
            raise ConfigError(f"optim.{key}: must be positive (1.0: the base lr), got "
                              f"{getattr(o, key)}")
    if any(not name for name in o.no_decay_names):
        raise ConfigError(f"optim.no_decay_names: an empty name matches every parameter; got "
                          f"{list(o.no_decay_names)}")
    if o.accumulate < 1:
        raise ConfigError(f"optim.accumulate: must be >= 1 (loader batches per optimizer step; "
                          f"1: no accumulation), got {o.accumulate}")


def _check_student_sizes(sizes: tuple[int, ...], per_step: int, size: int) -> None:
    if not sizes:
        if per_step:
            raise ConfigError(f"distill.sizes_per_step={per_step} needs distill.student_sizes "
                              f"(e.g. [16, 24, 32]); set it to 0 for one student size")
        return
    if len(sizes) < 2 or len(set(sizes)) != len(sizes) or min(sizes) < 1:
        raise ConfigError(f"distill.student_sizes: give two or more distinct positive sizes "
                          f"(e.g. [16, 24, 32]), or [] for one student at data.size; got "
                          f"{list(sizes)}")
    if size not in sizes:
        raise ConfigError(f"data.size={size} must be one of distill.student_sizes="
                          f"{list(sizes)}: it is the size the checkpoint tests at by default; "
                          f"set data.size={max(sizes)}")
    if per_step and not 2 <= per_step <= len(sizes):
        raise ConfigError(f"distill.sizes_per_step: must be 0 (all {len(sizes)} sizes) or "
                          f"between 2 and {len(sizes)} (data.size and at least one other), got "
                          f"{per_step}")


def to_dict(cfg: Config) -> dict:
    """Plain dict (tuples as lists) for YAML, JSON and checkpoints."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(dataclasses.asdict(cfg))


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


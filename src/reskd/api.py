"""The public Python API's functions (`reskd.__all__` lists every public name): models in and
out, their cost, and the video reading a dataset of one's own needs.

A model reskd builds or loads carries what it needs to be used correctly: `build_options`
(the `build_model` keywords that rebuild it, what `save_student` stores) and, when loaded,
`preprocessing` (input size, mean/std, frames, class names, recorded view recipe).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from reskd.checkpoint import checkpoint_context, save_checkpoint
from reskd.config import Config
from reskd.data.decoders import decode_video
from reskd.data.transforms import Views
from reskd.efficiency.flops import gmacs_per_video
from reskd.models import build_model as _build_model
from reskd.models import load_model_checkpoint
from reskd.models.hf import is_hf_source
from reskd.models.imports import load_model_source
from reskd.models.weights import file_kind, is_torchvision_name, read_weights_file, split_half


@dataclass(frozen=True)
class Preprocessing:
    """How a loaded model's input must be made: `size` (its input side in px; None when the
    source does not say, as mmaction2 checkpoints), `mean` / `std` (per RGB channel, in
    [0, 1] units), `frames` (frames per clip it needs; None: any), `classes` (names, or None)
    and `views` (a reskd checkpoint's recorded view recipe, `Views.from_checkpoint`)."""
    size: int | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    frames: int | None
    classes: tuple[str, ...] | None
    views: Views | None = None


def build_model(arch: str, *, num_classes: int, **options) -> nn.Module:
    """A video model with reskd's uniform API: `model(x)` -> logits (N, K) for clips
    x (N, T, C, H, W) normalised float; `model.features(x)` -> the pre-pool map
    (N, T', C', h, w) feature KD compares; `model.head(map)` -> logits. `options` are
    `model.*`'s (see the config reference): e.g. `pretrained="imagenet"`, `temporal="shift"`
    with `num_segments=8` (a TSM), `widths`, `stem`, `strides` for the custom "resnet" arch.
    The model keeps its options as `build_options` (what `save_student` stores)."""
    model = _build_model(arch, num_classes=num_classes, **options)
    model.build_options = {"arch": arch, "num_classes": num_classes,
                           **{k: list(v) if isinstance(v, tuple) else v
                              for k, v in options.items() if k != "pretrained"}}
    return model


def load_model(source: str | Path, *, size: int | None = None, frames: int = 8,
               half: str = "teacher") -> nn.Module:
    """A model on CPU in eval mode from any source `distill.teacher` takes: a reskd checkpoint
    (`model.pt`; `size` picks one size of an any-resolution student), a torchvision weights
    name (`torchvision:ENUM.MEMBER`) or file, an mmaction2 checkpoint (`half` of an
    authors' ResKD one), or a Hugging Face video classifier (a `save_pretrained` folder or
    `hf:ORG/NAME` from the HF cache, `reskd.models.hf`). TSM models from outside reskd are
    built for `frames` frames. The model carries its `preprocessing` (`Preprocessing`) and
    `build_options`. Loading never runs code from the file (`torch.load(weights_only=True)`)."""
    source = str(source)
    views = None
    if not is_torchvision_name(source) and not is_hf_source(source) and file_kind(
            read_weights_file(split_half(source, half)[0])) == "reskd":
        model, ctx = load_model_checkpoint(source, size)
        views = Views.from_checkpoint(ctx)
    else:
        if size is not None:
            raise ValueError(f"load_model(size={size}) picks a size of a reskd any-resolution "
                             f"student; {source} is not a reskd checkpoint: leave size out")
        model, ctx = load_model_source(source, half=half, num_segments=frames)
    classes = ctx.get("classes")
    model.preprocessing = Preprocessing(
        size=ctx.get("size"), mean=tuple(ctx["mean"]), std=tuple(ctx["std"]),
        frames=ctx.get("frames"), classes=tuple(classes) if classes else None, views=views)
    model.build_options = dict(ctx["model_kwargs"])
    return model.eval()


def save_student(student: nn.Module, path: str | Path, *, views: Views,
                 classes: Sequence[str] | int, frames: int | None = None) -> Path:
    """Writes `student` (built by `build_model` or loaded by `load_model`; a DDP wrapper is
    unwrapped) as a reskd `model.pt` at `path`: its weights, `build_options`, class names
    (`classes`: names, or a count for "0".."K-1"), the view recipe it was trained with
    (`views`: its size is `views.student_size`, its test crop `views`' crop) and `frames` per
    clip (default: its `num_segments` option, 8). `reskd test`, `predict`, `export` and
    `flops` take the file as their own runs' checkpoints, and `load_model` reloads it.
    Written atomically. Returns the path."""
    core = student.module if hasattr(student, "module") else student
    options = getattr(core, "build_options", None)
    if options is None:
        raise TypeError(f"save_student needs a model made by reskd.build_model or "
                        f"reskd.load_model (it records how to rebuild it), got "
                        f"{type(core).__name__}")
    if not isinstance(views, Views):
        raise TypeError(f"save_student(views=...) takes the reskd.Views the student was trained "
                        f"with, got {type(views).__name__}")
    names = [str(i) for i in range(classes)] if isinstance(classes, int) else list(classes)
    if len(names) != options["num_classes"]:
        raise ValueError(f"save_student: {len(names)} classes given, the model has "
                         f"{options['num_classes']} outputs")
    frames = frames or options.get("num_segments", 8)
    cfg = _config_for(options, views, frames)
    kwargs = {**options, "num_segments": frames}
    cost = gmacs(core, size=views.student_size, frames=frames)
    context = checkpoint_context(cfg, names, kwargs, cost, views.record())
    save_checkpoint({**context, "kind": "model", "model": core.state_dict()}, path)
    return Path(path)


def _config_for(options: dict, views: Views, frames: int) -> Config:
    """The run config a student saved from one's own loop would have had: its model options,
    size, frames and view recipe (what a reskd checkpoint records)."""
    cfg = Config()
    d, m = cfg.data, cfg.model
    d.size, d.num_segments, d.crop_size = views.student_size, frames, views.crop_size
    d.shrink, d.short_side_ratio = views.shrink, views.short_side_ratio
    d.test_short_side_ratio, d.mean, d.std = views.test_short_side_ratio, views.mean, views.std
    d.downsample_to = views.downsample_to
    for key, value in options.items():
        if hasattr(m, key) and key != "num_classes":
            setattr(m, key, tuple(value) if isinstance(value, list) else value)
    m.num_classes = options["num_classes"]
    return cfg


def gmacs(model: nn.Module, *, size: int, frames: int, views: int = 1) -> float:
    """Multiply-accumulates per video, in G, as the paper counts them (fvcore's convention:
    one MAC per multiply-add of convs and linear layers; `reskd.efficiency.flops`): one clip
    of `frames` frames at `size` x `size`, times `views` test views."""
    return gmacs_per_video(model, frames, size, views)


def read_video(path: str | Path,
               indices: Sequence[int] | Callable[[int], np.ndarray] | None = None, *,
               short_side: int = 0) -> np.ndarray:
    """Decoded frames (T, H, W, C) uint8 RGB of a video file (PyAV): `indices` are frame
    numbers, or a function of the video's frame count that returns them (e.g.
    `lambda n: reskd.Sampling(num_segments=8).train_indices(n, rng)`), or None for every
    frame. `short_side` > 0 shrinks larger frames to that short side while decoding. A file
    that cannot be decoded raises `reskd.data.decoders.DecodeError` naming it."""
    if indices is None:
        pick = np.arange
    elif callable(indices):
        pick = indices
    else:
        wanted = np.asarray(indices, dtype=np.int64)
        pick = lambda _: wanted  # noqa: E731
    frames, _ = decode_video(path, pick, short_side=short_side)
    return frames


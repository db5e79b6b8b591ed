"""Clip transforms: pure functions on (T, C, H, W) tensors, and the train/test view recipes.

A run's views are made in two steps, the same in training and in testing:

1. **The crop**, at `crop_size` (224 in the paper). Training (paper Sec. 4.2, as the authors'
   mmaction2 TSN recipe): resize the short side to round(crop_size * short_side_ratio) (256 for
   224), take a random multi-scale crop (side lengths from `scales` x short side, width and
   height scales at most one step apart, at one of 13 fixed offsets or anywhere) or a random
   resized crop (SlowOnly and Video Swin: random area and aspect ratio), resize it to
   crop_size, flip horizontally with probability 1/2. Testing: short side round(crop_size *
   test_short_side_ratio) (0: short_side_ratio), then a centre crop (or three crops along the
   long side).
2. **The shrink** of that crop to each model's size with `shrink`: "bilinear" (align_corners
   False, no antialias, as the authors' code makes its student input inside the model; for an
   exact 2x factor this is 2x2 average pooling) or "antialias" (bilinear with antialiasing).
   A view whose size is the crop size is the crop itself.

A distilled student's crop is its teacher's: teacher and student views share crop and flip, and
the student is tested on the teacher-size test crop shrunk exactly as in training. A model
trained alone has crop_size = its own size unless told otherwise (then there is no shrink); a
CE baseline meant to be compared with a ResKD student takes the student's crop_size and shrink,
so that the two differ only in the KD.

All views are normalised with the dataset mean/std before the shrink; bilinear resizing
commutes with that per-channel affine map, so this equals normalising the shrunk view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reskd.checkpoint import load_checkpoint, recorded_views
from reskd.config import (
    CROP_POSITIONS,
    CROPS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SHRINK_FILTERS,
    DataConfig,
)

Box = tuple[int, int, int, int]  # top, left, height, width
_DATA = DataConfig()  # every default below is the config's (one home: reskd.config)


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, C) uint8 -> (T, C, H, W) float32 in [0, 255]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()


def resize(x: torch.Tensor, size: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of (T, C, H, W) to (T, C, *size)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)


def resize_short_side(x: torch.Tensor, short: int) -> torch.Tensor:
    """(T, C, H, W) -> (T, C, H', W') with min(H', W') = short, aspect ratio kept."""
    h, w = x.shape[-2:]
    if h <= w:
        new = (short, max(1, round(w * short / h)))
    else:
        new = (max(1, round(h * short / w)), short)
    return resize(x, new)


def shrink(x: torch.Tensor, size: int, filter: str) -> torch.Tensor:
    """(T, C, H, W) -> (T, C, size, size) with one of SHRINK_FILTERS; a no-op at the same size."""
    if filter not in SHRINK_FILTERS:
        raise ValueError(f"shrink filter must be one of {', '.join(SHRINK_FILTERS)}, got "
                         f"{filter!r}")
    return resize(x, (size, size), antialias=filter == "antialias")


def degrade(x: torch.Tensor, resolution: int, filter: str = "antialias") -> torch.Tensor:
    """(T, C, H, W) -> same shape, with only `resolution` x `resolution` pixels of information:
    shrunk with `filter` (as the native low-resolution view) and bilinearly back up. Figure 1a's
    "up-sampled frames" separate information loss from scale; 0 leaves `x` as it is."""
    if resolution <= 0 or resolution >= min(x.shape[-2:]):
        return x
    return resize(shrink(x, resolution, filter), tuple(x.shape[-2:]), antialias=False)


def crop(x: torch.Tensor, box: Box) -> torch.Tensor:
    """(T, C, H, W) -> (T, C, box height, box width)."""
    top, left, h, w = box
    return x[..., top:top + h, left:left + w]


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(..., C, H, W) in [0, 255] -> zero-mean, unit-std per channel (mean/std given in [0, 1])."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1) * 255
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1) * 255
    return (x - m) / s


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float pixels in [0, 255] -> uint8, rounded (exact for the integers of undecoded-resized
    frames)."""
    return x.round().clamp_(0, 255).to(torch.uint8)


def multiscale_crop_sizes(height: int, width: int,
                          scales: tuple[float, ...]) -> list[tuple[int, int]]:
    """The (crop height, crop width) pairs a multi-scale crop draws from, as mmaction2's
    `MultiScaleCrop(max_wh_scale_gap=1)`: sides int(scale x short side), a side within 3 px of
    the short side snapped to it (mmaction2 snaps to its `input_size`, which the authors set to
    the short side), width and height scales at most one step apart; clamped to the frame."""
    base = min(height, width)
    sides = [base if abs(int(base * s) - base) < 3 else int(base * s) for s in scales]
    return [(max(1, min(h, height)), max(1, min(w, width)))
            for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= 1]


def fixed_crop_offsets(height: int, width: int, crop_h: int, crop_w: int) -> list[tuple[int, int]]:
    """The 13 (top, left) offsets of mmaction2's `MultiScaleCrop(num_fixed_crops=13)`, in its
    order: with steps (width - crop_w) // 4 and (height - crop_h) // 4 (rounded down, so the
    right and bottom crops may stop short of the edge), the 4 corners and the centre, then the
    centres of the 4 sides and the 4 quarter points."""
    w_step, h_step = (width - crop_w) // 4, (height - crop_h) // 4
    steps = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2),  # (x, y) in steps, as mmaction2 lists them
             (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    return [(y * h_step, x * w_step) for x, y in steps]


def multiscale_crop_box(height: int, width: int, scales: tuple[float, ...],
                        rng: np.random.Generator, positions: str = _DATA.crop_positions) -> Box:
    """A random multi-scale crop (TSN): a size from `multiscale_crop_sizes`, at one of the 13
    `fixed_crop_offsets` ("fixed13", the authors') or at any offset ("uniform")."""
    if positions not in CROP_POSITIONS:
        raise ValueError(f"crop positions must be one of {', '.join(CROP_POSITIONS)}, got "
                         f"{positions!r}")
    pairs = multiscale_crop_sizes(height, width, scales)
    ch, cw = pairs[int(rng.integers(len(pairs)))]
    if positions == "fixed13":
        offsets = fixed_crop_offsets(height, width, ch, cw)
        top, left = offsets[int(rng.integers(len(offsets)))]
    else:
        top = int(rng.integers(0, height - ch + 1))
        left = int(rng.integers(0, width - cw + 1))
    return top, left, ch, cw


def random_resized_crop_box(height: int, width: int, area: tuple[float, float],
                            aspect: tuple[float, float], rng: np.random.Generator) -> Box:
    """A random crop of `area` x the frame's area and width / height in `aspect` (log-uniform),
    at a uniform offset: torchvision's `RandomResizedCrop.get_params` (10 tries, then the whole
    frame cut to the nearest aspect in range, centred), drawn from `rng`. mmaction2's
    `RandomResizedCrop` differs only in its fallback (a centred square of the short side)."""
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    for _ in range(10):
        target = height * width * rng.uniform(area[0], area[1])
        ratio = math.exp(rng.uniform(log_aspect[0], log_aspect[1]))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    if width / height < aspect[0]:
        w, h = width, round(width / aspect[0])
    elif width / height > aspect[1]:
        w, h = round(height * aspect[1]), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def centre_box(height: int, width: int, size: int) -> Box:
    size_h, size_w = min(size, height), min(size, width)
    return (height - size_h) // 2, (width - size_w) // 2, size_h, size_w


def three_crop_boxes(height: int, width: int, size: int) -> list[Box]:
    """Three `size` crops spread along the long side (start, centre, end), as mmaction2's
    ThreeCrop."""
    size_h, size_w = min(size, height), min(size, width)
    if width >= height:
        lefts = [0, (width - size_w) // 2, width - size_w]
        return [((height - size_h) // 2, left, size_h, size_w) for left in lefts]
    tops = [0, (height - size_h) // 2, height - size_h]
    return [(top, (width - size_w) // 2, size_h, size_w) for top in tops]


def train_crop(frames: np.ndarray, crop_size: int, *, short_side_ratio: float,
               scales: tuple[float, ...], flip: bool, rng: np.random.Generator,
               crop_kind: str = _DATA.crop, crop_positions: str = _DATA.crop_positions,
               crop_area: tuple[float, float] = _DATA.crop_area,
               crop_aspect: tuple[float, float] = _DATA.crop_aspect) -> torch.Tensor:
    """(T, H, W, C) uint8 -> (T, C, crop_size, crop_size) uint8: the training crop (short side
    round(crop_size * short_side_ratio), a random crop - "multiscale" (`multiscale_crop_box`
    with `scales` and `crop_positions`) or "random_resized" (`random_resized_crop_box` with
    `crop_area` and `crop_aspect`) - resized to crop_size, a flip with probability 1/2), what a
    loader worker makes. Rounded back to uint8 (a quarter of the bytes of float32 across
    processes): exact when nothing is resized, as on the demo's frames; otherwise within half
    a grey level of the float crop."""
    if crop_kind not in CROPS:
        raise ValueError(f"crop must be one of {', '.join(CROPS)}, got {crop_kind!r}")
    x = to_tensor(frames)  # (T, C, H, W)
    x = resize_short_side(x, round(crop_size * short_side_ratio))
    h, w = x.shape[-2:]
    box = (multiscale_crop_box(h, w, scales, rng, crop_positions) if crop_kind == "multiscale"
           else random_resized_crop_box(h, w, crop_area, crop_aspect, rng))
    x = crop(x, box)
    x = resize(x, (crop_size, crop_size))
    if flip and rng.random() < 0.5:
        x = hflip(x)
    return to_uint8(x)


def crop_views(clip: torch.Tensor, sizes: tuple[int, ...], *, mean: tuple[float, ...],
               std: tuple[float, ...], shrink_filter: str = _DATA.shrink,
               downsample_to: int = 0) -> list[torch.Tensor]:
    """(..., T, C, S, S) uint8 crops (one clip or a batch, on any device) -> one normalised
    float (..., T, C, s, s) view per size in `sizes`, each shrunk from the crop with
    `shrink_filter`; `downsample_to` > 0 degrades the crop first (see `degrade`). The training
    step runs it on the model's device; per clip or per batch, the numbers are the same."""
    lead = clip.shape[:-3]
    x = clip.reshape(-1, *clip.shape[-3:]).float()  # (M, C, S, S)
    x = normalize(degrade(x, downsample_to, shrink_filter), mean, std)
    return [shrink(x, s, shrink_filter).reshape(*lead, *x.shape[-3:-2], s, s) for s in sizes]


def train_views(frames: np.ndarray, sizes: tuple[int, ...], *, short_side_ratio: float,
                scales: tuple[float, ...], flip: bool, mean: tuple[float, ...],
                std: tuple[float, ...], rng: np.random.Generator, crop_size: int = 0,
                shrink_filter: str = _DATA.shrink, downsample_to: int = 0,
                **crop_recipe) -> list[torch.Tensor]:
    """(T, H, W, C) uint8 -> one normalised (T, C, s, s) view per size in `sizes`, all from one
    crop and flip at `crop_size` (0: sizes[0]), each shrunk from it with `shrink_filter`:
    `train_crop` (`crop_recipe`: its crop_kind, crop_positions, crop_area, crop_aspect) then
    `crop_views`, in one process.

    `sizes=(224, 112)` with the default crop gives (teacher view, student view) as the authors
    make them. `downsample_to` > 0 degrades the crop first (see `degrade`).
    """
    x = train_crop(frames, crop_size or sizes[0], short_side_ratio=short_side_ratio,
                   scales=scales, flip=flip, rng=rng, **crop_recipe)
    return crop_views(x, sizes, mean=mean, std=std, shrink_filter=shrink_filter,
                      downsample_to=downsample_to)


def test_views(frames: np.ndarray, size: int, *, short_side_ratio: float, crops: int,
               mean: tuple[float, ...], std: tuple[float, ...], crop_size: int = 0,
               shrink_filter: str = _DATA.shrink, downsample_to: int = 0) -> torch.Tensor:
    """(T, H, W, C) uint8 -> (crops, T, C, size, size): short side round(crop_size * ratio),
    centre or 3 crops of crop_size (0: size), each shrunk to `size` as `train_views` does."""
    crop_size = crop_size or size
    x = to_tensor(frames)  # (T, C, H, W)
    x = resize_short_side(x, round(crop_size * short_side_ratio))
    h, w = x.shape[-2:]
    boxes = [centre_box(h, w, crop_size)] if crops == 1 else three_crop_boxes(h, w, crop_size)
    views = [shrink(normalize(degrade(resize(crop(x, b), (crop_size, crop_size)),  # resize:
                                      downsample_to, shrink_filter),  # only if smaller
                              mean, std), size, shrink_filter) for b in boxes]
    return torch.stack(views)  # (crops, T, C, size, size)


@dataclass(frozen=True)
class Views:
    """The view recipe: how a clip becomes the teacher's and the student's inputs, the same in
    training, testing and every later use of the checkpoint (it is recorded there).

    One crop of `crop_size` (0: `teacher_size`, else `student_size`) is cut from each clip and
    shrunk with `shrink` to `teacher_size` (224 in the paper; 0 for a model trained alone) and
    to `student_size` (112 or less), normalised with `mean` / `std` (in [0, 1] units, per RGB
    channel). Teacher and student views share crop and flip. `student_sizes` (an
    any-resolution student's, `distill.student_sizes`) adds views of the same crop at those
    sizes. The training crop is `crop` ("multiscale": `scales`, `crop_positions`;
    "random_resized": `crop_area`, `crop_aspect`) from short side crop x `short_side_ratio`;
    test crops come from short side crop x `test_short_side_ratio` (0: `short_side_ratio`).
    Every default is `reskd.config.DataConfig`'s.

    In your own loop: `teacher_view, student_view = views(clips)` on a batch of uint8 crops
    (N, T, C, H, W), on any device (`__call__`); `views.train_crop(frames, rng)` makes such a
    crop from decoded frames (T, H, W, C) uint8 in a dataset.
    """
    student_size: int
    teacher_size: int = 0
    crop_size: int = _DATA.crop_size
    shrink: str = _DATA.shrink
    short_side_ratio: float = _DATA.short_side_ratio
    test_short_side_ratio: float = _DATA.test_short_side_ratio
    crop: str = _DATA.crop
    scales: tuple[float, ...] = _DATA.crop_scales
    crop_positions: str = _DATA.crop_positions
    crop_area: tuple[float, float] = _DATA.crop_area
    crop_aspect: tuple[float, float] = _DATA.crop_aspect
    flip: bool = _DATA.flip
    mean: tuple[float, ...] = _DATA.mean
    std: tuple[float, ...] = _DATA.std
    downsample_to: int = _DATA.downsample_to  # > 0: the crop keeps only this many pixels a side
    student_sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("student_size", "teacher_size", "crop_size", "downsample_to"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Views({name}=...) must be a non-negative int, got {value!r}")
        if self.student_size < 1:
            raise ValueError(f"Views(student_size=...) must be at least 1, got "
                             f"{self.student_size}")
        if self.teacher_size and self.teacher_size < max((self.student_size, *self.student_sizes)):
            raise ValueError(
                f"Views(teacher_size={self.teacher_size}) is below the student size "
                f"{max((self.student_size, *self.student_sizes))}: ResKD distils from high to low "
                f"resolution; give the teacher the larger size (e.g. teacher_size=224, "
                f"student_size=112)")
        if self.crop_size and self.crop_size < self.sizes[0]:
            raise ValueError(f"Views(crop_size={self.crop_size}) is below the largest view "
                             f"({self.sizes[0]} px): views are shrunk from the crop; give 0 (the "
                             f"largest view's size) or at least {self.sizes[0]}")
        for name, choices in (("shrink", SHRINK_FILTERS), ("crop", CROPS),
                              ("crop_positions", CROP_POSITIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"Views({name}=...) must be one of {', '.join(choices)}, got "
                                 f"{getattr(self, name)!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"Views(mean=..., std=...) need one value per RGB channel, got "
                             f"mean={self.mean!r}, std={self.std!r}")
        if max(self.mean) > 1 or min(self.std) <= 0 or max(self.std) > 1:
            raise ValueError(f"Views(mean=..., std=...) are in [0, 1] units (ImageNet's: "
                             f"{IMAGENET_MEAN}, {IMAGENET_STD}), got mean={self.mean!r}, "
                             f"std={self.std!r}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """The views' sizes, largest first: (teacher_size, student_size), or (student_size,)
        for a model trained alone."""
        return (self.teacher_size, self.student_size) if self.teacher_size else (
            self.student_size,)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict | str | Path, *, teacher_size: int = 0,
                        size: int | None = None) -> Views:
        """The recipe a reskd checkpoint (a path or a loaded dict) recorded for its model at
        `size` (None: its own), as test, predict and export use it; `teacher_size` > 0 adds a
        teacher view of that size shrunk from the same crop (distilling that model further)."""
        ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        views = checkpoint_views(ckpt, "checkpoint" if isinstance(checkpoint, dict)
                                 else checkpoint, size)
        if not teacher_size:
            return views
        return replace(views, teacher_size=teacher_size,
                       crop_size=max(views.crop_size, teacher_size))

    def __call__(self, clips: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """uint8 crops (N, T, C, H, W) or (T, C, H, W), on any device -> (teacher view
        (..., T, C, teacher_size, teacher_size) or None without a teacher, student view
        (..., T, C, student_size, student_size)), normalised float32. A crop whose side is not
        the crop size is resized to it first (bilinear, antialiased), as the training crop is.
        """
        _check_crops(clips)
        side = self.crop_size or self.sizes[0]
        if tuple(clips.shape[-2:]) != (side, side):
            lead = clips.shape[:-3]
            x = resize(clips.reshape(-1, *clips.shape[-3:]).float(), (side, side))
            clips = to_uint8(x).reshape(*lead, *clips.shape[-3:-2], side, side)
        views = self.views_of(clips)
        return views.get("teacher"), views["student"]

    @property
    def test_ratio(self) -> float:
        """The test short side over the crop size (test_short_side_ratio, 0: short_side_ratio)."""
        return self.test_short_side_ratio or self.short_side_ratio

    def short_side(self, *, train: bool) -> int:
        """The short side frames are resized to before cropping: round(crop x ratio), crop =
        crop_size, else the first view's size in training and the model's in testing; ratio =
        short_side_ratio in training, `test_ratio` in testing. The dataset shrinks decoded
        frames larger than this to it in uint8: a sample holds its frames at this size only."""
        crop = self.crop_size or (self.sizes[0] if train else self.sizes[-1])
        return round(crop * (self.short_side_ratio if train else self.test_ratio))

    def train_crop(self, frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """(T, H, W, C) uint8 -> the training crop (T, C, S, S) uint8 (S: crop_size or
        sizes[0]), what the training loader returns as "clip"."""
        return train_crop(frames, self.crop_size or self.sizes[0],
                          short_side_ratio=self.short_side_ratio, scales=self.scales,
                          flip=self.flip, rng=rng, crop_kind=self.crop,
                          crop_positions=self.crop_positions, crop_area=self.crop_area,
                          crop_aspect=self.crop_aspect)

    def views_of(self, clip: torch.Tensor) -> dict:
        """(..., T, C, S, S) uint8 training crops (a clip or a batch, on any device) ->
        {"student": (..., T, C, s, s)} at the model's size (sizes[-1]), plus "teacher"
        (sizes[0]) for two sizes, plus "students": {size: view} for each other size of
        `student_sizes`; each view shrunk from the crop (so "student" is the same tensor with
        or without `student_sizes`)."""
        _check_crops(clip)
        others = tuple(s for s in self.student_sizes if s != self.sizes[-1])
        views = crop_views(clip, self.sizes + others, mean=self.mean, std=self.std,
                           shrink_filter=self.shrink, downsample_to=self.downsample_to)
        n = len(self.sizes)
        out = {"student": views[n - 1], **({"teacher": views[0]} if n == 2 else {})}
        if others:
            out["students"] = dict(zip(others, views[n:]))
        return out

    def train(self, frames: np.ndarray, rng: np.random.Generator) -> dict:
        """(T, H, W, C) uint8 -> the training views of one clip (`views_of(train_crop(...))`),
        in one process."""
        return self.views_of(self.train_crop(frames, rng))

    def test(self, frames: np.ndarray, crops: int) -> torch.Tensor:
        """(T, H, W, C) uint8 -> (crops, T, C, size, size) at the model's size (sizes[-1])."""
        return test_views(frames, self.sizes[-1], short_side_ratio=self.test_ratio,
                          crops=crops, mean=self.mean, std=self.std, crop_size=self.crop_size,
                          shrink_filter=self.shrink, downsample_to=self.downsample_to)

    def record(self) -> dict:
        """What a checkpoint stores (`"views"`) so that every later use makes the model's test
        views as its training views were made; `size` is the model's own (the last size), and
        an any-resolution student's record lists every size it runs at (`student_sizes`).
        `test_short_side_ratio` is stored resolved (`test_ratio`)."""
        record = {"size": self.sizes[-1], "crop_size": self.crop_size or self.sizes[0],
                  "shrink": self.shrink, "short_side_ratio": self.short_side_ratio,
                  "test_short_side_ratio": self.test_ratio,
                  "downsample_to": self.downsample_to, "mean": list(self.mean),
                  "std": list(self.std)}
        if self.student_sizes:
            record["student_sizes"] = sorted(self.student_sizes)
        return record


def _check_crops(clips: torch.Tensor) -> None:
    """A TypeError / ValueError unless `clips` are uint8 crops (..., T, C, H, W), C = 3."""
    if not isinstance(clips, torch.Tensor) or clips.dtype != torch.uint8:
        got = clips.dtype if isinstance(clips, torch.Tensor) else type(clips).__name__
        raise TypeError(
            f"Views expects uint8 pixels (0-255), got {got}: the views are normalised here "
            f"with mean/std, so pass the decoded frames as they are (a float clip in [0, 1] "
            f"would be normalised twice); convert with (clip * 255).round().to(torch.uint8) "
            f"if you hold floats")
    if clips.dim() not in (4, 5) or clips.shape[-3] != 3:
        raise ValueError(f"Views expects crops (N, T, C, H, W) or (T, C, H, W) with C = 3 "
                         f"(channels before height and width), got shape {tuple(clips.shape)}")


def checkpoint_views(ckpt: dict, path: str | Path = "checkpoint",
                     size: int | None = None) -> Views:
    """The test-view recipe of a checkpoint's model at `size` (one of `checkpoint_sizes`;
    None: its own), as `reskd.checkpoint.recorded_views` reads it."""
    views = recorded_views(ckpt, path, size)
    return Views(student_size=views["size"], crop_size=views["crop_size"],
                 shrink=views["shrink"], short_side_ratio=views["short_side_ratio"],
                 test_short_side_ratio=views["test_short_side_ratio"],
                 mean=tuple(views["mean"]), std=tuple(views["std"]),
                 downsample_to=views["downsample_to"],
                 student_sizes=tuple(views.get("student_sizes", ())))

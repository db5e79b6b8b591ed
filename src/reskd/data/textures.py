"""A deterministic video classification dataset of real photo textures: which photo is this?

There is one class per real photograph, and the label of a clip is the photo that a small window
pans across. The photos are grayscale, equalised and changed in brightness per clip, so colour,
mean intensity and contrast cannot give the class away. What is left is the photo's texture and
fine structure: grass blades, gravel grains, brick joints, printed and handwritten strokes, cat
fur, stars, tissue cells. A 64 px frame shows that detail. A 16 px frame, where one pixel averages
4-8 photo pixels, mostly loses it. So the resolution gap between a 64 px teacher and 32 or 16 px
students is about exactly the information that decides the class, which is what cross-resolution
distillation is meant to measure. The drifting-digit set in ``reskd.data.synth`` tests the same
idea with a digit drawn over the photos; this one tests it on natural image statistics only.

Nothing is downloaded. The photos all ship inside the scikit-image wheel (``skimage/data/``). The
16 classes are astronaut, brick, camera, chelsea, coffee, coins, grass, gravel, hubble_deep_field,
immunohistochemistry, moon, page, text, retina, rocket and motorcycle (``stereo_motorcycle``'s
left view). Left out: the drawings (``horse``, ``logo``, ``checkerboard``, ``colorwheel``, the
phantom), ``cell`` and ``clock`` (almost all one smooth grey, so most windows would have no
texture to learn), ``microaneurysms`` (102 px: too small to give disjoint train and val regions),
``cat`` (it is ``chelsea`` again), ``lfw_subset`` (25 px faces) and the second motorcycle view.

Decisions, with their reasons:

* Photos. Each photo is turned into luma (Pillow's ITU-R 601-2 ``L``) and box-shrunk so its short
  side is at most 512 px (retina 1411 and hubble 872 are the only ones that change). Then it is
  histogram-equalised to mid-ranks in (0, 1): every class has the same grey-level distribution
  (uniform, mean 0.5, std 0.29), so a global intensity statistic cannot tell photos apart.
* Disjoint train and val regions. Each photo is cut across its long side. The first 70% goes to
  train and the last 30% to val, with a 16 px guard band between them that neither uses
  (``split_region``). A clip is rendered from a crop of its split's region only, so even the
  resampling filter never reads a pixel of the other split. Val windows are parts of the photos
  that training never saw. The cut is 70/30 and not 75/25 so that the val strip of the narrow
  photos (page 191 x 384, text 172 x 448) still holds a whole panning window.
* Window. It is a square whose side is log-uniform in 64-128 photo px at the first frame. It does
  not depend on ``size``, so a 32 px dataset shows the same field of view as a 64 px one, with
  less detail. At 64 px a frame pixel is 1-2 photo pixels, so the texture is visible; at 16 px it
  is 4-8. (0.12-0.25 of a 512 px short side. A fraction of each photo's own short side would zoom
  the small page and text photos in 2-3x, past their native resolution.) A clip whose windows,
  pan and zoom included, would span more than the photo's val region (99-206 px wide) is scaled
  down until it fits. This is done the same way in both splits, so a photo's train and val windows
  have the same size distribution. A window whose first-frame crop is nearly flat (std < 0.08 of the
  equalised 0..1 range, for example the sky in camera, black space, retina's border) is redrawn,
  up to 50 times, because a flat patch is unclassifiable at any resolution and would only add
  label noise.
* Motion. The window pans in a random direction at 1-3 frame px per frame, measured at 64 px
  (the speed in photo px is the same at any ``size``). It zooms linearly, so its side at the last
  frame is 0.9-1.1x its side at the first. Pan and zoom are nuisances, so frame order never
  decides the class.
* Orientation. One of the 8 rotations and flips of the square is applied to the whole clip, so
  that coarse orientation (the diagonal courses of brick, the horizontal lines of text), which
  survives at 16 px, is not a shortcut.
* Resampling. Every frame is resampled from its float window with Pillow's Lanczos filter. When
  shrinking, Pillow widens the kernel by the scale, so the result is antialiased.
* Photometry, per clip. The equalised luma u becomes ``offset + gain * 255 * (u - 0.5)``, with
  gain in 0.4-0.8 and offset in 100-155 (out of 255). Gaussian noise with std 2-5 is added, then
  the result is rounded and clipped to uint8. The frames are gray, written as RGB (R = G = B).
* Plan. The labels of a split are a permutation of ``arange(n) % 16`` drawn from
  ``default_rng([seed, split_id])``, so the classes are balanced (counts differ by at most one).

Layout written under ``out``: the one in ``reskd.data.synth``'s docstring, written by the same
``synth.write_video_dataset`` and encoded by ``synth.write_mp4``, except that line i of
``classes.txt`` is the name of photo i and the meta file, written last, is ``textures.json``.

Every clip draws its randomness from ``numpy.random.default_rng([seed, split_id, clip_index])``,
so the result does not depend on the number of workers or the order in which they finish.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from reskd.data.synth import ClipTask, write_mp4, write_video_dataset

__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "PHOTOS",
    "SPLIT_IDS",
    "clip_plan",
    "load_photos",
    "make_texture_dataset",
    "render_clip",
    "split_region",
    "window_boxes",
]

# Bump when a change alters what is written, so that cached datasets are regenerated.
GENERATOR_VERSION = 1

# Class name -> the skimage.data loader of its photo (all bundled in the wheel, no download).
PHOTOS = {
    "astronaut": "astronaut",
    "brick": "brick",
    "camera": "camera",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "coins": "coins",
    "grass": "grass",
    "gravel": "gravel",
    "hubble_deep_field": "hubble_deep_field",
    "immunohistochemistry": "immunohistochemistry",
    "moon": "moon",
    "page": "page",
    "text": "text",
    "retina": "retina",
    "rocket": "rocket",
    "motorcycle": "stereo_motorcycle",
}
CLASSES = tuple(PHOTOS)

SPLIT_IDS = {"train": 0, "val": 1}
_BASE_SIZE = 64  # speeds below are given in frame px for a 64 px frame
_PHOTO_SHORT_SIDE = 512
_TRAIN_FRACTION = 0.7  # of each photo's long side; val gets the rest minus the guard band
_GUARD_PX = 16  # photo px between the train and the val region, used by neither
_WINDOW_PX = (64.0, 128.0)  # window side at the first frame, photo px, log-uniform
_ZOOM = (0.9, 1.1)  # last-frame side / first-frame side
_PAN_SPEED_PX = (1.0, 3.0)  # frame px per frame at 64 px, in a random direction
_MIN_WINDOW_STD = 0.08  # of the equalised 0..1 luma; flatter windows are redrawn
_WINDOW_TRIES = 50
_GAIN = (0.4, 0.8)  # contrast: output = offset + gain * 255 * (u - 0.5)
_OFFSET = (100.0, 155.0)  # brightness, 0..255
_NOISE_STD = (2.0, 5.0)  # Gaussian pixel noise, 0..255


# ----------------------------------------------------------------------------- sources

def _equalise(luma: np.ndarray) -> np.ndarray:
    """Histogram equalisation of (H, W) uint8 to mid-ranks in (0, 1), float32 (H, W).

    Every pixel of grey level v maps to the mean rank of all pixels of that level, divided by the
    pixel count. Equal levels stay equal, so flat areas stay flat and are not turned into noise.
    """
    counts = np.bincount(luma.ravel(), minlength=256).astype(np.float64)  # (256,)
    below = np.cumsum(counts) - counts  # pixels darker than each level
    mid = (below + 0.5 * counts) / luma.size  # (256,) in (0, 1)
    return mid.astype(np.float32)[luma]


def load_photos() -> list[np.ndarray]:
    """The class photos in label order, each (H, W) float32 equalised luma in (0, 1).

    Their short side is at most 512 px, and that is the scale that ``_WINDOW_PX`` is given in.
    """
    from PIL import Image

    try:
        import skimage.data
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "reskd.data.textures needs the photos bundled with scikit-image: "
            "pip install 'scikit-image>=0.21'"
        ) from e
    photos = []
    for loader in PHOTOS.values():
        img = getattr(skimage.data, loader)()
        if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
            img = img[0]
        img = np.ascontiguousarray(img, dtype=np.uint8)
        pil = Image.fromarray(img[:, :, :3] if img.ndim == 3 else img).convert("L")
        w, h = pil.size
        if min(h, w) > _PHOTO_SHORT_SIDE:
            k = _PHOTO_SHORT_SIDE / min(h, w)
            pil = pil.resize((round(w * k), round(h * k)), Image.Resampling.BOX)
        photos.append(_equalise(np.asarray(pil, dtype=np.uint8)))
    return photos


# ----------------------------------------------------------------------------- geometry

def split_region(shape: tuple[int, int], split: str) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1), in photo px with x1 and y1 exclusive, that `split` draws from.

    The photo of (H, W) `shape` is cut across its long side. Train is the first 70% of it and val
    is the rest after a 16 px guard band. The two boxes never overlap.
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    h, w = int(shape[0]), int(shape[1])
    long_side = max(h, w)
    cut = int(round(_TRAIN_FRACTION * long_side))
    lo, hi = (0, cut) if split == "train" else (min(cut + _GUARD_PX, long_side), long_side)
    return (lo, 0, hi, h) if w >= h else (0, lo, w, hi)


def window_boxes(
    rng: np.random.Generator,
    region: np.ndarray,
    *,
    frames: int,
    room: tuple[int, int] | None = None,
) -> np.ndarray:
    """The window of every frame as (T, 4) float64 boxes (x0, y0, x1, y1) in `region`'s px.

    `region` is the (H, W) equalised crop of one split of one photo. All boxes lie inside it. A
    clip whose windows (pan and zoom included) would span more than `room` (W, H) is scaled down
    to fit. The default `room` is the region itself. The generator passes the photo's val region
    for both splits, so that a photo's train and val windows have the same size distribution.
    The first window is not nearly flat (std >= _MIN_WINDOW_STD) unless 50 draws in a row were.
    """
    rh, rw = region.shape
    fw, fh = (rw, rh) if room is None else (min(rw, room[0]), min(rh, room[1]))
    t = np.arange(frames, dtype=np.float64) / max(frames - 1, 1)  # (T,) 0 .. 1
    for _ in range(_WINDOW_TRIES):
        side = float(np.exp(rng.uniform(*np.log(_WINDOW_PX))))
        zoom = rng.uniform(*_ZOOM)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        speed = rng.uniform(*_PAN_SPEED_PX) * side / _BASE_SIZE  # photo px per frame
        travel = np.array([np.cos(angle), np.sin(angle)]) * speed * max(frames - 1, 0)  # (2,) x, y
        # Offsets from the first centre of the first and last window's edges: (2,) each.
        lo = np.minimum(-side / 2, travel - side * zoom / 2)
        hi = np.maximum(side / 2, travel + side * zoom / 2)
        span = hi - lo  # (2,) extent of the whole clip's windows, x and y
        shrink = min(1.0, fw / span[0], fh / span[1])  # a narrow val strip: scale all down
        side, travel, lo, hi = side * shrink, travel * shrink, lo * shrink, hi * shrink
        # First centre so that the clip's extent lies inside [0, rw] x [0, rh]. The max()
        # guards against float rounding when the extent fills the region exactly.
        cx = rng.uniform(-lo[0], max(-lo[0], rw - hi[0]))
        cy = rng.uniform(-lo[1], max(-lo[1], rh - hi[1]))
        centres = np.array([cx, cy])[None, :] + travel[None, :] * t[:, None]  # (T, 2)
        sides = side * (1.0 + (zoom - 1.0) * t)  # (T,) linear zoom: extremes at the ends
        boxes = np.concatenate([centres - sides[:, None] / 2, centres + sides[:, None] / 2], axis=1)
        boxes = np.clip(boxes, 0.0, [rw, rh, rw, rh])  # only ever trims float rounding
        x0, y0, x1, y1 = boxes[0]
        first = region[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))]
        if first.size and float(first.std()) >= _MIN_WINDOW_STD:
            break
    return boxes


def render_clip(
    rng: np.random.Generator,
    region: np.ndarray,
    *,
    frames: int,
    size: int,
    room: tuple[int, int] | None = None,
) -> np.ndarray:
    """One clip of the equalised (H, W) `region`. Returns (T, size, size, 3) uint8, gray RGB.

    `room` is passed on to `window_boxes`.
    """
    from PIL import Image

    boxes = window_boxes(rng, region, frames=frames, room=room)  # (T, 4)
    # Cut the integer box around all windows, plus the reach of the Lanczos kernel (3 output px,
    # widened by the shrink factor) but never past the region, so that Pillow copies only that.
    rh, rw = region.shape
    margin = int(np.ceil(3.0 * max(1.0, float((boxes[:, 2] - boxes[:, 0]).max()) / size))) + 1
    bx0 = max(0, int(np.floor(boxes[:, 0].min())) - margin)
    by0 = max(0, int(np.floor(boxes[:, 1].min())) - margin)
    bx1 = min(rw, int(np.ceil(boxes[:, 2].max())) + margin)
    by1 = min(rh, int(np.ceil(boxes[:, 3].max())) + margin)
    cut = Image.fromarray(np.ascontiguousarray(region[by0:by1, bx0:bx1]), mode="F")
    shift = np.array([bx0, by0, bx0, by0], dtype=np.float64)
    clip = np.stack([
        np.asarray(cut.resize((size, size), Image.Resampling.LANCZOS, box=tuple(b - shift)))
        for b in boxes
    ])  # (T, size, size) float32, equalised units

    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    clip = np.rot90(clip, k, axes=(1, 2))
    if flip:
        clip = clip[:, :, ::-1]

    gain, offset = rng.uniform(*_GAIN), rng.uniform(*_OFFSET)
    clip = offset + gain * 255.0 * (clip - 0.5)
    clip = clip + rng.standard_normal(clip.shape, dtype=np.float32) * rng.uniform(*_NOISE_STD)
    gray = np.clip(np.rint(clip), 0, 255).astype(np.uint8)  # (T, size, size)
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=3))  # (T, size, size, 3)


def clip_plan(seed: int, split: str, num_clips: int) -> np.ndarray:
    """The label of every clip of a split, (num_clips,) int64, balanced over the classes."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    rng = np.random.default_rng([seed, SPLIT_IDS[split]])
    return rng.permutation(np.arange(num_clips) % len(CLASSES)).astype(np.int64)


def _regions(photos: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Per split, the region crop of every photo in label order."""
    out = {}
    for split in SPLIT_IDS:
        crops = []
        for photo in photos:
            x0, y0, x1, y1 = split_region(photo.shape, split)
            crops.append(np.ascontiguousarray(photo[y0:y1, x0:x1]))
        out[split] = crops
    return out


def _rooms(photos: list[np.ndarray]) -> list[tuple[int, int]]:
    """Per photo, the (W, H) of its val region: the most a clip of either split may span."""
    rooms = []
    for photo in photos:
        x0, y0, x1, y1 = split_region(photo.shape, "val")
        rooms.append((x1 - x0, y1 - y0))
    return rooms


# ----------------------------------------------------------------------------- workers

_WORKER: dict = {}


def _init_worker(seed: int, frames: int, size: int) -> None:
    """Load the photos and cut the regions once per worker process."""
    photos = load_photos()
    _WORKER.update(
        seed=seed, frames=frames, size=size, regions=_regions(photos), rooms=_rooms(photos)
    )


def _make_clip(task: ClipTask) -> int:
    """Render and write one clip; returns the file size in bytes."""
    split, index, label, path = task
    w = _WORKER
    rng = np.random.default_rng([w["seed"], SPLIT_IDS[split], index])
    clip = render_clip(
        rng, w["regions"][split][label], frames=w["frames"], size=w["size"], room=w["rooms"][label]
    )
    write_mp4(path, clip)
    return os.path.getsize(path)


# ----------------------------------------------------------------------------- entry point

def make_texture_dataset(
    out: str | Path,
    *,
    seed: int = 0,
    num_train: int = 1600,
    num_val: int = 400,
    frames: int = 8,
    size: int = 64,
    workers: int | None = None,
    should_stop=None,
) -> dict:
    """Write the photo-texture video dataset to `out` (see the module docstring for the layout).

    The dataset is built in a sibling temp folder and renamed into place, so an interrupted run
    never leaves a half dataset at `out`. If `out` already holds a complete dataset made with the
    same parameters and generator version, it is reused and nothing is rewritten. One made with
    other parameters is replaced. Any other non-empty folder is refused (FileExistsError).
    `workers` processes render and encode the clips (None: one per CPU, at most 8; 0 or 1: in
    this process). It does not change the output. `should_stop` as in
    `synth.write_video_dataset`.

    Returns {"root", "train_list", "val_list", "classes", "num_train", "num_val", "train", "val",
    "seconds", "reused"}: paths as str, class names as a list, "train" and "val" the clip counts
    (the same as num_train and num_val), and `seconds` the wall time of this call.
    """
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    return write_video_dataset(
        out, kind="textures", version=GENERATOR_VERSION, classes=CLASSES,
        seed=seed, num_train=num_train, num_val=num_val, frames=frames, size=size, workers=workers,
        meta_extra={
            "photos": dict(PHOTOS),
            "geometry": {
                "photo_short_side": _PHOTO_SHORT_SIDE, "train_fraction": _TRAIN_FRACTION,
                "guard_px": _GUARD_PX, "window_px": list(_WINDOW_PX), "zoom": list(_ZOOM),
                "pan_px_per_frame_at_64": list(_PAN_SPEED_PX), "min_window_std": _MIN_WINDOW_STD,
            },
            "photometry": {"gain": list(_GAIN), "offset": list(_OFFSET),
                           "noise_std": list(_NOISE_STD)},
        },
        plan=_plan, init_worker=_init_worker, make_clip=_make_clip, release_worker=_WORKER.clear,
        result_aliases={"train": "num_train", "val": "num_val"}, should_stop=should_stop,
    )


def _plan(params: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per split, the label of every clip, twice: the label is also the photo `_make_clip` draws."""
    labels = {split: clip_plan(params["seed"], split, params[f"num_{split}"])
              for split in SPLIT_IDS}
    return {split: (split_labels, split_labels) for split, split_labels in labels.items()}

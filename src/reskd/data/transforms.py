"""Clip transforms: pure functions on (T, C, H, W) tensors, and the paper's train/test view recipes.

Training (paper Sec. 4.2, as mmaction2's TSN recipe): resize the short side to
round(teacher_size * short_side_ratio) (256 for 224), take a random multi-scale crop (side
lengths from `scales` x short side, width and height scales at most one step apart), resize it
to the teacher size, flip horizontally with probability 1/2. The student view is that *same*
teacher view resized to the student size with bilinear interpolation (align_corners=False, no
antialias: for an exact 2x factor this is 2x2 average pooling), exactly as the authors' code does
it inside the model. Teacher and student therefore always share crop and flip.

Testing: short side to round(size * short_side_ratio) (256 for 224, 128 for 112), then a centre
crop (or three crops along the long side) of `size`.

All views are normalised with the dataset mean/std; bilinear resizing commutes with that
per-channel affine map, so resizing a normalised view equals normalising a resized one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

Box = tuple[int, int, int, int]  # top, left, height, width


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


def degrade(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """(T, C, H, W) -> same shape, with only `resolution` x `resolution` pixels of information:
    resized down (antialiased) and bilinearly back up. Figure 1a's "up-sampled frames"
    separate information loss from scale; 0 leaves `x` as it is."""
    if resolution <= 0 or resolution >= min(x.shape[-2:]):
        return x
    return resize(resize(x, (resolution, resolution)), tuple(x.shape[-2:]), antialias=False)


def crop(x: torch.Tensor, box: Box) -> torch.Tensor:
    """(T, C, H, W) -> (T, C, box height, box width)."""
    top, left, h, w = box
    return x[..., top:top + h, left:left + w]


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(T, C, H, W) in [0, 255] -> zero-mean, unit-std per channel (mean/std given in [0, 1])."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1) * 255
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1) * 255
    return (x - m) / s


def multiscale_crop_box(height: int, width: int, scales: tuple[float, ...],
                        rng: np.random.Generator) -> Box:
    """A random multi-scale crop (TSN): sides = scale x short side, scales at most one step apart."""
    base = min(height, width)
    sides = [int(base * s) for s in scales]
    pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= 1]
    ch, cw = pairs[int(rng.integers(len(pairs)))]
    ch, cw = max(1, min(ch, height)), max(1, min(cw, width))
    top = int(rng.integers(0, height - ch + 1))
    left = int(rng.integers(0, width - cw + 1))
    return top, left, ch, cw


def centre_box(height: int, width: int, size: int) -> Box:
    size_h, size_w = min(size, height), min(size, width)
    return (height - size_h) // 2, (width - size_w) // 2, size_h, size_w


def three_crop_boxes(height: int, width: int, size: int) -> list[Box]:
    """Three `size` crops spread along the long side (start, centre, end), as mmaction2's ThreeCrop."""
    size_h, size_w = min(size, height), min(size, width)
    if width >= height:
        lefts = [0, (width - size_w) // 2, width - size_w]
        return [((height - size_h) // 2, left, size_h, size_w) for left in lefts]
    tops = [0, (height - size_h) // 2, height - size_h]
    return [(top, (width - size_w) // 2, size_h, size_w) for top in tops]


def train_views(frames: np.ndarray, sizes: tuple[int, ...], *, short_side_ratio: float,
                scales: tuple[float, ...], flip: bool, mean: tuple[float, ...],
                std: tuple[float, ...], rng: np.random.Generator,
                downsample_to: int = 0) -> list[torch.Tensor]:
    """(T, H, W, C) uint8 -> one normalised (T, C, s, s) view per size, all from one crop and flip.

    `sizes[0]` is the largest (the teacher's); each smaller view is that view bilinearly
    resized (align_corners=False, antialias off), as in the authors' code. `downsample_to` > 0
    degrades the largest view first (see `degrade`).
    """
    x = to_tensor(frames)  # (T, C, H, W)
    x = resize_short_side(x, round(sizes[0] * short_side_ratio))
    x = crop(x, multiscale_crop_box(x.shape[-2], x.shape[-1], scales, rng))
    x = degrade(resize(x, (sizes[0], sizes[0])), downsample_to)
    if flip and rng.random() < 0.5:
        x = hflip(x)
    x = normalize(x, mean, std)
    return [x] + [resize(x, (s, s), antialias=False) for s in sizes[1:]]


def test_views(frames: np.ndarray, size: int, *, short_side_ratio: float, crops: int,
               mean: tuple[float, ...], std: tuple[float, ...], downsample_to: int = 0) -> torch.Tensor:
    """(T, H, W, C) uint8 -> (crops, T, C, size, size): short side round(size * ratio), centre or 3 crops."""
    x = to_tensor(frames)  # (T, C, H, W)
    x = resize_short_side(x, round(size * short_side_ratio))
    h, w = x.shape[-2:]
    boxes = [centre_box(h, w, size)] if crops == 1 else three_crop_boxes(h, w, size)
    views = [degrade(resize(crop(x, b), (size, size)), downsample_to)  # resize: only if smaller
             for b in boxes]
    return normalize(torch.stack(views).flatten(0, 1), mean, std).unflatten(0, (len(boxes), -1))

"""The video `Dataset` and its loader: annotation entries in, normalised views and labels out.

Training samples carry one view per requested size, cut from the same crop and flip:
`sizes=(224, 112)` gives (teacher view, student view); `sizes=(112,)` a single view.
Randomness comes from `numpy.random.default_rng((seed, epoch, index))`, so a sample does not
depend on worker count or order (a resumed run sees the same clips).

A video that cannot be decoded during training is replaced by another random sample and
reported through the batch's "skipped" field (the trainer counts them); during testing it is
returned with `failed` set so the evaluator lists it instead of dropping it silently.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from reskd.data import transforms
from reskd.data.decoders import DecodeError, decode_video, read_frame_folder
from reskd.data.formats import Entry
from reskd.data.sampling import dense_indices, segment_indices

MAX_REPLACEMENTS = 10

# path -> every frame (T, H, W, C) uint8 of that video; filled by datasets with cache_decoded
DECODED: dict[str, np.ndarray] = {}


@dataclass(frozen=True)
class Sampling:
    """How one clip is read: TSN segments (clip_len 0) or dense windows (clip_len frames, interval apart)."""
    num_segments: int = 8
    clip_len: int = 0
    frame_interval: int = 1

    @property
    def frames(self) -> int:
        return self.clip_len or self.num_segments

    def indices(self, num_frames: int, *, train: bool, rng: np.random.Generator | None,
                clip: int, num_clips: int) -> np.ndarray:
        if self.clip_len:
            return dense_indices(num_frames, self.clip_len, self.frame_interval, train=train,
                                 rng=rng, clip=clip, num_clips=num_clips)
        return segment_indices(num_frames, self.num_segments, train=train, rng=rng, clip=clip,
                               num_clips=num_clips)


@dataclass(frozen=True)
class ViewSpec:
    """Preprocessing shared by training and testing (see `reskd.data.transforms`): `sizes` are
    the views' side lengths, largest first, each shrunk with `shrink` from one crop of
    `crop_size` (0: sizes[0])."""
    sizes: tuple[int, ...]
    crop_size: int = 0
    shrink: str = "bilinear"
    short_side_ratio: float = 256 / 224
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    flip: bool = True
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    downsample_to: int = 0  # > 0: the crop keeps only this many pixels a side (Figure 1a)

    def record(self) -> dict:
        """What a checkpoint stores (`"views"`) so that every later use makes the model's test
        views as its training views were made; `size` is the model's own (the last size)."""
        return {"size": self.sizes[-1], "crop_size": self.crop_size or self.sizes[0],
                "shrink": self.shrink, "short_side_ratio": self.short_side_ratio,
                "downsample_to": self.downsample_to, "mean": list(self.mean),
                "std": list(self.std)}


class RecipeAssumedWarning(UserWarning):
    """A checkpoint made before view recipes were recorded: its test views are guessed."""


def checkpoint_views(ckpt: dict, path: str | Path = "checkpoint") -> ViewSpec:
    """The test-view recipe of a checkpoint's model: its recorded `"views"`, or for a checkpoint
    made before they were recorded, views resized straight to its size with antialiasing (how
    reskd tested every model then), with a `RecipeAssumedWarning` saying so."""
    views = ckpt.get("views")
    if views is None:
        size, s = ckpt["size"], ckpt["sampling"]
        downsample_to = ckpt.get("config", {}).get("data", {}).get("downsample_to", 0)
        warnings.warn(
            f"{path} records no view recipe (made before reskd recorded one); assuming its "
            f"test views are the frames resized straight to {size} px with antialiasing (short "
            f"side {round(size * s['short_side_ratio'])}, crop {size}), as reskd tested every "
            f"model then. A student distilled back then was trained on its teacher's crop "
            f"shrunk bilinearly: retrain it to test it on views made as in training.",
            RecipeAssumedWarning, stacklevel=2)
        return ViewSpec(sizes=(size,), crop_size=size, shrink="antialias",
                        short_side_ratio=s["short_side_ratio"], mean=tuple(ckpt["mean"]),
                        std=tuple(ckpt["std"]), downsample_to=downsample_to)
    return ViewSpec(sizes=(views["size"],), crop_size=views["crop_size"], shrink=views["shrink"],
                    short_side_ratio=views["short_side_ratio"], mean=tuple(views["mean"]),
                    std=tuple(views["std"]), downsample_to=views["downsample_to"])


class VideoDataset(Dataset):
    """Video files or raw-frame folders listed in `entries`, relative to `root`."""

    def __init__(self, entries: list[Entry], root: str | Path, *, sampling: Sampling,
                 views: ViewSpec, train: bool, num_classes: int, format: str = "video",
                 frame_template: str = "img_{:05d}.jpg", multi_label: bool = False,
                 test_clips: int = 1, test_crops: int = 1, seed: int = 0,
                 cache_decoded: bool = False, multi_label_loss: str = "sample"):
        self.entries = entries
        self.root = Path(root)
        self.sampling = sampling
        self.views = views
        self.train = train
        self.num_classes = num_classes
        self.format = format
        self.frame_template = frame_template
        self.multi_label = multi_label
        self.multi_label_loss = multi_label_loss
        self.test_clips = test_clips
        self.test_crops = test_crops
        self.seed = seed
        self.epoch = 0
        # Keep every decoded video in memory, shared by every dataset of the process (and
        # inherited by forked loader workers). For small datasets read many times, such as the
        # demo's three runs: each video is decoded once, later epochs and runs only transform.
        self.cache_decoded = cache_decoded

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Changes the training randomness; workers pick it up when the loader restarts them."""
        self.epoch = epoch

    def path(self, index: int) -> Path:
        return self.root / self.entries[index].path

    def read_clip(self, index: int, rng: np.random.Generator | None, clip: int = 0) -> np.ndarray:
        """Decodes clip `clip` of video `index`: (T, H, W, C) uint8."""
        entry = self.entries[index]

        def indices_for(n: int) -> np.ndarray:
            return self.sampling.indices(n, train=self.train, rng=rng, clip=clip,
                                         num_clips=1 if self.train else self.test_clips)

        if self.cache_decoded:
            key = str(self.path(index))
            if key not in DECODED:
                DECODED[key] = self._decode(index, entry, lambda n: np.arange(n))
            every = DECODED[key]
            frames = every[indices_for(len(every))]
        else:
            frames = self._decode(index, entry, indices_for)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise DecodeError(self.path(index), f"unexpected frame shape {frames.shape}")
        return frames

    def _decode(self, index: int, entry: Entry, indices_for) -> np.ndarray:
        if self.format == "rawframes":
            return read_frame_folder(self.path(index), entry.num_frames or 0, indices_for,
                                     self.frame_template)[0]
        return decode_video(self.path(index), indices_for)[0]

    def label(self, index: int, rng: np.random.Generator | None) -> torch.Tensor:
        """Class index (N,) for single-label lists and multi-label training the authors' way (one
        of the video's labels drawn per sample, softmax CE); a multi-hot (K,) target for
        multi-label testing and for multi_label_loss="bce" training."""
        labels = self.entries[index].labels
        if self.multi_label and (not self.train or self.multi_label_loss == "bce"):
            target = torch.zeros(self.num_classes)
            target[list(labels)] = 1.0
            return target
        if rng is not None and len(labels) > 1:
            return torch.tensor(labels[int(rng.integers(len(labels)))], dtype=torch.int64)
        return torch.tensor(labels[0], dtype=torch.int64)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """`key` is an index, or (epoch, index) from `EpochSampler` (persistent workers)."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        if self.train:
            return self._train_item(index, epoch)
        return self._test_item(index)

    def _train_item(self, index: int, epoch: int) -> dict:
        rng = np.random.default_rng((self.seed, epoch, index))
        skipped = []
        for _ in range(MAX_REPLACEMENTS + 1):
            try:
                frames = self.read_clip(index, rng)
                break
            except DecodeError as e:
                skipped.append(f"{e.path}\t{e.reason}")
                index = int(rng.integers(len(self.entries)))
        else:
            raise DecodeError(self.root, f"{MAX_REPLACEMENTS + 1} videos in a row failed to "
                              f"decode; last: {skipped[-1]}. Run `reskd data check` on the list.")
        v = self.views
        views = transforms.train_views(frames, v.sizes, short_side_ratio=v.short_side_ratio,
                                       scales=v.scales, flip=v.flip, mean=v.mean, std=v.std,
                                       rng=rng, crop_size=v.crop_size, shrink_filter=v.shrink,
                                       downsample_to=v.downsample_to)
        return {"views": views, "label": self.label(index, rng), "index": index,
                "skipped": "\n".join(skipped)}

    def _test_item(self, index: int) -> dict:
        v = self.views
        size = v.sizes[0]
        clips = []
        failed = ""
        try:
            for clip in range(self.test_clips):
                frames = self.read_clip(index, None, clip)
                clips.append(transforms.test_views(frames, size, short_side_ratio=v.short_side_ratio,
                                                   crops=self.test_crops, mean=v.mean, std=v.std,
                                                   crop_size=v.crop_size, shrink_filter=v.shrink,
                                                   downsample_to=v.downsample_to))
            views = torch.cat(clips)  # (clips * crops, T, C, size, size)
        except DecodeError as e:
            failed = f"{e.path}\t{e.reason}"
            n = self.test_clips * self.test_crops
            views = torch.zeros(n, self.sampling.frames, 3, size, size)
        return {"views": [views], "label": self.label(index, None), "index": index,
                "failed": failed}


def _decode_all(path: str) -> tuple[str, np.ndarray | None]:
    try:
        return path, decode_video(path, lambda n: np.arange(n))[0]
    except DecodeError:
        return path, None  # left for the dataset to meet, count and report


def prefetch_decoded(datasets: list[VideoDataset], workers: int = 2) -> int:
    """Decodes every video of `datasets` into the shared cache with a process pool. -> count.

    Only for video lists with `cache_decoded`; saves the first epoch's serial decoding.
    """
    import multiprocessing

    paths = sorted({str(d.path(i)) for d in datasets if d.cache_decoded and d.format == "video"
                    for i in range(len(d))} - DECODED.keys())
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(max(1, workers)) as pool:
        for path, frames in pool.imap_unordered(_decode_all, paths, chunksize=32):
            if frames is not None:
                DECODED[path] = frames
    return len(paths)


def missing_files(entries: list[Entry], root: str | Path, format: str = "video") -> list[str]:
    """Paths in `entries` that do not exist under `root` (files for videos, folders for frames)."""
    root = Path(root)
    check = Path.is_dir if format == "rawframes" else Path.is_file
    return [e.path for e in entries if not check(root / e.path)]


def default_workers() -> int:
    """Loader worker processes sized to the machine: one per core beyond the first, at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


class EpochSampler(Sampler):
    """Wraps a sampler with `set_epoch` (e.g. DistributedSampler) and yields (epoch, index), so
    persistent loader workers know the epoch without being restarted."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def make_loader(dataset: VideoDataset, *, batch_size: int, workers: int,
                sampler: Sampler, drop_last: bool = False) -> DataLoader:
    """A DataLoader over `dataset` in `sampler` order; workers = -1 picks `default_workers()`.

    Workers are persistent (no restart per epoch).
    """
    workers = default_workers() if workers < 0 else workers
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=drop_last, persistent_workers=workers > 0,
                      prefetch_factor=4 if workers else None, worker_init_fn=_one_thread)


def _one_thread(_: int) -> None:
    # Loader workers resize small frames; intra-op threads there only fight the trainer's.
    torch.set_num_threads(1)

"""The video `Dataset` and its loader: annotation entries in, normalised views and labels out.

A training sample carries its views by name, cut from the same crop and flip
(`Views.train`): "student" (the model being trained) and, when distilling, "teacher".
A test sample carries "views": every test view of the video (`test_views_of_video`), all its
clips from one decode of the union of their frames. Frames are decoded at the cost of the
frames kept (`decoders.decode_video`) and shrunk in uint8 to the views' working short side
(`Views.short_side`) before any float conversion.
Randomness comes from `numpy.random.default_rng((seed, epoch, index))`, so a sample does not
depend on worker count or order (a resumed run sees the same clips).

A video that cannot be decoded during training is replaced by another random sample and
reported through the batch's "skipped" field (the trainer counts them); during testing it is
returned with `failed` set so the evaluator lists it instead of dropping it silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from reskd.data.decoders import (
    DecodeError,
    IndexFn,
    decode_video,
    read_frame_folder,
    shrink_to_short_side,
)
from reskd.data.formats import Entry
from reskd.data.pool import StopFn, pool_map
from reskd.data.sampling import Sampling
from reskd.data.transforms import Views

MAX_REPLACEMENTS = 10

# path -> every frame (T, H, W, C) uint8 of that video; filled by datasets with cache_decoded
DECODED: dict[str, np.ndarray] = {}


class VideoDataset(Dataset):
    """Video files or raw-frame folders listed in `entries`, relative to `root`."""

    def __init__(self, entries: list[Entry], root: str | Path, *, sampling: Sampling,
                 views: Views, train: bool, num_classes: int, format: str = "video",
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
        self.short_side = views.short_side(train=train)

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        """Changes the training randomness; workers pick it up when the loader restarts them."""
        self.epoch = epoch

    def path(self, index: int) -> Path:
        return self.root / self.entries[index].path

    def read_frames(self, index: int, indices_for: IndexFn) -> np.ndarray:
        """Frames `indices_for(frame count)` of video `index`: (T, H, W, C) uint8, those larger
        than the views' working short side shrunk to it (`Views.short_side`)."""
        entry, path = self.entries[index], self.path(index)
        if self.cache_decoded:  # the cache holds decoded sizes: datasets of other views share it
            if str(path) not in DECODED:
                DECODED[str(path)] = read_frames(path, np.arange, self.format, entry.num_frames,
                                                 self.frame_template)
            every = DECODED[str(path)]
            frames = shrink_to_short_side(every[indices_for(len(every))], self.short_side)
        else:
            frames = read_frames(path, indices_for, self.format, entry.num_frames,
                                 self.frame_template, short_side=self.short_side)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise DecodeError(path, f"unexpected frame shape {frames.shape}")
        return frames

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
                frames = self.read_frames(index, lambda n: self.sampling.train_indices(n, rng))
                break
            except DecodeError as e:
                skipped.append(f"{e.path}\t{e.reason}")
                index = int(rng.integers(len(self.entries)))
        else:
            raise DecodeError(self.root, f"{MAX_REPLACEMENTS + 1} videos in a row failed to "
                              f"decode; last: {skipped[-1]}. Run `reskd data check` on the list.")
        # uint8 across the process boundary; the views are made on the model's device
        return {"clip": self.views.train_crop(frames, rng), "label": self.label(index, rng),
                "index": index, "skipped": "\n".join(skipped)}

    def _test_item(self, index: int) -> dict:
        failed = ""
        try:
            views = test_views_of_video(lambda f: self.read_frames(index, f),
                                        sampling=self.sampling, views=self.views,
                                        clips=self.test_clips, crops=self.test_crops)
        except DecodeError as e:
            failed = f"{e.path}\t{e.reason}"
            size, n = self.views.sizes[-1], self.test_clips * self.test_crops
            views = torch.zeros(n, self.sampling.frames, 3, size, size)
        return {"views": views, "label": self.label(index, None), "index": index,
                "failed": failed}


def read_frames(path: Path, indices_for: IndexFn, format: str = "video", num_frames: int = 0,
                frame_template: str = "img_{:05d}.jpg", short_side: int = 0) -> np.ndarray:
    """Frames of a video file or (format "rawframes") a frame folder of `num_frames` frames,
    shrunk in uint8 to `short_side` where larger (0: as decoded)."""
    if format == "rawframes":
        return read_frame_folder(path, num_frames or 0, indices_for, frame_template,
                                 short_side=short_side)[0]
    return decode_video(path, indices_for, short_side=short_side)[0]


def test_views_of_video(read: Callable[[IndexFn], np.ndarray], *, sampling: Sampling,
                        views: Views, clips: int, crops: int) -> torch.Tensor:
    """Every test view of one video from one decode pass: `read(indices_for)` returns the
    frames of all `clips` temporal clips at once, each clip gives `crops` spatial views as
    the run's recipe makes them. -> (clips * crops, T, C, S, S), clip-major.

    The one copy of the test-view recipe: `reskd test` (through `VideoDataset`), `reskd
    predict` and the analysis commands all call it. Raises `DecodeError`."""
    frames = read(lambda n: sampling.test_indices(n, clips))  # (clips * T, H, W, C)
    return torch.cat([views.test(c, crops) for c in np.split(frames, clips)])


def _decode_all(path: str) -> tuple[str, np.ndarray | None]:
    try:
        return path, decode_video(path, lambda n: np.arange(n))[0]
    except DecodeError:
        return path, None  # left for the dataset to meet, count and report


def prefetch_decoded(datasets: list[VideoDataset], workers: int = 2,
                     should_stop: StopFn | None = None) -> int:
    """Decodes every video of `datasets` into the shared cache with a process pool. -> count.

    Only for video lists with `cache_decoded`; saves the first epoch's serial decoding.
    `should_stop()` (a signal's name, or None) is polled while the pool works: a stop raises
    `Stopped` within a second, keeping what was decoded (the cache is in memory only).
    """
    paths = sorted({str(d.path(i)) for d in datasets if d.cache_decoded and d.format == "video"
                    for i in range(len(d))} - DECODED.keys())
    for _, (path, frames) in pool_map(_decode_all, paths, workers=max(1, workers),
                                      should_stop=should_stop, chunksize=32,
                                      what="decoding videos into memory (data.cache_decoded)",
                                      kept="nothing was trained or saved"):
        if frames is not None:
            DECODED[path] = frames
    return len(paths)


def missing_files(entries: list[Entry], root: str | Path, format: str = "video") -> list[str]:
    """Paths in `entries` that do not exist under `root` (files for videos, folders for frames)."""
    root = Path(root)
    check = Path.is_dir if format == "rawframes" else Path.is_file
    return [e.path for e in entries if not check(root / e.path)]


def default_workers() -> int:
    """Loader worker processes sized to the machine: the cores of this node shared by its ranks
    (`LOCAL_WORLD_SIZE`, set by torchrun), one per core beyond each rank's first, at most 8."""
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(0, min(8, (os.cpu_count() or 1) // ranks - 1))


# Batches a process's loader workers may hold ready (prefetch_factor x workers), in bytes: the
# samples sit in shared memory until the step takes them.
PREFETCH_BYTES = 1 << 30


def sample_bytes(dataset: VideoDataset) -> int:
    """Bytes of one loaded sample: the uint8 training crop, or the float32 test views."""
    frames, v = dataset.sampling.frames, dataset.views
    if dataset.train:
        side = v.crop_size or v.sizes[0]
        return frames * 3 * side * side
    return 4 * dataset.test_clips * dataset.test_crops * frames * 3 * v.sizes[-1] ** 2


def make_loader(dataset: VideoDataset, *, batch_size: int, workers: int,
                sampler: Sampler, drop_last: bool = False,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader over `dataset` in `sampler` order; workers = -1 picks `default_workers()`.

    Workers are persistent (no restart per epoch); each keeps up to 4 batches ready, fewer
    when all workers' ready batches would pass PREFETCH_BYTES (at 16 frames of 224 px, batch
    32: one each). `pin_memory` (CUDA) lets the step's copies to the device run asynchronously.
    """
    workers = default_workers() if workers < 0 else workers
    prefetch = None
    if workers:
        prefetch = max(1, min(4, PREFETCH_BYTES // max(1, workers * batch_size
                                                       * sample_bytes(dataset))))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=drop_last, persistent_workers=workers > 0,
                      prefetch_factor=prefetch, worker_init_fn=_one_thread,
                      pin_memory=pin_memory)


def _one_thread(_: int) -> None:
    # Loader workers resize small frames; intra-op threads there only fight the trainer's.
    torch.set_num_threads(1)

"""Frame sampling: which frame indices make one clip (one temporal view) of a video.

Pure functions of the frame count, all returning int64 indices in [0, num_frames), and
`Sampling`, the rule of one run (TSN segments or dense windows) as a checkpoint records it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reskd.config import DataConfig


def segment_indices(num_frames: int, num_segments: int, *, train: bool,
                    rng: np.random.Generator | None = None, clip: int = 0,
                    num_clips: int = 1) -> np.ndarray:
    """TSN sparse sampling: one frame from each of `num_segments` equal segments. -> (num_segments,)

    Training takes a uniformly random frame inside each segment. Testing takes, for temporal
    view `clip` of `num_clips`, the frame at fraction (clip + 0.5) / num_clips of each segment,
    so one view reads segment centres and several views spread evenly inside the segments.
    Videos shorter than `num_segments` frames repeat frames (segments are shorter than one
    frame, so neighbouring segments land on the same frame): the clip keeps its length and
    its frames stay in temporal order.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be at least 1, got {num_segments}")
    if not 0 <= clip < num_clips:
        raise ValueError(f"clip must be in [0, {num_clips}), got {clip}")
    if train:
        if rng is None:
            raise ValueError("training sampling needs an rng")
        offsets = rng.random(num_segments)
    else:
        offsets = np.full(num_segments, (clip + 0.5) / num_clips)
    segment_length = num_frames / num_segments
    indices = np.floor((np.arange(num_segments) + offsets) * segment_length).astype(np.int64)
    return np.clip(indices, 0, num_frames - 1)


def dense_indices(num_frames: int, clip_len: int, frame_interval: int, *, train: bool,
                  rng: np.random.Generator | None = None, clip: int = 0,
                  num_clips: int = 1) -> np.ndarray:
    """Dense sampling (SlowOnly 8x8x1, Swin 32x2x1): `clip_len` frames `frame_interval` apart. ->
    (clip_len,)

    Training starts the window at a random frame; testing places `num_clips` windows evenly
    over the video (centred when one). Windows longer than the video wrap around (loop the
    video), as mmaction2's SampleFrames does.
    """
    if min(num_frames, clip_len, frame_interval) < 1:
        raise ValueError(f"num_frames, clip_len and frame_interval must be >= 1, got "
                         f"{num_frames}, {clip_len}, {frame_interval}")
    span = clip_len * frame_interval
    room = max(num_frames - span, 0)
    if train:
        if rng is None:
            raise ValueError("training sampling needs an rng")
        start = int(rng.integers(0, room + 1))
    else:
        # mmaction2's SampleFrames test offsets: window k starts at (k + 0.5) * step.
        step = (num_frames - span + 1) / num_clips
        start = int((clip + 0.5) * step) if num_frames >= span else 0
    indices = start + np.arange(clip_len) * frame_interval
    return (indices % num_frames).astype(np.int64)


_DATA = DataConfig()  # the defaults below are the config's (one home: reskd.config)


@dataclass(frozen=True)
class Sampling:
    """How one clip is read: TSN segments (clip_len 0) or dense windows (clip_len frames,
    frame_interval apart)."""
    num_segments: int = _DATA.num_segments
    clip_len: int = _DATA.clip_len
    frame_interval: int = _DATA.frame_interval

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

    def train_indices(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        """One random training clip. -> (frames,)"""
        return self.indices(num_frames, train=True, rng=rng, clip=0, num_clips=1)

    def test_indices(self, num_frames: int, num_clips: int) -> np.ndarray:
        """Every test clip of a video, clip after clip, for one decode pass. -> (num_clips *
        frames,)"""
        return np.concatenate([self.indices(num_frames, train=False, rng=None, clip=c,
                                            num_clips=num_clips) for c in range(num_clips)])

    @classmethod
    def from_record(cls, record: dict) -> Sampling:
        """From a checkpoint's "sampling" record."""
        return cls(record["num_segments"], record["clip_len"], record["frame_interval"])

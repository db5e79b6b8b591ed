"""Decoding: video files through PyAV and raw-frame folders through Pillow, to (T, H, W, C) uint8.

Only the frames a sampler asks for are converted to arrays. Video files are decoded front to
back and decoding stops after the last needed frame: on the short, keyframe-sparse clips typical
of action datasets that beats seeking (REFERENCE: 725 ms to seek 8 frames vs 150 ms decoding all
of one 720p clip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

IndexFn = Callable[[int], np.ndarray]  # total frame count -> frame indices to read


class DecodeError(RuntimeError):
    """A video or frame folder that cannot be read; `path` names it."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot decode {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _count_frames(path: Path) -> int:
    """Frame count from the container header, or by demuxing packets when the header has none."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return stream.frames
        return sum(1 for p in container.demux(stream) if p.size > 0)


def decode_video(path: str | Path, indices_for: IndexFn) -> tuple[np.ndarray, np.ndarray]:
    """Decodes the frames `indices_for(total_frames)` selects. Returns (frames (T, H, W, C) uint8, indices).

    Indices may repeat (short videos); indices past the last decodable frame (header frame
    counts that lie, truncated files) read the last frame that did decode.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise DecodeError(path, "file not found")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(path, "no video stream (audio-only or not a video)")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            total = stream.frames if stream.frames > 0 else None
            if total is None:
                total = _count_frames(path)
            if total <= 0:
                raise DecodeError(path, "no frames")
            indices = np.asarray(indices_for(total), dtype=np.int64)
            wanted = set(indices.tolist())
            last_wanted = int(indices.max())
            picked: dict[int, np.ndarray] = {}
            i, frame = -1, None
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    picked[i] = frame.to_ndarray(format="rgb24")
                if i >= last_wanted:
                    break
            if frame is not None and i < last_wanted and i not in picked:
                picked[i] = frame.to_ndarray(format="rgb24")  # the file ended early
    except DecodeError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, OSError) as e:
        raise DecodeError(path, f"{type(e).__name__}: {e}") from e
    if not picked:
        raise DecodeError(path, "no decodable frame among the ones sampled")
    # (T, H, W, C): a missing index reads the closest decoded frame before it.
    keys = np.array(sorted(picked))
    frames = []
    for i in indices.tolist():
        j = keys[max(0, np.searchsorted(keys, i, side="right") - 1)]
        frames.append(picked[int(j)])
    return np.stack(frames), indices


def read_frame_folder(folder: str | Path, num_frames: int, indices_for: IndexFn,
                      template: str = "img_{:05d}.jpg") -> tuple[np.ndarray, np.ndarray]:
    """Reads frames of an extracted-frame folder (1-based file names). Returns (T, H, W, C) uint8."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise DecodeError(folder, "frame folder not found")
    if num_frames <= 0:
        raise DecodeError(folder, f"list says it has {num_frames} frames")
    indices = np.asarray(indices_for(num_frames), dtype=np.int64)
    frames = []
    cache: dict[int, np.ndarray] = {}
    for i in indices.tolist():
        if i not in cache:
            file = folder / template.format(i + 1)
            try:
                with Image.open(file) as im:
                    cache[i] = np.asarray(im.convert("RGB"))
            except (OSError, ValueError) as e:
                raise DecodeError(file, f"{type(e).__name__}: {e}") from e
        frames.append(cache[i])
    return np.stack(frames), indices

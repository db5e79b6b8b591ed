"""Decoding: video files through PyAV and raw-frame folders through Pillow, to (T, H, W, C) uint8.

Only the frames a sampler asks for are converted to arrays. Video files are decoded front to
back and decoding stops after the last needed frame: on the short, keyframe-sparse clips typical
of action datasets that beats seeking (an earlier measurement on this project's machines, not kept as a bench:
725 ms to seek 8 frames vs 150 ms decoding all of one 720p clip).

Every valid oddity decodes to (T, H, W, 3) uint8 RGB: odd frame sizes, grayscale and other pixel
formats (converted by FFmpeg's swscale), variable frame rate (frames are counted, timestamps are
not used), sparse keyframes (no seeking), one-frame and short videos (indices repeat). Anything
that cannot be read raises `DecodeError` naming the file and the reason, never another error:
the dataset counts and reports those (training) or lists them (testing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

IndexFn = Callable[[int], np.ndarray]  # total frame count -> frame indices to read

# A file that ends before the last sampled frame is truncated when it decodes fewer than this
# fraction of the frames its header claims; a smaller shortfall is a header that rounds (some
# muxers count a frame or two that never decode) and reads the last decoded frame instead.
MIN_DECODED_FRACTION = 0.9


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

    Indices may repeat (short videos); indices past the last decodable frame (a header frame
    count slightly too high) read the last frame that did decode; a file that decodes fewer
    than MIN_DECODED_FRACTION of the frames its header claims is truncated: DecodeError.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise DecodeError(path, "file not found")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    i, claimed = -1, 0  # last decoded frame index, header frame count (0: none)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(path, "no video stream (audio-only or not a video)")
            stream = container.streams.video[0]
            # One decoder thread: loader workers already decode videos in parallel, and on
            # short clips codec thread start-up dominates (measured here: 18 vs 32 ms per
            # 8-frame 64x64 clip with FFmpeg's default threads, 52 ms with "AUTO").
            stream.thread_count = 1
            claimed = stream.frames
            total = stream.frames if stream.frames > 0 else None
            if total is None:
                total = _count_frames(path)
            if total <= 0:
                raise DecodeError(path, "no frames")
            indices = np.asarray(indices_for(total), dtype=np.int64)
            wanted = set(indices.tolist())
            last_wanted = int(indices.max())
            picked: dict[int, np.ndarray] = {}
            frame = None
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    picked[i] = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                if i >= last_wanted:
                    break
            if i < last_wanted:  # the file ended before the last sampled frame
                if stream.frames > 0 and i + 1 < MIN_DECODED_FRACTION * stream.frames:
                    raise DecodeError(path, f"truncated or corrupt: decodes {i + 1} of the "
                                            f"{stream.frames} frames its header claims")
                if frame is not None and i not in picked:
                    picked[i] = frame.to_ndarray(format="rgb24")
    except DecodeError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # FFmpeg, PyAV and numpy errors alike: this file cannot be read
        where = (f"truncated or corrupt: decode error after {i + 1} of the {claimed} frames its "
                 f"header claims: " if i >= 0 and claimed > 0 else "")
        raise DecodeError(path, f"{where}{type(e).__name__}: {e}") from e
    if not picked:
        raise DecodeError(path, "no decodable frame among the ones sampled")
    sizes = {f.shape for f in picked.values()}
    if len(sizes) > 1:
        raise DecodeError(path, f"frame size changes within the video ({sorted(sizes)})")
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
                    cache[i] = np.asarray(im.convert("RGB"))  # (H, W, 3), grayscale too
            except MemoryError:
                raise
            except Exception as e:  # missing, truncated or not an image
                raise DecodeError(file, f"{type(e).__name__}: {e}") from e
        frames.append(cache[i])
    if len({f.shape for f in frames}) > 1:
        raise DecodeError(folder, f"frame sizes differ: {sorted({f.shape for f in frames})}")
    return np.stack(frames), indices

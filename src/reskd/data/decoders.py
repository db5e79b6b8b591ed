"""Decoding: video files through PyAV and raw-frame folders through Pillow, to (T, H, W, C) uint8.

A video is decoded at the cost of the frames kept (`decode_video`). The wanted frame indices
are sorted and de-duplicated; the decoder decodes forward while the next wanted frame shares
the keyframe it is on, and seeks to the keyframe at or before the next wanted frame when that
keyframe lies ahead; it then decodes forward to the exact frame. Only wanted frames are
converted to arrays. On a long video this costs, per wanted frame, the stretch from its keyframe
to it, not the whole video up to the last wanted frame.

**How a frame index maps to a timestamp.** Frame i is the i-th frame in presentation order,
the order in which a decoder returns frames, and so the frame that decoding the file from the
start and counting would give. Before decoding, the packet table of the video stream is read
(`frame_table`: demuxing only, no decoding; measured at 30 ms of CPU for a 2-minute 720p
H.264 file against 5 s to decode it front to back, `bench/bench_decode.py`'s clip). Frame i's
presentation timestamp (pts) is the i-th smallest packet
pts, and its keyframe is the last keyframe packet at or before it in that order. No timestamp
is computed from a frame rate, so variable frame rate works as well as constant, and B-frames
(pts order differs from file order) are handled. What is assumed: every packet decodes to one
frame carrying that packet's pts, and decoding from a keyframe packet reproduces every frame at
or after it in presentation order exactly (closed GOPs, or open GOPs whose keyframes are
recovery points, as encoders mark them). Checked while decoding: the seek lands on a keyframe
at or before the target, every decoded frame's pts is in the table, and frames come in
consecutive order. A file that breaks any of these (a packet without a pts, two packets with
one pts, a header frame count that differs from the packet count, a seek that lands after the
target or returns nothing, a missing or unknown frame) is decoded front to back instead, as
before this module seeked: the frames are exact, only slower. Each such file is counted in
`SEQUENTIAL_FALLBACKS` and reported once per process with a `SeekFallbackWarning`.

Frames are made small before anything else (`short_side`): a frame larger than the short side
the views need is shrunk in uint8, right after it is decoded, with the bilinear antialiased
filter the views' float path uses (`reskd.data.transforms.resize_short_side`), so the views'
own short-side resize becomes a no-op. Pixel values then differ from resizing in float by the
rounding to uint8 (at most 1 of 255). Frames at or below the short side are left as they are,
so videos already at or below the working size (the demo's, a prepared copy) give exactly the
frames and views they gave before. A sample's memory is its kept frames at that size, plus one
full-size frame at a time.

Every valid oddity decodes to (T, H, W, 3) uint8 RGB: odd frame sizes, grayscale and other pixel
formats (converted by FFmpeg's swscale), variable frame rate, sparse keyframes, one-frame and
short videos (indices repeat). Anything that cannot be read raises `DecodeError` naming the file
and the reason, never another error: the dataset counts and reports those (training) or lists
them (testing).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IndexFn = Callable[[int], np.ndarray]  # total frame count -> frame indices to read

# A file that ends before the last sampled frame is truncated when it decodes fewer than this
# fraction of the frames its header claims; a smaller shortfall is a header that rounds (some
# muxers count a frame or two that never decode) and reads the last decoded frame instead.
MIN_DECODED_FRACTION = 0.9

# path -> why seeking was not trusted there and the file was decoded front to back (this
# process; loader workers keep their own and report with SeekFallbackWarning).
SEQUENTIAL_FALLBACKS: Counter = Counter()
# "seeks" and "frames_decoded" by the exact path in this process (benchmarks and tests read it)
STATS: Counter = Counter()


class DecodeError(RuntimeError):
    """A video or frame folder that cannot be read; `path` names it."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot decode {path}: {reason}")
        self.path = str(path)
        self.reason = reason


class SeekFallbackWarning(UserWarning):
    """A video whose seeking misbehaves was decoded front to back (exact frames, slower)."""


class _SeekMisbehaves(Exception):
    """The exact path met something it cannot trust; the message says what."""


@dataclass(frozen=True)
class FrameTable:
    """The packet table of a video stream in presentation order.

    `pts` (N,) sorted presentation timestamps, one per frame; `keys` (K,) the indices of the
    keyframes among them, ascending; `packets` the count of non-empty packets; `problem` why
    the table cannot be trusted for seeking, or "" when it can.
    """
    pts: np.ndarray
    keys: np.ndarray
    packets: int
    problem: str = ""

    def key_before(self, frames: np.ndarray) -> np.ndarray:
        """The keyframe index at or before each frame index. (W,) -> (W,)"""
        return self.keys[np.searchsorted(self.keys, frames, side="right") - 1]


def frame_table(container, stream) -> FrameTable:
    """Demuxes `stream` (no decoding) into its `FrameTable`; leaves the container at the end."""
    pts, key = [], []
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packets at the end, and empty packets
            continue
        pts.append(packet.pts)
        key.append(packet.is_keyframe)
    packets = len(pts)
    empty = np.zeros(0, dtype=np.int64)
    if any(p is None for p in pts):
        return FrameTable(empty, empty, packets, "a packet has no timestamp")
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    sorted_pts = np.asarray(pts, dtype=np.int64)[order]
    keys = np.flatnonzero(np.asarray(key, dtype=bool)[order])
    problem = ""
    if packets == 0:
        problem = "no packets"
    elif np.any(np.diff(sorted_pts) == 0):
        problem = "two packets share a timestamp"
    elif len(keys) == 0 or keys[0] != 0:
        problem = "the first frame is not a keyframe"
    elif 0 < stream.frames != packets:
        problem = f"the header claims {stream.frames} frames but the stream has {packets} packets"
    return FrameTable(sorted_pts, keys, packets, problem)


def _count_frames(path: Path) -> int:
    """Frame count from the container header, or by demuxing packets when the header has none."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return stream.frames
        return sum(1 for p in container.demux(stream) if p.size > 0)


def shrink_to_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """(T, H, W, C) uint8 -> (T, H', W', C) uint8 with min(H', W') = short_side, when
    min(H, W) > short_side; otherwise `frames` as they are. The filter and output size are the
    views' (`transforms.resize_short_side`), applied in uint8 (rounded: within 1 of float)."""
    if short_side <= 0 or min(frames.shape[1:3]) <= short_side:
        return frames
    import torch

    from reskd.data.transforms import resize_short_side

    # (T, C, H, W), NHWC memory
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return resize_short_side(x, short_side).permute(0, 2, 3, 1).contiguous().numpy()


def _to_rgb(frame, short_side: int) -> np.ndarray:
    """One decoded frame -> (H, W, 3) uint8, shrunk to `short_side` when larger."""
    rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3)
    return shrink_to_short_side(rgb[None], short_side)[0]


def decode_video(path: str | Path, indices_for: IndexFn, *, short_side: int = 0,
                 seek: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Decodes the frames `indices_for(total_frames)` selects. Returns (frames (T, H, W, C) uint8,
    indices).

    `short_side` > 0 shrinks frames whose short side is larger to it (see the module
    docstring); `seek=False` decodes front to back (the path before seeking, for benchmarks).
    Indices may repeat (short videos); indices past the last decodable frame (a header frame
    count slightly too high) read the last frame that did decode; a file that decodes fewer
    than MIN_DECODED_FRACTION of the frames its header claims is truncated: DecodeError.
    `indices_for` is called once.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise DecodeError(path, "file not found")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    indices, fallback = None, ""  # fallback: why seeking was not trusted
    if seek:
        try:
            with av.open(str(path)) as container:
                stream = _video_stream(path, container)
                table = frame_table(container, stream)
                if table.problem:
                    fallback = table.problem
                else:
                    total = stream.frames if stream.frames > 0 else table.packets
                    indices = np.asarray(indices_for(total), dtype=np.int64)
                    wanted = np.unique(indices)  # sorted
                    # past the last frame: the sequential path's rule (the last decoded frame)
                    if len(wanted) and 0 <= wanted[0] and wanted[-1] < len(table.pts):
                        picked = _decode_exact(container, stream, table, wanted, short_side)
                        return _assemble(path, picked, indices), indices
        except (DecodeError, MemoryError):
            raise
        except _SeekMisbehaves as e:
            fallback = str(e)
        except Exception as e:  # FFmpeg errors: the sequential path below judges the file
            fallback = f"{type(e).__name__} while seeking: {e}"
    try:
        container = av.open(str(path))
    except Exception as e:  # not a media file, or its index is cut off
        raise DecodeError(path, f"{type(e).__name__}: {e}") from e
    with container:
        stream = _video_stream(path, container)
        frames, indices = _decode_sequential(path, container, stream, indices_for, indices,
                                             short_side)
    if fallback:
        _report_fallback(path, fallback)
    return frames, indices


def _video_stream(path: Path, container):
    """The first video stream, set to decode in one thread. Raises DecodeError when none."""
    if not container.streams.video:
        raise DecodeError(path, "no video stream (audio-only or not a video)")
    stream = container.streams.video[0]
    # One decoder thread: loader workers already decode videos in parallel, and on short clips
    # codec thread start-up dominates (measured here: 18 vs 32 ms per 8-frame 64x64 clip with
    # FFmpeg's default threads, 52 ms with "AUTO").
    stream.thread_count = 1
    return stream


def _report_fallback(path: Path, reason: str) -> None:
    if str(path) not in SEQUENTIAL_FALLBACKS:
        warnings.warn(f"{path}: {reason}; decoded it front to back instead of seeking (exact "
                      f"frames, slower; `reskd data prepare` writes a copy that seeks)",
                      SeekFallbackWarning, stacklevel=3)
    SEQUENTIAL_FALLBACKS[str(path)] += 1


def _decode_exact(container, stream, table: FrameTable, wanted: np.ndarray,
                  short_side: int) -> dict[int, np.ndarray]:
    """The frames `wanted` (sorted, unique, < len(table.pts)) by seeking and decoding forward.
    -> {frame index: (H, W, 3) uint8}. Raises _SeekMisbehaves when the file breaks an
    assumption of the module docstring."""
    keys = table.key_before(wanted)  # (W,) keyframe of each wanted frame
    picked: dict[int, np.ndarray] = {}
    w = 0  # the next wanted frame
    while w < len(wanted):
        # Seek to the keyframe of the next wanted frame (it lies past where decoding is).
        container.seek(int(table.pts[keys[w]]), stream=stream, backward=True)
        STATS["seeks"] += 1
        landed = cursor = -1  # frame index of the first packet after the seek; next frame due
        reseek = False
        for packet in container.demux(stream):
            if landed < 0:
                if packet.size == 0:
                    raise _SeekMisbehaves(f"seeking to frame {wanted[w]} returned no packets")
                landed = _index_of(table, packet.pts, "after a seek")
                if not packet.is_keyframe or landed > wanted[w]:
                    what = "" if packet.is_keyframe else ", not a keyframe"
                    raise _SeekMisbehaves(f"seeking to frame {wanted[w]} landed on frame "
                                          f"{landed}{what}")
                cursor = landed
            for frame in packet.decode():
                i = _index_of(table, frame.pts, "decoded")
                if i < landed:
                    continue  # a leading frame of an open GOP: not decodable from this keyframe
                if i != cursor:
                    raise _SeekMisbehaves(f"frame {cursor} was due after a seek, frame {i} came")
                if i == landed and not frame.key_frame:
                    raise _SeekMisbehaves(f"frame {i}, a keyframe in the index, does not "
                                          f"decode as one")
                cursor += 1
                STATS["frames_decoded"] += 1
                if i == wanted[w]:
                    picked[i] = _to_rgb(frame, short_side)
                    w += 1
                    if w == len(wanted):
                        return picked
                    reseek = keys[w] > cursor  # a keyframe lies between here and the next
                    if reseek:
                        break
            if reseek:
                break
        else:
            raise _SeekMisbehaves(f"the stream ended before frame {wanted[w]} after a seek")
    return picked


def _index_of(table: FrameTable, pts: int | None, what: str) -> int:
    """The frame index of presentation timestamp `pts`, which must be in the table."""
    i = int(np.searchsorted(table.pts, pts)) if pts is not None else len(table.pts)
    if i >= len(table.pts) or table.pts[i] != pts:
        raise _SeekMisbehaves(f"a {what} frame has pts {pts}, which is not in the packet table")
    return i


def _decode_sequential(path: Path, container, stream, indices_for: IndexFn,
                       indices: np.ndarray | None,
                       short_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Decodes front to back up to the last wanted frame, counting frames; `indices` when the
    caller already has them, else `indices_for(frame count)`. Raises DecodeError."""
    i, claimed = -1, stream.frames  # last decoded frame index, header frame count (0: none)
    try:
        if indices is None:
            total = stream.frames if stream.frames > 0 else _count_frames(path)
            if total <= 0:
                raise DecodeError(path, "no frames")
            indices = np.asarray(indices_for(total), dtype=np.int64)
        wanted = set(indices.tolist())
        last_wanted = int(indices.max())
        picked: dict[int, np.ndarray] = {}
        frame = None
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                picked[i] = _to_rgb(frame, short_side)
            if i >= last_wanted:
                break
        if i < last_wanted:  # the file ended before the last sampled frame
            if stream.frames > 0 and i + 1 < MIN_DECODED_FRACTION * stream.frames:
                raise DecodeError(path, f"truncated or corrupt: decodes {i + 1} of the "
                                        f"{stream.frames} frames its header claims")
            if frame is not None and i not in picked:
                picked[i] = _to_rgb(frame, short_side)
    except DecodeError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # FFmpeg, PyAV and numpy errors alike: this file cannot be read
        where = (f"truncated or corrupt: decode error after {i + 1} of the {claimed} frames its "
                 f"header claims: " if i >= 0 and claimed > 0 else "")
        raise DecodeError(path, f"{where}{type(e).__name__}: {e}") from e
    return _assemble(path, picked, indices), indices


def _assemble(path: Path, picked: dict[int, np.ndarray], indices: np.ndarray) -> np.ndarray:
    """(T, H, W, C) in `indices` order: a missing index reads the closest decoded frame before
    it."""
    if not picked:
        raise DecodeError(path, "no decodable frame among the ones sampled")
    sizes = {f.shape for f in picked.values()}
    if len(sizes) > 1:
        raise DecodeError(path, f"frame size changes within the video ({sorted(sizes)})")
    keys = np.array(sorted(picked))
    rows = keys[np.maximum(0, np.searchsorted(keys, indices, side="right") - 1)]
    return np.stack([picked[int(j)] for j in rows])


def read_frame_folder(folder: str | Path, num_frames: int, indices_for: IndexFn,
                      template: str = "img_{:05d}.jpg",
                      short_side: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reads frames of an extracted-frame folder (1-based file names). Returns (T, H, W, C) uint8,
    each frame shrunk to `short_side` when larger, as `decode_video` does."""
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
                    rgb = np.asarray(im.convert("RGB"))  # (H, W, 3), grayscale too
                cache[i] = shrink_to_short_side(rgb[None], short_side)[0]
            except MemoryError:
                raise
            except Exception as e:  # missing, truncated or not an image
                raise DecodeError(file, f"{type(e).__name__}: {e}") from e
        frames.append(cache[i])
    if len({f.shape for f in frames}) > 1:
        raise DecodeError(folder, f"frame sizes differ: {sorted({f.shape for f in frames})}")
    return np.stack(frames), indices

"""`reskd data extract` and `reskd data prepare`: a copy of a video list that is cheap to sample.

Long untrimmed videos (ActivityNet averages 117 s, FCVID 167 s) are expensive to sample even
with exact seeking: every kept frame costs the decode from its keyframe, and typical files put a
keyframe every 250 frames. Two routes write a copy once:

* `prepare_dataset` (`reskd data prepare`): each video re-encoded as H.264 at the working short
  side (256, when larger) with a keyframe every `keyint` frames (16, as mmaction2's re-encoded
  cache), no B-frames, crf 18, every frame kept in order (frame i of the copy is frame i of the
  original; the copy has a constant frame rate, the original's average), audio dropped. Writes
  OUT/videos/<path>.mp4 and OUT/<list name>, a video list (and copies the list's classes.txt).
  `bench/bench_decode.py` measures what
  it buys.
* `extract_dataset` (`reskd data extract`): each video as JPEG frames, short side resized, and a
  raw-frame list (the authors' route). Writes OUT/frames/<path>/img_00001.jpg ...

Both run a process pool, skip the videos already done (resumable) and build each output under a
hidden temporary name that is renamed when complete, so an interrupted run (Ctrl-C, SIGTERM,
a kill) never leaves a half-written video or folder that looks finished; the list is written last,
atomically. A signal stops the pool within a second (`reskd.data.pool`).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reskd.data.decoders import shrink_to_short_side
from reskd.data.formats import Entry, read_list, write_list
from reskd.data.pool import StopFn, pool_map

TEMPLATE = "img_{:05d}.jpg"


def _frame_folder(video_path: str) -> str:
    """videos/train/abc.mp4 -> videos/train/abc (the folder name in the raw-frame list)."""
    return str(Path(video_path).with_suffix(""))


def _prepared_name(video_path: str) -> str:
    """train/abc.mkv -> videos/train/abc.mp4 (the path in the prepared list)."""
    return str(Path("videos") / Path(video_path).with_suffix(".mp4"))


def extract_video(video: Path, folder: Path, *, short_side: int = 256, fps: float = 0.0,
                  quality: int = 95) -> int:
    """Writes every frame of `video` (or `fps` frames per second) into `folder`. -> frame count."""
    import av
    from PIL import Image

    if folder.is_dir():
        return len(list(folder.glob("img_*.jpg")))
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    count = 0
    with av.open(str(video)) as container:
        if not container.streams.video:
            raise ValueError(f"{video}: no video stream")
        stream = container.streams.video[0]
        next_time = 0.0
        for frame in container.decode(stream):
            if fps > 0:
                t = float(frame.time or 0.0)
                if t + 1e-6 < next_time:
                    continue
                next_time += 1.0 / fps
            image = frame.to_image()  # PIL RGB
            w, h = image.size
            scale = short_side / min(w, h)
            if scale != 1:
                image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                     Image.BILINEAR)
            count += 1
            image.save(tmp / TEMPLATE.format(count), quality=quality)
    if count == 0:
        shutil.rmtree(tmp)
        raise ValueError(f"{video}: no decodable frame")
    tmp.rename(folder)
    return count


def prepare_video(video: Path, dest: Path, *, short_side: int = 256, keyint: int = 16,
                  crf: int = 18) -> int:
    """Re-encodes `video` into `dest` (H.264 MP4): frames shrunk to `short_side` when larger
    (the views' filter, in uint8; the long side rounded to even for yuv420p), a keyframe every
    `keyint` frames, no B-frames. -> frame count. A finished `dest` is kept as it is."""
    import av

    if dest.is_file():
        with av.open(str(dest)) as done:
            return done.streams.video[0].frames
    tmp = dest.with_name(f".{dest.name}.partial.mp4")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with av.open(str(video)) as source, av.open(str(tmp), "w") as copy:
            if not source.streams.video:
                raise ValueError(f"{video}: no video stream")
            stream = source.streams.video[0]
            stream.thread_count = 1
            rate = stream.average_rate or stream.guessed_rate or 25
            out = None
            for frame in source.decode(stream):
                rgb = shrink_to_short_side(frame.to_ndarray(format="rgb24")[None], short_side)[0]
                if out is None:
                    h, w = rgb.shape[:2]
                    out = copy.add_stream("libx264", rate=rate)
                    out.width, out.height = w + w % 2, h + h % 2  # yuv420p: even sides
                    out.pix_fmt = "yuv420p"
                    out.options = {"crf": str(crf), "preset": "veryfast", "x264-params":
                                   f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0"}
                    out.codec_context.thread_count = 1
                if rgb.shape[:2] != (out.height, out.width):  # odd side: repeat the last row/column
                    rgb = np.pad(rgb, ((0, out.height - rgb.shape[0]),
                                       (0, out.width - rgb.shape[1]), (0, 0)), mode="edge")
                for packet in out.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    copy.mux(packet)
                count += 1
            if out is None:
                raise ValueError(f"{video}: no decodable frame")
            for packet in out.encode():  # flush
                copy.mux(packet)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    return count


def _extract_job(args: tuple) -> tuple[int, str]:
    video, folder, short_side, fps = args
    try:
        return extract_video(Path(video), Path(folder), short_side=short_side, fps=fps), ""
    except Exception as e:  # noqa: BLE001 - reported per video, never crashes the batch
        return 0, f"{type(e).__name__}: {e}"


def _prepare_job(args: tuple) -> tuple[int, str]:
    video, dest, short_side, keyint = args
    try:
        return prepare_video(Path(video), Path(dest), short_side=short_side, keyint=keyint), ""
    except Exception as e:  # noqa: BLE001 - reported per video, never crashes the batch
        return 0, f"{type(e).__name__}: {e}"


@dataclass
class ExtractReport:
    list_path: Path
    written: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"wrote {self.written} videos in {self.seconds:.0f} s -> {self.list_path}"
                 + (f" ({len(self.failed)} failed, left out)" if self.failed else "")]
        lines += [f"failed: {f}" for f in self.failed]
        return "\n".join(lines)


def _copy_list(list_path: str | Path, entries: list[Entry], out: str | Path, *, job: Callable,
               job_args: list[tuple], new_path: Callable[[str], str], format: str, workers: int,
               should_stop: StopFn | None, what: str, start: float) -> ExtractReport:
    """Runs `job` over the `entries` of the list (one tuple of `job_args` each) and writes the
    new list (`new_path` of each path, in `format`), atomically and last."""
    counts = np.zeros(len(entries), dtype=np.int64)
    report = ExtractReport(Path(out) / Path(list_path).name)
    for index, (count, error) in pool_map(
            job, job_args, workers=workers, should_stop=should_stop, chunksize=1,
            what=f"{what} {len(entries)} videos of {list_path} into {out}",
            kept="the finished videos are kept (no list yet); run the same command again to "
                 "continue"):
        if error:
            report.failed.append(f"{entries[index].path}\t{error}")
        counts[index] = count
    kept = [Entry(new_path(e.path), e.labels, int(n) if format == "rawframes" else None)
            for e, n in zip(entries, counts) if n > 0]
    tmp = report.list_path.with_name(f".{report.list_path.name}.partial")
    write_list(tmp, kept, format=format)
    os.replace(tmp, report.list_path)
    report.failed.sort()
    report.written = len(kept)
    report.seconds = time.perf_counter() - start
    return report


def extract_dataset(list_path: str | Path, root: str | Path, out: str | Path, *,
                    short_side: int = 256, fps: float = 0.0, workers: int = 2,
                    should_stop: StopFn | None = None) -> ExtractReport:
    """Extracts every video of a video list into `out`/frames and writes `out`/<list name>, the
    matching raw-frame list (`frame_dir total_frames label ...`, relative to `out`/frames).

    Videos that fail are listed in the report and left out of the written list. `should_stop()`
    (a signal's name, or None) is polled: a stop raises `reskd.data.pool.Stopped`.
    """
    if short_side < 16:
        raise ValueError(f"short_side must be at least 16, got {short_side}")
    start = time.perf_counter()
    frames_root = Path(out) / "frames"
    entries = read_list(list_path, format="video")
    args = [(str(Path(root) / e.path), str(frames_root / _frame_folder(e.path)), short_side, fps)
            for e in entries]
    return _copy_list(list_path, entries, out, job=_extract_job, job_args=args,
                      new_path=_frame_folder,
                      format="rawframes", workers=workers, should_stop=should_stop,
                      what="extracting frames of", start=start)


def prepare_dataset(list_path: str | Path, root: str | Path, out: str | Path, *,
                    short_side: int = 256, keyint: int = 16, workers: int = 2,
                    should_stop: StopFn | None = None) -> ExtractReport:
    """Re-encodes every video of a video list into `out`/videos (`prepare_video`) and writes
    `out`/<list name>, the same list with the copies' paths (relative to `out`).

    Train on it with data.root=`out`; the frame indices a sampler picks are the same frames.
    A classes.txt beside the list is copied to `out`. Videos that fail are listed in the
    report and left out of the list. `should_stop()` is
    polled: a stop raises `reskd.data.pool.Stopped`, the finished copies kept.
    """
    if short_side < 16 or short_side % 2:
        raise ValueError(f"short_side must be an even number of at least 16 (H.264 yuv420p "
                         f"needs even sides), got {short_side}")
    if keyint < 1:
        raise ValueError(f"keyint must be at least 1 (frames between keyframes), got {keyint}")
    start = time.perf_counter()
    entries = read_list(list_path, format="video")
    args = [(str(Path(root) / e.path), str(Path(out) / _prepared_name(e.path)), short_side,
             keyint) for e in entries]
    report = _copy_list(list_path, entries, out, job=_prepare_job, job_args=args,
                        new_path=_prepared_name, format="video", workers=workers,
                        should_stop=should_stop, what="re-encoding", start=start)
    classes = Path(list_path).parent / "classes.txt"  # beside the list, as `data convert` writes
    if classes.is_file() and not (Path(out) / "classes.txt").exists():
        shutil.copyfile(classes, Path(out) / "classes.txt")
    return report

"""`reskd data extract`: videos -> raw-frame folders (img_00001.jpg, ...) and a raw-frame list.

Each video is decoded once with PyAV, resized so its short side is `short_side` (256 or 320 as
mmaction2's extracted datasets), optionally resampled to `fps`, and written as JPEG frames into
its own folder. A folder is built under a temporary name and renamed when complete, so an
interrupted extraction never leaves a half-written folder that looks finished: re-running the
same command skips the videos already done (resumable) and redoes the rest.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reskd.data.formats import Entry, read_list, write_list

TEMPLATE = "img_{:05d}.jpg"


def _frame_folder(video_path: str) -> str:
    """videos/train/abc.mp4 -> videos/train/abc (the folder name in the raw-frame list)."""
    return str(Path(video_path).with_suffix(""))


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


def _work(args: tuple) -> tuple[int, int, str]:
    index, video, folder, short_side, fps = args
    try:
        return index, extract_video(Path(video), Path(folder), short_side=short_side, fps=fps), ""
    except Exception as e:  # noqa: BLE001 - reported per video, never crashes the batch
        return index, 0, f"{type(e).__name__}: {e}"


@dataclass
class ExtractReport:
    list_path: Path
    written: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"extracted {self.written} videos in {self.seconds:.0f} s -> {self.list_path}"]
        lines += [f"failed: {f}" for f in self.failed]
        return "\n".join(lines)


def extract_dataset(list_path: str | Path, root: str | Path, out: str | Path, *,
                    short_side: int = 256, fps: float = 0.0, workers: int = 2) -> ExtractReport:
    """Extracts every video of a video list into `out`/frames and writes `out`/<list name>, the
    matching raw-frame list (`frame_dir total_frames label ...`, relative to `out`/frames).

    Videos that fail are listed in the report and left out of the written list.
    """
    if short_side < 16:
        raise ValueError(f"short_side must be at least 16, got {short_side}")
    start = time.perf_counter()
    entries = read_list(list_path, format="video")
    frames_root = Path(out) / "frames"
    jobs = [(i, str(Path(root) / e.path), str(frames_root / _frame_folder(e.path)), short_side, fps)
            for i, e in enumerate(entries)]
    counts = np.zeros(len(entries), dtype=np.int64)
    report = ExtractReport(Path(out) / Path(list_path).name)
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(max(1, workers)) as pool:
        for index, count, error in pool.imap_unordered(_work, jobs, chunksize=4):
            if error:
                report.failed.append(f"{entries[index].path}\t{error}")
            counts[index] = count
    kept = [Entry(_frame_folder(e.path), e.labels, int(n)) for e, n in zip(entries, counts) if n > 0]
    write_list(report.list_path, kept, format="rawframes")
    report.written = len(kept)
    report.seconds = time.perf_counter() - start
    return report

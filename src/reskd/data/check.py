"""`reskd data check`: find every list entry that cannot be trained on, before a long run does.

Each video is opened and decoded front to back in a pool of worker processes. An entry is
reported when its file is missing or empty, is not a video (no video stream), fails to decode,
decodes fewer frames than its header claims (truncated), or has fewer than `min_frames` frames.
Raw-frame folders are checked for the listed frame files and for readable first/middle/last
frames. The report is a list a user can act on, one `path<TAB>reason` per line, and the same
file works as an exclusion list (`data.exclude`): `read_exclusion_list` reads it back.

Also here: `paths_outside_root`, the check that list paths stay under the data root.
"""

from __future__ import annotations

import os
import posixpath
import time
from dataclasses import dataclass
from pathlib import Path

from reskd.data.formats import Entry
from reskd.data.pool import StopFn, pool_map


@dataclass(frozen=True)
class Problem:
    """One unusable entry: its path as written in the list, and why."""
    path: str
    reason: str


def check_video(path: str | Path, min_frames: int = 1) -> str | None:
    """Why the video at `path` cannot be used (decoding all of it), or None when it is fine."""
    import av

    path = Path(path)
    if not path.is_file():
        return "file not found"
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    decoded, claimed = 0, 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream (audio-only or not a video)"
            stream = container.streams.video[0]
            claimed = stream.frames  # 0 when the container does not say
            # No frame threading: it can end a broken stream silently instead of raising.
            for frame in container.decode(stream):
                if decoded == 0:
                    rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
                        return f"first frame converts to shape {rgb.shape}, not (H, W, 3)"
                decoded += 1
    except MemoryError:
        raise
    except Exception as e:  # FFmpeg / PyAV errors: the file or a packet in it is corrupt
        where = f" after {decoded}" if decoded else ""
        if claimed > 0:
            where += (f"{' of' if decoded else ' at frame 0 of'} the {claimed} frames its "
                      f"header claims")
        elif decoded:
            where += " frames"
        return f"decode error{where}: {type(e).__name__}: {e}"
    if decoded == 0:
        return "no decodable frame"
    if claimed > 0 and decoded < claimed:
        return f"truncated or corrupt: decodes {decoded} of the {claimed} frames its header claims"
    if decoded < min_frames:
        plural = "s" if decoded > 1 else ""
        return f"only {decoded} frame{plural}, fewer than the {min_frames} asked for"
    return None


def check_frame_folder(folder: str | Path, num_frames: int, min_frames: int = 1,
                       template: str = "img_{:05d}.jpg") -> str | None:
    """Why a raw-frame folder cannot be used, or None. Every listed frame file must exist; the
    first, middle and last are decoded."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        return "frame folder not found"
    missing = [template.format(i + 1) for i in range(num_frames)
               if not (folder / template.format(i + 1)).is_file()]
    if missing:
        return f"{len(missing)} of the {num_frames} listed frames are missing (first: {missing[0]})"
    for i in sorted({0, num_frames // 2, num_frames - 1}):
        try:
            with Image.open(folder / template.format(i + 1)) as im:
                im.convert("RGB").load()
        except MemoryError:
            raise
        except Exception as e:
            return f"{template.format(i + 1)} cannot be read: {type(e).__name__}: {e}"
    if num_frames < min_frames:
        return f"only {num_frames} frames, fewer than the {min_frames} asked for"
    return None


def _check_one(job: tuple) -> str | None:
    kind, path, num_frames, min_frames, template = job
    if kind == "rawframes":
        return check_frame_folder(path, num_frames or 0, min_frames, template)
    return check_video(path, min_frames)


def check_entries(entries: list[Entry], root: str | Path, *, format: str = "video",
                  min_frames: int = 1, template: str = "img_{:05d}.jpg", workers: int = 0,
                  progress: bool = False, should_stop: StopFn | None = None) -> list[Problem]:
    """Problems of `entries` (paths relative to `root`), in list order.

    `workers` > 1 checks in that many processes; 0 or 1 checks in this one. `should_stop()` (a
    signal's name, or None) is polled: a stop raises `reskd.data.pool.Stopped` within a second.
    """
    from tqdm import tqdm

    if min_frames < 1:
        raise ValueError(f"min_frames must be at least 1, got {min_frames}")
    root = Path(root)
    jobs = [(format, root / e.path, e.num_frames, min_frames, template) for e in entries]
    reasons: list[str | None] = [None] * len(jobs)
    with tqdm(total=len(jobs), desc="check", disable=not progress, leave=False) as bar:
        for i, reason in pool_map(_check_one, jobs, workers=workers, should_stop=should_stop,
                                  chunksize=4, what=f"checking {len(jobs)} entries",
                                  kept="no report was written"):
            reasons[i] = reason
            bar.update()
    return [Problem(e.path, r) for e, r in zip(entries, reasons) if r is not None]


def write_problems(problems: list[Problem], path: str | Path, *, source: str = "") -> None:
    """Writes `path<TAB>reason` lines (usable as data.exclude) with a header comment."""
    lines = [f"# reskd data check{' of ' + source if source else ''}: {len(problems)} unusable "
             f"entries, one 'path<TAB>reason' per line.",
             "# Leave them out of training and testing with --set data.exclude=THIS_FILE"]
    lines += [f"{p.path}\t{' '.join(p.reason.split())}" for p in problems]
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)  # never a half-written list


def read_exclusion_list(path: str | Path) -> set[str]:
    """The paths of an exclusion list: the first field of each line (`reskd data check --out`
    files, or plain one-path-per-line files); blank lines and `#` comments are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exclusion list (data.exclude) not found: {path}")
    out = set()
    for line in path.read_text(encoding="utf-8-sig").split("\n"):
        line = line.strip()
        if line and not line.startswith("#"):
            out.add(posixpath.normpath(line.split("\t")[0].split()[0]))
    return out


def paths_outside_root(paths: list[str]) -> list[str]:
    """The paths that are absolute or climb out of the root with '..' (judged on the text, so a
    symlink inside the root that points elsewhere is allowed)."""
    bad = []
    for p in paths:
        norm = posixpath.normpath(p.replace(os.sep, "/"))
        if posixpath.isabs(norm) or os.path.isabs(p) or norm == ".." or norm.startswith("../"):
            bad.append(p)
    return bad


def summarize(problems: list[Problem], total: int, seconds: float, workers: int) -> str:
    lines = [f"checked {total} entries in {seconds:.1f} s with {max(workers, 1)} process(es): "
             f"{len(problems)} unusable"]
    lines += [f"{p.path}\t{p.reason}" for p in problems]
    return "\n".join(lines)


def run_check(list_path: str | Path, *, root: str | Path | None = None, format: str = "video",
              min_frames: int = 1, workers: int = 0, out: str | Path | None = None,
              template: str = "img_{:05d}.jpg", progress: bool = False,
              should_stop: StopFn | None = None) -> tuple[list[Problem], str]:
    """Checks every entry of an annotation list; writes the problems to `out` when given.
    Returns (problems, a printable summary). `root` defaults to the list's folder.
    `should_stop` as in `check_entries` (a stop writes no report)."""
    from reskd.data.formats import read_list

    list_path = Path(list_path)
    entries = read_list(list_path, format=format, num_classes=None)
    root = Path(root) if root is not None else list_path.parent
    start = time.perf_counter()
    problems = check_entries(entries, root, format=format, min_frames=min_frames,
                             template=template, workers=workers, progress=progress,
                             should_stop=should_stop)
    text = summarize(problems, len(entries), time.perf_counter() - start, workers)
    if out is not None:
        write_problems(problems, out, source=f"{list_path} (root {root})")
        text += f"\nwrote {out}" + (" (use it as data.exclude)" if problems else "")
    return problems, text

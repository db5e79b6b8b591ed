"""Decoding long videos at the cost of the frames kept: the exact path vs its physical limit,
the front-to-back path and the prepared copy.

Run: .venv/bin/python bench/bench_decode.py [--quick] [--rounds 3] [--data DIR] [--json]

Writes (or reuses, with --data) two 2-minute 1280x720 30 fps H.264 clips (x264 superfast, crf 23,
3 B-frames, a pan over real photos), one with a keyframe every 60 frames and one every 250, and
each one's prepared copy (`reskd data prepare`: short side 256, a keyframe every 16 frames, no
B-frames). Then times, interleaved in rounds (the case order rotating), one sample per call,
the same samples for every path, in CPU seconds of this process (decoding runs in one thread,
so that is its cost, and other jobs on a shared machine do not move it; wall seconds are
reported too):

* a training sample: 16 TSN segments, random frames (`Sampling.train_indices`);
* a test sample: 10 clips x 16 segments (`Sampling.test_indices(n, 10)`, 160 frames);

each decoded by
* `sequential`: front to back up to the last wanted frame, frames at full size (the path before
  exact seeking: `decode_video(seek=False)`);
* `exact`: `decode_video(short_side=256)`, seeking, frames shrunk to 256 in uint8;
* `limit`: the physical limit for exact frames, timed here: seek to each wanted frame's keyframe
  and decode only from there to it, with the packet table known beforehand and no frame
  converted (what no exact decoder can beat);
* `prepared`: `decode_video(short_side=256)` on the prepared copy;
* `torchcodec` (when installed): `VideoDecoder(seek_mode="exact", num_ffmpeg_threads=1)
  .get_frames_at`, a decoder made per sample (it scans the file as ours does), full-size frames.

Targets: exact / limit <= 1.3 (CPU seconds per sample, every clip and sample kind); a training
sample on the prepared copy >= 20x faster than `sequential` on the original (both clips); and
the peak memory of decoding one training sample (in a fresh process, peak RSS growth, Linux's
VmHWM) at most the decoder's own working set (that of a one-frame sample) + 3x the kept frames
at the working size (uint8: the kept frames, the sample stacked from them, one being shrunk)
+ one full-size RGB frame. The views made from the frames are
measured apart (today's float path at full size vs at the working size). Figures are medians
of per-round ratios. Exits 1 when a target is missed. --quick: 20 s 640x360 clips, one round,
no targets checked.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIMIT_RATIO = 1.3  # exact / limit, at most
PREPARED_SPEEDUP = 20.0  # sequential on the original / prepared, training sample, at least
# peak growth <= the decoder's working set + this x kept frames at working size + one full-size
# frame: the kept frames, their stacked copy (the sample) and the frame being shrunk
MEMORY_FACTOR = 3.0
SHORT_SIDE = 256  # the working short side of 224 px views (256 / 224 x 224)
SEGMENTS, TEST_CLIPS = 16, 10


def canvas(h: int, w: int) -> np.ndarray:
    """(2h, 2w, 3) uint8: four photos that scikit-image ships, tiled, to pan over."""
    import skimage.data
    from PIL import Image

    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(),
              skimage.data.rocket()]
    tiles = [np.asarray(Image.fromarray(p).resize((w, h), Image.BILINEAR)) for p in photos]
    return np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)


def write_clip(path: Path, *, seconds: float, width: int, height: int, keyint: int,
               fps: int = 30) -> Path:
    """H.264 (3 B-frames, a keyframe every `keyint` frames): a window panning over photos."""
    import av

    big, n = canvas(height, width), int(seconds * fps)
    tmp = path.with_name(f".{path.name}.partial.mp4")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "superfast", "crf": "23", "x264-params":
                     f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3"}
        s.codec_context.thread_count = 1  # reproducible output
        for i in range(n):
            t = i / n
            y = int(height * (0.5 - 0.5 * np.cos(2 * np.pi * 3 * t)))
            x = int(width * (0.5 - 0.5 * np.cos(2 * np.pi * 2 * t)))
            frame = np.ascontiguousarray(big[y:y + height, x:x + width])
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    tmp.rename(path)
    return path


def frame_table_of(path: Path):
    import av

    from reskd.data.decoders import frame_table

    with av.open(str(path)) as c:
        return frame_table(c, c.streams.video[0])


def decode_stretches(path: Path, table, wanted: np.ndarray) -> int:
    """The physical limit: for each wanted frame (sorted, unique), decode from its keyframe to
    it (continuing instead when no keyframe lies between), nothing converted. -> frames decoded."""
    import av

    keys, decoded, w = table.key_before(wanted), 0, 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_count = 1
        while w < len(wanted):
            c.seek(int(table.pts[keys[w]]), stream=s, backward=True)
            for frame in c.decode(s):
                i = int(np.searchsorted(table.pts, frame.pts))
                decoded += 1
                if i == wanted[w]:
                    w += 1
                    if w == len(wanted) or keys[w] > i + 1:
                        break
    return decoded


def sample_indices(kind: str, n: int, k: int) -> np.ndarray:
    """Sample k of `kind` ("train" or "test") for a video of n frames."""
    from reskd.data.sampling import Sampling

    sampling = Sampling(num_segments=SEGMENTS)
    if kind == "train":
        return sampling.train_indices(n, np.random.default_rng((12, k)))
    return sampling.test_indices(n, TEST_CLIPS)


def make_cases(clips: dict[str, dict], torchcodec) -> dict:
    """{"clip kind path": one call = one sample}; call k of every path reads sample k."""
    from reskd.data.decoders import decode_video

    cases = {}
    for name, clip in clips.items():
        n, table = len(clip["table"].pts), clip["table"]
        for kind in ("train", "test"):
            def counter(kind=kind, n=n):
                state = {"k": 0}

                def next_indices() -> np.ndarray:
                    state["k"] += 1
                    return sample_indices(kind, n, state["k"])
                return next_indices

            paths = {
                "sequential": (lambda nxt=counter(), p=clip["original"]:
                               decode_video(p, lambda _: nxt(), seek=False)),
                "exact": (lambda nxt=counter(), p=clip["original"]:
                          decode_video(p, lambda _: nxt(), short_side=SHORT_SIDE)),
                "limit": (lambda nxt=counter(), p=clip["original"], t=table:
                          decode_stretches(p, t, np.unique(nxt()))),
                "prepared": (lambda nxt=counter(), p=clip["prepared"]:
                             decode_video(p, lambda _: nxt(), short_side=SHORT_SIDE)),
            }
            if torchcodec is not None:
                paths["torchcodec"] = (
                    lambda nxt=counter(), p=clip["original"]: torchcodec(
                        str(p), seek_mode="exact", num_ffmpeg_threads=1,
                        dimension_order="NHWC").get_frames_at(nxt().tolist()))
            for path_name, fn in paths.items():
                cases[f"{name} {kind} {path_name}"] = fn
    return cases


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_growth_mb(path: str, mode: str, n: int) -> dict:
    """In a fresh process: peak RSS growth (MB) during one training sample over the resident
    size before it (after a one-frame sample of the same file), decoding only and decoding +
    the views (224 + 112 px from one crop, as `reskd distill` makes them)."""
    import torch

    from reskd.data.decoders import decode_video
    from reskd.data.transforms import Views

    torch.set_num_threads(1)
    seek, short = (False, 0) if mode == "sequential" else (True, SHORT_SIDE)
    views = Views(teacher_size=224, student_size=112, crop_size=224)
    rng = np.random.default_rng(0)
    decode_video(path, lambda _: np.array([n // 2]), seek=seek, short_side=short)  # warm

    def peak_of(fn) -> float:
        base = _rss_mb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        fn()
        return _rss_mb("VmHWM") - base

    # the decoder's own working set (reference frames, buffers): a one-frame sample
    one_mb = peak_of(lambda: decode_video(path, lambda _: np.array([n // 3]), seek=seek,
                                          short_side=short))
    out = {}
    decode_mb = peak_of(lambda: out.update(frames=decode_video(
        path, lambda _: sample_indices("train", n, 1), seek=seek, short_side=short)[0]))
    views_mb = peak_of(lambda: views.train(out["frames"], rng))
    return {"one_frame_mb": one_mb, "decode_mb": decode_mb, "views_mb": views_mb,
            "kept_frames_mb": out["frames"].nbytes / 2**20,
            "frame_shape": list(out["frames"].shape[1:])}


def peak_growth(path: Path, mode: str, n: int) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_peak_growth_mb, (str(path), mode, n))


def time_rounds(cases: dict, rounds: int) -> tuple[dict, dict]:
    """({case: [CPU seconds of this process per call, per round]}, {case: [wall seconds]}), one
    call per case per round, the case order rotating each round. Decoding runs in one thread,
    so CPU seconds are its cost and are not moved by other jobs on a shared machine."""
    names = list(cases)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            c0, w0 = time.process_time(), time.perf_counter()
            cases[name]()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return cpu, wall


def main(argv: list[str] | None = None) -> int:
    import torch

    from reskd.data.decoders import SEQUENTIAL_FALLBACKS
    from reskd.data.extract import prepare_video
    from reskd.efficiency.benchmark import machine_facts

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="20 s 640x360 clips, one round, "
                   "targets not checked")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", default="", help="write/reuse the clips here (default: a temp dir)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    seconds, width, height, rounds = ((20, 640, 360, 1) if args.quick
                                      else (120, 1280, 720, args.rounds))
    torch.set_num_threads(1)  # one decoder thread, as a loader worker
    try:
        from torchcodec.decoders import VideoDecoder as torchcodec
        torchcodec_note = "torchcodec " + __import__("torchcodec").__version__
    except Exception as e:  # not installed, or FFmpeg's shared libraries missing
        torchcodec, torchcodec_note = None, f"torchcodec not compared: {type(e).__name__}: " \
                                            f"{str(e).splitlines()[0] if str(e) else ''}"
    with tempfile.TemporaryDirectory(prefix="reskd-bench-decode-") as tmp:
        folder = Path(args.data or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clips = {}
        for keyint in (60, 250):
            name = f"key{keyint}"
            original = folder / f"{name}_{seconds}s_{width}x{height}.mp4"
            prepared = folder / f"{name}_{seconds}s_{width}x{height}_prepared.mp4"
            start = time.perf_counter()
            if not original.is_file():
                write_clip(original, seconds=seconds, width=width, height=height, keyint=keyint)
            prepare_start = time.perf_counter()
            if not prepared.is_file():
                prepare_video(original, prepared, short_side=SHORT_SIDE, keyint=16)
            print(f"[decode] {name}: clip {prepare_start - start:.0f} s, prepared copy "
                  f"{time.perf_counter() - prepare_start:.0f} s ({folder})", file=sys.stderr)
            clips[name] = {"original": original, "prepared": prepared,
                           "table": frame_table_of(original), "keyint": keyint,
                           "original_mb": original.stat().st_size / 2**20,
                           "prepared_mb": prepared.stat().st_size / 2**20}
        cases = make_cases(clips, torchcodec)
        for fn in cases.values():  # warm-up: file cache, codec initialisation
            fn()
        s_per, wall = time_rounds(cases, rounds)  # seconds per sample, per round
        memory = {}
        for name, clip in clips.items():
            n = len(clip["table"].pts)
            memory[name] = {mode: peak_growth(clip["original"], mode, n)
                            for mode in ("sequential", "exact")}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(s_per[a], s_per[b]))

    results, checks = {}, []
    full_frame_mb = width * height * 3 / 2**20
    for name, clip in clips.items():
        r = {"keyint": clip["keyint"], "frames": len(clip["table"].pts),
             "original_mb": clip["original_mb"], "prepared_mb": clip["prepared_mb"],
             "s_per_sample": {k.split(" ", 1)[1]: statistics.median(v) for k, v in s_per.items()
                              if k.startswith(name + " ")},
             "wall_s_per_sample": {k.split(" ", 1)[1]: statistics.median(v)
                                   for k, v in wall.items() if k.startswith(name + " ")}}
        for kind in ("train", "test"):
            r[f"{kind} exact / limit"] = ratio(f"{name} {kind} exact", f"{name} {kind} limit")
            r[f"{kind} sequential / exact"] = ratio(f"{name} {kind} sequential",
                                                    f"{name} {kind} exact")
            r[f"{kind} sequential / prepared"] = ratio(f"{name} {kind} sequential",
                                                       f"{name} {kind} prepared")
            if torchcodec is not None:
                r[f"{kind} torchcodec / exact"] = ratio(f"{name} {kind} torchcodec",
                                                        f"{name} {kind} exact")
            checks.append((f"{name} {kind} exact / limit <= {LIMIT_RATIO}",
                           r[f"{kind} exact / limit"] <= LIMIT_RATIO))
        checks.append((f"{name} train sequential / prepared >= {PREPARED_SPEEDUP}",
                       r["train sequential / prepared"] >= PREPARED_SPEEDUP))
        m = memory[name]["exact"]
        bound = m["one_frame_mb"] + MEMORY_FACTOR * m["kept_frames_mb"] + full_frame_mb
        checks.append((f"{name} exact: peak memory decoding a training sample "
                       f"{m['decode_mb']:.1f} MB <= {bound:.1f} MB (decoder's working set "
                       f"{m['one_frame_mb']:.1f} + {MEMORY_FACTOR:g} x kept frames "
                       f"{m['kept_frames_mb']:.1f} + one full-size frame {full_frame_mb:.1f})",
                       m["decode_mb"] <= bound))
        r["memory"] = memory[name]
        results[name] = r
    from reskd.engine.runtime import pick_device

    facts = machine_facts(pick_device("cpu"), None)
    ok = all(passed for _, passed in checks)
    if args.json:
        print(json.dumps({"clips": results, "checks": checks, "ok": ok, "rounds": rounds,
                          "seconds": seconds, "size": [width, height],
                          "torchcodec": torchcodec_note,
                          "fallbacks": dict(SEQUENTIAL_FALLBACKS), "machine": facts,
                          "quick": args.quick}, indent=2, default=str))
    else:
        print(f"{seconds} s {width}x{height} 30 fps H.264 (3 B-frames), one sample per call, "
              f"{rounds} interleaved rounds, CPU seconds (one thread; wall in the JSON); "
              f"train: {SEGMENTS} segments, test: {TEST_CLIPS} "
              f"clips x {SEGMENTS}; exact/prepared frames shrunk to short side {SHORT_SIDE}; "
              f"{torchcodec_note}")
        print("machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
        for name, r in results.items():
            print(f"  {name} ({r['frames']} frames, {r['original_mb']:.1f} MB; prepared copy "
                  f"{r['prepared_mb']:.1f} MB)  seconds per sample:")
            for kind in ("train", "test"):
                cells = [f"{path} {r['s_per_sample'][f'{kind} {path}']:.3f}"
                         for path in ("sequential", "exact", "limit", "prepared", "torchcodec")
                         if f"{kind} {path}" in r["s_per_sample"]]
                ratios = [f"{key.split(' ', 1)[1]} {value:.2f}x" for key, value in r.items()
                          if key.startswith(f"{kind} ") and "/" in key]
                print(f"    {kind:<5} " + ", ".join(cells) + "; " + ", ".join(ratios))
            for mode, m in r["memory"].items():
                print(f"    peak memory of one training sample, {mode}: +{m['decode_mb']:.1f} MB "
                      f"decoding (a one-frame sample: +{m['one_frame_mb']:.1f}), then "
                      f"+{m['views_mb']:.1f} MB making the 224 + 112 px views; kept frames "
                      f"{m['kept_frames_mb']:.1f} MB ({SEGMENTS} x {m['frame_shape']} uint8)")
        print(f"fallbacks to front-to-back decoding: {dict(SEQUENTIAL_FALLBACKS) or 'none'}")
        for text, passed in checks:
            verdict = "(not checked: --quick)" if args.quick else ("ok" if passed else "MISSED")
            print(f"{text}: {verdict}")
    return 0 if args.quick or ok else 1


if __name__ == "__main__":
    sys.exit(main())

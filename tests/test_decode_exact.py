"""Decoding at the cost of the frames kept is frame-exact: seeking and decoding forward gives,
bit for bit, the frames that decoding front to back and counting gives, on every codec and odd
file below, for random index sets; files whose seeking misbehaves are decoded front to back,
counted and reported, never a wrong frame.

Files are tiny (48x32, 60 frames) and written here with PyAV.
"""

from __future__ import annotations

import fractions
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from reskd.data import decoders
from reskd.data.decoders import SeekFallbackWarning, decode_video
from reskd.data.sampling import Sampling

FRAMES = 60
X264 = "scenecut=0:keyint={k}:min-keyint={k}:bframes={b}"


def moving_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(t, h, w, 3) uint8: a smooth gradient that moves, plus noise, so P/B-frames carry
    motion and every frame differs from its neighbours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        base = (x * 5 + y * 3 + i * 7) % 256
        out[i] = (base[..., None] + np.array([0, 85, 170]) + rng.integers(0, 24, (h, w, 3))) % 256
    return out


def write(path: Path, codec: str, *, options: dict | None = None, size=(32, 48),
          pix_fmt: str = "yuv420p", fmt: str | None = None, pts_ms=None,
          lie_keyframes: bool = False) -> Path:
    """Encodes FRAMES moving frames; `pts_ms` gives a variable frame rate; `lie_keyframes`
    flags every packet as a keyframe (a broken index)."""
    h, w = size
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = options or {}
        if pts_ms is not None:
            s.codec_context.time_base = fractions.Fraction(1, 1000)

        def mux(packets):
            for p in packets:
                if lie_keyframes:
                    p.is_keyframe = True
                c.mux(p)

        for i, f in enumerate(moving_frames(FRAMES, h, w)):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = int(pts_ms[i]), fractions.Fraction(1, 1000)
            mux(s.encode(frame))
        mux(s.encode())
    return path


VFR_MS = np.cumsum(np.random.default_rng(1).choice([20, 40, 40, 100, 250], FRAMES)) - 20

FILES = {
    "h264_bframes_sparse_keys.mp4": dict(codec="libx264",
                                         options={"x264-params": X264.format(k=25, b=3)}),
    "h264_bframes_short_gop.mp4": dict(codec="libx264",
                                       options={"x264-params": X264.format(k=6, b=2)}),
    "h264_open_gop.mp4": dict(codec="libx264",
                              options={"x264-params": X264.format(k=12, b=3) + ":open-gop=1"}),
    "h264_vfr.mp4": dict(codec="libx264", options={"x264-params": X264.format(k=10, b=2)},
                         pts_ms=VFR_MS),
    "h264rgb_odd_37x29.mkv": dict(codec="libx264rgb", size=(29, 37), pix_fmt="rgb24",
                                  options={"qp": "0", "x264-params": X264.format(k=8, b=2)}),
    "mpeg4_bframes.mp4": dict(codec="mpeg4", options={"g": "10", "bf": "2"}),
    "mpeg4_odd_35x27.avi": dict(codec="mpeg4", size=(27, 35), options={"g": "7", "bf": "1"}),
    "vp9.webm": dict(codec="libvpx-vp9", options={"g": "10", "deadline": "realtime",
                                                  "cpu-used": "8"}),
    "mjpeg.avi": dict(codec="mjpeg", pix_fmt="yuvj420p"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (path, every frame decoded front to back (T, H, W, 3))."""
    d = tmp_path_factory.mktemp("exact")
    out = {}
    for name, kwargs in FILES.items():
        path = write(d / name, **kwargs)
        every, _ = decode_video(path, np.arange, seek=False)
        assert len(every) == FRAMES, name
        out[name] = path, every
    return out


def index_sets(n: int) -> list[np.ndarray]:
    """Random sets (sorted or not, with repeats), the sampler's, and the edges."""
    rng = np.random.default_rng(0)
    sets = [rng.integers(0, n, size) for size in (1, 2, 3, 5, 8, 16, 16, 40)]
    sets += [np.sort(rng.choice(n, 12, replace=False)), np.array([n - 1]), np.array([0, n - 1]),
             np.array([n - 1, 0, n - 1]), np.arange(n), np.arange(n)[::-1]]
    sets.append(Sampling(num_segments=16).train_indices(n, rng))
    sets.append(Sampling(num_segments=8).test_indices(n, 3))
    sets.append(Sampling(clip_len=8, frame_interval=2).test_indices(n, 4))
    return sets


@pytest.mark.parametrize("name", list(FILES))
def test_seeking_gives_the_frames_of_sequential_decoding(files, name):
    path, every = files[name]
    seeks = decoders.STATS["seeks"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeekFallbackWarning)  # the exact path, never the fallback
        for indices in index_sets(len(every)):
            got, idx = decode_video(path, lambda n, indices=indices: indices)
            np.testing.assert_array_equal(idx, indices)
            assert got.dtype == np.uint8 and got.shape == (len(indices), *every.shape[1:])
            np.testing.assert_array_equal(got, every[indices], err_msg=f"{name} {indices}")
    assert str(path) not in decoders.SEQUENTIAL_FALLBACKS
    assert decoders.STATS["seeks"] > seeks


def test_lossless_odd_size_is_the_source_itself(files):
    path, every = files["h264rgb_odd_37x29.mkv"]
    np.testing.assert_array_equal(every, moving_frames(FRAMES, 29, 37))


def test_a_frame_costs_the_stretch_from_its_keyframe(files):
    """The last frame of a 6-frame-GOP file decodes at most its GOP, not the whole video."""
    path, every = files["h264_bframes_short_gop.mp4"]
    before = decoders.STATS["frames_decoded"]
    got, _ = decode_video(path, lambda n: np.array([n - 1]))
    np.testing.assert_array_equal(got[0], every[-1])
    assert decoders.STATS["frames_decoded"] - before <= 6


@pytest.mark.parametrize("name,kwargs,reason", [
    ("raw_h264_no_timestamps.h264",
     dict(codec="libx264", fmt="h264", options={"x264-params": X264.format(k=10, b=2)}),
     "no timestamp"),
    ("mpeg4_every_packet_flagged_key.mp4",
     dict(codec="mpeg4", options={"g": "10", "bf": "2"}, lie_keyframes=True),
     "was due after a seek"),  # the decoder skips to the next real keyframe
    ("h264_in_mpegts.ts", dict(codec="libx264", fmt="mpegts",
                               options={"x264-params": X264.format(k=10, b=2)}),
     "not a keyframe"),  # MPEG-TS seeks by bytes and lands mid-GOP
])
def test_files_whose_seeking_misbehaves_are_decoded_sequentially_and_counted(
        tmp_path, name, kwargs, reason):
    path = write(tmp_path / name, **kwargs)
    every, _ = decode_video(path, np.arange, seek=False)
    indices = np.array([45, 3, 17, 17, 59])
    with pytest.warns(SeekFallbackWarning, match=reason) as caught:
        got, _ = decode_video(path, lambda n: indices)
    assert name in str(caught[0].message) and "front to back" in str(caught[0].message)
    np.testing.assert_array_equal(got, every[indices])
    assert decoders.SEQUENTIAL_FALLBACKS[str(path)] == 1
    with warnings.catch_warnings():  # reported once per file and process, counted every time
        warnings.simplefilter("error", SeekFallbackWarning)
        decode_video(path, lambda n: indices)
    assert decoders.SEQUENTIAL_FALLBACKS[str(path)] == 2


def test_indices_for_is_called_once_even_when_falling_back(tmp_path):
    """Training draws indices from the sample's rng: a second call would change the sample."""
    path = write(tmp_path / "raw.h264", codec="libx264", fmt="h264")
    calls = []
    with pytest.warns(SeekFallbackWarning):
        decode_video(path, lambda n: calls.append(n) or np.array([1, 2]))
    assert calls == [FRAMES]


def test_frames_shrink_in_uint8_to_the_short_side_only_when_larger(files):
    from reskd.data.transforms import resize_short_side, to_tensor

    path, every = files["h264_bframes_short_gop.mp4"]  # 48x32
    indices = np.array([5, 40, 5])
    small, _ = decode_video(path, lambda n: indices, short_side=16)
    assert small.dtype == np.uint8 and small.shape == (3, 16, 24, 3)
    in_float = resize_short_side(to_tensor(every[indices]), 16).permute(0, 2, 3, 1)  # (T, H, W, C)
    assert (in_float - torch.from_numpy(small)).abs().max().item() <= 1.0
    same, _ = decode_video(path, lambda n: indices, short_side=32)  # not larger: untouched
    np.testing.assert_array_equal(same, every[indices])

"""Shared fixtures: tiny real videos written with PyAV inside the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: extra threads only add sync overhead


@pytest.fixture(autouse=True, scope="session")
def _precision_cache(tmp_path_factory):
    """runtime.precision=auto times candidates and caches the answer (reskd.engine.runtime);
    tests keep that cache in a temp folder, never the user's, and share it for the session
    (on a CPU with native bf16 each new model shape is timed once, then read)."""
    import os

    old = os.environ.get("RESKD_CACHE_DIR")
    os.environ["RESKD_CACHE_DIR"] = str(tmp_path_factory.mktemp("reskd_cache"))
    yield
    if old is None:
        os.environ.pop("RESKD_CACHE_DIR", None)
    else:
        os.environ["RESKD_CACHE_DIR"] = old


def sets(*pairs: str) -> list[str]:
    """CLI config overrides: sets("a.b=1", "c.d=2") -> ["--set", "a.b=1", "--set", "c.d=2"]."""
    return [a for p in pairs for a in ("--set", p)]


def write_data_config(path: Path, root: Path, *, val_list: str = "val.txt") -> Path:
    """A YAML naming only the data of a `make_synth_dataset` folder; the rest stays default."""
    val = f"  val_list: {val_list}\n" if val_list else ""
    path.write_text(f"data:\n  root: {root}\n  train_list: train.txt\n"
                    f"{val}  classes: classes.txt\n")
    return path


def write_video(path: Path, frames: np.ndarray, *, codec: str = "libx264rgb", fps: int = 25,
                options: dict | None = None) -> Path:
    """Writes (T, H, W, C) uint8 frames; libx264rgb with qp 0 is lossless RGB."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    t, h, w, _ = frames.shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        if codec == "libx264rgb":
            stream.pix_fmt = "rgb24"
            stream.options = {"qp": "0", "preset": "ultrafast", **(options or {})}
        else:
            stream.pix_fmt = "yuv420p"
            stream.options = options or {}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_still_videos(root: Path, frame: int) -> Path:
    """Two classes, two lossless RGB videos each (frame x frame px, 8 frames), every frame of a
    video the same picture; list.txt and classes.txt beside them. -> root."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        picture = rng.integers(0, 256, (frame, frame, 3), dtype=np.uint8)
        write_video(root / f"v{i}.mp4", np.repeat(picture[None], 8, axis=0))
        lines.append(f"v{i}.mp4 {i % 2}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("a\nb\n")
    return root


def numbered_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Random frames whose top-left pixel encodes the frame number (R channel = 10 * i)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(t) * 10
    return frames


@pytest.fixture
def tiny_video(tmp_path) -> tuple[Path, np.ndarray]:
    frames = numbered_frames(12, 32, 48)
    return write_video(tmp_path / "clip.mp4", frames), frames

"""`reskd viz`: Figure 4 from checkpoints and videos, in one call each.

- `viz_erf`: ERFs of the baseline and ResKD students (and optionally the teacher at its own
  size) averaged over all test clips (centre crop) of the given videos (Figure 4a).
- `viz_attention`: activation-based attention of both students on one video's frames
  (Figure 4b).

Each model sees its own checkpoint's test preprocessing (sampling, short side, centre crop,
mean/std), so the teacher and the students look at the same crop of the same frames whenever
their checkpoints share sampling and short-side ratio, as ResKD training makes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from reskd.analysis.attention import attention_maps
from reskd.analysis.erf import effective_receptive_field
from reskd.analysis.plots import plot_attention_overlay, plot_erfs


def _load(checkpoint: str | Path, device: torch.device):
    from reskd.models import load_model_checkpoint

    model, ckpt = load_model_checkpoint(checkpoint)
    return model.to(device), ckpt


def _view_key(ckpt: dict) -> str:
    """What decides a checkpoint's test views; equal keys give identical clips."""
    return json.dumps([ckpt["size"], ckpt["sampling"], ckpt["mean"], ckpt["std"],
                       ckpt.get("views")])


def checkpoint_clips(ckpt: dict, videos: Sequence[str | Path]) -> tuple[torch.Tensor, list[str]]:
    """Every test clip (centre crop) of `videos`, as `ckpt`'s test makes it.

    Returns (clips (N, T, C, S, S), failures).

    Failures are "path<TAB>reason" for videos that could not be decoded (left out, reported).
    """
    from reskd.data.decoders import DecodeError
    from reskd.predict import video_views

    clips, failed = [], []
    for path in videos:
        try:
            clips.append(video_views(path, ckpt, crops=1))  # (clips, T, C, S, S)
        except DecodeError as e:
            failed.append(f"{path}\t{e.reason}")
    if not clips:
        raise ValueError(f"none of the {len(videos)} video(s) could be decoded; first: "
                         f"{failed[:3]}")
    return torch.cat(clips), failed


def to_uint8_frames(view: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undoes normalisation for display: (T, C, H, W) normalised -> (T, H, W, C) uint8."""
    m = torch.tensor(mean).view(1, -1, 1, 1) * 255
    s = torch.tensor(std).view(1, -1, 1, 1) * 255
    x = (view.float().cpu() * s + m).round().clamp(0, 255).to(torch.uint8)  # (T, C, H, W)
    return x.permute(0, 2, 3, 1).numpy()  # (T, H, W, C)


def viz_erf(baseline_ckpt: str | Path, reskd_ckpt: str | Path, videos: Sequence[str | Path],
            out_png: str | Path, *, teacher_ckpt: str | Path | None = None,
            position: tuple[int, int] | None = None, device: str = "cpu") -> dict:
    """Figure 4a. Returns {"out", "clips", "failed", "panels": [{"title", "size", "erf_shape"}]}.

    `position` applies to every model's last map; by default each model uses its own centre
    (bottom-right of the central 2x2 for even maps, see `reskd.analysis.erf`).
    """
    if not videos:
        raise ValueError("give at least one video to average the ERF over")
    dev = torch.device(device)
    runs = [("baseline", baseline_ckpt), ("ResKD", reskd_ckpt)]
    if teacher_ckpt is not None:
        runs.append(("teacher", teacher_ckpt))
    cache: dict[str, tuple[torch.Tensor, list[str]]] = {}
    erfs, titles, panels, failed, clip_count = [], [], [], set(), 0
    for name, path in runs:
        model, ckpt = _load(path, dev)
        key = _view_key(ckpt)
        if key not in cache:
            cache[key] = checkpoint_clips(ckpt, videos)
        clips, bad = cache[key]
        failed.update(bad)
        clip_count = max(clip_count, clips.shape[0])
        erf = effective_receptive_field(model, clips, position=position)
        erfs.append(erf)
        titles.append(f"{name} {ckpt['size']}px")
        panels.append({"title": titles[-1], "checkpoint": str(path), "size": ckpt["size"],
                       "erf_shape": list(erf.shape)})
    out = plot_erfs(erfs, titles, out_png)
    return {"out": str(out), "clips": clip_count, "failed": sorted(failed), "panels": panels}


def viz_attention(baseline_ckpt: str | Path, reskd_ckpt: str | Path, video: str | Path,
                  out_png: str | Path, *, max_frames: int = 8, device: str = "cpu") -> dict:
    """Figure 4b on one video (centre crop of its central test clip, at the students' size).

    Both students must share size, sampling and mean/std: they are shown on the same frames.
    Returns {"out", "video", "size", "frames": indices of the clip's frames shown}.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    dev = torch.device(device)
    base, base_ckpt = _load(baseline_ckpt, dev)
    kd, kd_ckpt = _load(reskd_ckpt, dev)
    if _view_key(base_ckpt) != _view_key(kd_ckpt):
        raise ValueError(f"baseline {baseline_ckpt} (size, sampling, mean, std, views: "
                         f"{_view_key(base_ckpt)}) and ResKD {reskd_ckpt} ({_view_key(kd_ckpt)}) "
                         f"see different inputs; compare students trained on the same data "
                         f"settings (a baseline takes the student's data.crop_size and "
                         f"data.shrink)")
    from reskd.predict import video_views

    clip = video_views(video, kd_ckpt, crops=1, num_clips=1)  # (1, T, C, S, S); DecodeError if bad
    t = clip.shape[1]
    shown = np.unique(np.linspace(0, t - 1, min(max_frames, t)).round().astype(int))
    frames = to_uint8_frames(clip[0], kd_ckpt["mean"], kd_ckpt["std"])[shown]  # (t', S, S, C)
    maps_base = attention_maps(base, clip)[0, shown].numpy()  # (t', h, w)
    maps_kd = attention_maps(kd, clip)[0, shown].numpy()
    out = plot_attention_overlay(frames, maps_base, maps_kd, ("baseline", "ResKD"), out_png)
    return {"out": str(out), "video": str(video), "size": kd_ckpt["size"],
            "frames": shown.tolist()}

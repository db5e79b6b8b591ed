"""Predict: class scores for video files from a checkpoint alone, preprocessed exactly as `test`.

Every test view (clips x crops, from the checkpoint's sampling and view recipe: the views its
model was trained on) goes through the model and the scores are averaged over views as the
checkpoint's `test_average` says ("prob": softmax scores, "logit": logits, then softmax), as
`reskd.engine.evaluate` does. A video that
cannot be decoded is reported in its result (`"error"`), never dropped, and the others still run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from reskd.data.datasets import Sampling, checkpoint_views
from reskd.data.decoders import DecodeError, decode_video
from reskd.data.transforms import test_views
from reskd.engine.runtime import autocast


def checkpoint_sampling(ckpt: dict) -> Sampling:
    s = ckpt["sampling"]
    return Sampling(s["num_segments"], s["clip_len"], s["frame_interval"])


def video_views(path: str | Path, ckpt: dict, *, crops: int | None = None,
                num_clips: int | None = None) -> torch.Tensor:
    """All test views of one video, as the checkpoint's `test` makes them. -> (V, T, C, S, S)

    V = clips x crops, in that order (clip-major), as `VideoDataset` orders them.

    The views follow the checkpoint's recipe (`checkpoint_views`); `crops` and `num_clips`
    default to the checkpoint's. The video is decoded once for all clips (the decoder reads
    front to back, so one pass beats one pass per clip).
    Raises `DecodeError` for a file that cannot be read.
    """
    s = ckpt["sampling"]
    sampling = checkpoint_sampling(ckpt)
    v = checkpoint_views(ckpt, path="the checkpoint")
    crops = crops or s["test_crops"]
    num_clips = num_clips or s["test_clips"]

    def indices_for(n: int) -> np.ndarray:
        return np.concatenate([sampling.indices(n, train=False, rng=None, clip=c,
                                                num_clips=num_clips) for c in range(num_clips)])

    frames, _ = decode_video(path, indices_for)  # (clips * T, H, W, C)
    clips = np.split(frames, num_clips)  # clips x (T, H, W, C)
    views = [test_views(c, v.sizes[0], short_side_ratio=v.short_side_ratio, crops=crops,
                        mean=v.mean, std=v.std, crop_size=v.crop_size, shrink_filter=v.shrink,
                        downsample_to=v.downsample_to) for c in clips]
    return torch.cat(views)  # (clips * crops, T, C, S, S)


@torch.inference_mode()
def predict_videos(model: nn.Module, ckpt: dict, paths: Sequence[str | Path], *, topk: int = 5,
                   device: torch.device = torch.device("cpu"),
                   amp_dtype: torch.dtype | None = None) -> list[dict]:
    """Top-k classes of each video: [{"path", "top": [{"class", "index", "score"}], "latency_ms"}].

    `score` is the class probability over all test views, averaged as the checkpoint's
    `test_average` says (checkpoints without one: "prob"). `latency_ms` is the wall
    time of that video: decode + preprocess + model. A video that fails to decode gives
    {"path", "error": reason} instead. `model` must already be on `device`.
    """
    if topk < 1:
        raise ValueError(f"topk must be at least 1, got {topk}")
    classes = list(ckpt["classes"])
    average = ckpt.get("test_average", "prob")
    model.eval()
    results = []
    for path in paths:
        start = time.perf_counter()
        try:
            views = video_views(path, ckpt).to(device)  # (V, T, C, S, S)
        except DecodeError as e:
            results.append({"path": str(path), "error": e.reason})
            continue
        with autocast(device, amp_dtype):
            logits = model(views).float()  # (V, K)
        if logits.shape[-1] != len(classes):
            raise ValueError(f"the model gives {logits.shape[-1]} class scores but the "
                             f"checkpoint lists {len(classes)} class names; the checkpoint is "
                             f"inconsistent (re-save it with `reskd train`)")
        if average == "logit":
            scores = logits.mean(0).softmax(-1).cpu()  # (K,)
        else:
            scores = logits.softmax(-1).mean(0).cpu()  # (K,)
        top = scores.topk(min(topk, len(classes)))
        results.append({
            "path": str(path),
            "top": [{"class": classes[i], "index": i, "score": float(p)}
                    for p, i in zip(top.values.tolist(), top.indices.tolist())],
            "latency_ms": 1000 * (time.perf_counter() - start)})
    return results


def predict_checkpoint(checkpoint: str | Path, paths: Sequence[str | Path], *, topk: int = 5,
                       device: str = "auto", precision: str = "auto",
                       channels_last: bool = False) -> list[dict]:
    """`predict_videos` with the model loaded from `checkpoint`, placed per the runtime options."""
    from reskd.cli import load_model_checkpoint
    from reskd.engine.runtime import autocast_dtype, pick_device, prepare_model

    dev = pick_device(device)
    model, ckpt = load_model_checkpoint(checkpoint)
    model = prepare_model(model, dev, channels_last, inference=True)
    return predict_videos(model, ckpt, paths, topk=topk, device=dev,
                          amp_dtype=autocast_dtype(precision, dev))


def format_predictions(results: list[dict]) -> str:
    """Terminal text: one block per video, top classes with percentages, failures last counted."""
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['path']}\n  error: {r['error']}")
            continue
        lines.append(f"{r['path']}  ({r['latency_ms']:.0f} ms)")
        width = max(len(t["class"]) for t in r["top"])
        for rank, t in enumerate(r["top"], start=1):
            lines.append(f"  {rank}. {t['class']:<{width}}  {100 * t['score']:6.2f}%")
    failed = sum("error" in r for r in results)
    lines.append(f"{len(results)} video(s), {failed} failed to decode")
    return "\n".join(lines)

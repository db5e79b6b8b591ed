"""Predict: class scores for video files from a checkpoint alone, preprocessed exactly as `test`.

Every test view (clips x crops, from the checkpoint's sampling and view recipe: the views its
model was trained on) goes through the model and the scores are averaged over views as the
checkpoint's `test_average` says ("prob": softmax scores, "logit": logits, then softmax), as
`reskd.engine.evaluate` does. A video that
cannot be decoded is reported in its result (`"error"`), never dropped, and the others still run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from reskd.data.datasets import test_views_of_video
from reskd.data.decoders import DecodeError, decode_video
from reskd.data.sampling import Sampling
from reskd.data.transforms import checkpoint_views
from reskd.engine.evaluate import average_views
from reskd.engine.runtime import autocast


def video_views(path: str | Path, ckpt: dict, *, crops: int | None = None,
                num_clips: int | None = None) -> torch.Tensor:
    """All test views of one video, as `reskd test` makes them for the checkpoint's model.
    -> (V, T, C, S, S), V = clips x crops, clip-major.

    The checkpoint's sampling and view recipe (`checkpoint_views`) through the one test-view
    function, `test_views_of_video`: one decode of the union of every clip's frames, shrunk
    in uint8 to the views' short side; `crops` and `num_clips` default to the checkpoint's.
    Raises `DecodeError` for a file that cannot be read.
    """
    s = ckpt["sampling"]
    views = checkpoint_views(ckpt, path="the checkpoint")
    short_side = views.short_side(train=False)
    return test_views_of_video(
        lambda indices_for: decode_video(path, indices_for, short_side=short_side)[0],
        sampling=Sampling.from_record(s), views=views, clips=num_clips or s["test_clips"],
        crops=crops or s["test_crops"])


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
        scores = average_views(logits[None], average)[0].cpu()  # (K,), as `reskd test`
        if average == "logit":
            scores = scores.softmax(-1)  # the averaged logits as probabilities
        top = scores.topk(min(topk, len(classes)))
        results.append({
            "path": str(path),
            "top": [{"class": classes[i], "index": i, "score": float(p)}
                    for p, i in zip(top.values.tolist(), top.indices.tolist())],
            "latency_ms": 1000 * (time.perf_counter() - start)})
    return results


def predict_checkpoint(checkpoint: str | Path, paths: Sequence[str | Path], *, topk: int = 5,
                       device: str = "auto", precision: str = "auto",
                       channels_last: bool = True, size: int | None = None) -> list[dict]:
    """`predict_videos` with the model loaded from `checkpoint`, placed as `reskd test` places
    it (BatchNorm folded; channels_last and precision as runtime's defaults), at `size` (one
    the checkpoint supports, an any-resolution student's; None: its own)."""
    from reskd.engine.runtime import autocast_dtype, pick_device, prepare_model
    from reskd.models import load_model_checkpoint

    dev = pick_device(device)
    model, ckpt = load_model_checkpoint(checkpoint, size)
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

"""Multi-view evaluation: every video's views (clips x crops) batched, scores averaged per video.

Scores are averaged as softmax probabilities ("prob", default) or raw logits ("logit").
Videos that fail to decode are listed in the result, never silently dropped; metrics are
computed on the videos that decoded. Under DDP each process scores a disjoint shard and the
scores are gathered, so every video counts exactly once.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from reskd import metrics
from reskd.engine import distributed as dist_utils
from reskd.engine.runtime import autocast


def average_views(logits: torch.Tensor, average: str) -> torch.Tensor:
    """(N, V, K) logits of every view -> (N, K) video scores: the mean of the views' softmax
    scores ("prob") or of their logits ("logit"). `reskd test` and `reskd predict` both use it."""
    if average not in ("prob", "logit"):
        raise ValueError(f"average must be 'prob' or 'logit', got {average!r}")
    return (logits.softmax(-1) if average == "prob" else logits).mean(1)


@torch.inference_mode()
def predict_scores(model: nn.Module, loader, *, device: torch.device,
                   amp_dtype: torch.dtype | None, average: str = "prob",
                   progress: bool = True, max_views: int = 64) -> dict:
    """Video-level scores for this process's shard: {"index", "scores", "failed", "seconds"}."""
    model.eval()
    indices, scores, failed = [], [], []
    start = time.perf_counter()
    for batch in tqdm(loader, desc="test", disable=not (progress and dist_utils.is_main()),
                      leave=False, dynamic_ncols=True):
        views = batch["views"].to(device)  # (N, V, T, C, H, W)
        n, v = views.shape[:2]
        with autocast(device, amp_dtype):
            # (N*V, K), at most `max_views` clips per forward: multi-view testing of large
            # models (30 views x 8 frames at 224) would not fit memory in one batch
            logits = torch.cat([model(chunk).float()
                                for chunk in views.flatten(0, 1).split(max_views)])
        scores.append(average_views(logits.unflatten(0, (n, v)), average).cpu())  # (N, K)
        indices.append(batch["index"])
        failed += [(i, f) for i, f in zip(batch["index"].tolist(), batch["failed"]) if f]
    return {"index": torch.cat(indices).numpy() if indices else np.zeros(0, np.int64),
            "scores": torch.cat(scores).numpy() if scores else np.zeros((0, 0), np.float32),
            "failed": failed, "seconds": time.perf_counter() - start}


def evaluate(model: nn.Module, loader, *, device: torch.device, amp_dtype: torch.dtype | None,
             multi_label: bool = False, average: str = "prob", progress: bool = True,
             max_views: int = 64, return_scores: bool = False) -> dict:
    """top-1/top-5/mean class accuracy (single-label) or mAP (multi-label) over the whole list;
    with `return_scores`, also "scores": {list path: video scores (K,)} (`average_views`)."""
    part = predict_scores(model, loader, device=device, amp_dtype=amp_dtype, average=average,
                          max_views=max_views,
                          progress=progress)
    parts = dist_utils.all_gather_objects(part)
    index = np.concatenate([p["index"] for p in parts])
    scores = np.concatenate([p["scores"] for p in parts if len(p["scores"])])
    failed_at = dict(f for p in parts for f in p["failed"])  # index -> "path\treason"
    failed = [failed_at[i] for i in sorted(failed_at)]
    dataset = loader.dataset
    keep = np.array([i not in failed_at for i in index.tolist()], dtype=bool)
    index, scores = index[keep], scores[keep]
    result = {"num_videos": int(len(index)), "failed": failed,
              "seconds": max(p["seconds"] for p in parts)}
    if len(index) == 0:
        raise RuntimeError(f"no video of the test list could be decoded ({len(failed)} failed); "
                           f"first: {failed[:3]}")
    labels = [dataset.entries[i].labels for i in index]
    if multi_label:
        targets = metrics.labels_to_multihot(labels, scores.shape[1])
        result["mAP"] = metrics.mean_average_precision(scores, targets)
    first = np.array([lab[0] for lab in labels])
    top = metrics.topk_accuracy(scores, first, ks=(1, 5))
    result["top1"], result["top5"] = top[1], top[5]
    result["mean_class_acc"] = metrics.mean_class_accuracy(scores, first)
    if return_scores:
        result["scores"] = {dataset.entries[i].path: row.tolist() for i, row in zip(index, scores)}
    return result

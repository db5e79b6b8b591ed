"""Recognition metrics: top-k accuracy, mean class accuracy and mean average precision (mAP).

Pure functions on numpy arrays; torch tensors are accepted and converted (no torch import here).
Every metric is returned in percent (0-100) as a Python float.

Ties are broken deterministically and the rule is part of each function's contract:
- top-k accuracy and mean class accuracy rank tied classes by class index (lower index first,
  the order of a stable sort and of `argmax`), so a tie never counts in the label's favour
  unless the label has the lower index;
- average precision treats videos with equal scores as one block, read in one step (the
  precision-recall-curve convention of scikit-learn's `average_precision_score` and of
  mmaction2 0.x `binary_precision_recall_curve`): the result does not depend on the order of
  tied videos. Without ties it is the textbook non-interpolated AP.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "topk_accuracy",
    "mean_class_accuracy",
    "average_precision",
    "mean_average_precision",
    "labels_to_multihot",
]


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """`x` as a numpy array; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.is_floating_point() and x.element_size() < 4:  # bf16 / fp16 have no numpy dtype
            x = x.float()
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"{name} must be an array-like of numbers; got {type(x).__name__} "
                        f"that numpy cannot convert ({e})") from e


def _check_scores(scores: Any) -> np.ndarray:
    s = _to_numpy(scores, "scores")
    if s.ndim != 2:
        raise ValueError(f"scores must have shape (N, K) (videos, classes); got shape {s.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores must have at least one video and one class; got shape {s.shape}")
    if not (np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer)):
        raise TypeError(f"scores must be real numbers; got dtype {s.dtype}")
    s = s.astype(np.float64)  # integer scores would wrap under negation in the sorts below
    if np.isnan(s).any():
        rows = np.flatnonzero(np.isnan(s).any(axis=1))
        raise ValueError(f"scores contain NaN in {rows.size} video(s) (first rows: "
                         f"{rows[:5].tolist()}); metrics are undefined for NaN scores")
    return s


def _check_labels(labels: Any, scores: np.ndarray) -> np.ndarray:
    y = _to_numpy(labels, "labels")
    n, k = scores.shape
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,) with one class index per video; got shape "
                         f"{y.shape} (for multi-label targets use mean_average_precision)")
    if y.shape[0] != n:
        raise ValueError(f"scores and labels disagree on the number of videos: scores has "
                         f"{n} rows (shape {scores.shape}), labels has {y.shape[0]}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must be integer class indices; got dtype {y.dtype}")
    bad = (y < 0) | (y >= k)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"labels must lie in [0, {k - 1}] for scores with K={k} classes; "
                         f"labels[{i}] = {int(y[i])}")
    return y.astype(np.int64)


def _label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """0-based rank of each video's label among its classes, ties to the lower class index.

    scores (N, K), labels (N,) -> (N,). Equals the label's position after a stable descending
    sort, computed without sorting.
    """
    n, k = scores.shape
    true_score = scores[np.arange(n), labels][:, None]  # (N, 1)
    higher = (scores > true_score).sum(axis=1)  # (N,)
    lower_index = np.arange(k)[None, :] < labels[:, None]  # (N, K)
    tied_before = ((scores == true_score) & lower_index).sum(axis=1)  # (N,)
    return higher + tied_before


def topk_accuracy(scores: Any, labels: Any, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """Percentage of videos whose label is among the k highest scores, for each k in `ks`.

    scores (N, K), labels (N,). A k larger than K is clipped to K (so it gives 100); the
    returned dict is keyed by the k that was asked for. Ties: see the module docstring.
    """
    s = _check_scores(scores)
    y = _check_labels(labels, s)
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one k, e.g. ks=(1, 5)")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"every k in ks must be an integer >= 1; got {k!r} in ks={ks!r}")
    ranks = _label_ranks(s, y)  # (N,)
    num_classes = s.shape[1]
    return {int(k): float(np.mean(ranks < min(int(k), num_classes)) * 100.0) for k in ks}


def mean_class_accuracy(scores: Any, labels: Any) -> float:
    """Mean over the classes present in `labels` of per-class top-1 recall, in percent.

    scores (N, K), labels (N,). Classes that never occur in `labels` are left out (their recall
    is undefined), so a class the model never predicts but that is absent costs nothing.
    """
    s = _check_scores(scores)
    y = _check_labels(labels, s)
    correct = _label_ranks(s, y) == 0  # (N,) top-1 hits, ties to the lower class index
    recalls = [correct[y == c].mean() for c in np.unique(y)]
    return float(np.mean(recalls) * 100.0)


def _check_binary(targets: np.ndarray, name: str) -> np.ndarray:
    if targets.dtype == bool:
        return targets.astype(np.int64)
    if not (np.issubdtype(targets.dtype, np.integer) or np.issubdtype(targets.dtype, np.floating)):
        raise TypeError(f"{name} must be numbers or booleans; got dtype {targets.dtype}")
    bad = (targets != 0) & (targets != 1)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be multi-hot (only 0 and 1); {name}[{where}] = "
                         f"{targets[where].item()!r}. Build it with "
                         f"labels_to_multihot(labels, num_classes)")
    return targets.astype(np.int64)


def _average_precision_unchecked(scores: np.ndarray, targets: np.ndarray) -> float:
    """AP in [0, 1] of one class; scores (N,), targets (N,) of 0/1 with at least one 1."""
    order = np.argsort(-scores, kind="stable")  # descending; `-` keeps +-inf ordered
    s, t = scores[order], targets[order]
    # A block of tied scores is one threshold: its last position closes the block. Comparing
    # neighbours (not np.diff) keeps equal infinities together.
    block_end = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # (B,) indices into s
    tp = np.cumsum(t)[block_end]  # (B,) true positives at each threshold
    precision = tp / (block_end + 1)  # (B,) videos scored at or above the threshold
    recall_gain = np.diff(np.r_[0, tp]) / tp[-1]  # (B,) share of positives inside each block
    return float(np.sum(precision * recall_gain))


def average_precision(scores: Any, targets: Any) -> float:
    """Non-interpolated average precision of one class, in percent.

    scores (N,), targets (N,) of 0/1. AP = sum over positives of the precision at the
    positive's rank / number of positives; a block of tied scores counts as one rank (every
    video in the block gets the block's precision), so AP does not depend on their order.
    Raises ValueError when there is no positive (AP is undefined).
    """
    s = _to_numpy(scores, "scores")
    t = _to_numpy(targets, "targets")
    if s.ndim != 1 or t.shape != s.shape:
        raise ValueError(f"scores and targets must both have shape (N,); got {s.shape} and "
                         f"{t.shape}")
    s = _check_scores(s[:, None])[:, 0]
    t = _check_binary(t, "targets")
    if t.sum() == 0:
        raise ValueError("targets has no positive, so average precision is undefined")
    return _average_precision_unchecked(s, t) * 100.0


def mean_average_precision(scores: Any, targets: Any) -> float:
    """Mean over classes of non-interpolated average precision, in percent.

    scores (N, K), targets (N, K) multi-hot (0/1 or bool). Classes without a positive in
    `targets` are left out, as in the ActivityNet / FCVID protocol and mmaction2 0.x
    `mean_average_precision`. For single-label data pass labels_to_multihot(labels, K): the
    result is then the usual per-class AP, not accuracy. Ties: see `average_precision`.
    """
    s = _check_scores(scores)
    t = _to_numpy(targets, "targets")
    if t.shape != s.shape:
        hint = (" (got class indices? convert them with labels_to_multihot(labels, num_classes))"
                if t.ndim == 1 else "")
        raise ValueError(f"scores and targets must have the same shape (N, K); got scores "
                         f"{s.shape} and targets {t.shape}{hint}")
    t = _check_binary(t, "targets")
    has_positive = t.sum(axis=0) > 0  # (K,)
    if not has_positive.any():
        raise ValueError(f"no class has a positive in targets (shape {t.shape}); mean average "
                         f"precision is undefined. Are the targets all zero?")
    aps = [_average_precision_unchecked(s[:, c], t[:, c]) for c in np.flatnonzero(has_positive)]
    return float(np.mean(aps) * 100.0)


def labels_to_multihot(labels: Sequence[Sequence[int] | int], num_classes: int) -> np.ndarray:
    """Multi-hot targets (N, num_classes) float32 from each video's class indices.

    `labels[i]` is a list or tuple of class indices (an Entry's `labels`); a bare int is read
    as a single label. Repeated indices are harmless; an empty list gives an all-zero row.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1; got {num_classes!r}")
    out = np.zeros((len(labels), int(num_classes)), dtype=np.float32)  # (N, K)
    for i, video_labels in enumerate(labels):
        if isinstance(video_labels, (int, np.integer)) and not isinstance(video_labels, bool):
            video_labels = (video_labels,)
        if not isinstance(video_labels, (list, tuple, np.ndarray)):
            raise TypeError(f"labels[{i}] must be a list or tuple of class indices; got "
                            f"{type(video_labels).__name__} {video_labels!r}")
        for c in video_labels:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
                raise TypeError(f"labels[{i}] must hold integer class indices; got {c!r} in "
                                f"{video_labels!r}")
            if not 0 <= c < num_classes:
                raise ValueError(f"labels[{i}] = {video_labels!r} holds class {c}, outside "
                                 f"[0, {num_classes - 1}] for num_classes={num_classes}")
            out[i, c] = 1.0
    return out

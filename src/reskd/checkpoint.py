"""Checkpoints: atomic writes, safe loads, and the context a model needs to run on its own.

A checkpoint is a dict of tensors and plain Python values, loadable with
`torch.load(weights_only=True)`; anything needing arbitrary unpickling is refused. It carries
its context (config, class names, input size, frames, sampling, mean/std, GMACs, metrics) so
`test`, `predict` and `export` need nothing else. The teacher is never stored: every reskd
checkpoint is a student-only (deployable) model; `checkpoint.pt` adds optimizer state for
resuming, `model.pt` is the model alone.

A run folder holds `checkpoint.pt` (the newest position: an epoch end, or mid-epoch after an
interrupt) and the last `keep` epoch ends as `checkpoint-epochK.pt`; `find_resume_checkpoint`
picks the newest one that loads, so a corrupt `checkpoint.pt` costs at most one epoch.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from reskd.config import Config, to_dict

FORMAT = "reskd-checkpoint/1"
LATEST = "checkpoint.pt"
_EPOCH_FILE = re.compile(r"checkpoint-epoch(\d+)\.pt")


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    try:  # Linux shows it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Runs `write(file)` on a temp file in the same folder, fsyncs, renames over `path`.

    On any failure the temp file is removed and `path` is left as it was; an OSError (full
    disk, read-only folder) is re-raised saying so.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, f"could not write checkpoint {path} ({e.strerror}); the "
                      f"previous checkpoint there, if any, is intact") from e
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it owner-only; honour the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OSError(e.errno, f"could not write checkpoint {path} ({e.strerror or e}); the "
                          f"previous checkpoint there, if any, is intact") from e
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str) -> None:
    """A text file (a run record, a report) that is whole or absent, never half written."""
    _write_atomic(Path(path), lambda f: f.write(text.encode()))


def save_checkpoint(payload: dict, path: str | Path) -> None:
    """Writes atomically: temp file in the same folder, fsync, rename, fsync the folder.

    If anything fails (a full disk, say) the previous file at `path` is left untouched and the
    error says so.
    """
    _write_atomic(Path(path), lambda f: torch.save({"format": FORMAT, **payload}, f))


def copy_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Copies a written checkpoint file to `dst`, atomically like `save_checkpoint`."""
    with open(src, "rb") as source:
        _write_atomic(Path(dst), lambda f: shutil.copyfileobj(source, f, 1 << 20))


def _refusal(path: Path, error: pickle.UnpicklingError) -> ValueError:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    code = next((line for line in lines if "GLOBAL" in line), None)
    if code is not None:  # the pickle names a function or class to import and call
        return ValueError(f"refusing to load {path}: unpickling it would import and run code "
                          f"({code}). reskd loads checkpoints with weights_only=True; only load "
                          f"files you trust, re-saved as plain tensors and Python values.")
    detail = next((line for line in lines if "Unsupported" in line), lines[-1] if lines else "")
    return ValueError(f"{path} is not a readable torch checkpoint (corrupt, or a pickle that "
                      f"torch.save did not write; weights_only=True rejected it: {detail})")


def load_checkpoint(path: str | Path) -> dict:
    """Loads a reskd checkpoint with weights_only=True; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise _refusal(path, e) from e
    except (RuntimeError, EOFError, OSError) as e:
        first = str(e).splitlines()[0].split(". ")[0] if str(e) else type(e).__name__
        raise ValueError(f"{path} is not a readable checkpoint (truncated or not a torch "
                         f"file): {first}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        what = type(ckpt).__name__
        if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor)
                                                   for v in ckpt.values()):
            what = "a bare state dict (parameter name -> tensor)"
        raise ValueError(f"{path} is not a reskd checkpoint (no '{FORMAT}' marker; it holds "
                         f"{what}). reskd loads checkpoints written by `reskd train` / "
                         f"`reskd distill`; to start from other weights use model.pretrained.")
    return ckpt


# ---------------------------------------------------------------------------------------------
# The checkpoints of one run folder


def epoch_checkpoint_path(out_dir: str | Path, epoch: int) -> Path:
    return Path(out_dir) / f"checkpoint-epoch{epoch}.pt"


def epoch_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every `checkpoint-epochK.pt` in `out_dir`, newest first."""
    found = []
    for p in Path(out_dir).glob("checkpoint-epoch*.pt"):
        m = _EPOCH_FILE.fullmatch(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found, reverse=True)


def prune_epoch_checkpoints(out_dir: str | Path, keep: int) -> list[Path]:
    """Deletes all but the newest `keep` epoch checkpoints; returns the deleted paths."""
    gone = [p for _, p in epoch_checkpoints(out_dir)[keep:]]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def position(ckpt: dict) -> tuple[int, int]:
    """(finished epochs, steps into the next epoch) of a train-state checkpoint."""
    return int(ckpt.get("epoch", 0)), int(ckpt.get("epoch_step", 0))


def find_resume_checkpoint(out_dir: str | Path,
                           log: Callable[[str], None] = print) -> tuple[dict, Path] | None:
    """The newest readable train-state checkpoint of a run folder and its path, or None.

    `checkpoint.pt` is tried first; an epoch checkpoint that is newer (a crash between the two
    writes) or the newest readable one when `checkpoint.pt` is unreadable wins. Every file that
    cannot be read is reported through `log`, with the reason.
    """
    out_dir = Path(out_dir)
    best: tuple[dict, Path] | None = None
    latest = out_dir / LATEST
    if latest.is_file():
        try:
            ckpt = load_checkpoint(latest)
            if ckpt.get("kind") != "train-state":
                raise ValueError(f"{latest} holds a {ckpt.get('kind')!r} checkpoint, not a "
                                 f"train state")
            best = (ckpt, latest)
        except ValueError as e:
            log(f"warning: cannot resume from {latest}: {e}")
    for epoch, path in epoch_checkpoints(out_dir):
        if best is not None and epoch <= position(best[0])[0]:
            break  # every remaining epoch file is older than what we have
        try:
            ckpt = load_checkpoint(path)
        except ValueError as e:
            log(f"warning: cannot resume from {path}: {e}")
            continue
        if best is None:
            log(f"falling back to {path} (epoch {epoch}), the newest readable checkpoint")
        best = (ckpt, path)
        break
    return best


class RecipeAssumedWarning(UserWarning):
    """A checkpoint made before view recipes were recorded: its test views are guessed."""


def checkpoint_sizes(ckpt: dict) -> tuple[int, ...]:
    """The input sizes a checkpoint's model runs at: an any-resolution student's recorded
    `student_sizes`, else its one size."""
    return tuple((ckpt.get("views") or {}).get("student_sizes") or (ckpt["size"],))


def check_size(ckpt: dict, size: int | None, path: str | Path = "checkpoint") -> int:
    """`size` (None: the checkpoint's own), or a ValueError listing the sizes it supports."""
    supported = checkpoint_sizes(ckpt)
    if size is None:
        return ckpt["size"]
    if size not in supported:
        several = len(supported) > 1
        raise ValueError(
            f"{path} supports --size {', '.join(map(str, supported))}"
            + (" (an any-resolution student, distill.student_sizes)" if several else
               " only (a student trained at one size; distill.student_sizes trains one for "
               "several)") + f"; got --size {size}")
    return size


def checkpoint_at_size(ckpt: dict, size: int | None, path: str | Path = "checkpoint") -> dict:
    """`ckpt` as the checkpoint of the network deployed at `size` (one of `checkpoint_sizes`;
    None: its own). An any-resolution student's comes back as a shallow copy describing the
    ordinary network for that size, so test, predict and export make its views and report its
    cost: "size", the view recipe's size and "gmacs" are that size's, and neither the recipe's
    `student_sizes` nor the builder's `bn_sizes` is left (`load_model_checkpoint` puts that
    network's weights in "model"). Any other checkpoint is returned as it is."""
    size = check_size(ckpt, size, path)
    if len(checkpoint_sizes(ckpt)) == 1:
        return ckpt
    views = {k: v for k, v in ckpt["views"].items() if k != "student_sizes"}
    kwargs = {k: v for k, v in ckpt["model_kwargs"].items() if k != "bn_sizes"}
    return {**ckpt, "size": size, "views": {**views, "size": size}, "model_kwargs": kwargs,
            "gmacs": (ckpt.get("gmacs_by_size") or {}).get(size, ckpt.get("gmacs"))}


def recorded_views(ckpt: dict, path: str | Path = "checkpoint", size: int | None = None) -> dict:
    """The test-view recipe (`"views"`, as `reskd.data.transforms.Views.record` writes it) of
    a checkpoint's model at `size` (one of `checkpoint_sizes`; None: its own). For a checkpoint
    made before recipes were recorded: views resized straight to its size with antialiasing
    (how reskd tested every model then), with a `RecipeAssumedWarning` saying so. A recipe
    recorded before `test_short_side_ratio` tests at its `short_side_ratio`, as it was
    trained."""
    ckpt = checkpoint_at_size(ckpt, size, path)
    views = ckpt.get("views")
    if views is None:
        size, s = ckpt["size"], ckpt["sampling"]
        warnings.warn(
            f"{path} records no view recipe (made before reskd recorded one); assuming its "
            f"test views are the frames resized straight to {size} px with antialiasing (short "
            f"side {round(size * s['short_side_ratio'])}, crop {size}), as reskd tested every "
            f"model then. A student distilled back then was trained on its teacher's crop "
            f"shrunk bilinearly: retrain it to test it on views made as in training.",
            RecipeAssumedWarning, stacklevel=3)
        return {"size": size, "crop_size": size, "shrink": "antialias",
                "short_side_ratio": s["short_side_ratio"],
                "test_short_side_ratio": s["short_side_ratio"],
                "downsample_to": ckpt.get("config", {}).get("data", {}).get("downsample_to", 0),
                "mean": list(ckpt["mean"]), "std": list(ckpt["std"])}
    return {**views, "test_short_side_ratio": views.get("test_short_side_ratio")
            or views["short_side_ratio"]}


def checkpoint_context(cfg: Config, classes: list[str], kwargs: dict, gmacs: float | None,
                       views: dict) -> dict:
    """What a checkpoint carries besides weights; `views` is the test-view recipe
    (`Views.record()`), followed by test, predict and the analysis commands."""
    d = cfg.data
    return {"config": to_dict(cfg), "classes": classes, "model_kwargs": kwargs, "size": d.size,
            "views": views, "test_average": d.test_average,
            "frames": d.clip_len or d.num_segments,
            "sampling": {"num_segments": d.num_segments, "clip_len": d.clip_len,
                         "frame_interval": d.frame_interval, "test_clips": d.test_clips,
                         "test_crops": d.test_crops, "short_side_ratio": d.short_side_ratio},
            "mean": list(d.mean), "std": list(d.std), "gmacs": gmacs}

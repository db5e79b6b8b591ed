"""Checkpoints: atomic writes, safe loads, and the context a model needs to run on its own.

A checkpoint is a dict of tensors and plain Python values, loadable with
`torch.load(weights_only=True)`; anything needing arbitrary unpickling is refused. It carries
its context (config, class names, input size, frames, sampling, mean/std, GMACs, metrics) so
`test`, `predict` and `export` need nothing else. The teacher is never stored: every reskd
checkpoint is a student-only (deployable) model; `checkpoint.pt` adds optimizer state for
resuming, `model.pt` is the model alone.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import torch

FORMAT = "reskd-checkpoint/1"


def save_checkpoint(payload: dict, path: str | Path) -> None:
    """Writes atomically: temp file in the same folder, fsync, rename, fsync the folder.

    If anything fails (a full disk, say) the previous file at `path` is left untouched and the
    error says so.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OSError(e.errno, f"could not write checkpoint {path} ({e.strerror}); the "
                          f"previous checkpoint there, if any, is intact") from e
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | Path) -> dict:
    """Loads a reskd checkpoint with weights_only=True; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"refusing to load {path}: it needs arbitrary code to unpickle "
                         f"(weights_only=True rejected it: {str(e).splitlines()[0]}). Only "
                         f"load checkpoints you trust, re-saved as plain tensors.") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{path} is not a readable checkpoint (truncated or not a torch "
                         f"file): {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a reskd checkpoint (no '{FORMAT}' marker); reskd "
                         f"loads checkpoints written by `reskd train` / `reskd distill`.")
    return ckpt

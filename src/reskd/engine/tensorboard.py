"""Training curves for TensorBoard: `OUT/tensorboard/` of every run (`tensorboard --logdir runs`).

What is written (x axis: the global optimizer step, so a resumed run continues the same curves):
- every `runtime.log_every` steps, the mean over those steps of each loss part ("loss/ce",
  "loss/kd": the weighted KD total, "loss/<term>" raw and "loss_weighted/<term>" weighted for
  each KD term), "train/lr", "train/grad_norm", "train/top1", "train/clips_per_s" and
  "train/data_wait" (the share of wall time spent waiting for the loader);
- every epoch, "epoch/<key>" for the numbers of its metrics.jsonl line (loss parts, train top-1,
  clips/s, skipped videos, memory) and "val/<metric>" when it was validated.

Only the main process writes (DDP). A resumed run opens the writer with `purge_step` = the step
it resumes from: TensorBoard then drops the events an interrupted process wrote after that step,
so no step appears twice. A new run in a folder that held another run deletes that run's event
files, as it replaces its metrics.jsonl. Without the `tensorboard` package the run goes on with
metrics.jsonl alone and says how to get curves.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

FOLDER = "tensorboard"
INSTALL_HINT = ("TensorBoard curves are off: the `tensorboard` package is not installed "
                "(pip install tensorboard, or pip install 'reskd[tensorboard]'); metrics.jsonl "
                "still has every epoch's numbers. Set runtime.tensorboard=false to silence this.")


def open_writer(out_dir: Path, *, resume_step: int | None, log: Callable[[str], None]):
    """A `SummaryWriter` on OUT/tensorboard, or None without the package. `resume_step`: the
    global step the run resumes from (None: a new run, whose folder is emptied first)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        log(INSTALL_HINT)
        return None
    folder = Path(out_dir) / FOLDER
    if resume_step is None:
        shutil.rmtree(folder, ignore_errors=True)
    return SummaryWriter(str(folder), purge_step=resume_step or None)


def write_scalars(writer, prefix: str, values: dict, step: int) -> None:
    """`prefix/key` for every number in `values` (nested dicts become `prefix/key/subkey`)."""
    for key, value in values.items():
        tag = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            write_scalars(writer, tag, value, step)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(tag, value, step)

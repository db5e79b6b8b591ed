"""Deployment: the student alone, as verified ONNX or as a model-only checkpoint.

ONNX export uses the TorchScript exporter (`dynamo=False`): with torch 2.14 the torch.export
exporter needs `onnxscript`, which reskd does not depend on, and the TorchScript one handles
these CNNs. The graph takes clips (N, T, 3, S, S) float32 with a dynamic batch axis N (T and S
are the checkpoint's) and returns logits (N, K). The checkpoint's context (classes, size,
frames, mean/std, sampling, view recipe, test averaging) is embedded as JSON values in the model's `metadata_props`, so the
.onnx file alone is enough to preprocess and label.

Every export is verified: ONNX Runtime (CPU) and the eager fp32 model run the same random clips
at two batch sizes (the second checks the batch axis really is dynamic), and a difference above
`tolerance` raises `ExportMismatchError`.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reskd.data.transforms import checkpoint_views

ONNX_HINT = "ONNX export needs onnx and onnxruntime: pip install 'reskd[onnx]'"
INPUT_NAME, OUTPUT_NAME = "clips", "logits"
CONTEXT_KEYS = ("classes", "size", "frames", "mean", "std", "sampling", "views", "test_average",
                "gmacs")


class ExportMismatchError(RuntimeError):
    """The exported graph does not reproduce the eager model."""


def _import_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError(f"{ONNX_HINT} ({e})") from e
    return onnx, onnxruntime


def _session(path: str | Path, threads: int):
    _, ort = _import_onnx()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _eager_copy(model: nn.Module) -> nn.Module:
    """fp32, CPU, eval, contiguous-format copy: the reference the export must match."""
    m = copy.deepcopy(model).float().to("cpu", memory_format=torch.contiguous_format).eval()
    if hasattr(m, "channels_last"):
        m.channels_last = False
    return m


def verify_onnx(onnx_path: str | Path, model: nn.Module, *, frames: int, size: int,
                batches: tuple[int, ...] = (1, 2), tolerance: float = 1e-3,
                seed: int = 0) -> float:
    """Max |ORT - eager fp32| over random clips (batch, frames, 3, size, size) for each batch size.

    Raises `ExportMismatchError` naming both numbers when it exceeds `tolerance`, or when ONNX
    Runtime cannot run a batch size (a batch size baked into the graph).
    """
    session = _session(onnx_path, torch.get_num_threads())
    reference = _eager_copy(model)
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in batches:
        x = torch.randn(batch, frames, 3, size, size, generator=gen)  # (N, T, C, S, S)
        try:
            got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        except Exception as e:  # onnxruntime raises its own (non-public) exception types
            raise ExportMismatchError(
                f"ONNX Runtime cannot run {onnx_path} on a batch of {batch} clips of shape "
                f"{tuple(x.shape[1:])}: {str(e).splitlines()[0]}. If only batch sizes other than "
                f"the traced one fail, the model bakes its batch size into the graph (e.g. "
                f"unflatten/reshape with sizes read from a tensor's shape); use -1 for the "
                f"batch dimension there.") from e
        with torch.inference_mode():
            want = reference(x).numpy()
        if got.shape != want.shape:
            raise ExportMismatchError(f"{onnx_path} gives logits of shape {got.shape} for a batch "
                                      f"of {batch}; the eager model gives {want.shape}")
        worst = max(worst, float(np.abs(got - want).max()))
    if not worst <= tolerance:  # also catches NaN
        raise ExportMismatchError(
            f"{onnx_path} does not match the eager fp32 model: max |ONNX Runtime - PyTorch| = "
            f"{worst:.3g} > tolerance {tolerance:.3g}")
    return worst


def ort_videos_per_s(onnx_path: str | Path, *, frames: int, size: int, batch: int,
                     threads: int, warmup: int = 2, min_seconds: float = 1.0,
                     max_iters: int = 50) -> float:
    """ONNX Runtime (CPU) throughput on random clips, timed after `warmup` runs."""
    session = _session(onnx_path, threads)
    x = np.random.default_rng(0).standard_normal((batch, frames, 3, size, size), np.float32)
    feed = {INPUT_NAME: x}
    for _ in range(warmup):
        session.run([OUTPUT_NAME], feed)
    iters, start = 0, time.perf_counter()
    while iters < max_iters and (iters < 2 or time.perf_counter() - start < min_seconds):
        session.run([OUTPUT_NAME], feed)
        iters += 1
    return iters * batch / (time.perf_counter() - start)


def read_onnx_metadata(path: str | Path) -> dict:
    """The reskd context embedded by `export_onnx`: {key: decoded JSON value}."""
    onnx, _ = _import_onnx()
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props if p.key in CONTEXT_KEYS}


def export_onnx(model: nn.Module, ckpt: dict, out_path: str | Path, *, batch: int = 1,
                opset: int = 17, tolerance: float = 1e-3) -> dict:
    """Exports the student to ONNX, embeds the checkpoint context, verifies it, times it.

    Returns {"path", "max_abs_diff", "videos_per_s", "bytes", plus what the throughput was
    measured with: "device", "dtype", "batch", "input_shape", "threads", "opset"}.
    """
    onnx, _ = _import_onnx()
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    missing = [k for k in CONTEXT_KEYS if k not in ckpt and k not in ("views", "test_average")]
    if missing:
        raise ValueError(f"the checkpoint lacks {missing}; export needs a checkpoint written by "
                         f"`reskd train` / `reskd distill`")
    frames, size = int(ckpt["frames"]), int(ckpt["size"])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    m = _eager_copy(model)
    x = torch.randn(batch, frames, 3, size, size)  # (N, T, C, S, S)
    with warnings.catch_warnings():
        # The legacy-exporter deprecation notice and tracer warnings are expected here; what
        # the tracer warns about (values frozen into the graph) is checked by verify_onnx below,
        # at a batch size other than the traced one.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(m, (x,), str(out_path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    graph = onnx.load(str(out_path))
    context = {**ckpt, "views": checkpoint_views(ckpt, "the checkpoint").record(),
               "test_average": ckpt.get("test_average", "prob")}
    for key in CONTEXT_KEYS:
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, json.dumps(context[key])
    entry = graph.metadata_props.add()
    entry.key, entry.value = "input_layout", json.dumps("(N, T, C, H, W) float32, normalised")
    onnx.checker.check_model(graph)
    onnx.save(graph, str(out_path))
    diff = verify_onnx(out_path, m, frames=frames, size=size, batches=(batch, batch + 1),
                       tolerance=tolerance)
    threads = torch.get_num_threads()
    speed = ort_videos_per_s(out_path, frames=frames, size=size, batch=batch, threads=threads)
    return {"path": str(out_path), "max_abs_diff": diff, "videos_per_s": speed,
            "bytes": out_path.stat().st_size, "device": "cpu: onnxruntime CPUExecutionProvider",
            "dtype": "fp32", "batch": batch, "input_shape": [batch, frames, 3, size, size],
            "threads": threads, "opset": opset}


TRAINING_ONLY_KEYS = ("optimizer", "scheduler", "step")


def export_student_checkpoint(ckpt_path: str | Path, out_path: str | Path) -> dict:
    """Writes a model-only checkpoint (kind "model") from a train-state one, context kept.

    Drops optimizer and scheduler state; keeps config, classes, size, frames, sampling,
    mean/std, GMACs, epoch and history; `metrics` is the last validation result when the
    checkpoint has none. Returns {"path", "bytes", "dropped"}.
    """
    from reskd.engine.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    dropped = [k for k in TRAINING_ONLY_KEYS if k in ckpt]
    out = {k: v for k, v in ckpt.items() if k not in TRAINING_ONLY_KEYS and k != "format"}
    out["kind"] = "model"
    if "metrics" not in out:
        history = out.get("history") or [{}]
        out["metrics"] = history[-1].get("val", {})
    save_checkpoint(out, out_path)
    return {"path": str(out_path), "bytes": Path(out_path).stat().st_size, "dropped": dropped}


def run_export(checkpoint: str | Path, *, format: str = "onnx", out: str | Path | None = None,
               batch: int = 1, opset: int = 17) -> dict:
    """`reskd export`: "onnx" (verified graph) or "checkpoint" (model-only checkpoint).

    `out` defaults to the checkpoint's path with suffix .onnx, or `<stem>.student.pt`.
    """
    formats = ("onnx", "checkpoint")
    if format not in formats:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(formats)}")
    checkpoint = Path(checkpoint)
    if format == "checkpoint":
        out = out or checkpoint.with_name(f"{checkpoint.stem}.student.pt")
        return export_student_checkpoint(checkpoint, out)
    from reskd.models import load_model_checkpoint

    model, ckpt = load_model_checkpoint(checkpoint)
    return export_onnx(model, ckpt, out or checkpoint.with_suffix(".onnx"), batch=batch,
                       opset=opset)

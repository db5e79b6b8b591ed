"""Deployment: the student alone, as verified ONNX or as a model-only checkpoint.

ONNX export uses the TorchScript exporter (`dynamo=False`): with torch 2.14 the torch.export
exporter needs `onnxscript`, which reskd does not depend on, and the TorchScript one handles
these CNNs. The graph takes clips (N, T, 3, S, S) float32 with a dynamic batch axis N (T and S
are the checkpoint's) and returns logits (N, K). The checkpoint's context (classes, size,
frames, mean/std, sampling, view recipe, test averaging) is embedded as JSON values in the
model's `metadata_props`, so the .onnx file alone is enough to preprocess and label.

Every export is verified: ONNX Runtime (CPU) and the eager fp32 model run the same random clips
at two batch sizes (the second checks the batch axis really is dynamic), and a difference above
`tolerance` raises `ExportMismatchError`.

The INT8 student (`export_int8`, `reskd export --int8`) is ONNX Runtime's static quantization
of that graph, calibrated on the run's training videos and checked on its validation videos,
both as `reskd test` views them. Decisions, measured on the demo's ResKD student (1,000
validation videos) and TSN-R50 at 112 px (bench/bench_int8.py):
- QDQ format, ORT's recommended one: its CPU kernels fuse QuantizeLinear/DequantizeLinear
  pairs into integer convolutions, and other runtimes read the same file. QOperator ran at
  the same speed within noise (R50: 2.66x, 2.83x fp32 in two runs; QDQ 2.85x, 2.53x).
- uint8 activations, int8 weights (U8S8): what ORT's quantization guide recommends for x86
  with or without VNNI (int8 activations were slower than fp32 on R50 here, in a one-off
  check).
- Weights per output channel: BatchNorm folded into the convolutions gives each channel its
  own weight range. Measured, it is neither faster nor slower than per-tensor (R50: 2.41x,
  2.64x) and the demo agrees no differently (per-tensor 97.6 / 96.8% with 100 / 1,000
  calibration videos; per-channel 97.3 / 97.4%); it is kept for models whose channel
  ranges differ more than the demo's.
- Min-max calibration: percentile and entropy agreed no better on the demo (97.4, 97.3 vs
  97.3%) and keep every activation of every calibration clip in memory; min-max keeps two
  numbers per tensor. 100 training videos by default (1,000 agreed no better).
- The export fails (`Int8ParityError`) when INT8 and fp32 agree on the top-1 class of fewer
  than 95% of the validation videos (see `export_int8`).
"""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import SequentialSampler

from reskd import metrics
from reskd.data.datasets import VideoDataset, make_loader, missing_files
from reskd.data.formats import read_list
from reskd.data.sampling import Sampling
from reskd.data.transforms import checkpoint_views
from reskd.efficiency.benchmark import interleaved_rates
from reskd.engine.evaluate import average_views

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
    """The reskd context embedded by `export_onnx` (and an INT8 model's "quantization"
    record): {key: decoded JSON value}."""
    onnx, _ = _import_onnx()
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: json.loads(p.value) for p in model.metadata_props
            if p.key in CONTEXT_KEYS + ("quantization",)}


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


# ---------------------------------------------------------------------------------------------
# INT8: ONNX Runtime static quantization, calibrated and checked on the run's own videos

QUANT_FORMATS = ("qdq", "qoperator")


class Int8ParityError(ExportMismatchError):
    """The INT8 model's top-1 class differs from the fp32 ONNX model's on too many videos."""


def checkpoint_video_set(ckpt: dict, list_name: str, *, data_root: str | Path | None = None,
                         list_path: str | Path | None = None, videos: int = 0) -> VideoDataset:
    """Test views of the videos of one of the checkpoint's data lists ("train_list" or
    "val_list"), made as `reskd test` makes them for its model (the checkpoint's sampling, view
    recipe and clips x crops).

    The list and the data root are the checkpoint's recorded `data.*` (a recorded list is
    relative to the root, a relative root to the working directory) unless given; a given list
    is read as given. `videos` > 0 keeps that many, evenly spaced over the list (lists are
    often grouped by class). A list or video that is not there is a FileNotFoundError naming the
    path and the option to pass.
    """
    option = {"train_list": "--train-list", "val_list": "--val-list"}[list_name]
    data = ckpt.get("config", {}).get("data", {})
    root = Path(data_root if data_root is not None else data.get("root", ""))
    if list_path is None:
        if not data.get(list_name):
            raise ValueError(f"the checkpoint records no data.{list_name}; pass the list with "
                             f"{option} LIST and the folder its paths are relative to with "
                             f"--data-root DIR")
        path = Path(data[list_name])
        path = path if path.is_absolute() else root / path
        where = f"data.{list_name} recorded in the checkpoint"
    else:
        path, where = Path(list_path), option
    if not path.is_file():
        raise FileNotFoundError(f"list {path} ({where}) not found; pass the list with {option} "
                                f"LIST, or the data folder it was trained on with --data-root DIR")
    fmt = data.get("format", "video")
    entries = read_list(path, format=fmt, num_classes=len(ckpt["classes"]))
    if not entries:
        raise ValueError(f"{path} lists no videos; pass another list with {option}")
    if 0 < videos < len(entries):
        entries = [entries[i] for i in np.linspace(0, len(entries) - 1, videos).round().astype(int)]
    missing = missing_files(entries, root, fmt)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(entries)} videos of {path} do not exist under the data root "
            f"{str(root) or '.'!r} (first: {', '.join(missing[:3])}); pass the folder they are "
            f"under with --data-root DIR")
    s = ckpt["sampling"]
    return VideoDataset(entries, root, sampling=Sampling.from_record(s),
                        views=checkpoint_views(ckpt, "the checkpoint"), train=False,
                        num_classes=len(ckpt["classes"]), format=fmt,
                        frame_template=data.get("frame_template", "img_{:05d}.jpg"),
                        test_clips=s["test_clips"], test_crops=s["test_crops"])


def _clip_batches(dataset: VideoDataset, failed: list[str], *, batch: int = 8,
                  workers: int = 0):
    """Yields (clips (N*V, T, C, S, S) float32, video indices (N,), views V) per `batch`
    videos; a video that fails to decode is left out and its "path<TAB>reason" appended to
    `failed`."""
    loader = make_loader(dataset, batch_size=batch, workers=workers,
                         sampler=SequentialSampler(dataset))
    for b in loader:
        ok = torch.tensor([not f for f in b["failed"]])
        failed += [f for f in b["failed"] if f]
        if ok.any():
            views = b["views"][ok]  # (N, V, T, C, S, S)
            yield views.flatten(0, 1).numpy(), b["index"][ok].numpy(), views.shape[1]


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration, *,
                  per_channel: bool = True, quant_format: str = "qdq") -> int:
    """Static INT8 quantization of an exported model with ONNX Runtime's tools: shape
    inference and graph pre-processing (`quant_pre_process`), then `quantize_static` with
    activation ranges calibrated (min-max) on `calibration`, an iterable of clip batches
    (N, T, C, S, S) float32. Weights int8 (symmetric, per output channel with `per_channel`),
    activations uint8 (asymmetric: post-ReLU maps use all 256 levels). The fp32 model's
    metadata is copied. -> the number of clips calibrated on.
    """
    onnx, _ = _import_onnx()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if quant_format not in QUANT_FORMATS:
        raise ValueError(f"unknown quantization format {quant_format!r}; valid: "
                         f"{', '.join(QUANT_FORMATS)}")

    class Clips(CalibrationDataReader):
        def __init__(self):
            self.batches, self.count = iter(calibration), 0

        def get_next(self) -> dict | None:
            clips = next(self.batches, None)
            if clips is None:
                if self.count == 0:
                    raise ValueError("no calibration clips: every calibration video failed to "
                                     "decode (see `reskd data check`)")
                return None
            self.count += len(clips)
            return {INPUT_NAME: clips}

    reader = Clips()
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # symbolic shape inference cannot follow the batch-dependent reshapes of the
        # TorchScript graph; ONNX's own shape inference and ORT's graph passes still run
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(out_path), reader,
            quant_format=QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax)
    source, graph = onnx.load(str(fp32_path)), onnx.load(str(out_path))
    del graph.metadata_props[:]
    graph.metadata_props.extend(p for p in source.metadata_props if p.key != "quantization")
    entry = graph.metadata_props.add()
    entry.key, entry.value = "quantization", json.dumps(
        {"format": quant_format, "weights": "int8", "per_channel": per_channel,
         "activations": "uint8", "calibration": "minmax", "calibration_clips": reader.count})
    onnx.save(graph, str(out_path))
    return reader.count


def compare_top1(reference_path: str | Path, candidate_path: str | Path,
                 dataset: VideoDataset, *, average: str = "prob", batch: int = 8,
                 workers: int = 0, threads: int | None = None) -> dict:
    """Both ONNX models on every test view of `dataset`'s videos, scores averaged per video as
    `reskd test` does: {"num_videos", "failed", "top1_reference", "top1_candidate" (%),
    "top1_agreement" (% of videos whose top-1 class is the same)}."""
    threads = threads or torch.get_num_threads()
    sessions = [_session(p, threads) for p in (reference_path, candidate_path)]
    scores: list[list[torch.Tensor]] = [[], []]
    indices, failed = [], []
    for clips, index, v in _clip_batches(dataset, failed, batch=batch, workers=workers):
        for session, out in zip(sessions, scores):
            logits = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: clips})[0])
            out.append(average_views(logits.unflatten(0, (len(index), v)), average))  # (N, K)
        indices.append(index)
    if not indices:
        raise RuntimeError(f"none of the {len(dataset)} validation videos could be decoded; "
                           f"first: {failed[:3]}")
    ref, cand = (torch.cat(s).numpy() for s in scores)  # (N, K) each
    labels = np.array([dataset.entries[i].labels[0] for i in np.concatenate(indices)])
    agree = float((ref.argmax(1) == cand.argmax(1)).mean())
    return {"num_videos": len(labels), "failed": failed,
            "top1_reference": metrics.topk_accuracy(ref, labels, ks=(1,))[1],
            "top1_candidate": metrics.topk_accuracy(cand, labels, ks=(1,))[1],
            "top1_agreement": 100.0 * agree}


def ort_speeds(paths: dict[str, str | Path], *, frames: int, size: int, batch: int,
               threads: int, rounds: int = 3, min_seconds: float = 1.0) -> dict:
    """ONNX Runtime (CPU) videos/s of each model on the same random clips, timed interleaved
    in rounds (`interleaved_rates`) after two warm-up runs each: {name: [videos/s per round]}."""
    x = np.random.default_rng(0).standard_normal((batch, frames, 3, size, size), np.float32)
    cases = {}
    for name, path in paths.items():
        session = _session(path, threads)
        for _ in range(2):
            session.run([OUTPUT_NAME], {INPUT_NAME: x})
        cases[name] = lambda s=session: s.run([OUTPUT_NAME], {INPUT_NAME: x})
    rates = interleaved_rates(cases, rounds=rounds, min_seconds=min_seconds)
    return {name: [r * batch for r in per_round] for name, per_round in rates.items()}


def check_int8_parity(fp32_path: str | Path, int8_path: str | Path, dataset: VideoDataset,
                      *, min_agreement: float, average: str = "prob", workers: int = 0,
                      threads: int | None = None) -> dict:
    """`compare_top1` of the fp32 and INT8 models on `dataset`; raises `Int8ParityError`
    naming both accuracies when their top-1 classes agree on fewer than `min_agreement` % of
    the videos."""
    if not 0 <= min_agreement <= 100:
        raise ValueError(f"min_agreement is a percentage of videos, 0 to 100; got {min_agreement}")
    result = compare_top1(fp32_path, int8_path, dataset, average=average, workers=workers,
                          threads=threads)
    if not result["top1_agreement"] >= min_agreement:
        raise Int8ParityError(
            f"{int8_path} agrees with the fp32 model {fp32_path} on the top-1 class of "
            f"{result['top1_agreement']:.2f}% of {result['num_videos']} validation videos, "
            f"below the {min_agreement:.2f}% required (--min-agreement; top-1: fp32 "
            f"{result['top1_reference']:.2f}%, int8 {result['top1_candidate']:.2f}%). "
            f"Calibrate on more videos (--calibration-videos), or deploy the fp32 model.")
    return result


def export_int8(fp32_path: str | Path, ckpt: dict, out_path: str | Path, *,
                calibration_videos: int = 100, validation_videos: int = 1000,
                min_agreement: float = 95.0, per_channel: bool = True, quant_format: str = "qdq",
                data_root: str | Path | None = None, train_list: str | Path | None = None,
                val_list: str | Path | None = None, batch: int = 1,
                workers: int | None = None, min_seconds: float = 1.0) -> dict:
    """The INT8 student of a verified fp32 export: quantized (`quantize_int8`) with activation
    ranges calibrated on `calibration_videos` training videos, checked against the fp32 model
    on `validation_videos` validation videos (0: all; both evenly spaced over their lists, test
    views of the checkpoint's recipe) and timed against it.

    Raises `Int8ParityError` when the two models' top-1 classes agree on fewer than
    `min_agreement` % of the validation videos. The top-1 points INT8 can lose are at most the
    disagreement, but flips go both ways: the demo student (69% top-1, many videos with their
    top two classes within 0.02 probability) agrees on 97.3% and loses no accuracy, while a
    broken quantization (saturating kernels, ranges from the wrong data) agrees far less; 95.0
    tells the two apart. Returns
    {"path", "bytes", the settings, "calibration_clips", "calibration_failed",
    "validation_videos", "validation_failed", "top1_fp32", "top1_int8", "top1_agreement" (%),
    "videos_per_s_fp32", "videos_per_s_int8", "speedup" (median of per-round ratios, random
    clips at `batch`, each model timed for `min_seconds` per round), with what the speed was
    measured with}.
    """
    if calibration_videos < 1:
        raise ValueError(f"calibration_videos must be at least 1, got {calibration_videos}")
    if validation_videos < 0:
        raise ValueError(f"validation_videos must be 0 (all) or more, got {validation_videos}")
    if not 0 <= min_agreement <= 100:
        raise ValueError(f"min_agreement is a percentage of videos, 0 to 100; got {min_agreement}")
    workers = ckpt.get("config", {}).get("data", {}).get("workers", 0) if workers is None \
        else workers
    calib_set = checkpoint_video_set(ckpt, "train_list", data_root=data_root,
                                     list_path=train_list, videos=calibration_videos)
    val_set = checkpoint_video_set(ckpt, "val_list", data_root=data_root, list_path=val_list,
                                   videos=validation_videos)
    out_path = Path(out_path)
    calib_failed: list[str] = []
    clips = quantize_int8(
        fp32_path, out_path,
        (c for c, _, _ in _clip_batches(calib_set, calib_failed, workers=workers)),
        per_channel=per_channel, quant_format=quant_format)
    threads = torch.get_num_threads()
    validation = check_int8_parity(fp32_path, out_path, val_set, min_agreement=min_agreement,
                                   average=ckpt.get("test_average", "prob"), workers=workers,
                                   threads=threads)
    frames, size = int(ckpt["frames"]), int(ckpt["size"])
    rates = ort_speeds({"fp32": fp32_path, "int8": out_path}, frames=frames, size=size,
                       batch=batch, threads=threads, min_seconds=min_seconds)
    return {"path": str(out_path), "bytes": out_path.stat().st_size,
            "quant_format": quant_format, "per_channel": per_channel,
            "calibration_method": "minmax", "calibration_videos": len(calib_set),
            "calibration_clips": clips, "calibration_failed": calib_failed,
            "validation_videos": validation["num_videos"],
            "validation_failed": validation["failed"],
            "top1_fp32": validation["top1_reference"], "top1_int8": validation["top1_candidate"],
            "top1_agreement": validation["top1_agreement"], "min_agreement": min_agreement,
            "videos_per_s_fp32": statistics.median(rates["fp32"]),
            "videos_per_s_int8": statistics.median(rates["int8"]),
            "speedup": statistics.median(i / f for i, f in zip(rates["int8"], rates["fp32"])),
            "device": "cpu: onnxruntime CPUExecutionProvider", "batch": batch,
            "input_shape": [batch, frames, 3, size, size], "threads": threads}


TRAINING_ONLY_KEYS = ("optimizer", "scheduler", "step")


def export_student_checkpoint(ckpt_path: str | Path, out_path: str | Path) -> dict:
    """Writes a model-only checkpoint (kind "model") from a train-state one, context kept.

    Drops optimizer and scheduler state; keeps config, classes, size, frames, sampling,
    mean/std, GMACs, epoch and history; `metrics` is the last validation result when the
    checkpoint has none. Returns {"path", "bytes", "dropped"}.
    """
    from reskd.checkpoint import load_checkpoint, save_checkpoint

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
               batch: int = 1, opset: int = 17, size: int | None = None, int8: bool = False,
               **int8_options) -> dict:
    """`reskd export`: "onnx" (verified graph) or "checkpoint" (model-only checkpoint).
    `size`: the input size of the ONNX graph, one the checkpoint supports (an any-resolution
    student's; None: its own).

    `out` defaults to the checkpoint's path with suffix .onnx, or `<stem>.student.pt`. With
    `int8` (onnx only), also the INT8 student `<out stem>.int8.onnx` (`export_int8`, which
    takes `int8_options`), reported under "int8".
    """
    formats = ("onnx", "checkpoint")
    if format not in formats:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(formats)}")
    if int8 and format != "onnx":
        raise ValueError(f"int8 quantizes an ONNX export; use format 'onnx', not {format!r}")
    if int8_options and not int8:
        raise ValueError(f"{', '.join(sorted(int8_options))} only apply with int8=True (--int8)")
    checkpoint = Path(checkpoint)
    if format == "checkpoint":
        out = out or checkpoint.with_name(f"{checkpoint.stem}.student.pt")
        return export_student_checkpoint(checkpoint, out)
    from reskd.models import load_model_checkpoint

    model, ckpt = load_model_checkpoint(checkpoint, size)
    info = export_onnx(model, ckpt, out or checkpoint.with_suffix(".onnx"), batch=batch,
                       opset=opset)
    if int8:
        fp32 = Path(info["path"])
        info["int8"] = export_int8(fp32, ckpt, fp32.with_name(f"{fp32.stem}.int8.onnx"),
                                   batch=batch, **int8_options)
    return info

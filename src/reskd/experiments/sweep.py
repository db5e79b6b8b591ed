"""Efficiency reports of one model: GMACs (`reskd flops`) and resolution sweeps (`reskd sweep`).

* :func:`flops_report` counts GMACs per view and per video exactly as the paper does
  (:func:`reskd.efficiency.flops.count_macs`: mmcv-style module hooks, no attention matmuls),
  the full count with the matmuls as ``gmacs_with_matmul``, and the parameters of the deployed
  network. Models are built on the ``meta`` device: counts depend on shapes only, so even Video
  Swin-S at 32 x 224^2 x 12 views takes about a second and no memory.
* :func:`sweep` measures the paper's Table 4 for any model: per input size the GMACs, their
  reduction against the largest size, throughput in the default mode (timed in interleaved
  rounds, see :mod:`reskd.efficiency.benchmark`), the speed-up, and the accuracy of a checkpoint
  trained for that size when a config is given. It writes ``sweep.md``, ``sweep.json`` and
  ``tradeoff.png`` (accuracy vs GMACs, with the paper's Table 1 methods and Table 4 curve as
  reference points).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from reskd.analysis.compare import markdown_table

__all__ = ["PAPER_GMACS", "PAPER_TABLE1_ACTIVITYNET", "PAPER_TABLE4", "flops_report",
           "format_flops", "sweep", "format_sweep", "plot_tradeoff", "plot_anyres_tradeoff"]

# (arch, frames, views) -> {size: GMACs per video} as printed in the paper (Tables 1-4).
# TSN cells are for ActivityNet (200 classes); the head's share is 2048 * K MACs per frame, so
# 400 classes adds 0.013 GMACs at 16 frames and the cells still round to the printed values.
PAPER_GMACS: dict[tuple[str, int, int], dict[int, float]] = {
    ("resnet50", 16, 1): {224: 65.9, 144: 28.3, 112: 17.4, 96: 12.1, 72: 8.3, 56: 4.8},
    ("slowonly_r50", 8, 30): {224: 1260.0, 112: 332.0},
    ("swin3d_s", 32, 12): {224: 1639.0, 112: 421.0},
}

# Table 1, ActivityNet-v1.3: method -> (mAP %, GFLOPs as the paper counts them).
PAPER_TABLE1_ACTIVITYNET: dict[str, tuple[float, float]] = {
    "LiteEval": (72.7, 95.1), "SCSampler": (72.9, 42.0), "ListenToLook": (72.3, 81.4),
    "AdaFrame": (71.5, 79.0), "AR-Net": (73.8, 33.5), "AdaFuse": (73.1, 61.4),
    "Dynamic-STE": (75.9, 30.5), "FrameExit": (76.1, 26.1), "VideoIQ": (74.8, 28.1),
    "AdaFocus": (75.0, 26.6), "AdaFocusV2": (78.9, 34.1), "OCSampler": (77.2, 25.8),
    "ResKD": (80.0, 17.4),
}

# Table 4: ResKD TSN-R50, 16 frames, ActivityNet; size -> (mAP %, GFLOPs, videos/s on one
# V100 SXM2 at batch 64).
PAPER_TABLE4: dict[int, tuple[float, float, float]] = {
    224: (81.7, 65.9, 78.7), 144: (81.3, 28.3, 163.2), 112: (80.0, 17.4, 262.8),
    96: (76.2, 12.1, 333.9), 72: (73.4, 8.3, 434.7), 56: (70.5, 4.8, 631.5),
}


# ---------------------------------------------------------------------------------------------
# GMACs


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _meta_model(model_name: str | None, checkpoint: str | Path | None, *, frames: int,
                num_classes: int, size: int | None = None
                ) -> tuple[torch.nn.Module, dict, dict | None]:
    """(model on the meta device, its builder kwargs, the checkpoint or None). An
    any-resolution student's network is the one deployed at `size` (its BatchNorms for it;
    `size` must be one it supports); any other checkpoint's is counted at any size."""
    from reskd.models import ARCHS

    if (model_name is None) == (checkpoint is None):
        raise ValueError("give exactly one of model_name (an architecture, e.g. resnet50) or "
                         f"checkpoint (a reskd model.pt); got model_name={model_name!r}, "
                         f"checkpoint={checkpoint!r}")
    ckpt = None
    if checkpoint is not None:
        from reskd.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        kwargs = dict(ckpt["model_kwargs"])
    else:
        if model_name not in ARCHS:
            raise ValueError(f"unknown model {model_name!r}; valid: {', '.join(ARCHS)}")
        kwargs = {"arch": model_name, "num_classes": _positive_int("num_classes", num_classes),
                  "num_segments": frames}  # num_segments: TSM shifts across exactly T frames
    from reskd.checkpoint import check_size, checkpoint_sizes
    from reskd.models import build_from_kwargs, drop_ignored_options
    from reskd.models.size_bn import at_size

    with torch.device("meta"):
        model = build_from_kwargs(drop_ignored_options(kwargs))
    if ckpt is not None and len(checkpoint_sizes(ckpt)) > 1:
        model = at_size(model, check_size(ckpt, size, checkpoint))
    return model, kwargs, ckpt


def flops_report(*, model_name: str | None = None, checkpoint: str | Path | None = None,
                 size: int | None = None, frames: int | None = None, views: int = 1,
                 num_classes: int = 400) -> dict:
    """GMACs per view and per video (x `views`) as the paper counts them, for one model.

    Give an architecture name (reskd.models.ARCHS; random init, `num_classes` outputs, TSM
    built for `frames` segments) or a reskd checkpoint (its stored architecture and classes;
    `size` and `frames` default to the ones it was trained with). Returns a dict with
    `gmacs_per_view`, `gmacs_per_video` (the paper's convention: module hooks, no attention
    matmuls), `gmacs_with_matmul_per_view/_per_video` (plus matmul/bmm/sdpa/einsum),
    `params_m` (the deployed network only: a reskd checkpoint holds the student alone),
    `by_type` (GMACs per view by module type), `paper_gmacs` (the paper's printed cell for this
    model, frames, views and size, else None) and the inputs.
    """
    from reskd.efficiency.flops import count_macs
    from reskd.models import is_tsm

    _positive_int("views", views)
    if checkpoint is None:
        if size is None or frames is None:
            raise ValueError(f"give size and frames with model_name (got size={size!r}, "
                             f"frames={frames!r})")
    model, kwargs, ckpt = _meta_model(model_name, checkpoint, frames=frames or 1,
                                      num_classes=num_classes, size=size)
    if ckpt is not None:
        size = ckpt["size"] if size is None else size
        frames = ckpt["frames"] if frames is None else frames
        if is_tsm(kwargs) and frames != kwargs.get("num_segments", frames):
            raise ValueError(f"checkpoint {checkpoint} is a TSM model built for "
                             f"{kwargs['num_segments']} frames; got frames={frames}")
    _positive_int("size", size)
    _positive_int("frames", frames)
    x = torch.empty(1, frames, 3, size, size, device="meta")  # (N, T, C, H, W)
    count = count_macs(model, x)
    arch = kwargs["arch"]
    paper = PAPER_GMACS.get((arch, frames, views), {}).get(size)
    return {
        "model": arch, "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "size": size, "frames": frames, "views": views, "num_classes": kwargs["num_classes"],
        "input_shape_per_view": list(x.shape),
        "gmacs_per_view": count.gmacs, "gmacs_per_video": count.gmacs * views,
        "gmacs_with_matmul_per_view": count.gmacs_with_matmul,
        "gmacs_with_matmul_per_video": count.gmacs_with_matmul * views,
        "params_m": count.params_m, "by_type": count.by_type, "paper_gmacs": paper,
    }


def format_flops(report: Mapping) -> str:
    r = report
    source = f"checkpoint {r['checkpoint']}" if r["checkpoint"] else "random init"
    lines = [
        f"{r['model']} ({source}), {r['num_classes']} classes, input "
        f"{r['frames']} x 3 x {r['size']} x {r['size']} per view, {r['views']} view(s)",
        f"GMACs per view:   {r['gmacs_per_view']:.3f}",
        f"GMACs per video:  {r['gmacs_per_video']:.3f}   (the paper's \"GFLOPs\": mmcv-style "
        f"module hooks, attention matmuls not counted)",
        f"gmacs_with_matmul per video: {r['gmacs_with_matmul_per_video']:.3f}   "
        f"(adds attention/functional matmuls)",
        f"parameters:       {r['params_m']:.2f} M   (the deployed network only)",
    ]
    if r.get("paper_gmacs") is not None:
        lines.append(f"paper prints:     {r['paper_gmacs']}   "
                     f"(ratio {r['gmacs_per_video'] / r['paper_gmacs']:.4f})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Resolution sweep


def _parse_sizes(sizes: Sequence[int]) -> list[int]:
    sizes = list(sizes)
    if not sizes or len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes must be a non-empty list of distinct sizes, got {sizes!r}")
    for s in sizes:
        _positive_int("each size", s)
    return sizes


def sweep(*, sizes: Sequence[int] | None = None, frames: int | None = None,
          out: str | Path, model_name: str | None = None,
          checkpoints: Mapping[int, str | Path] | None = None,
          checkpoint: str | Path | None = None, config: str | Path | None = None,
          overrides: Sequence[str] = (), views: int = 1, num_classes: int = 400, batch: int = 4,
          rounds: int = 3, min_seconds: float = 1.0, device: str = "auto",
          log: Callable[[str], None] = print) -> dict:
    """Table 4 for one architecture: GMACs, reduction, videos/s, speed-up, accuracy per size.

    The network is `model_name` (random init), or the one stored in the checkpoints (all of
    them must share it, class count aside: the sweep compares resolutions, not models; a
    `model_name` given with checkpoints must name their architecture). Throughput is the
    default mode's (:func:`reskd.efficiency.benchmark.fastest_default_mode`) on random clips of
    `batch` videos, timed in interleaved rounds. `checkpoints` maps a size to a model trained
    for it; with a `config` (YAML path, plus `--set`-style `overrides`) each is tested with
    `reskd.runs.run_test` at `data.size` = that size (mAP for multi-label data, else top-1);
    without a config the accuracy cells stay blank.

    `checkpoint`, an any-resolution student (`distill.student_sizes`), is the one model of every
    row instead: `sizes` default to the ones it supports (others are an error), `frames` to its
    own, each row is it at that size (its BatchNorms for it), and `checkpoints` are separately
    trained students shown beside it as reference points. Writes OUT/sweep.md, OUT/sweep.json
    and OUT/tradeoff.png; returns the JSON payload.
    """
    from reskd.efficiency.benchmark import machine_facts
    from reskd.engine.runtime import autocast_dtype, pick_device

    anyres, sizes, frames = _anyres_student(checkpoint, sizes, frames)
    sizes, checkpoints = _check_request(sizes, frames, checkpoints, model_name=model_name,
                                        anyres=anyres, config=config)
    arch = _one_architecture(model_name, checkpoint, anyres, checkpoints, frames=frames)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    # taken before any work of ours, so the load average is other jobs' load
    facts = machine_facts(dev, autocast_dtype("auto", dev))

    # With checkpoints, the network is the one they store (widths, strides ... included);
    # sizes without one are counted and timed on the first checkpoint's network.
    first_ckpt = Path(checkpoint) if anyres is not None else next(iter(checkpoints.values()), None)
    rows = _gmacs_rows(sizes, first_ckpt, checkpoints, anyres=anyres is not None,
                       model_name=model_name, frames=frames, views=views,
                       num_classes=num_classes)
    default = _time_rows(rows, arch=arch, model_name=None if first_ckpt else model_name,
                         checkpoint=first_ckpt, frames=frames, batch=batch, rounds=rounds,
                         min_seconds=min_seconds, num_classes=num_classes, device=dev, log=log)
    if config is not None and (checkpoints or anyres is not None):
        _test_rows(rows, config, overrides, log=log)

    facts["load_avg_1m_end"] = machine_facts(dev, None)["load_avg_1m"]
    payload = {"model": arch, "frames": frames, "views": views, "batch": batch,
               "mode": default, "rounds": rounds, "machine": facts, "rows": rows,
               "config": str(config) if config is not None else None,
               "overrides": list(overrides),
               "anyres_checkpoint": str(checkpoint) if anyres is not None else None,
               "paper_table4": {str(s): {"mAP": a, "gmacs": g, "videos_per_s": v}
                                for s, (a, g, v) in PAPER_TABLE4.items()}}
    (out / "sweep.json").write_text(json.dumps(payload, indent=2))
    (out / "sweep.md").write_text(format_sweep(payload))
    title = f"{arch}, {frames} frames, {views} view(s)"
    if anyres is not None:
        plot_anyres_tradeoff(rows, out / "tradeoff.png", title=title)
    else:
        plot_tradeoff(rows, out / "tradeoff.png", title=title)
    log(f"[sweep] wrote {out / 'sweep.md'}, {out / 'sweep.json'}, {out / 'tradeoff.png'}")
    return payload


def _anyres_student(checkpoint: str | Path | None, sizes: Sequence[int] | None,
                    frames: int | None) -> tuple[dict | None, Sequence[int] | None, int | None]:
    """The any-resolution student `checkpoint` (None without one), and the sizes and frames it
    supplies where they are not given; every size must be one it supports."""
    from reskd.checkpoint import check_size, checkpoint_sizes, load_checkpoint

    if checkpoint is None:
        return None, sizes, frames
    anyres = load_checkpoint(checkpoint)
    if len(checkpoint_sizes(anyres)) < 2:
        raise ValueError(f"checkpoint {checkpoint} was trained at one size "
                         f"({anyres['size']} px); give it as --checkpoints "
                         f"{anyres['size']}={checkpoint}, or give an any-resolution student "
                         f"(distill.student_sizes)")
    sizes = sizes or sorted(checkpoint_sizes(anyres), reverse=True)
    for size in sizes:
        check_size(anyres, size, checkpoint)
    return anyres, sizes, frames or anyres["frames"]


def _check_request(sizes: Sequence[int] | None, frames: int | None,
                   checkpoints: Mapping[int, str | Path] | None, *, model_name: str | None,
                   anyres: dict | None, config: str | Path | None
                   ) -> tuple[list[int], dict[int, Path]]:
    """The sweep's sizes and {size: checkpoint path}, after checking that the request names
    sizes, frames and a network, checkpoints only for those sizes, and a config that exists."""
    if sizes is None or frames is None:
        raise ValueError(f"give sizes and frames (got sizes={sizes!r}, frames={frames!r}); "
                         f"only an any-resolution checkpoint supplies them")
    sizes = _parse_sizes(sizes)
    _positive_int("frames", frames)
    checkpoints = {int(s): Path(p) for s, p in (checkpoints or {}).items()}
    unknown = sorted(set(checkpoints) - set(sizes))
    if unknown:
        raise ValueError(f"checkpoints given for sizes {unknown} that are not in sizes {sizes}")
    if model_name is None and not checkpoints and anyres is None:
        raise ValueError("give model_name (e.g. resnet50) or at least one checkpoint")
    if config is not None and not Path(config).is_file():
        raise FileNotFoundError(f"config not found: {config}")
    return sizes, checkpoints


def _one_architecture(model_name: str | None, checkpoint: str | Path | None,
                      anyres: dict | None, checkpoints: Mapping[int, Path], *,
                      frames: int) -> str | None:
    """The architecture the sweep is over (`model_name`, else the checkpoints'): every
    checkpoint must hold it, with the same shape options and frame count."""
    from reskd.checkpoint import load_checkpoint
    from reskd.models import drop_ignored_options

    arch, shape_kwargs = model_name, None
    named = ([(None, Path(checkpoint), anyres)] if anyres is not None else []) + [
        (size, path, load_checkpoint(path)) for size, path in checkpoints.items()]
    for size, path, ckpt in named:
        a = ckpt["model_kwargs"]["arch"]
        arch = arch or a
        # everything that shapes the network except its class count, dropout and BatchNorm
        # copies (an any-resolution student's per size)
        kw = {k: v for k, v in drop_ignored_options(ckpt["model_kwargs"]).items()
              if k not in ("num_classes", "dropout", "bn_sizes")}
        shape_kwargs = shape_kwargs or kw
        if a != arch or kw != shape_kwargs:
            raise ValueError(f"checkpoint {path} (size {size or 'any'}) is a {a} model built "
                             f"with {kw}, but the sweep is over {arch} {shape_kwargs}; a sweep "
                             f"compares one architecture across resolutions. Pass checkpoints "
                             f"of one architecture.")
        if ckpt["frames"] != frames:
            raise ValueError(f"checkpoint {path} was trained on {ckpt['frames']} frames but the "
                             f"sweep uses frames={frames}; pass --frames {ckpt['frames']}")
    return arch


def _gmacs_rows(sizes: Sequence[int], first_ckpt: Path | None, checkpoints: Mapping[int, Path],
                *, anyres: bool, model_name: str | None, frames: int, views: int,
                num_classes: int) -> list[dict]:
    """One row per size with its GMACs and parameters, counted on that size's checkpoint (the
    any-resolution student's, or the first checkpoint's where a size has none), else on
    `model_name`; an any-resolution sweep's rows hold the separately trained reference."""
    rows = []
    for size in sizes:
        if first_ckpt is not None:
            own = first_ckpt if anyres else checkpoints.get(size, first_ckpt)
            f = flops_report(checkpoint=own, size=size, frames=frames, views=views)
        else:
            f = flops_report(model_name=model_name, size=size, frames=frames, views=views,
                             num_classes=num_classes)
        row = {"size": size, "gmacs": f["gmacs_per_video"],
               "gmacs_with_matmul": f["gmacs_with_matmul_per_video"], "params_m": f["params_m"],
               "checkpoint": (str(first_ckpt) if anyres else
                              str(checkpoints[size]) if size in checkpoints else None)}
        if anyres:
            row["reference"] = ({"checkpoint": str(checkpoints[size]), "accuracy": None}
                                if size in checkpoints else None)
        rows.append(row)
    return rows


def _time_rows(rows: list[dict], *, arch: str | None, model_name: str | None,
               checkpoint: Path | None, frames: int, batch: int, rounds: int,
               min_seconds: float, num_classes: int, device: torch.device,
               log: Callable[[str], None]) -> dict:
    """Times every size in the default mode (interleaved rounds) and adds videos/s, the GMACs
    reduction and the speed-up against the largest size to each row (accuracy left blank);
    returns the default mode."""
    from reskd.efficiency.benchmark import bench_report, fastest_default_mode

    sizes = [row["size"] for row in rows]
    default = fastest_default_mode(device)
    log(f"[sweep] timing {arch} at {', '.join(map(str, sizes))} px in the default mode "
        f"({default['mode']}), batch {batch}, {rounds} interleaved rounds")
    bench = bench_report(model_name=model_name, checkpoint=checkpoint, sizes=sizes,
                         frames=frames, batch=batch, modes=[default["mode"]], device=device,
                         num_classes=num_classes, rounds=rounds, min_seconds=min_seconds,
                         log=log)
    by_size = {b["size"]: b for b in bench}
    largest = max(sizes)
    ref = next(r for r in rows if r["size"] == largest)
    for row in rows:
        b = by_size[row["size"]]
        row["videos_per_s"] = b["videos_per_s"]
        row["videos_per_s_rounds"] = b["videos_per_s_rounds"]
        row["reduction"] = ref["gmacs"] / row["gmacs"]
        row["speedup"] = (b["videos_per_s"] / by_size[largest]["videos_per_s"]
                          if b["videos_per_s"] and by_size[largest]["videos_per_s"] else None)
        row["accuracy"], row["metric"], row["test"] = None, None, None
    return default


def _test_rows(rows: list[dict], config: str | Path, overrides: Sequence[str], *,
               log: Callable[[str], None]) -> None:
    """Tests each row's checkpoint at its size with `config` (`data.size` set to it) and adds
    its metric, accuracy and test details; an any-resolution row tests the student at that
    size, and its separately trained reference too."""
    from reskd.config import load_config
    from reskd.runs import run_test

    base_cfg = load_config(config, list(overrides))

    def test(path, size: int, anyres_size: int | None = None) -> dict:
        cfg = copy.deepcopy(base_cfg)
        cfg.data.size = size
        log(f"[sweep] testing {path} at {size} px")
        result = (run_test(cfg, path, log=log) if anyres_size is None
                  else run_test(cfg, path, log=log, size=anyres_size))
        metric = "mAP" if "mAP" in result else "top1"
        details = {k: float(v) if isinstance(v, (int, float)) else v
                   for k, v in result.items() if k != "failed"}
        details["num_failed"] = len(result.get("failed", []))
        return {"metric": metric, "accuracy": float(result[metric]), "test": details}

    for row in rows:
        if "reference" in row:  # an any-resolution sweep: the student at this size
            row.update(test(row["checkpoint"], row["size"], row["size"]))
            if row["reference"] is not None:
                row["reference"].update(test(row["reference"]["checkpoint"], row["size"]))
        elif row["checkpoint"] is not None:
            row.update(test(row["checkpoint"], row["size"]))


def _metric_label(rows: Sequence[Mapping]) -> str:
    metrics = {r["metric"] for r in rows if r.get("metric")}
    if not metrics:
        return "accuracy (%)"
    return " / ".join(sorted("top-1 (%)" if m == "top1" else f"{m} (%)" for m in metrics))


def format_sweep(payload: Mapping) -> str:
    """Table 4's layout: one column per resolution; accuracy, GMACs (reduction), videos/s
    (speed-up) as rows; then the paper's Table 4 for reference."""
    rows = payload["rows"]
    m, facts = payload["mode"], payload["machine"]

    def cell(value, fmt: str, extra=None, arrow: str = "") -> str:
        if value is None:
            return ""
        text = format(value, fmt)
        return text if extra is None or math.isclose(extra, 1.0) else f"{text} ({extra:.1f}{arrow})"

    table = markdown_table(["resolution", *(f"{r['size']}p" for r in rows)], [
        [_metric_label(rows), *(cell(r["accuracy"], ".1f") for r in rows)],
        ["GMACs", *(cell(r["gmacs"], ".3g" if r["gmacs"] < 1 else ".1f", r["reduction"],
                         "x fewer") for r in rows)],
        ["videos/s", *(cell(r["videos_per_s"], ".0f" if (r["videos_per_s"] or 0) >= 100
                            else ".3g", r["speedup"], "x") for r in rows)],
        *_reference_rows(rows)])
    lines = [
        f"# Resolution sweep: {payload['model']}, {payload['frames']} frames, "
        f"{payload['views']} view(s)", "",
        *table,
        "",
        f"GMACs per video as the paper counts them (mmcv-style module hooks, attention matmuls "
        f"not counted) x {payload['views']} view(s); reduction is against "
        f"{max(r['size'] for r in rows)}p.",
        f"Throughput: default mode `{m['mode']}` ({m['precision']}, channels_last), batch "
        f"{payload['batch']}, median of {payload['rounds']} interleaved rounds; {facts['device']}, "
        f"{facts['threads']} threads, torch {facts['torch']}, {facts['date']}, 1-min load "
        f"average before the sweep {facts['load_avg_1m']} on {facts['cpus']} CPUs"
        + (" (shared machine: compare the speed-ups, not absolute videos/s)."
           if facts["load_avg_1m"] and facts["cpus"] and facts["load_avg_1m"] > 0.5 * facts["cpus"]
           else "."),
    ]
    if payload.get("anyres_checkpoint"):
        lines.append(f"One any-resolution student, {payload['anyres_checkpoint']}, at every "
                     f"size (its BatchNorms for each); \"separately trained\": a student "
                     f"trained for that size alone.")
    if payload.get("config") is None:
        lines.append("Accuracy: not measured (give a config and checkpoints to test).")
    else:
        lines.append(f"Accuracy: `reskd test` of each size's checkpoint with {payload['config']} "
                     f"at that data.size.")
    p = PAPER_TABLE4
    lines += [
        "", "## Paper, Table 4 (ResKD TSN-R50, 16 frames, ActivityNet; one V100, batch 64)", "",
        "| resolution | " + " | ".join(f"{s}p" for s in p) + " |",
        "|---" * (len(p) + 1) + "|",
        "| mAP (%) | " + " | ".join(f"{a:.1f}" for a, _, _ in p.values()) + " |",
        "| GFLOPs (GMACs) | " + " | ".join(
            cell(g, ".1f", p[224][1] / g, "x fewer") for _, g, _ in p.values()) + " |",
        "| videos/s | " + " | ".join(
            cell(v, ".1f", v / p[224][2], "x") for _, _, v in p.values()) + " |", "",
    ]
    return "\n".join(lines)


def _reference_rows(rows: Sequence[Mapping]) -> list[list[str]]:
    """An any-resolution sweep's rows of the separately trained students and the difference."""
    if not any(r.get("reference") for r in rows):
        return []

    def ref(r, key):
        return (r.get("reference") or {}).get(key)

    acc = [ref(r, "accuracy") for r in rows]
    return [["separately trained", *("" if a is None else f"{a:.1f}" for a in acc)],
            ["any-res - separate", *("" if a is None or r["accuracy"] is None
                                     else f"{r['accuracy'] - a:+.1f}" for r, a in zip(rows, acc))]]


def plot_anyres_tradeoff(rows: Sequence[Mapping], out_png: str | Path, *, title: str = "") -> Path:
    """An any-resolution student's accuracy vs GMACs, its separately trained references as
    points beside it (drawn by :func:`reskd.analysis.plots.plot_size_curves`)."""
    from reskd.analysis.plots import plot_size_curves

    def point(r, accuracy):
        return {"size": r["size"], "gmacs": r["gmacs"], "mean": accuracy, "std": 0.0}

    curves = {"any-resolution student": [point(r, r["accuracy"]) for r in rows
                                         if r.get("accuracy") is not None],
              "separately trained": [point(r, r["reference"]["accuracy"]) for r in rows
                                     if (r.get("reference") or {}).get("accuracy") is not None]}
    return plot_size_curves(curves, out_png, metric=_metric_label(rows), title=title)


def plot_tradeoff(rows: Sequence[Mapping], out_png: str | Path, *, title: str = "") -> Path:
    """Accuracy vs GMACs per video (log x): the paper's Table 1 ActivityNet methods and Table 4
    ResKD curve as references, and the measured rows that have an accuracy.

    Drawn by :func:`reskd.analysis.plots.plot_accuracy_vs_gmacs` (matplotlib is imported there
    only, lazily); this picks the data.
    """
    from reskd.analysis.plots import plot_accuracy_vs_gmacs

    measured = sorted((r for r in rows if r.get("accuracy") is not None), key=lambda r: r["gmacs"])
    methods = {name: point for name, point in PAPER_TABLE1_ACTIVITYNET.items()
               if name != "ResKD"}  # ResKD's point is on the Table 4 curve
    return plot_accuracy_vs_gmacs(measured, out_png, methods=methods, curve=PAPER_TABLE4,
                                  measured_label=_metric_label(measured), title=title)

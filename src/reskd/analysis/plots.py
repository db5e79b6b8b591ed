"""Figures: the paper's Figure 4 (ERFs side by side, 4a; attention overlays, 4b), the
resolution study (Figure 1), the ablation bars (Tables 5 and 6), the accuracy-vs-GMACs
trade-off of `reskd sweep` and the runs' curves of `reskd compare`.

The only module that imports matplotlib. It draws on an Agg canvas through the object API
(`Figure`, `FigureCanvasAgg`), never pyplot, so it needs no display and leaves the caller's
global backend alone (a notebook's, say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

CMAP = "viridis"  # high values are bright yellow, as in the paper's figure


def _figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(f"plots need matplotlib: pip install matplotlib ({e})") from e
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_png: str | Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, format="png", bbox_inches="tight")
    return out_png


def plot_erfs(erfs: Sequence[np.ndarray], titles: Sequence[str], out_png: str | Path) -> Path:
    """ERF maps (H, W) side by side on one colour scale [0, 1]; sizes may differ."""
    if len(erfs) != len(titles) or not erfs:
        raise ValueError(f"give one title per ERF map: got {len(erfs)} maps and "
                         f"{len(titles)} titles")
    fig = _figure(3.2 * len(erfs) + 0.6, 3.4)
    axes = fig.subplots(1, len(erfs), squeeze=False)[0]
    for ax, erf, title in zip(axes, erfs, titles):
        erf = np.asarray(erf)
        if erf.ndim != 2:
            raise ValueError(f"an ERF map must be (H, W), got shape {erf.shape} for {title!r}")
        image = ax.imshow(erf, cmap=CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"{title}\n{erf.shape[0]}x{erf.shape[1]}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(axes), fraction=0.03, pad=0.02)
    return _save(fig, out_png)


def plot_erf_pair(erf_a: np.ndarray, erf_b: np.ndarray, titles: Sequence[str],
                  out_png: str | Path) -> Path:
    """Figure 4a: two ERFs (e.g. baseline and ResKD student) on the same colour scale."""
    return plot_erfs([erf_a, erf_b], titles, out_png)


def plot_attention_overlay(frames: np.ndarray, maps_a: np.ndarray, maps_b: np.ndarray,
                           titles: Sequence[str], out_png: str | Path, *,
                           alpha: float = 0.5) -> Path:
    """Figure 4b: rows = frames (T, H, W, C) uint8, frames + maps_a, frames + maps_b.

    Maps are (T, h, w) in [0, 1] (see `attention_maps`), bilinearly upsampled to the frame size.
    `titles` names the two map rows, e.g. ("baseline", "ResKD").
    """
    from reskd.analysis.attention import upsample_maps

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if len(titles) != 2:
        raise ValueError(f"give two titles (one per map row), got {list(titles)}")
    t, h, w = frames.shape[:3]
    rows = [None]
    for name, maps in zip(titles, (maps_a, maps_b)):
        maps = np.asarray(maps)
        if maps.ndim != 3 or maps.shape[0] != t:
            raise ValueError(f"{name!r} maps must be (T={t}, h, w) to match the frames, got "
                             f"{maps.shape}")
        rows.append(upsample_maps(maps, (h, w)).numpy())  # (T, H, W)
    fig = _figure(1.6 * t + 0.8, 1.6 * 3)
    axes = fig.subplots(3, t, squeeze=False)
    for r, (label, maps) in enumerate(zip(("frames", *titles), rows)):
        for k in range(t):
            ax = axes[r, k]
            ax.imshow(frames[k])
            if maps is not None:
                ax.imshow(maps[k], cmap=CMAP, vmin=0.0, vmax=1.0, alpha=alpha)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel(label, fontsize=9)
    return _save(fig, out_png)


def plot_resolution_study(rows: dict, *, high: int, metric: str, s_label: str,
                          out_png: str | Path) -> Path:
    """Figure 1: (a) native vs up-sampled accuracy over resolution, the high-resolution model as a
    dotted line; (b) -H vs -S over resolution. `rows[kind][size]` = {"mean", "std", ...}."""
    def line(ax, series: dict, style: str, label: str, colour: str) -> None:
        sizes = sorted(s for s, v in series.items() if v)
        ax.errorbar(sizes, [series[s]["mean"] for s in sizes],
                    yerr=[series[s]["std"] for s in sizes], fmt=style, color=colour, label=label,
                    capsize=3, markersize=5)

    fig = _figure(10.5, 4.0)
    a, b = fig.subplots(1, 2)
    line(a, rows["upsampled"], "-o", f"up-sampled back to {high}x{high}", "tab:blue")
    line(a, rows["native"], "-s", "trained and tested at the resolution", "tab:orange")
    a.axhline(rows["native"][high]["mean"], color="tab:red", linestyle=":",
              label=f"trained at {high}x{high}")
    a.set_title("(a) information loss vs scale", fontsize=10)
    line(b, {s: rows["native"][s] for s in rows["S"]}, "-s", "-H (stock strides)", "tab:orange")
    line(b, rows["S"], "-o", f"-S ({s_label})", "tab:green")
    b.set_title("(b) network matched to the input scale", fontsize=10)
    for ax, sizes in ((a, rows["native"]), (b, rows["S"])):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(sizes), [str(s) for s in sorted(sizes)])
        ax.minorticks_off()
        ax.set_xlabel("input resolution (px)")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out_png)


def plot_ablation_study(table5: Sequence[tuple[str, dict]], table6: Sequence[tuple[str, dict]],
                        *, metric: str, out_png: str | Path) -> Path:
    """Tables 5 and 6 as bars (mean, sample std as error bar) with each seed's value as a dot."""
    fig = _figure(10.5, 4.0)
    for ax, rows, title in zip(fig.subplots(1, 2), (table5, table6),
                               ("Table 5: KD design", "Table 6: model vs resolution distillation")):
        names = [name for name, _ in rows]
        means = [s["mean"] for _, s in rows]
        ax.bar(range(len(rows)), means, yerr=[s["std"] for _, s in rows], capsize=4,
               color=["0.6"] + ["tab:blue"] * (len(rows) - 1))
        low = max(0.0, min(min(s["values"]) for _, s in rows) - 10)
        ax.set_ylim(low, min(100.0, max(max(s["values"]) for _, s in rows) + 5))
        for i, (_, s) in enumerate(rows):
            ax.scatter([i] * len(s["values"]), s["values"], color="black", s=10, zorder=3)
            ax.text(i, low + 1, f"{s['mean']:.1f}", ha="center", va="bottom", fontsize=9,
                    color="white", fontweight="bold")  # inside the bar, clear of the error bar
        ax.set_xticks(range(len(rows)), names, fontsize=8, rotation=15)
        ax.set_ylabel(f"{metric} (%)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, out_png)


def plot_accuracy_vs_gmacs(measured: Sequence[Mapping], out_png: str | Path, *,
                           methods: Mapping[str, tuple[float, float]],
                           curve: Mapping[int, Sequence[float]], measured_label: str,
                           title: str = "") -> Path:
    """The trade-off plot of `reskd sweep`: accuracy vs GMACs per video, log x.

    `methods` maps a method to (accuracy %, GMACs): grey dots with their names (the paper's
    Table 1). `curve` maps an input size to (accuracy %, GMACs, ...): the red reference curve,
    drawn from the largest size down (the paper's Table 4). `measured` are rows with "size",
    "gmacs" and "accuracy", in the order to join them; `measured_label` names their metric in
    the legend. Without measured rows a note says so.
    """
    fig = _figure(7.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    for name, (acc, gmacs) in methods.items():
        ax.scatter([gmacs], [acc], color="0.55", marker="o", s=22, zorder=2)
        ax.annotate(name, (gmacs, acc), textcoords="offset points", xytext=(4, 3), fontsize=7,
                    color="0.35")
    ax.scatter([], [], color="0.55", marker="o", s=22, label="paper Table 1 (ActivityNet mAP)")
    sizes = sorted(curve, reverse=True)
    ax.plot([curve[s][1] for s in sizes], [curve[s][0] for s in sizes], "-s",
            color="tab:red", markersize=4, label="paper ResKD, Table 4 (TSN-R50 16f)", zorder=3)
    for s in sizes:
        ax.annotate(f"{s}p", (curve[s][1], curve[s][0]), textcoords="offset points",
                    xytext=(-6, -11), fontsize=7, color="tab:red")
    if measured:
        ax.plot([r["gmacs"] for r in measured], [r["accuracy"] for r in measured], "-D",
                color="tab:blue", markersize=5, zorder=4, label=f"measured ({measured_label})")
        for r in measured:
            ax.annotate(f"{r['size']}p", (r["gmacs"], r["accuracy"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7, color="tab:blue")
    else:
        ax.text(0.02, 0.85, "no measured accuracy\n(give checkpoints and a config)",
                transform=ax.transAxes, ha="left", va="top", fontsize=8, color="tab:blue")
    ax.set_xscale("log")
    ax.set_xlabel("GMACs per video (the paper's GFLOPs)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy vs computation{': ' + title if title else ''}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best" if measured else "upper left")
    return _save(fig, out_png)


def plot_size_curves(curves: Mapping[str, Sequence[Mapping]], out_png: str | Path, *,
                     metric: str, title: str = "") -> Path:
    """Accuracy vs GMACs per video (log x) of models at several input sizes: one line per name
    in `curves`, each a list of points {"size", "gmacs", "mean", "std"} (std as an error bar,
    0 for none), labelled with their size. `reskd study anyres` and `reskd sweep` on an
    any-resolution student draw it."""
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    styles = ["-o", "--s", ":^", "-.D"]
    for k, (name, points) in enumerate(curves.items()):
        points = sorted(points, key=lambda p: p["gmacs"])
        if not points:
            continue
        line = ax.errorbar([p["gmacs"] for p in points], [p["mean"] for p in points],
                           yerr=[p["std"] for p in points], fmt=styles[k % len(styles)],
                           capsize=3, markersize=5, label=name)
        for p in points:
            ax.annotate(f"{p['size']}p", (p["gmacs"], p["mean"]), textcoords="offset points",
                        xytext=(5, -10), fontsize=7, color=line[0].get_color())
    ax.set_xscale("log")
    ax.set_xlabel("GMACs per video")
    ax.set_ylabel(metric if "%" in metric else f"{metric} (%)")
    ax.set_title(f"Accuracy vs computation{': ' + title if title else ''}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_png)


def plot_run_curves(runs: Sequence[Mapping], *, metric: str, out_png: str | Path) -> Path:
    """`reskd compare`'s curves: per epoch, the validation metric, the training CE and (when a
    run was distilled) the weighted KD loss, every run on the same axes. `runs` are
    {"label", "history": metrics.jsonl records}; a run validated only at its end is one dot."""
    distilled = any("kd" in r for run in runs for r in run["history"])
    panels = [("val", f"validation {'mAP' if metric == 'mAP' else 'top-1'} (%)"),
              ("ce", "training cross-entropy"), *([("kd", "training KD loss (weighted)")]
                                                  if distilled else [])]
    fig = _figure(4.2 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, title) in zip(axes, panels):
        for i, run in enumerate(runs):
            rows = [r for r in run["history"] if (key in r if key != "val" else "val" in r)]
            ys = [r["val"].get(metric) if key == "val" else r[key] for r in rows]
            points = [(r["epoch"], y) for r, y in zip(rows, ys) if y is not None]
            if points:
                ax.plot(*zip(*points), "-o", markersize=3, color=f"C{i}", label=run["label"])
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()  # every run has a CE curve
    fig.legend(handles, labels, loc="lower center", ncol=1, fontsize=8,
               bbox_to_anchor=(0.5, 1.0))
    return _save(fig, out_png)

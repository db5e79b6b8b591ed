"""`reskd compare RUN [RUN ...]`: what a baseline and a ResKD run (or any runs) show side by side.

From run folders alone (config.yaml, metrics.jsonl, model.pt; a run still training is read
from its checkpoint.pt), one Markdown table (top-1 or mAP, GMACs per video and how many times
fewer than the first run's, input, videos/s when measured, epochs, time) and one PNG with every
run's validation and loss curves on shared
axes. Runs are labelled by what differs between their resolved configs (e.g. "data.size=32,
distill.teacher=teacher"), found by diffing them key by key; keys that only say where a run
lives or how it logs are left out, and a run without a teacher has no distill.* keys.

`markdown_table` is the one table formatter of the demo and study reports.

Decisions:
- The metric is the final validation of the run (model.pt's, else the last validated epoch).
- "time" is the time spent in training steps and validation, summed over epochs (resumes
  included, the gaps between them not), from metrics.jsonl.
- A run whose training log warned of a plateau (train top-1 still near its first epoch's
  after a third of the epochs: `reskd.engine.train.plateau_message`, kept as "plateau" in its
  metrics.jsonl) is marked "(plateau)" after its name, and a line under the table repeats that
  warning, so a low number is not read as the recipe's best.
- videos/s is read from the run's speed.json (`record_speed`; the demo writes one per run with
  its machine facts); a run without one shows "-": throughput is a property of the machine it
  was measured on, so it is never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reskd.checkpoint import LATEST, load_checkpoint, write_text_atomic
from reskd.config import Config, to_dict

SPEED = "speed.json"
# Keys that say where a run lives or how it logs, not what it trains.
NOT_RECIPE = ("runtime.out", "runtime.progress", "runtime.tensorboard", "runtime.log_every",
              "runtime.keep_checkpoints")


def flat(d: dict, prefix: str = "") -> dict:
    """{"data": {"size": 32}} -> {"data.size": 32}."""
    items = {}
    for k, v in d.items():
        items.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return items


@dataclass
class Run:
    """One run folder, read."""
    folder: Path
    config: dict  # flat resolved config
    history: list[dict]  # metrics.jsonl, one record per epoch
    context: dict = field(default_factory=dict)  # model.pt's (or checkpoint.pt's) context
    speed: dict = field(default_factory=dict)  # speed.json

    @property
    def metric(self) -> str:
        return "mAP" if self.config.get("data.multi_label") else "top1"

    @property
    def final(self) -> dict:
        """The final validation metrics."""
        if self.context.get("metrics"):
            return self.context["metrics"]
        validated = [r["val"] for r in self.history if "val" in r]
        return validated[-1] if validated else {}

    @property
    def plateau(self) -> str:
        """The plateau warning its training logged ("" when none)."""
        return next((r["plateau"] for r in self.history if r.get("plateau")), "")

    @property
    def minutes(self) -> float:
        return sum(r.get("seconds", 0.0) + r.get("val", {}).get("seconds", 0.0)
                   for r in self.history) / 60


def read_run(folder: str | Path) -> Run:
    """Reads a run folder; a clear error when it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder not found: {folder}")
    config_path, metrics_path = folder / "config.yaml", folder / "metrics.jsonl"
    if not config_path.is_file() or not metrics_path.is_file():
        raise FileNotFoundError(f"{folder} is not a run folder: `reskd train` / `reskd distill` "
                                f"write config.yaml and metrics.jsonl there (runtime.out); give "
                                f"the folder of a run that has started")
    saved = yaml.safe_load(config_path.read_text()) or {}
    config = {**flat(to_dict(Config())), **flat(saved)}  # defaults for keys an older run lacks
    history = []
    for n, line in enumerate(metrics_path.read_text().splitlines(), 1):
        try:
            history.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{metrics_path} line {n} is not JSON ({e}); the file was edited "
                             f"or cut: delete that line, or resume the run to rewrite it") from e
    context = {}
    for name in ("model.pt", LATEST):
        if (folder / name).is_file():
            context = {k: v for k, v in load_checkpoint(folder / name).items()
                       if k not in ("model", "optimizer", "scheduler", "scaler", "rng")}
            break
    speed = json.loads((folder / SPEED).read_text()) if (folder / SPEED).is_file() else {}
    return Run(folder, config, history, context, speed)


def record_speed(folder: str | Path, videos_per_s: float, facts: dict) -> None:
    """Writes FOLDER/speed.json: a measured throughput and the machine facts it holds for."""
    write_text_atomic(Path(folder) / SPEED,
                      json.dumps({"videos_per_s": videos_per_s, **facts}, indent=2))


def _recipe(run: Run) -> dict:
    keys = {k: v for k, v in run.config.items() if k not in NOT_RECIPE}
    teacher = keys.get("distill.teacher") or ""
    if not teacher:  # not distilled: the distill.* keys are unused
        return {k: v for k, v in keys.items() if not k.startswith("distill.")}
    path = Path(teacher)  # .../teacher/model.pt -> "teacher": the run it came from
    keys["distill.teacher"] = path.parent.name if path.name in ("model.pt", LATEST) else str(path)
    return keys


def _value(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(map(str, v)) + "]"
    return str(v)


def run_labels(runs: Sequence[Run]) -> list[str]:
    """What sets each run apart: its value of every recipe key that differs between the runs
    that use it ("" for a run that differs in nothing); being distilled at all shows as
    distill.teacher. A key a run does not use is left out of its label."""
    recipes = [_recipe(r) for r in runs]
    keys = sorted({k for rec in recipes for k in rec})
    differ = [k for k in keys if len({_value(rec[k]) for rec in recipes if k in rec}) > 1
              or (k == "distill.teacher" and not all(k in rec for rec in recipes))]
    return [", ".join(f"{k}={_value(rec[k])}" for k in differ if k in rec) for rec in recipes]


def run_names(runs: Sequence[Run]) -> list[str]:
    """Folder names, with their parent's where two runs share one (study/seed0, ...)."""
    names = [r.folder.name for r in runs]
    if len(set(names)) < len(names):
        names = [f"{r.folder.parent.name}/{r.folder.name}" for r in runs]
    return names


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table as lines: header, rule, one line per row."""
    bad = [row for row in rows if len(row) != len(header)]
    if bad:
        raise ValueError(f"a table row has {len(bad[0])} cells for {len(header)} columns: {bad[0]}")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def comparison_rows(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the comparison table."""
    metric = runs[0].metric
    label = "mAP (%)" if metric == "mAP" else "top-1 (%)"
    header = ["run", "differs in", label, "GMACs / video", "GMACs saved", "input", "videos/s",
              "epochs", "time (min)"]
    first_gmacs = runs[0].context.get("gmacs")
    rows = []
    for run, name, what in zip(runs, run_names(runs), run_labels(runs)):
        value = run.final.get(metric)
        size = run.context.get("size") or run.config.get("data.size")
        frames = run.context.get("frames")
        epochs_total = run.config.get("optim.epochs")
        speed = run.speed.get("videos_per_s")
        rows.append([f"{name} (plateau)" if run.plateau else name, what or "-",
                     f"{value:.1f}" if value is not None else "-",
                     f"{run.context['gmacs']:.4f}" if "gmacs" in run.context else "-",
                     f"{first_gmacs / run.context['gmacs']:.1f}x"
                     if first_gmacs and run.context.get("gmacs") else "-",
                     f"{size}x{size}" + (f", {frames} frames" if frames else ""),
                     f"{speed:.0f}" if speed else "-",
                     f"{len(run.history)}/{epochs_total}", f"{run.minutes:.1f}"])
    return header, rows


def plateau_notes(runs: Sequence[Run]) -> list[str]:
    """The lines under the table: a Markdown list item for each run marked "(plateau)" with
    the warning its training logged ("- NAME (plateau): train top-1 has stayed at ...")."""
    return [f"- {name} (plateau): {run.plateau.removeprefix('plateau: ')}"
            for run, name in zip(runs, run_names(runs)) if run.plateau]


def compare_runs(folders: Sequence[str | Path], out: str | Path) -> dict:
    """Writes OUT/compare.md (the table) and OUT/compare.png (the curves); returns both paths,
    the table's lines (then, after an empty line, `plateau_notes` when any run has one: what
    `reskd compare` prints and the demo's report shows) and the labels."""
    from reskd.analysis.plots import plot_run_curves

    if not folders:
        raise ValueError("give one or more run folders to compare")
    runs = [read_run(f) for f in folders]
    metrics = {r.metric for r in runs}
    if len(metrics) > 1:
        raise ValueError(f"these runs report different metrics ({', '.join(sorted(metrics))}): "
                         f"compare single-label runs with single-label runs, multi-label with "
                         f"multi-label")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header, rows = comparison_rows(runs)
    notes = plateau_notes(runs)
    table = markdown_table(header, rows) + (["", *notes] if notes else [])
    write_text_atomic(out / "compare.md", "\n".join(["# reskd compare", "", *table, ""]))
    names, labels = run_names(runs), run_labels(runs)
    curves = [{"label": f"{n}: {w}" if w else n, "history": r.history} for n, w, r in
              zip(names, labels, runs)]
    png = plot_run_curves(curves, metric=runs[0].metric, out_png=out / "compare.png")
    return {"markdown": str(out / "compare.md"), "png": str(png), "table": table,
            "labels": dict(zip(names, labels))}

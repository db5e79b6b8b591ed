"""`reskd study resolution|ablation|views|anyres|motion`: the paper's studies as commands.

- `resolution` (Section 3, Figure 1): (a) models trained and tested on frames of each low
  resolution r vs on the same frames up-sampled back to the high resolution (information loss
  without the change of scale); (b) the stock network ("-H") vs its stride-modified version
  ("-S", stage strides (1, 1, 2, 2): R50-S) across resolutions.
- `ablation` (Section 5, Tables 5 and 6): baseline, clip-, frame- and pixel-level KD from a
  high-capacity high-resolution teacher; model distillation (high-capacity teacher at the
  student's resolution) vs resolution distillation (the student's own architecture at high
  resolution) vs both (= pixel-level KD of Table 5).
- `views` (not in the paper): how the high-resolution crop is shrunk to the student's size,
  bilinear without antialiasing (the authors' code) or antialiased, each used for training and
  testing of both the CE baseline and the ResKD student, at 2x and 4x reduction. It chose
  reskd's default `data.shrink`.

Each study is a plan (`plan_<study>`: its runs on one base recipe, and the report its records
make) for one driver, `run_study`, which trains, tabulates and writes every study the same way.
A study is a list of ordinary `reskd train` / `reskd distill` runs, each in
OUT/runs/<name>/seed<k>, built from one base recipe plus a few overrides: the demo's recipe on
the embedded synthetic videos (default), or any YAML (`--config`, e.g. a Table 1 baseline)
for paper scale. Every finished run leaves study.json; running the study again reuses those
and resumes an interrupted run from its checkpoint, so a killed study loses at most the steps
since the last checkpoint. Each study writes OUT/<study>.md (tables), OUT/<study>.json (every
run's numbers and per-seed values), OUT/<study>.png, and OUT/compare/ (`reskd compare` of all
its runs: one line each, labelled by what differs between their configs, and their curves).

Decisions the paper leaves open:
- Teachers are trained once, with the first seed; the seeds vary the students, which is
  where the tables' comparisons lie. Spread is the sample standard deviation over seeds.
- Clip- and frame-level KD use weight 1 and temperature 4 with the T^2 factor (as
  configs/table5_*); pixel-level (feature) KD weight 100, as the paper.
- The demo-scale high-capacity teacher is the demo ResNet with two blocks instead of one in
  its last two stages (2.2x the parameters, 1.6x the MACs; same widths, so feature KD needs
  no adapter), standing in for R152 vs R50.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from reskd.analysis.compare import compare_runs, flat, markdown_table
from reskd.checkpoint import write_text_atomic
from reskd.config import Config, ConfigError, load_config

# Demo scale: the demo's data (6000 train, 1000 val clips) and recipe, fewer epochs and runs so
# that each study stays under 30 minutes on the 2-core AVX2 CPU here (times in the README).
# Fewer clips or segments per clip do not work: these from-scratch CNNs sit at chance for
# about 700 steps before they find the digit (3000 clips x 8 epochs: 27% at 64 px; one
# segment per clip: 10%, measured).
DEMO_HIGH, DEMO_LOW = 64, 32
DEMO_RESOLUTION = dict(sizes=(64, 32, 16), s_sizes=(32, 16), epochs=10, num_train=6000,
                       num_val=1000, seeds=(0,))
DEMO_ABLATION = dict(epochs=6, num_train=6000, num_val=1000, seeds=(0, 1))
# The views study keeps the demo's 12 epochs, so its 32 px cells are the demo's students.
DEMO_VIEWS = dict(sizes=(32, 16), s_sizes=(16,), epochs=12, num_train=6000, num_val=1000,
                  seeds=(0, 1))
QUICK = dict(epochs=1, num_train=64, num_val=32)
DEMO_S_SET = ("model.strides=[1,1,2,2]",)
DEMO_BIG_SET = ("model.layers=[1,1,2,2]",)
FEATURE_KD = ("distill.alpha=100", "distill.clip_kd=0", "distill.frame_kd=0",
              "distill.pixel_logit_kd=0")
LOGIT_KD = ("distill.alpha=0", "distill.pixel_logit_kd=0", "distill.temperature=4")


@dataclass
class StudyRun:
    """One training run of a study: overrides on the base recipe, and the run (by name) whose
    model is its teacher, if it is distilled."""
    name: str
    overrides: tuple[str, ...]
    seed: int
    teacher: str = ""
    info: dict = field(default_factory=dict)  # what the tables need: size, kind, ...

    @property
    def key(self) -> str:
        return f"{self.name}/seed{self.seed}"


@dataclass
class Base:
    """The recipe every run of a study starts from: a YAML (or None: the demo's) + overrides."""
    config: str | None
    overrides: list[str]
    metric: str  # "top1" or "mAP"
    recipe: str = ""  # what the footer of a study's tables calls it

    def make(self, run: StudyRun, out: Path) -> Config:
        return load_config(self.config, [*self.overrides, *run.overrides,
                                         f"runtime.seed={run.seed}",
                                         f"runtime.out={out / 'runs' / run.key}"])


def make_base(out: Path, *, config: str | None, overrides: Sequence[str], epochs: int | None,
              scale: dict, quick: bool = False, data_dir: str | Path | None = None,
              log=print, synth: dict | None = None, demo_sets: Sequence[str] = ()) -> Base:
    """The demo recipe on synthetic videos written into `data_dir` (default OUT/data; a complete
    set made with the same parameters there is reused), or the user's YAML. `scale` gives the
    demo scale's epochs and clip counts (QUICK's with `quick`); a YAML keeps its epochs.
    `synth`: more options of `make_synth_dataset` (a variant, e.g. label="motion");
    `demo_sets`: overrides on the demo recipe that go with it (not applied to a YAML)."""
    scale = {**scale, **(QUICK if quick else {})}
    epochs = epochs or (scale["epochs"] if config is None or quick else None)
    # a study's log is mostly kept in a file: per-step progress bars only on a terminal
    sets = ([] if sys.stderr.isatty() else ["runtime.progress=false"]) + list(overrides)
    if config is None:
        from reskd.data.synth import make_synth_dataset
        from reskd.experiments.demo import demo_overrides

        data_dir = Path(data_dir or out / "data")
        num_train, num_val = scale["num_train"], scale["num_val"]
        if (data_dir / "train.txt").is_file() and not (data_dir / "synth.json").is_file():
            log(f"[study] the videos listed in {data_dir} (train.txt, val.txt, classes.txt)")
            data = {"root": str(data_dir)}
            label = f"the demo recipe on the videos listed in {data_dir} (reskd.experiments.demo)"
        else:
            log(f"[study] synthetic videos ({num_train} train, {num_val} val) in {data_dir}")
            data = make_synth_dataset(data_dir, num_train=num_train, num_val=num_val,
                                      **(synth or {}))
            variant = "".join(f", {k}={v}" for k, v in (synth or {}).items())
            label = (f"the demo recipe on the embedded synthetic videos{variant} "
                     f"(reskd.experiments.demo)")
        sets = [*demo_overrides(data, out, size=DEMO_LOW, epochs=epochs or 1, seed=0),
                *demo_sets, *sets]
    elif not Path(config).is_file():
        raise FileNotFoundError(f"--config {config} does not exist; give a YAML such as "
                                f"configs/table1_activitynet_r50_baseline112.yaml")
    if epochs:
        sets.append(f"optim.epochs={epochs}")
    cfg = load_config(config, sets)  # fails early on a bad config or override
    if not cfg.data.val_list:
        raise ConfigError("a study compares accuracies: set data.val_list in the config")
    return Base(config, sets, "mAP" if cfg.data.multi_label else "top1",
                config if config else label)


def execute(runs: Sequence[StudyRun], base: Base, out: Path, *, log=print,
            should_stop=None, given: dict[str, dict] | None = None) -> dict[str, dict]:
    """Trains each run in order (teachers come before their students) unless it has finished
    before; returns {run key: its study.json}. `should_stop` as in `run_train`: a stopped run
    saves its position and the study's rerun resumes it. `given`: records of runs made
    elsewhere (a teacher passed by path, `given_teacher`), usable as teachers."""
    from reskd.checkpoint import load_checkpoint
    from reskd.engine.train import Interrupted
    from reskd.runs import run_train

    done: dict[str, dict] = dict(given or {})
    for i, run in enumerate(runs, 1):
        folder = out / "runs" / run.key
        record_path = folder / "study.json"
        if record_path.is_file():
            check_same_recipe(folder, base.make(run, out))
            done[run.key] = json.loads(record_path.read_text())
            log(f"[study] {i}/{len(runs)} {run.key}: done before, "
                f"{done[run.key]['metrics'][base.metric]:.1f}")
            continue
        cfg = base.make(run, out)
        if run.teacher:
            cfg.distill.teacher = done[run.teacher]["model"]
        resume = (folder / "checkpoint.pt").is_file()
        if resume:
            check_same_recipe(folder, cfg)
        log(f"[study] {i}/{len(runs)} {run.key}: {'resuming' if resume else 'starting'} "
            f"({'distilled from ' + run.teacher if run.teacher else 'trained'})")
        start = time.perf_counter()
        try:
            result = run_train(cfg, distill=bool(run.teacher), resume=resume, log=log,
                               should_stop=should_stop)
        except Interrupted as e:
            raise Interrupted(f"{e} For the study: run the same `reskd study` command again; "
                              f"it resumes {run.key}.", e.exit_code) from None
        gmacs = load_checkpoint(result["model"])["gmacs"]
        record = {"key": run.key, "name": run.name, "seed": run.seed, "teacher": run.teacher,
                  "overrides": list(run.overrides), "model": result["model"],
                  "metrics": result["val"], "gmacs": gmacs,
                  "seconds": time.perf_counter() - start, **run.info}
        write_text_atomic(record_path, json.dumps(record, indent=2))
        done[run.key] = record
        log(f"[study] {run.key}: {base.metric} {result['val'][base.metric]:.1f}")
    return done


# Not part of the recipe: where the run and its teacher live (the run key names them both) and
# how the log looks.
_NOT_RECIPE = {"runtime.out", "runtime.progress", "distill.teacher"}


def check_same_recipe(folder: Path, planned: Config) -> None:
    """A finished or interrupted run is reused only if it was made with the recipe the study
    asks for now: changing --epochs or --set on an existing study folder must not mix results
    of two recipes in one table."""
    from reskd.config import to_dict

    saved = flat(to_dict(load_config(folder / "config.yaml")))
    wanted = flat(to_dict(planned))
    changed = sorted(k for k in wanted.keys() - _NOT_RECIPE if saved.get(k) != wanted[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted[k]!r} now" for k in changed[:4])
        raise ValueError(f"{folder} was made with another recipe ({details}); give a new --out "
                         f"for the new recipe, or delete {folder} to train it again")


def summarize(records: dict[str, dict], name: str, metric: str) -> dict:
    """Mean, spread and per-seed values of one run over its seeds."""
    values = [r["metrics"][metric] for r in records.values() if r["name"] == name]
    if not values:
        return {}
    one = next(r for r in records.values() if r["name"] == name)
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values, "gmacs": one["gmacs"]}


def cell(s: dict) -> str:
    if not s:
        return "-"
    if len(s["values"]) == 1:
        return f"{s['mean']:.1f}"
    return f"{s['mean']:.1f} ± {s['std']:.1f} ({', '.join(f'{v:.1f}' for v in s['values'])})"


def given_teacher(run: StudyRun, path: str | Path) -> dict:
    """The record of a teacher trained before (`--teacher CKPT`) standing for `run`: its model,
    metrics and GMACs from the checkpoint; its training time is not this study's."""
    from reskd.checkpoint import load_checkpoint

    if not Path(path).is_file():
        raise FileNotFoundError(f"--teacher {path} does not exist; give a model.pt made by "
                                f"`reskd train`, or leave --teacher out to train one")
    ckpt = load_checkpoint(path)
    return {"key": run.key, "name": run.name, "seed": run.seed, "teacher": "", "overrides": [],
            "model": str(path), "metrics": ckpt.get("metrics", {}), "gmacs": ckpt["gmacs"],
            "seconds": 0.0, "given": True, **run.info}


def _write(out: Path, study: str, markdown: str, payload: dict) -> None:
    """OUT/<study>.md and .json, and `reskd compare` of every run in OUT/compare/ (each run's
    line, labelled by its overrides, and their curves)."""
    write_text_atomic(out / f"{study}.md", markdown)
    write_text_atomic(out / f"{study}.json", json.dumps(payload, indent=2))
    compare_runs([out / "runs" / key for key, record in payload["runs"].items()
                  if not record.get("given")], out / "compare")  # not a teacher given by path


def _seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(dict.fromkeys(seeds))
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"--seeds: give one or more non-negative integers such as 0,1; "
                         f"got {seeds}")
    return seeds


def _footer(base: Base, seeds: list[int], command: str, records: dict, seconds: float) -> list[str]:
    recipe = base.recipe
    trained = sum(r["seconds"] for r in records.values()) / 60
    return ["", f"Recipe: {recipe}; overrides and every run's config are in "
            f"runs/*/seed*/config.yaml.",
            f"Seeds: {', '.join(map(str, seeds))} (mean ± sample std, per-seed values in "
            f"brackets, when more than one). Training and testing the {len(records)} runs took "
            f"{trained:.1f} min (measured as each ran); this invocation {seconds / 60:.1f} min.",
            f"Reproduce: `{command}`", ""]

def _label(metric: str) -> str:
    """How the tables name the metric."""
    return "mAP" if metric == "mAP" else "top-1"


# ---------------------------------------------------------------------------------------------
# The one study driver; each study below is a plan for it


@dataclass
class Report:
    """What a study's records become: the Markdown between its title and the footer, the
    payload's results (after the study's parameters) and, if it has one, a figure drawer."""
    lines: list[str]
    results: dict
    plot: Callable[[Path], object] | None = None  # draws OUT/<study>.png


@dataclass
class Study:
    """One study, planned: the five studies differ only in these fields; `run_study` is the
    skeleton they share."""
    name: str  # OUT/<name>.md, .json (and .png)
    title: str  # the Markdown's first line
    base: Base
    runs: list[StudyRun]  # trained in order; a teacher given by path is not among them
    params: dict  # the payload's parameters, in order; "seeds" among them
    report: Callable[[dict[str, dict]], Report]  # {run key: study.json} -> its report
    given: dict[str, dict] = field(default_factory=dict)  # records of runs made elsewhere


def run_study(plan: Callable[..., Study], out: str | Path, *, command: str = "", log=print,
              should_stop=None, **options) -> dict:
    """Plans a study (`plan(out, log=log, **options)` checks the options and makes the base
    recipe), trains its runs that are not done yet, and writes OUT/<study>.md, .json, .png (if
    the study draws one) and compare/; returns the payload of OUT/<study>.json. `command`: the
    command line the footer gives to reproduce it; `should_stop` as in `execute`."""
    start = time.perf_counter()  # the invocation's time includes writing the synthetic videos
    out = Path(out)
    study = plan(out, log=log, **options)
    records = execute(study.runs, study.base, out, log=log, should_stop=should_stop,
                      given=study.given)
    report = study.report(records)
    seconds = time.perf_counter() - start
    markdown = "\n".join([study.title, "", *report.lines,
                          *_footer(study.base, study.params["seeds"], command, records, seconds)])
    payload = {"study": study.name, "metric": study.base.metric, **study.params,
               **report.results, "runs": records, "seconds": seconds}
    _write(out, study.name, markdown, payload)
    written = [out / f"{study.name}.md", out / f"{study.name}.json"]
    if report.plot:
        written.append(out / f"{study.name}.png")
        report.plot(written[-1])
    log(markdown)
    log(f"[study] wrote {(', ' if report.plot else ' and ').join(map(str, written))}")
    return payload


# ---------------------------------------------------------------------------------------------
# Figure 1


def resolution_runs(*, sizes: Sequence[int], high: int, s_sizes: Sequence[int],
                    s_set: Sequence[str], seeds: Sequence[int]) -> list[StudyRun]:
    """Figure 1's runs: native{r} (trained and tested at r; also the "-H" curve of 1b),
    upsampled{r} (r x r information at `high` px), S{r} (the stride-modified network at r).
    Every run's views are shrunk from the same `high` px crop (data.crop_size), as the paper
    obtains its low-resolution frames by resizing the 224 px ones."""
    bad = [s for s in [*sizes, *s_sizes] if not 0 < s <= high]
    if bad:
        raise ValueError(f"--sizes / --s-sizes must lie in 1..--high={high}; got {bad}")
    runs, crop = [], f"data.crop_size={high}"
    for seed in seeds:
        for r in sorted(set(sizes) | set(s_sizes) | {high}, reverse=True):
            runs.append(StudyRun(f"native{r}", (crop, f"data.size={r}"), seed,
                                 info={"size": r, "kind": "native"}))
        for r in sorted(set(sizes) - {high}, reverse=True):
            runs.append(StudyRun(f"upsampled{r}", (crop, f"data.size={high}",
                                                   f"data.downsample_to={r}"),
                                 seed, info={"size": r, "kind": "upsampled"}))
        for r in sorted(set(s_sizes), reverse=True):
            runs.append(StudyRun(f"S{r}", (*s_set, crop, f"data.size={r}"), seed,
                                 info={"size": r, "kind": "S"}))
    return runs


def plan_resolution(out: Path, *, config: str | None = None, overrides: Sequence[str] = (),
                    sizes: Sequence[int] | None = None, high: int | None = None,
                    s_sizes: Sequence[int] | None = None, s_set: Sequence[str] | None = None,
                    seeds: Sequence[int] | None = None, epochs: int | None = None,
                    quick: bool = False, data_dir: str | None = None, log=print) -> Study:
    """Figure 1 (a) and (b): `resolution_runs` on the base recipe."""
    demo = config is None
    scale = {**DEMO_RESOLUTION, **(dict(sizes=(64, 32), s_sizes=(32,)) if quick else {})}
    if not demo and not sizes:
        raise ValueError("with --config give --sizes (e.g. 224,112,96,72,56); --high defaults to "
                         "the largest")
    sizes = list(sizes or scale["sizes"])
    high = high or (DEMO_HIGH if demo else max(sizes))
    s_sizes = list(sizes if s_sizes is None and not demo else (s_sizes or scale["s_sizes"]))
    seeds = _seeds(seeds or scale["seeds"])
    base = make_base(out, config=config, overrides=overrides, epochs=epochs, scale=scale,
                     quick=quick, data_dir=data_dir, log=log)
    s_set = list(s_set or _default_s_set(base))
    runs = resolution_runs(sizes=sizes, high=high, s_sizes=s_sizes, s_set=s_set, seeds=seeds)
    return Study("resolution", "# reskd study resolution (the paper's Figure 1)", base, runs,
                 dict(high=high, sizes=sizes, s_sizes=s_sizes, s_set=s_set, seeds=seeds,
                      quick=quick),
                 partial(resolution_report, runs=runs, metric=base.metric, high=high,
                         sizes=sizes, s_sizes=s_sizes, s_set=s_set))


def resolution_report(records: dict[str, dict], *, runs: Sequence[StudyRun], metric: str,
                      high: int, sizes: Sequence[int], s_sizes: Sequence[int],
                      s_set: Sequence[str]) -> Report:
    """Figure 1a (native vs up-sampled per size) and 1b (-H vs -S per size), tables and plot."""
    from reskd.analysis.plots import plot_resolution_study

    rows = {"native": {}, "upsampled": {}, "S": {}}
    for run in runs:
        rows[run.info["kind"]][run.info["size"]] = summarize(records, run.name, metric)
    rows["upsampled"][high] = rows["native"][high]  # at the high resolution both are one model
    label = _label(metric)
    nat, up, S = rows["native"], rows["upsampled"], rows["S"]
    a = [f"## Figure 1a: information loss vs scale ({label}, %)", "", *markdown_table(
        ["resolution", "trained and tested at it", f"up-sampled back to {high}x{high}",
         "GMACs/video (native)", "GMACs/video (up-sampled)"],
        [[f"{r}x{r}", cell(nat[r]), cell(up[r]), f"{nat[r]['gmacs']:.4f}",
          f"{up[r]['gmacs']:.4f}"] for r in sorted(sizes, reverse=True)])]
    b = ["", f"## Figure 1b: stock (-H) vs stride-modified (-S) network ({label}, %)", "",
         f"-S: `{' '.join(s_set)}`", "", *markdown_table(
             ["resolution", "-H", "-S", "S - H", "GMACs/video -H", "GMACs/video -S"],
             [[f"{r}x{r}", cell(nat[r]), cell(S[r]), f"{S[r]['mean'] - nat[r]['mean']:+.1f}",
               f"{nat[r]['gmacs']:.4f}", f"{S[r]['gmacs']:.4f}"]
              for r in sorted(s_sizes, reverse=True)])]
    return Report([*a, *b],
                  {"rows": {k: {str(r): v for r, v in d.items()} for k, d in rows.items()}},
                  lambda png: plot_resolution_study(rows, high=high, metric=label,
                                                    s_label=" ".join(s_set), out_png=png))


def run_resolution_study(out: str | Path, **options) -> dict:
    """Figure 1 (a) and (b); returns the payload written to OUT/resolution.json. `options`:
    `plan_resolution`'s, and `run_study`'s command, log and should_stop."""
    return run_study(plan_resolution, out, **options)


def _default_s_set(base: Base) -> tuple[str, ...]:
    arch = base.make(StudyRun("probe", (), 0), Path(".")).model.arch
    if arch == "resnet":
        return DEMO_S_SET
    if arch == "resnet50":
        return ("model.arch=resnet50s",)
    raise ValueError(f"no stride-modified version of model.arch={arch} is known; describe it "
                     f"with --s-set KEY=VALUE (e.g. --s-set model.arch=resnet50s)")


# ---------------------------------------------------------------------------------------------
# Tables 5 and 6

TABLE5 = [("baseline", "Baseline", "-", "-", "", ""),
          ("clip_kd", "Clip-level KD", "cls. score", "KL", "", ""),
          ("frame_kd", "Frame-level KD", "cls. score", "KL", "yes", ""),
          ("pixel_kd", "Pixel-level KD", "feature map", "MSE", "yes", "yes")]
TABLE6 = [("baseline", "Baseline", "-", ""),
          ("model_distill", "Model distill.", "high-capacity", ""),
          ("resolution_distill", "Resolution distill.", "same as student", "yes"),
          ("pixel_kd", "ResKD", "high-capacity", "yes")]


def ablation_runs(*, student_size: int, teacher_size: int, big_set: Sequence[str],
                  seeds: Sequence[int]) -> list[StudyRun]:
    """Teachers (first seed only), then per seed the six students of Tables 5 and 6. Every
    run's views are shrunk from one `teacher_size` crop (data.crop_size): the baseline and the
    low-resolution teacher see exactly the students' views, so the rows differ only in the KD."""
    if teacher_size <= student_size:
        raise ValueError(f"--teacher-size {teacher_size} must exceed the student's data.size "
                         f"{student_size}: ResKD distils from high to low resolution")
    big, t0, crop = tuple(big_set), seeds[0], f"data.crop_size={teacher_size}"
    teachers = {"big_high": StudyRun(f"teacher_big{teacher_size}",
                                     (*big, crop, f"data.size={teacher_size}"), t0),
                "big_low": StudyRun(f"teacher_big{student_size}",
                                    (*big, crop, f"data.size={student_size}"), t0),
                "same_high": StudyRun(f"teacher_same{teacher_size}",
                                      (crop, f"data.size={teacher_size}"), t0)}
    runs = list(teachers.values())
    students = {"baseline": ((), ""),
                "clip_kd": ((*LOGIT_KD, "distill.clip_kd=1", "distill.frame_kd=0"), "big_high"),
                "frame_kd": ((*LOGIT_KD, "distill.clip_kd=0", "distill.frame_kd=1"), "big_high"),
                "pixel_kd": (FEATURE_KD, "big_high"),
                "model_distill": (FEATURE_KD, "big_low"),
                "resolution_distill": (FEATURE_KD, "same_high")}
    for seed in seeds:
        for name, (sets, teacher) in students.items():
            runs.append(StudyRun(name, (*sets, crop, f"data.size={student_size}"), seed,
                                 teacher=teachers[teacher].key if teacher else ""))
    return runs


def plan_ablation(out: Path, *, config: str | None = None, overrides: Sequence[str] = (),
                  teacher_size: int | None = None, big_set: Sequence[str] | None = None,
                  seeds: Sequence[int] | None = None, epochs: int | None = None,
                  quick: bool = False, data_dir: str | None = None, log=print) -> Study:
    """Tables 5 and 6: `ablation_runs` on the base recipe, the student at its data.size."""
    if config is not None and not teacher_size:
        raise ValueError("with --config give --teacher-size (e.g. 224)")
    seeds = _seeds(seeds or DEMO_ABLATION["seeds"])
    base = make_base(out, config=config, overrides=overrides, epochs=epochs, scale=DEMO_ABLATION,
                     quick=quick, data_dir=data_dir, log=log)
    probe = base.make(StudyRun("probe", (), 0), Path("."))
    student_size, teacher_size = probe.data.size, teacher_size or DEMO_HIGH
    big_set = list(big_set or _default_big_set(probe.model.arch))
    runs = ablation_runs(student_size=student_size, teacher_size=teacher_size, big_set=big_set,
                         seeds=seeds)
    return Study("ablation", "# reskd study ablation (the paper's Tables 5 and 6)", base, runs,
                 dict(student_size=student_size, teacher_size=teacher_size, big_set=big_set,
                      seeds=seeds, quick=quick),
                 partial(ablation_report, runs=runs, metric=base.metric,
                         student_size=student_size, teacher_size=teacher_size, big_set=big_set))


def ablation_report(records: dict[str, dict], *, runs: Sequence[StudyRun], metric: str,
                    student_size: int, teacher_size: int, big_set: Sequence[str]) -> Report:
    """Tables 5 and 6, the teachers' numbers, and their plot."""
    from reskd.analysis.plots import plot_ablation_study

    label = _label(metric)
    stats = {name: summarize(records, name, metric) for name in {r.name for r in runs}}
    t5 = [f"## Table 5: design of the KD ({label}, %, student at {student_size}x{student_size})",
          "", f"Teacher: high-capacity (`{' '.join(big_set)}`) at "
          f"{teacher_size}x{teacher_size}.", "",
          *markdown_table(["KD method", "supervision signal", "loss", "temporal dim.",
                           "spatial dim.", label],
                          [[*cells, cell(stats[name])] for name, *cells in TABLE5])]
    t6 = ["", f"## Table 6: model vs resolution distillation ({label}, %)", "",
          *markdown_table(["setting", "teacher", f"high resolution ({teacher_size})", label],
                          [[*cells, cell(stats[name])] for name, *cells in TABLE6])]
    teachers = [r.name for r in runs if r.name.startswith("teacher_")]
    lines = [*t5, *t6, "", "Teachers (first seed): " + ", ".join(
        f"{name} {cell(stats[name])}" for name in teachers) + "."]
    results = {"table5": {name: stats[name] for name, *_ in TABLE5},
               "table6": {name: stats[name] for name, *_ in TABLE6},
               "teachers": {name: stats[name] for name in teachers}}
    return Report(lines, results, lambda png: plot_ablation_study(
        [(row, stats[name]) for name, row, *_ in TABLE5],
        [(row, stats[name]) for name, row, *_ in TABLE6], metric=label, out_png=png))


def run_ablation_study(out: str | Path, **options) -> dict:
    """Tables 5 and 6; returns the payload written to OUT/ablation.json. `options`:
    `plan_ablation`'s, and `run_study`'s command, log and should_stop."""
    return run_study(plan_ablation, out, **options)


def _default_big_set(arch: str) -> tuple[str, ...]:
    if arch == "resnet":
        return DEMO_BIG_SET
    if arch in ("resnet50", "resnet50s"):
        return ("model.arch=resnet152",)
    raise ValueError(f"no high-capacity teacher is known for model.arch={arch}; describe it "
                     f"with --teacher-set KEY=VALUE (e.g. --teacher-set model.arch=resnet152)")


# ---------------------------------------------------------------------------------------------
# How the student's views are shrunk from the teacher's crop

VIEW_FILTERS = ("bilinear", "antialias")


def views_runs(*, sizes: Sequence[int], high: int, s_sizes: Sequence[int], s_set: Sequence[str],
               seeds: Sequence[int]) -> list[StudyRun]:
    """The teacher at `high` (first seed), then per seed, filter and student size a CE baseline
    and a ResKD student, both on the `high` px crop shrunk with that filter (-S network at
    `s_sizes`, baseline and student alike)."""
    bad = [r for r in sizes if not 0 < r < high]
    if bad:
        raise ValueError(f"--sizes must lie below the teacher's {high} px; got {bad}")
    crop = f"data.crop_size={high}"
    teacher = StudyRun(f"teacher{high}", (crop, f"data.size={high}"), seeds[0])
    runs = [teacher]
    for seed in seeds:
        for f in VIEW_FILTERS:
            for r in sorted(sizes, reverse=True):
                sets = (crop, f"data.shrink={f}", f"data.size={r}",
                        *(s_set if r in s_sizes else ()))
                info = {"size": r, "filter": f}
                runs.append(StudyRun(f"baseline_{f}{r}", sets, seed, info=info))
                runs.append(StudyRun(f"reskd_{f}{r}", (*FEATURE_KD, *sets), seed,
                                     teacher=teacher.key, info=info))
    return runs


def plan_views(out: Path, *, config: str | None = None, overrides: Sequence[str] = (),
               sizes: Sequence[int] | None = None, high: int | None = None,
               s_sizes: Sequence[int] | None = None, s_set: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None, epochs: int | None = None,
               quick: bool = False, data_dir: str | None = None, log=print) -> Study:
    """Baseline vs ResKD per shrink filter and reduction: `views_runs` on the base recipe."""
    demo = config is None
    scale = {**DEMO_VIEWS, **(dict(seeds=(0,)) if quick else {})}
    if not demo and not (sizes and high):
        raise ValueError("with --config give --high (the teacher's size, e.g. 224) and --sizes "
                         "(the students', e.g. 112,56)")
    high = high or DEMO_HIGH
    sizes = list(sizes or scale["sizes"])
    s_sizes = list(s_sizes if s_sizes is not None else (scale["s_sizes"] if demo else ()))
    seeds = _seeds(seeds or scale["seeds"])
    base = make_base(out, config=config, overrides=overrides, epochs=epochs, scale=scale,
                     quick=quick, data_dir=data_dir, log=log)
    s_set = list(s_set or (_default_s_set(base) if s_sizes else ()))
    runs = views_runs(sizes=sizes, high=high, s_sizes=s_sizes, s_set=s_set, seeds=seeds)
    return Study("views", "# reskd study views (student views: bilinear vs antialiased shrink)",
                 base, runs, dict(high=high, sizes=sizes, s_sizes=s_sizes, s_set=s_set,
                                  seeds=seeds, quick=quick),
                 partial(views_report, runs=runs, metric=base.metric, high=high, sizes=sizes,
                         s_sizes=s_sizes, s_set=s_set))


def views_report(records: dict[str, dict], *, runs: Sequence[StudyRun], metric: str, high: int,
                 sizes: Sequence[int], s_sizes: Sequence[int], s_set: Sequence[str]) -> Report:
    """Per student size and filter: CE baseline, ResKD and their difference."""
    label = _label(metric)
    stats = {r.name: summarize(records, r.name, metric) for r in runs}
    table = []
    for r in sorted(sizes, reverse=True):
        net = f" (-S: `{' '.join(s_set)}`)" if r in s_sizes else ""
        for f in VIEW_FILTERS:
            b, k = stats[f"baseline_{f}{r}"], stats[f"reskd_{f}{r}"]
            table.append([f"{r}x{r} ({high // r}x fewer pixels a side){net}", f, cell(b),
                          cell(k), f"{k['mean'] - b['mean']:+.1f}"])
    lines = [f"## Shrinking the {high} px crop to the student's size ({label}, %)", "",
             *markdown_table(["student", "filter", "CE baseline", "ResKD", "ResKD - baseline"],
                             table)]
    teacher = stats[runs[0].name]
    lines += ["", f"Teacher at {high}x{high} (first seed): {cell(teacher)}. Every model is tested "
              f"on views made as its training views (data.crop_size={high}, data.shrink as in "
              f"the row)."]
    return Report(lines, {"rows": stats})


def run_views_study(out: str | Path, **options) -> dict:
    """Baseline vs ResKD per shrink filter and reduction; returns the payload of OUT/views.json.
    `options`: `plan_views`'s, and `run_study`'s command, log and should_stop."""
    return run_study(plan_views, out, **options)


# ---------------------------------------------------------------------------------------------
# One student for every resolution

DEMO_ANYRES = dict(sizes=(32, 24, 16), epochs=12, num_train=6000, num_val=1000, seeds=(0, 1, 2))


def anyres_runs(*, sizes: Sequence[int], high: int, seeds: Sequence[int],
                anyres_set: Sequence[str] = ()) -> list[StudyRun]:
    """The teacher at `high` (first seed), then per seed: at each size a CE baseline and a
    ResKD student trained for that size alone, and one any-resolution student trained at every
    size at once (`distill.student_sizes`, `anyres_set` on top). Every run's views are the
    `high` px crop shrunk, so the arms differ only in the KD and in how many sizes a model
    is trained for."""
    bad = [r for r in sizes if not 0 < r < high]
    if bad or len(set(sizes)) < 2:
        raise ValueError(f"--sizes: give two or more student sizes below the teacher's {high} px "
                         f"(e.g. 32,24,16); got {list(sizes)}")
    crop, top = f"data.crop_size={high}", max(sizes)
    teacher = StudyRun(f"teacher{high}", (crop, f"data.size={high}"), seeds[0])
    runs = [teacher]
    listed = ",".join(map(str, sorted(sizes)))
    for seed in seeds:  # the comparison the study is for first: a partial study shows it
        runs.append(StudyRun("anyres", (*FEATURE_KD, crop, f"data.size={top}",
                                        f"distill.student_sizes=[{listed}]", *anyres_set),
                             seed, teacher=teacher.key, info={"sizes": sorted(sizes)}))
        for r in sorted(sizes, reverse=True):
            runs.append(StudyRun(f"reskd{r}", (*FEATURE_KD, crop, f"data.size={r}"), seed,
                                 teacher=teacher.key, info={"size": r}))
        for r in sorted(sizes, reverse=True):
            runs.append(StudyRun(f"baseline{r}", (crop, f"data.size={r}"), seed,
                                 info={"size": r}))
    return runs


def test_at_sizes(records: dict[str, dict], runs: Sequence[StudyRun], base: Base, out: Path, *,
                  log=print) -> None:
    """Tests every any-resolution run at each of its sizes once (`reskd test --size`), adding
    "by_size" {size: metric} and "test_seconds" to its study.json (a rerun reuses them)."""
    from reskd.runs import run_test

    for run in runs:
        record = records[run.key]
        if run.name != "anyres" or "by_size" in record:
            continue
        start, by_size = time.perf_counter(), {}
        for size in run.info["sizes"]:
            log(f"[study] testing {run.key} at {size} px")
            by_size[str(size)] = run_test(base.make(run, out), record["model"], log=log,
                                          size=size)[base.metric]
        record.update(by_size=by_size, test_seconds=time.perf_counter() - start)
        write_text_atomic(out / "runs" / run.key / "study.json", json.dumps(record, indent=2))


def anyres_table(stats: dict, minutes: dict, *, sizes: Sequence[int], high: int,
                 label: str, teacher: dict) -> list[str]:
    """The study's Markdown: per size the three arms (mean ± spread over seeds) and the
    difference, then the training time of each arm."""
    rows = []
    for r in sorted(sizes, reverse=True):
        b, k, a = stats[f"baseline{r}"], stats[f"reskd{r}"], stats[f"anyres{r}"]
        rows.append([f"{r}x{r}", f"{k['gmacs']:.4f}", cell(b), cell(k), cell(a),
                     f"{a['mean'] - k['mean']:+.1f}"])
    lines = [f"## One student for every resolution vs one per resolution ({label}, %)", "",
             *markdown_table(["student size", "GMACs/video", "CE baseline", "ResKD, one per size",
                              "ResKD, one for all sizes", "one for all - one per size"], rows)]
    lines += ["", "Training time per seed (mean over seeds; training plus testing): CE "
              f"baselines {minutes['baseline']:.1f} min for all sizes, ResKD one per size "
              f"{minutes['reskd']:.1f} min for all sizes, ResKD one for all sizes "
              f"{minutes['anyres']:.1f} min (one run, tested at each size).",
              f"Teacher at {high}x{high}: {cell(teacher)}; every run's views are its "
              f"{high} px crop shrunk (data.crop_size={high})."]
    return lines


def plan_anyres(out: Path, *, config: str | None = None, overrides: Sequence[str] = (),
                sizes: Sequence[int] | None = None, high: int | None = None,
                teacher: str | None = None, anyres_set: Sequence[str] | None = None,
                seeds: Sequence[int] | None = None, epochs: int | None = None,
                quick: bool = False, data_dir: str | None = None, log=print) -> Study:
    """One any-resolution student vs separately distilled students and CE baselines at each
    size: `anyres_runs` on the base recipe. `teacher`: a checkpoint trained before to use
    instead of training the teacher run."""
    demo = config is None
    scale = {**DEMO_ANYRES, **(dict(seeds=(0,)) if quick else {})}
    if not demo and not (sizes and high):
        raise ValueError("with --config give --high (the teacher's size, e.g. 224) and --sizes "
                         "(the student's, e.g. 112,96,72,56)")
    high = high or DEMO_HIGH
    sizes = sorted(sizes or scale["sizes"], reverse=True)
    seeds = _seeds(seeds or scale["seeds"])
    base = make_base(out, config=config, overrides=overrides, epochs=epochs, scale=scale,
                     quick=quick, data_dir=data_dir, log=log)
    runs = anyres_runs(sizes=sizes, high=high, seeds=seeds, anyres_set=list(anyres_set or ()))
    given = {runs[0].key: given_teacher(runs[0], teacher)} if teacher else {}
    return Study("anyres", "# reskd study anyres (one student for every resolution)", base,
                 runs[1:] if teacher else runs,
                 dict(high=high, sizes=sizes, seeds=seeds, anyres_set=list(anyres_set or ()),
                      teacher=teacher, quick=quick),
                 partial(anyres_report, runs=runs, base=base, out=out, log=log, sizes=sizes,
                         high=high, seeds=seeds, teacher=teacher),
                 given)


def anyres_report(records: dict[str, dict], *, runs: Sequence[StudyRun], base: Base, out: Path,
                  log, sizes: Sequence[int], high: int, seeds: Sequence[int],
                  teacher: str | None) -> Report:
    """Tests the any-resolution students at each size (`test_at_sizes`), then tabulates the
    three arms per size and their training times, and plots them against size."""
    from reskd.analysis.plots import plot_size_curves

    test_at_sizes(records, runs, base, out, log=log)
    m, label = base.metric, _label(base.metric)
    stats = {r.name: summarize(records, r.name, m) for r in runs if r.name != "anyres"}
    anyres = [r for r in records.values() if r["name"] == "anyres"]
    for size in sizes:
        values = [r["by_size"][str(size)] for r in anyres]
        stats[f"anyres{size}"] = {
            "mean": statistics.fmean(values), "values": values,
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "gmacs": stats[f"reskd{size}"]["gmacs"]}
    per_seed = {kind: sum(r["seconds"] + r.get("test_seconds", 0.0) for r in records.values()
                          if r["name"].rstrip("0123456789") == kind) / 60 / len(seeds)
                for kind in ("baseline", "reskd", "anyres")}
    lines = [*anyres_table(stats, per_seed, sizes=sizes, high=high, label=label,
                           teacher=summarize(records, runs[0].name, m)),
             *(["", f"Teacher given: {teacher} (trained before; its time is not counted)."]
               if teacher else [])]
    curves = {"CE baseline, one per size": "baseline", "ResKD, one per size": "reskd",
              "ResKD, one for all sizes": "anyres"}
    return Report(lines, {"rows": stats, "minutes_per_seed": per_seed},
                  lambda png: plot_size_curves(
                      {name: [{"size": r, **stats[f"{kind}{r}"]} for r in sizes]
                       for name, kind in curves.items()}, png, metric=label,
                      title=f"students distilled from a {high} px teacher"))


def run_anyres_study(out: str | Path, **options) -> dict:
    """One any-resolution student vs separately distilled students and CE baselines at each
    size; returns the payload of OUT/anyres.json. `options`: `plan_anyres`'s, and
    `run_study`'s command, log and should_stop."""
    return run_study(plan_anyres, out, **options)


# ---------------------------------------------------------------------------------------------
# Labels that need motion: TSN vs TSM, and ResKD on a TSM

# The motion variant of the synthetic videos (reskd.data.synth, label="motion": does the digit
# move left or right?), 4 frames per clip, all 4 sampled (the shift needs the order). Half the
# clips of the other studies and 8 epochs: 4 frames cost twice the demo's 2, and the study's 6
# runs took 18 min on the 2-core CPU here (README).
MOTION_FRAMES = 4
DEMO_MOTION = dict(epochs=8, num_train=3000, num_val=600, seeds=(0, 1))
MOTION_SETS = (f"data.num_segments={MOTION_FRAMES}",)


def motion_runs(*, high: int, low: int, seeds: Sequence[int]) -> list[StudyRun]:
    """A TSN and a TSM (`model.temporal`) at `high` (first seed), then per seed a CE baseline
    TSM and a ResKD TSM at `low` distilled from the TSM at `high`; every run's views are the
    `high` px crop shrunk, so the students differ only in the KD."""
    if not 0 < low < high:
        raise ValueError(f"--size must lie below --high={high}; got {low}")
    crop = f"data.crop_size={high}"
    tsn = StudyRun(f"tsn{high}", (crop, f"data.size={high}", "model.temporal=none"), seeds[0],
                   info={"size": high, "temporal": "none"})
    tsm = StudyRun(f"tsm{high}", (crop, f"data.size={high}", "model.temporal=shift"), seeds[0],
                   info={"size": high, "temporal": "shift"})
    runs = [tsn, tsm]
    student = (crop, f"data.size={low}", "model.temporal=shift")
    for seed in seeds:
        runs.append(StudyRun(f"baseline{low}", student, seed, info={"size": low,
                                                                     "temporal": "shift"}))
        runs.append(StudyRun(f"reskd{low}", (*FEATURE_KD, *student), seed, teacher=tsm.key,
                             info={"size": low, "temporal": "shift"}))
    return runs


def plan_motion(out: Path, *, config: str | None = None, overrides: Sequence[str] = (),
                high: int | None = None, size: int | None = None,
                seeds: Sequence[int] | None = None, epochs: int | None = None,
                quick: bool = False, data_dir: str | None = None, log=print) -> Study:
    """TSN vs TSM teachers on labels that need motion, and CE baseline vs ResKD TSM students:
    `motion_runs` on the base recipe. At demo scale the data are the motion variant of the
    synthetic videos (written into `data_dir`, default OUT/data)."""
    demo = config is None
    scale = {**DEMO_MOTION, **(dict(seeds=(0,)) if quick else {})}
    if not demo and not (high and size):
        raise ValueError("with --config give --high (the teachers' size, e.g. 224) and --size "
                         "(the students', e.g. 112)")
    high, low = high or DEMO_HIGH, size or DEMO_LOW
    seeds = _seeds(seeds or scale["seeds"])
    if demo and data_dir:
        _check_motion_data(Path(data_dir))
    base = make_base(out, config=config, overrides=overrides, epochs=epochs, scale=scale,
                     quick=quick, data_dir=data_dir, log=log,
                     synth=dict(label="motion", frames=MOTION_FRAMES), demo_sets=MOTION_SETS)
    runs = motion_runs(high=high, low=low, seeds=seeds)
    return Study("motion", "# reskd study motion (TSN vs TSM, and ResKD on a TSM)", base, runs,
                 dict(high=high, size=low, seeds=seeds, quick=quick),
                 partial(motion_report, runs=runs, base=base, out=out, high=high, low=low))


def motion_report(records: dict[str, dict], *, runs: Sequence[StudyRun], base: Base, out: Path,
                  high: int, low: int) -> Report:
    """One row per run (teachers, then students), with chance level and the two differences."""
    from reskd.runs import read_classes_for

    m, label = base.metric, _label(base.metric)
    stats = {r.name: summarize(records, r.name, m) for r in runs}
    chance = 100.0 / len(read_classes_for(base.make(runs[0], out)))
    what = {f"tsn{high}": ("TSN (frames averaged)", "none", ""),
            f"tsm{high}": ("TSM (temporal shift)", "shift", ""),
            f"baseline{low}": ("TSM, CE baseline", "shift", ""),
            f"reskd{low}": ("TSM, ResKD", "shift", f"tsm{high}")}
    sizes = {r.name: r.info["size"] for r in runs}
    rows = [[what[n][0], f"`{what[n][1]}`", f"{sizes[n]}x{sizes[n]}", f"{stats[n]['gmacs']:.4f}",
             what[n][2] or "-", cell(stats[n])] for n in sizes]  # one row per run, in order
    gain = stats[f"reskd{low}"]["mean"] - stats[f"baseline{low}"]["mean"]
    lines = [f"## Labels that need motion ({label}, %; chance {chance:.1f})", "",
             *markdown_table(["model", "model.temporal", "input", "GMACs/video", "teacher",
                              label], rows),
             "", f"TSM - TSN at {high}x{high}: "
             f"{stats[f'tsm{high}']['mean'] - stats[f'tsn{high}']['mean']:+.1f}; ResKD - CE "
             f"baseline at {low}x{low}: {gain:+.1f}. Teachers: first seed; every run's views are "
             f"its {high} px crop shrunk (data.crop_size={high})."]
    return Report(lines, {"chance": chance, "rows": stats})


def run_motion_study(out: str | Path, **options) -> dict:
    """TSN vs TSM teachers on labels that need motion, and CE baseline vs ResKD TSM students;
    returns the payload of OUT/motion.json. `options`: `plan_motion`'s, and `run_study`'s
    command, log and should_stop."""
    return run_study(plan_motion, out, **options)


def _check_motion_data(data_dir: Path) -> None:
    """--data for the motion study: a synthetic set there must be the motion variant (the
    study would otherwise replace it with one)."""
    meta = data_dir / "synth.json"
    if meta.is_file() and json.loads(meta.read_text()).get("params", {}).get("label") != "motion":
        raise ValueError(f"--data {data_dir} holds the digit-label synthetic videos; the motion "
                         f"study needs `reskd data synth --label motion --frames "
                         f"{MOTION_FRAMES}` ones: give another folder (or leave --data out)")

"""The `reskd` command line: the one place where a config meets the library.

    reskd train CONFIG [--set key=value ...] [--resume]
    reskd distill CONFIG [--set ...] [--resume]
    reskd test [CONFIG] --checkpoint CKPT [--set ...] [--json]   (no CONFIG: the checkpoint's)
    reskd demo [--out DIR] [--quick] [--seed S]
    reskd data synth --out DIR [--kind digits|textures] [--seed S]
    reskd data extract LIST --root R --out DIR [--short-side 256] [--fps F]
    reskd data prepare LIST --root R --out DIR [--short-side 256] [--keyint 16]
    reskd data convert DATASET --out DIR [--csv/--json/--labels/--train/--val ...]
    reskd data convert folders --root ROOT --out DIR [--val-fraction 0.2] [--seed 0]
    reskd config new [--teacher-size 224] [--student-size 112] [--arch A] [--frames 8]
                     [--classes N] [--data-root ROOT] [--lists DIR] [--out FILE]
    reskd --version
    reskd flops (--model NAME | --checkpoint CKPT) [--size S --frames F] [--views V] [--json]
    reskd bench (--model NAME | --checkpoint CKPT) --sizes 224,112,56 --frames F --batch B
    reskd sweep [--model NAME] [--checkpoints S=CKPT,...] --sizes ... --frames F --out DIR
    reskd study resolution [--out DIR] [--config YAML --set ...] [--sizes ...] [--seeds 0,1]
    reskd study ablation [--out DIR] [--config YAML --set ...] [--teacher-size N] [--seeds 0,1]
    reskd study views [--out DIR] [--data DIR] [--config YAML --high N --sizes ...] [--seeds 0,1]
    reskd study anyres [--out DIR] [--data DIR] [--teacher CKPT] [--sizes 32,24,16] [--seeds 0,1,2]
    reskd data check LIST [--root R] [--format F] [--frames N] [--workers W] [--out BAD]
    reskd compare RUN [RUN ...] [--out DIR]
    reskd convert SOURCE OUT [--config YAML --set ...] [--half student|teacher] [--size S]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from pathlib import Path

from reskd.config import Config, ConfigError, load_config
from reskd.runs import StopOnSignals

PREPARING = "stopping the workers"  # what a signal during data preparation does


def _config_from(args) -> Config:
    return load_config(args.config, args.set or [])


def cmd_train(args) -> int:
    """`reskd train` and `reskd distill` (args.distill)."""
    from reskd.runs import run_train

    with StopOnSignals() as stop:
        result = run_train(_config_from(args), distill=args.distill, resume=args.resume,
                           should_stop=stop)
    print(json.dumps(result, indent=2))
    return 0


def _checkpoint_config(checkpoint: str, overrides: list[str]) -> Config:
    """The config a checkpoint records (its run's), with `--set` overrides: `reskd test`'s
    data lists and root when no config is given."""
    from reskd.checkpoint import load_checkpoint

    recorded = load_checkpoint(checkpoint).get("config")
    if not recorded:
        raise ValueError(f"{checkpoint} records no config; give one for its data lists: "
                         f"reskd test CONFIG --checkpoint {checkpoint}")
    # JSON is YAML, so each value reads back as it was saved
    flat = [f"{section}.{key}={json.dumps(value)}" for section, values in recorded.items()
            for key, value in values.items()]
    try:
        return load_config(None, flat + list(overrides))
    except ConfigError as e:
        raise ConfigError(f"the config recorded in {checkpoint}: {e}. Give a config for its "
                          f"data lists: reskd test CONFIG --checkpoint {checkpoint}") from None


def cmd_test(args) -> int:
    from reskd.engine import distributed as dist_utils
    from reskd.runs import format_test, run_test

    cfg = (_config_from(args) if args.config is not None
           else _checkpoint_config(args.checkpoint, args.set or []))
    # notes (e.g. config view keys the checkpoint's recipe replaces) go to stderr: stdout is
    # the result, JSON with --json
    result = run_test(cfg, args.checkpoint, size=args.size,
                      log=lambda m: print(m, file=sys.stderr))
    if dist_utils.is_main():
        print(json.dumps(result, indent=2) if args.json else format_test(result))
    return 0


def cmd_convert(args) -> int:
    from reskd.runs import run_convert

    result = run_convert(_config_from(args), args.source, args.out, half=args.half,
                         size=args.size)
    print("\n".join(result["report"]))
    print(f"wrote {result['out']}: {result['arch']}, {result['summary']}; "
          f"{len(result['report'])} keys above")
    if result["to"] == "mmaction2":
        print(f"load it into mmaction2 with:\n{result['config']}")
    return 0


def cmd_compare(args) -> int:
    from reskd.analysis.compare import compare_runs

    result = compare_runs(args.runs, args.out)
    print("\n".join(result["table"]))
    print(f"wrote {result['markdown']} and {result['png']}")
    return 0


def cmd_demo(args) -> int:
    from reskd.experiments.demo import run_demo

    run_demo(Path(args.out), quick=args.quick, seed=args.seed)
    return 0


def cmd_data_synth(args) -> int:
    if args.kind == "textures":
        from reskd.data.textures import make_texture_dataset as make_synth_dataset
    else:
        from reskd.data.synth import make_synth_dataset

    kwargs = {"seed": args.seed}
    if args.label != "digit" or args.frames:
        if args.kind != "digits":
            raise ValueError(f"--label and --frames are options of --kind digits, not "
                             f"--kind {args.kind}")
        kwargs["label"] = args.label
    if args.frames:
        kwargs["frames"] = args.frames
    if args.num_train:
        kwargs["num_train"] = args.num_train
    if args.num_val:
        kwargs["num_val"] = args.num_val
    with StopOnSignals(PREPARING) as stop:
        info = make_synth_dataset(args.out, should_stop=stop, **kwargs)
    print(json.dumps(info, indent=2))
    return 0


def cmd_predict(args) -> int:
    from reskd.predict import format_predictions, predict_checkpoint

    results = predict_checkpoint(args.checkpoint, args.videos, topk=args.topk,
                                 device=args.device, precision=args.precision, size=args.size)
    print(json.dumps(results, indent=2) if args.json else format_predictions(results))
    return 1 if results and all("error" in r for r in results) else 0


def cmd_export(args) -> int:
    from reskd.export import run_export

    int8 = {"calibration_videos": args.calibration_videos,
            "validation_videos": args.validation_videos, "min_agreement": args.min_agreement,
            "data_root": args.data_root, "train_list": args.train_list,
            "val_list": args.val_list} if args.int8 else {}
    print(json.dumps(run_export(args.checkpoint, format=args.format, out=args.out,
                                batch=args.batch, opset=args.opset, size=args.size,
                                int8=args.int8, **int8), indent=2))
    return 0


def cmd_viz_erf(args) -> int:
    from reskd.analysis.viz import viz_erf

    pos = tuple(args.position) if args.position else None
    print(json.dumps(viz_erf(args.baseline, args.reskd, args.videos, args.out,
                             teacher_ckpt=args.teacher, position=pos), indent=2))
    return 0


def cmd_viz_attention(args) -> int:
    from reskd.analysis.viz import viz_attention

    print(json.dumps(viz_attention(args.baseline, args.reskd, args.video, args.out,
                                   max_frames=args.max_frames), indent=2))
    return 0


def _command_line() -> str:
    import shlex

    return " ".join(["reskd", *map(shlex.quote, sys.argv[1:])])


def cmd_study(args) -> int:
    """`reskd study resolution|ablation|views`: the study's own options plus the common ones."""
    import reskd.experiments.studies as studies

    run, own = {"resolution": (studies.run_resolution_study, ("sizes", "high", "s_sizes", "s_set")),
                "ablation": (studies.run_ablation_study, ("teacher_size", "big_set")),
                "views": (studies.run_views_study, ("sizes", "high", "s_sizes", "s_set")),
                "anyres": (studies.run_anyres_study, ("sizes", "high", "teacher", "anyres_set")),
                "motion": (studies.run_motion_study, ("high", "size")),
                }[args.study_command]
    options = {name: getattr(args, name) for name in own}
    with StopOnSignals() as stop:
        run(args.out, config=args.config, overrides=args.set or [], seeds=args.seeds,
            epochs=args.epochs, quick=args.quick, command=_command_line(), data_dir=args.data,
            should_stop=stop, **options)
    return 0


def _study_options(q, out: str) -> None:
    """The options every `reskd study` command takes."""
    q.add_argument("--out", default=out, help=f"study folder (default: {out}); a rerun "
                   f"reuses its finished runs and resumes an interrupted one")
    q.add_argument("--config", default=None, help="base YAML for paper scale (default: the "
                   "demo recipe on the embedded synthetic videos)")
    q.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override on the base recipe (repeatable)")
    q.add_argument("--seeds", type=_int_list, default=None, help="e.g. 0,1,2")
    q.add_argument("--epochs", type=int, default=None, help="epochs of every run "
                   "(default at demo scale: 10 for resolution, 6 for ablation; else the config's)")
    q.add_argument("--data", default=None, help="demo scale: folder of the synthetic videos "
                   "(default OUT/data); a complete set there, e.g. the other study's or the "
                   "demo's, is reused; a folder with train.txt, val.txt and classes.txt but "
                   "no synth.json (e.g. `reskd data synth --kind textures`) is used as it is")
    q.add_argument("--quick", action="store_true", help="tiny smoke run: numbers are "
                   "not meaningful")


def add_study_commands(sub) -> None:
    """Inside build_parser(): `reskd study resolution|ablation|views|anyres|motion`
    (reskd.experiments.studies)."""
    study = sub.add_parser("study", help="the paper's studies: Figure 1, Tables 5 and 6; and "
                           "how student views are shrunk")
    study = study.add_subparsers(dest="study_command", required=True)
    add_figure_studies(study)
    add_view_studies(study)


def add_figure_studies(study) -> None:
    """Inside add_study_commands(): `reskd study resolution|ablation` (Figure 1, Tables 5, 6)."""
    q = study.add_parser("resolution", help="Figure 1a (native vs up-sampled low-resolution "
                         "frames) and 1b (-H vs -S network)")
    _study_options(q, "study_resolution")
    q.add_argument("--sizes", type=_int_list, default=None,
                   help="resolutions (default at demo scale: 64,32,16)")
    q.add_argument("--high", type=int, default=None, help="the high resolution frames are "
                   "up-sampled back to (default: 64 at demo scale, else max of --sizes)")
    q.add_argument("--s-sizes", type=_int_list, default=None,
                   help="resolutions of Figure 1b (default: 32,16 at demo scale, else --sizes)")
    q.add_argument("--s-set", action="append", metavar="KEY=VALUE", default=None,
                   help="what makes the -S network (default: model.strides=[1,1,2,2] for "
                        "arch resnet, model.arch=resnet50s for resnet50)")
    q.set_defaults(func=cmd_study)

    q = study.add_parser("ablation", help="Table 5 (clip/frame/pixel-level KD) and Table 6 "
                         "(model vs resolution distillation), over seeds")
    _study_options(q, "study_ablation")
    q.add_argument("--teacher-size", type=int, default=None,
                   help="teachers' resolution (default 64 at demo scale; required with --config)")
    q.add_argument("--teacher-set", action="append", metavar="KEY=VALUE", default=None,
                   dest="big_set",
                   help="what makes the high-capacity teacher (default: model.layers=[1,1,2,2] "
                        "for arch resnet, model.arch=resnet152 for resnet50)")
    q.set_defaults(func=cmd_study)


def add_view_studies(study) -> None:
    """Inside add_study_commands(): `reskd study views|anyres|motion`."""
    q = study.add_parser("views", help="CE baseline vs ResKD student on views shrunk from the "
                         "teacher's crop bilinearly (authors) or with antialiasing, at 2x and 4x")
    _study_options(q, "study_views")
    q.add_argument("--high", type=int, default=None, help="the teacher's size = the crop size "
                   "(default 64 at demo scale; required with --config)")
    q.add_argument("--sizes", type=_int_list, default=None,
                   help="student sizes (default at demo scale: 32,16; required with --config)")
    q.add_argument("--s-sizes", type=_int_list, default=None, help="student sizes that use the "
                   "-S network, baseline and student alike (default at demo scale: 16, where the "
                   "stock net's last map would be 1x1)")
    q.add_argument("--s-set", action="append", metavar="KEY=VALUE", default=None,
                   help="what makes the -S network (as in `reskd study resolution`)")
    q.set_defaults(func=cmd_study)

    q = study.add_parser("anyres", help="one ResKD student for every resolution vs one per "
                         "resolution and CE baselines, over seeds")
    _study_options(q, "study_anyres")
    q.add_argument("--high", type=int, default=None, help="the teacher's size = the crop size "
                   "(default 64 at demo scale; required with --config)")
    q.add_argument("--sizes", type=_int_list, default=None,
                   help="student sizes (default at demo scale: 32,24,16; required with --config)")
    q.add_argument("--teacher", default=None, help="a teacher model.pt trained before (e.g. "
                   "the views study's) instead of training one")
    q.add_argument("--anyres-set", action="append", metavar="KEY=VALUE", default=None,
                   help="override on the any-resolution student only (e.g. "
                        "distill.size_bn=shared)")
    q.set_defaults(func=cmd_study)

    q = study.add_parser("motion", help="labels that need motion: TSN vs TSM teachers, and a CE "
                         "baseline vs a ResKD TSM student, over seeds")
    _study_options(q, "study_motion")
    q.add_argument("--high", type=int, default=None, help="the teachers' size = the crop size "
                   "(default 64 at demo scale; required with --config)")
    q.add_argument("--size", type=int, default=None, help="the students' size (default 32 at "
                   "demo scale; required with --config)")
    q.set_defaults(func=cmd_study)


def cmd_data_check(args) -> int:
    from reskd.data.check import run_check

    with StopOnSignals(PREPARING) as stop:
        problems, text = run_check(args.list, root=args.root, format=args.format,
                                   min_frames=args.frames, workers=args.workers,
                                   out=Path(args.out).absolute() if args.out else None,
                                   progress=sys.stderr.isatty(), should_stop=stop)
    print(text)
    return 1 if problems else 0


def cmd_data_extract(args) -> int:
    from reskd.data.extract import extract_dataset

    with StopOnSignals(PREPARING) as stop:
        report = extract_dataset(args.list, args.root, args.out, short_side=args.short_side,
                                 fps=args.fps, workers=args.workers, should_stop=stop)
    print(report.summary())
    print(f"train on it with: --set data.format=rawframes "
          f"--set data.root={Path(args.out) / 'frames'}"
          f" --set data.train_list={report.list_path.resolve()}")
    return 1 if report.failed else 0


def cmd_data_prepare(args) -> int:
    from reskd.data.extract import prepare_dataset

    with StopOnSignals(PREPARING) as stop:
        report = prepare_dataset(args.list, args.root, args.out, short_side=args.short_side,
                                 keyint=args.keyint, workers=args.workers, should_stop=stop)
    print(report.summary())
    print(f"train on it with: --set data.root={Path(args.out)} "
          f"--set data.train_list={report.list_path.name} (data.format video)")
    return 1 if report.failed else 0


def cmd_data_convert(args) -> int:
    from reskd.data.converters import convert, convert_sources

    report = convert(args.dataset, args.out, overwrite=args.overwrite,
                     **convert_sources(args.dataset, vars(args)))
    print(report.summary())
    if args.dataset == "folders":
        lists = "" if Path(args.out).absolute() == Path(args.root).absolute() else \
            f" --lists {args.out}"
        print(f"next: reskd data check {report.files['train']} --root {args.root}\n"
              f"      reskd config new --data-root {args.root}{lists} --classes "
              f"{report.num_classes} --out reskd.yaml")
    return 0


def _int_list(text: str) -> list[int]:
    """argparse type: "224,112,56" -> [224, 112, 56]."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as "
                                         f"224,112,56, got {text!r}")
    return values


def _size_paths(text: str) -> dict[int, str]:
    """argparse type: "112=runs/s112/model.pt,56=runs/s56/model.pt" -> {112: ..., 56: ...}."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        size, sep, path = item.partition("=")
        if not sep or not size.strip().isdigit() or not path:
            raise argparse.ArgumentTypeError(f"expected SIZE=CHECKPOINT[,SIZE=CHECKPOINT...], "
                                             f"e.g. 112=runs/s112/model.pt; got {item!r}")
        out[int(size)] = path.strip()
    return out


def cmd_flops(args) -> int:
    from reskd.experiments.sweep import flops_report, format_flops

    report = flops_report(model_name=args.model, checkpoint=args.checkpoint, size=args.size,
                          frames=args.frames, views=args.views, num_classes=args.num_classes)
    print(json.dumps(report, indent=2) if args.json else format_flops(report))
    return 0


def cmd_bench(args) -> int:
    from reskd.efficiency.benchmark import bench_report, format_bench

    rows = bench_report(model_name=args.model, checkpoint=args.checkpoint, sizes=args.sizes,
                        frames=args.frames, batch=args.batch,
                        modes=[m.strip() for m in args.modes.split(",") if m.strip()],
                        device=args.device, num_classes=args.num_classes, rounds=args.rounds,
                        min_seconds=args.min_seconds, log=lambda m: print(m, file=sys.stderr))
    print(json.dumps(rows, indent=2) if args.json else format_bench(rows))
    return 0


def cmd_sweep(args) -> int:
    from reskd.experiments.sweep import sweep

    sweep(model_name=args.model, sizes=args.sizes, frames=args.frames, out=args.out,
          checkpoints=args.checkpoints, checkpoint=args.checkpoint, config=args.config,
          overrides=args.set or [],
          views=args.views, num_classes=args.num_classes, batch=args.batch, rounds=args.rounds,
          device=args.device)
    print((Path(args.out) / "sweep.md").read_text())
    return 0


def add_efficiency_commands(sub) -> None:
    """Inside build_parser(), after the `export` command."""
    q = sub.add_parser("flops", help="GMACs per view and per video as the paper counts them")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="architecture (e.g. resnet50, tsm_resnet50, swin3d_s)")
    g.add_argument("--checkpoint", help="a reskd model.pt (its architecture and classes)")
    q.add_argument("--size", type=int, default=None, help="input side (default: checkpoint's)")
    q.add_argument("--frames", type=int, default=None, help="frames per view (default: "
                   "checkpoint's)")
    q.add_argument("--views", type=int, default=1, help="test views per video (clips x crops)")
    q.add_argument("--num-classes", type=int, default=400, help="with --model (default 400)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_flops)

    q = sub.add_parser("bench", help="inference videos/s per size and mode (interleaved rounds)")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--model")
    g.add_argument("--checkpoint")
    q.add_argument("--sizes", type=_int_list, default=[224, 112, 56], help="e.g. 224,112,56")
    q.add_argument("--frames", type=int, required=True)
    q.add_argument("--batch", type=int, default=4)
    q.add_argument("--modes", default="fp32,channels_last,bf16,fold_bn,compile",
                   help="comma-separated from fp32, channels_last, bf16, fp16 (CUDA), compile, "
                        "fold_bn")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--num-classes", type=int, default=400)
    q.add_argument("--rounds", type=int, default=3)
    q.add_argument("--min-seconds", type=float, default=1.0, help="per case and round")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench)

    q = sub.add_parser("sweep", help="Table 4 for a model: GMACs, videos/s, accuracy per size")
    q.add_argument("--model", help="architecture (random init); with --checkpoints it must "
                   "name theirs")
    q.add_argument("--checkpoints", type=_size_paths, metavar="S=CKPT,...", default=None,
                   help="a checkpoint trained for each listed size (give --model, this, or both); "
                        "with --checkpoint: separately trained students to compare with")
    q.add_argument("--checkpoint", default=None, help="an any-resolution student "
                   "(distill.student_sizes): one model at each of its sizes")
    q.add_argument("--sizes", type=_int_list, default=None,
                   help="default: 224,144,112,96,72,56, or the --checkpoint's sizes")
    q.add_argument("--frames", type=int, default=None, help="required unless --checkpoint")
    q.add_argument("--views", type=int, default=1)
    q.add_argument("--config", default=None, help="YAML used to test each checkpoint at its "
                   "size (data.size is set per size); without it accuracy stays blank")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override")
    q.add_argument("--out", required=True)
    q.add_argument("--batch", type=int, default=4)
    q.add_argument("--rounds", type=int, default=3)
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--num-classes", type=int, default=400)
    q.set_defaults(func=cmd_sweep)


_SIZE_HELP = ("input size, one the checkpoint supports (an any-resolution student's "
              "distill.student_sizes; default: the checkpoint's own)")


def _with_config(sub, name: str, help: str, *, config_help: str = "YAML config (see configs/)",
                 optional: bool = False) -> argparse.ArgumentParser:
    """A command that reads a YAML config (`optional`: or not, args.config None) and `--set`
    overrides (train, distill, test)."""
    q = sub.add_parser(name, help=help)
    q.add_argument("config", help=config_help, **({"nargs": "?"} if optional else {}))
    q.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=0.02 (repeatable)")
    return q


def add_run_commands(sub) -> None:
    """Inside build_parser(): train, distill, test, convert, compare, demo."""
    q = _with_config(sub, "train", "train a model (a teacher, or a baseline at any resolution)")
    q.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    q.set_defaults(func=cmd_train, distill=False)
    q = _with_config(sub, "distill", "distil a low-resolution student from a teacher checkpoint")
    q.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    q.set_defaults(func=cmd_train, distill=True)
    q = _with_config(sub, "test", "multi-view test of a checkpoint on data.val_list",
                     config_help="YAML config for the data (data.root, data.val_list) and "
                     "the test's clips, crops and runtime (default: the config the checkpoint "
                     "records); the views (size, crop, shrink, mean/std) are always the "
                     "checkpoint's", optional=True)
    q.add_argument("--checkpoint", required=True, help="model.pt or checkpoint.pt of a run")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.add_argument("--size", type=int, default=None, help=_SIZE_HELP)
    q.set_defaults(func=cmd_test)

    q = sub.add_parser("convert", help="mmaction2 checkpoints or torchvision weights -> a reskd "
                       "model.pt; a reskd checkpoint -> an mmaction2 checkpoint; every key "
                       "reported")
    q.add_argument("source", help="an mmaction2 checkpoint (PATH#teacher for the teacher half "
                   "of the authors' ResKD ones), torchvision:ENUM.MEMBER or a torchvision "
                   "weights file; or a reskd model.pt (converted to mmaction2)")
    q.add_argument("out", help="the file to write")
    q.add_argument("--config", default=None, help="YAML whose data.* (size, frames, classes, "
                   "view recipe) the reskd checkpoint records where the source does not say")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override")
    q.add_argument("--half", default="student", choices=["student", "teacher"],
                   help="which half of an authors' ResKD checkpoint (default: student)")
    q.add_argument("--size", type=int, default=None, help="input size recorded (default: the "
                   "source's, else data.size); for a reskd any-resolution student, its size")
    q.set_defaults(func=cmd_convert)

    q = sub.add_parser("compare", help="runs side by side: a Markdown table and their curves, "
                       "labelled by what differs between their configs")
    q.add_argument("runs", nargs="+", metavar="RUN", help="run folders (runtime.out of "
                   "`reskd train` / `reskd distill`)")
    q.add_argument("--out", default="compare_out", help="where compare.md and compare.png go "
                   "(default: compare_out)")
    q.set_defaults(func=cmd_compare)

    q = sub.add_parser("demo", help="the whole ResKD story on embedded synthetic video data")
    q.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    q.add_argument("--quick", action="store_true", help="tiny smoke run (< 3 min)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_demo)



def add_checkpoint_commands(sub) -> None:
    """Inside build_parser(): predict and export, from a checkpoint alone."""
    q = sub.add_parser("predict", help="top-k classes of video files from a checkpoint alone")
    q.add_argument("videos", nargs="+", metavar="VIDEO")
    q.add_argument("--checkpoint", required=True, help="model.pt (or checkpoint.pt) of a run")
    q.add_argument("--topk", type=int, default=5)
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    q.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    q.add_argument("--size", type=int, default=None, help=_SIZE_HELP)
    q.set_defaults(func=cmd_predict)

    q = sub.add_parser("export", help="the student alone: verified ONNX, or a model-only "
                       "checkpoint")
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--format", default="onnx", choices=["onnx", "checkpoint"])
    q.add_argument("--out", default=None, help="default: CKPT with .onnx / <stem>.student.pt")
    q.add_argument("--batch", type=int, default=1, help="batch used for tracing and timing")
    q.add_argument("--opset", type=int, default=17)
    q.add_argument("--size", type=int, default=None, help=_SIZE_HELP)
    q.add_argument("--int8", action="store_true", help="also <out stem>.int8.onnx: ONNX Runtime "
                   "static INT8, calibrated on training videos, checked against fp32 on "
                   "validation videos (the checkpoint's data lists)")
    q.add_argument("--calibration-videos", type=int, default=100,
                   help="--int8: training videos to calibrate on, evenly spaced (default 100)")
    q.add_argument("--validation-videos", type=int, default=1000,
                   help="--int8: validation videos for the parity check (default 1000; 0: all)")
    q.add_argument("--min-agreement", type=float, default=95.0, help="--int8: fail below this "
                   "%% of validation videos with the fp32 model's top-1 class (default 95)")
    q.add_argument("--data-root", default=None, help="--int8: the data folder (default: the "
                   "checkpoint's data.root)")
    q.add_argument("--train-list", default=None, help="--int8: calibration list (default: the "
                   "checkpoint's data.train_list)")
    q.add_argument("--val-list", default=None, help="--int8: validation list (default: the "
                   "checkpoint's data.val_list)")
    q.set_defaults(func=cmd_export)



def add_viz_commands(sub) -> None:
    """Inside build_parser(): `reskd viz erf|attention`."""
    viz = sub.add_parser("viz", help="Figure 4: ERF and attention, baseline vs ResKD")
    viz = viz.add_subparsers(dest="viz_command", required=True)
    q = viz.add_parser("erf", help="effective receptive fields averaged over the videos' test "
                       "clips")
    q.add_argument("videos", nargs="+", metavar="VIDEO")
    q.add_argument("--baseline", required=True, help="baseline student checkpoint")
    q.add_argument("--reskd", required=True, help="ResKD student checkpoint")
    q.add_argument("--teacher", default=None, help="also show the teacher's ERF at its size")
    q.add_argument("--position", type=int, nargs=2, metavar=("ROW", "COL"), default=None,
                   help="feature-map pixel (default: centre, or bottom-right of the central 2x2)")
    q.add_argument("--out", default="erf.png")
    q.set_defaults(func=cmd_viz_erf)
    q = viz.add_parser("attention", help="activation-based attention overlays on one video")
    q.add_argument("video", metavar="VIDEO")
    q.add_argument("--baseline", required=True)
    q.add_argument("--reskd", required=True)
    q.add_argument("--max-frames", type=int, default=8)
    q.add_argument("--out", default="attention.png")
    q.set_defaults(func=cmd_viz_attention)



def add_data_commands(sub) -> None:
    """Inside build_parser(): `reskd data synth|extract|prepare|convert|check`."""
    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command",
                                                                        required=True)
    q = data.add_parser("synth", help="write an embedded video dataset (MP4 + lists)")
    q.add_argument("--out", required=True)
    q.add_argument("--kind", default="digits", choices=["digits", "textures"],
                   help="digits: MNIST digits over photos, the demo's (default 6000 + 1000 "
                        "clips); textures: which of 16 real photos a panning window shows "
                        "(default 1600 + 400 clips)")
    q.add_argument("--label", default="digit", choices=["digit", "motion"],
                   help="digits only: what a clip's label is, the digit's class (default) or "
                        "whether it moves left or right (2 classes; a model that ignores frame "
                        "order is at chance: `reskd study motion`)")
    q.add_argument("--frames", type=int, default=0, help="digits only: frames per clip "
                   "(default 8; `reskd study motion` uses 4)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--num-train", type=int, default=0, help="clips (default: the kind's)")
    q.add_argument("--num-val", type=int, default=0, help="clips (default: the kind's)")
    q.set_defaults(func=cmd_data_synth)
    q = data.add_parser("extract", help="videos -> raw-frame folders + raw-frame list (resumable)")
    q.add_argument("list", help="video list (relative/path.mp4 label ...)")
    q.add_argument("--root", default=".", help="folder the list's paths are relative to")
    q.add_argument("--out", required=True, help="writes OUT/frames/... and OUT/<list name>")
    q.add_argument("--short-side", type=int, default=256, help="256 or 320, as mmaction2")
    q.add_argument("--fps", type=float, default=0.0, help="resample to this rate (0: all frames)")
    q.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    q.set_defaults(func=cmd_data_extract)
    q = data.add_parser("prepare", help="videos -> a copy re-encoded at the working short side "
                        "with a keyframe every few frames, cheap to sample (resumable)")
    q.add_argument("list", help="video list (relative/path.mp4 label ...)")
    q.add_argument("--root", default=".", help="folder the list's paths are relative to")
    q.add_argument("--out", required=True, help="writes OUT/videos/... and OUT/<list name>")
    q.add_argument("--short-side", type=int, default=256,
                   help="shrink larger frames to this short side (256: views of 224)")
    q.add_argument("--keyint", type=int, default=16, help="frames between keyframes")
    q.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    q.set_defaults(func=cmd_data_prepare)
    add_data_convert_check(data)


def add_data_convert_check(data) -> None:
    """Inside add_data_commands(): `reskd data convert` and `reskd data check`."""
    from reskd.data.converters import DATASETS, VAL_FRACTION, VIDEO_EXTENSIONS

    q = data.add_parser("convert", help="official annotations -> train.txt/val.txt/classes.txt")
    q.add_argument("dataset", choices=DATASETS)
    q.add_argument("--out", required=True, help="folder for the lists")
    q.add_argument("--csv", nargs="+", help="kinetics400: the official CSV file(s)")
    q.add_argument("--json", help="activitynet: activity_net.v1-3.min.json")
    q.add_argument("--labels", help="sthv2: something-something-v2-labels.json")
    q.add_argument("--train", help="sthv2: train JSON; fcvid/minikinetics: train split list")
    q.add_argument("--val", help="sthv2: validation JSON; fcvid/minikinetics: val/test split list")
    q.add_argument("--test", help="sthv2: test JSON (unlabelled, counted and skipped)")
    q.add_argument("--classes", help="fcvid/minikinetics: class-name file (one per line)")
    q.add_argument("--label-base", type=int, default=0, help="1 for 1-based labels in split lists")
    q.add_argument("--format", choices=["video", "rawframes"], help="fcvid/minikinetics list kind")
    q.add_argument("--path-template", help="file name template, e.g. 'v_{video_id}.mp4'")
    q.add_argument("--root", help="folders: the data root, ROOT/<class>/<video> or "
                   "ROOT/train/<class>/... beside ROOT/val/<class>/...")
    q.add_argument("--val-fraction", type=float, help=f"folders without val/: the share of each "
                   f"class drawn for validation (default {VAL_FRACTION})")
    q.add_argument("--seed", type=int, help="folders: seed of that draw (default 0)")
    q.add_argument("--extensions", nargs="+", metavar="EXT", help=f"folders: video file "
                   f"extensions (default: {' '.join(e[1:] for e in VIDEO_EXTENSIONS)})")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_data_convert)
    q = data.add_parser("check", help="find videos that cannot be decoded or are too short; "
                        "exit status 1 when any is found")
    q.add_argument("list", help="annotation list to check")
    q.add_argument("--root", default=None, help="data root of the list's paths (default: the "
                   "list's folder)")
    q.add_argument("--format", default="video", choices=["video", "rawframes"])
    q.add_argument("--frames", type=int, default=1,
                   help="flag videos with fewer frames than this (default 1)")
    q.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)),
                   help="checking processes (default: one per core; 0: this process)")
    q.add_argument("--out", default="", help="write the unusable entries here, one "
                   "'path<TAB>reason' per line; use the file as data.exclude")
    q.set_defaults(func=cmd_data_check)


_TEMPLATE_KEY = re.compile(r"\$\{([a-z_.]+)\}")  # ${data.size}, ${teacher_size} in the template


def _yaml_value(value) -> str:
    """One config value as an inline YAML scalar or list ("''", 0.01, [1.0, 0.875])."""
    import yaml

    value = list(value) if isinstance(value, tuple) else value
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _list_path(lists: str | None, name: str, root: str) -> str:
    """data.<list> for a file `name` in folder `lists` (None: the data root): relative to the
    data root when inside it, else absolute."""
    if lists is None:
        return name
    path = Path(lists, name).absolute()
    try:
        return path.relative_to(Path(root).absolute()).as_posix()
    except ValueError:
        return str(path)


def config_template(*, teacher_size: int, student_size: int | None, arch: str, frames: int,
                    classes: int, data_root: str, lists: str | None, file: str) -> str:
    """The text of `reskd config new`: reskd/templates/config.yaml filled from `reskd.config`'s
    defaults and the options given (a distil run whose teacher run is one `--set` away)."""
    from importlib.resources import files

    from reskd.config import validate
    from reskd.models import ARCHS

    student_size = teacher_size // 2 if student_size is None else student_size
    if arch not in ARCHS:
        close = difflib.get_close_matches(arch, ARCHS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"--arch {arch!r} is not an architecture reskd builds{hint}; choose "
                         f"one of {', '.join(ARCHS)}")
    for option, value in (("--teacher-size", teacher_size), ("--student-size", student_size),
                          ("--frames", frames)):
        if value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")
    if student_size > teacher_size:
        raise ValueError(f"--student-size {student_size} is above --teacher-size {teacher_size}: "
                         f"the student sees the teacher's crop shrunk, never enlarged; give a "
                         f"student size of at most {teacher_size} (e.g. {teacher_size // 2})")
    if classes < 0:
        raise ValueError(f"--classes must be >= 0 (0: the lines of the classes file), got "
                         f"{classes}")
    cfg = Config()
    d = cfg.data
    d.root = data_root if data_root is not None else d.root
    d.train_list, d.val_list, d.classes = (_list_path(lists, f"{n}.txt", d.root)
                                           for n in ("train", "val", "classes"))
    d.size, d.crop_size, d.num_segments = student_size, teacher_size, frames
    cfg.model.arch, cfg.model.num_classes = arch, classes
    teacher_run = f"runs/teacher{teacher_size}"
    cfg.distill.teacher = f"{teacher_run}/model.pt"
    cfg.runtime.out = f"runs/reskd{student_size}"
    validate(cfg)
    extra = {"teacher_size": str(teacher_size), "student_size": str(student_size),
             "file": file, "teacher_run": teacher_run,
             "baseline_run": f"runs/baseline{student_size}"}

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key in extra:
            return extra[key]
        section, name = key.split(".")
        return _yaml_value(getattr(getattr(cfg, section), name))

    text = files("reskd").joinpath("templates/config.yaml").read_text(encoding="utf-8")
    return _TEMPLATE_KEY.sub(fill, text)


def cmd_config_new(args) -> int:
    text = config_template(teacher_size=args.teacher_size, student_size=args.student_size,
                           arch=args.arch, frames=args.frames, classes=args.classes,
                           data_root=args.data_root, lists=args.lists,
                           file=args.out or "CONFIG.yaml")
    if not args.out:
        print(text, end="")
        return 0
    out = Path(args.out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another --out, or delete it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}; check the data.* paths in it, then train the teacher with the first "
          f"command in its header")
    return 0


def add_config_commands(sub) -> None:
    """Inside build_parser(): `reskd config new`."""
    from reskd.config import DataConfig, ModelConfig

    config = sub.add_parser("config", help="write a config to start from")
    config = config.add_subparsers(dest="config_command", required=True)
    q = config.add_parser("new", help="a small, commented config for a teacher run and the "
                          "ResKD student distilled from it")
    q.add_argument("--teacher-size", type=int, default=DataConfig.size,
                   help=f"the teacher's input side = the crop every model sees (default "
                        f"{DataConfig.size})")
    q.add_argument("--student-size", type=int, default=None,
                   help="the student's input side (default: half the teacher's)")
    q.add_argument("--arch", default=ModelConfig.arch, help=f"architecture of teacher and "
                   f"student (default {ModelConfig.arch}; an unknown name is refused with the "
                   f"list of valid ones)")
    q.add_argument("--frames", type=int, default=DataConfig.num_segments,
                   help=f"frames per clip (default {DataConfig.num_segments})")
    q.add_argument("--classes", type=int, default=ModelConfig.num_classes, help="number of "
                   "classes (default: the lines of the classes file)")
    q.add_argument("--data-root", default=None, help="folder the data lists' paths are "
                   "relative to (e.g. `reskd data convert folders --root`)")
    q.add_argument("--lists", default=None, help="folder with train.txt, val.txt and "
                   "classes.txt (`reskd data convert --out`; default: the data root)")
    q.add_argument("--out", default=None, help="write the config to this file (default: print "
                   "it)")
    q.set_defaults(func=cmd_config_new)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reskd")
    except PackageNotFoundError:  # a source tree on sys.path, never installed
        return "unknown (not installed; pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    """The whole `reskd` parser (the docs generator calls it too)."""
    p = argparse.ArgumentParser(prog="reskd", description="Cross-resolution knowledge "
                                "distillation (ResKD) for efficient video recognition.")
    p.add_argument("--version", action="version", version=f"reskd {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    add_run_commands(sub)
    add_checkpoint_commands(sub)
    add_efficiency_commands(sub)
    add_study_commands(sub)
    add_viz_commands(sub)
    add_data_commands(sub)
    add_config_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    import yaml

    from reskd.data.pool import Stopped
    from reskd.engine import distributed as dist_utils
    from reskd.engine.train import Interrupted, TrainingStopped

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Stopped as e:  # SIGINT / SIGTERM during data preparation
        print(f"reskd: {e}", file=sys.stderr)
        return e.exit_code
    except TrainingStopped as e:  # NaN loss, failed checkpoint write, SIGINT / SIGTERM
        if dist_utils.is_main() or not isinstance(e, Interrupted):
            print(f"reskd: {e}", file=sys.stderr)
        return e.exit_code
    except yaml.YAMLError as e:
        print(f"reskd: error: cannot read the config: {e}\nConfigs are plain YAML read with "
              f"yaml.safe_load: tags that build Python objects (!!python/...) are refused.",
              file=sys.stderr)
        return 2
    except (ConfigError, OSError, ValueError, TypeError, ImportError, RuntimeError) as e:
        if os.environ.get("RESKD_DEBUG"):
            raise
        print(f"reskd: error: {e}  (set RESKD_DEBUG=1 for a traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reskd: interrupted", file=sys.stderr)
        return 130
    finally:
        from reskd.engine import distributed as dist_utils

        dist_utils.shutdown()


if __name__ == "__main__":
    sys.exit(main())

"""Converters: one dataset's official annotation files -> our annotation lists.

Reads the published annotations of Kinetics-400 (the official CSVs), ActivityNet v1.3
(`activity_net.v1-3.min.json`), Something-Something V2 (the labels / train / validation JSON
files), FCVID and Mini-Kinetics (split lists, as released or as AR-Net ships them), or a folder
per class (`parse_folders`: UCF-101's layout, torchvision's and Hugging Face's video folders)
and writes them in the list format of `reskd.data.formats`: `train.txt`, `val.txt`, `test.txt`
(where the dataset has a labelled test split) and `classes.txt`.

The `parse_*` functions read one dataset's files and return a `Conversion` (unpacks as
`splits, classes`); `convert` runs one and writes the lists. Videos without a label are
skipped and counted in `Conversion.skipped`, never dropped silently. `convert_sources` turns
the options of `reskd data convert` into `convert`'s keyword arguments, and `DATASETS` names
the datasets there are converters for.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import json
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reskd.data.formats import (
    _INT,
    SPLITS,
    Entry,
    PathLike,
    _line_error,
    _Malformed,
    _parse_int,
    _read_list,
    _require_file,
    read_classes,
    write_classes,
    write_list,
)

__all__ = [
    "DATASETS",
    "Conversion",
    "KINETICS_PATH_TEMPLATE",
    "parse_kinetics400",
    "parse_activitynet",
    "parse_sthv2",
    "parse_fcvid",
    "parse_minikinetics",
    "VIDEO_EXTENSIONS",
    "parse_folders",
    "PARSERS",
    "ConvertReport",
    "convert",
    "NEEDS",
    "convert_sources",
]

DATASETS = ("kinetics400", "activitynet", "sthv2", "fcvid", "minikinetics", "folders")


@dataclass(frozen=True)
class Conversion:
    """What a `parse_*` function found: entries per split, class names, skipped videos.

    `splits` maps "train" / "val" / "test" to entries (splits without entries are absent);
    `skipped` maps a reason such as "test: no label" to a count; `notes` are other things the
    user should know (e.g. a class whose one video could only go to train). Unpacks as
    `splits, classes = parse_...(...)`.
    """

    splits: dict[str, list[Entry]]
    classes: list[str]
    format: str = "video"
    skipped: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Any]:
        return iter((self.splits, self.classes))


_SPLIT_NAMES = {  # official split names -> ours
    "train": "train", "training": "train",
    "val": "val", "validate": "val", "validation": "val",
    "test": "test", "testing": "test",
}


def _split_name(raw: str) -> str | None:
    return _SPLIT_NAMES.get(raw.strip().lower())


def _format_path(template: str, fields: dict[str, Any], where: str) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"path_template {template!r} cannot be filled for {where}: {e!r}; "
                         f"available fields: {', '.join('{' + k + '}' for k in fields)}") from None


def _count(skipped: dict[str, int], reason: str) -> None:
    skipped[reason] = skipped.get(reason, 0) + 1


def _ordered(splits: dict[str, list[Entry]]) -> dict[str, list[Entry]]:
    return {s: splits[s] for s in SPLITS if splits.get(s)}


def _load_json(path: PathLike, what: str) -> Any:
    p = _require_file(path, what)
    try:
        return json.loads(p.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON ({what}): {e}") from None


KINETICS_PATH_TEMPLATE = "{split}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
_KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end", "split")


def parse_kinetics400(csv_paths: PathLike | Sequence[PathLike], *,
                      path_template: str = KINETICS_PATH_TEMPLATE) -> Conversion:
    """Kinetics-400 from the official CSVs (`train.csv`, `validate.csv`, `test.csv`).

    Header `label,youtube_id,time_start,time_end,split[,is_cc]`; each row's `split` column
    (train / val / validate / test) picks its list, whichever file it is in. Classes are the
    distinct labels sorted alphabetically (the order of the official class list). Rows without
    a label (the original test CSV has no label column) are skipped and counted.

    Paths follow `path_template`; the default `{split}/{youtube_id}_{time_start:06d}_
    {time_end:06d}.mp4` is the name the common downloaders give a clip, in one folder per split
    (`train/`, `val/`, `test/`; our split names). Fields: {split}, {youtube_id},
    {time_start}, {time_end} (ints) and {label} (class name, spaces replaced by '_').
    """
    paths = [csv_paths] if isinstance(csv_paths, (str, os.PathLike)) else list(csv_paths)
    if not paths:
        raise ValueError("csv_paths is empty; pass the official Kinetics CSV file(s)")
    rows: list[tuple[str, str, str]] = []  # (split, label, path) in file order
    skipped: dict[str, int] = {}
    for path in paths:
        p = _require_file(path, "Kinetics CSV")
        with p.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in _KINETICS_COLUMNS if c not in header]
            if missing:
                raise ValueError(f"{p}, line 1: header {','.join(header)!r} lacks column(s) "
                                 f"{', '.join(missing)}; expected "
                                 f"'label,youtube_id,time_start,time_end,split[,is_cc]'")
            for cells in reader:
                line = ",".join(cells)
                if not any(c.strip() for c in cells):
                    continue
                lineno = reader.line_num
                if len(cells) != len(header):
                    raise _line_error(p, lineno, line, f"{len(cells)} fields",
                                      f"{len(header)} fields as in the header {','.join(header)!r}")
                row = {h: v.strip() for h, v in zip(header, cells)}
                if not row["youtube_id"]:
                    raise _line_error(p, lineno, line, "empty youtube_id",
                                      "the video's YouTube id in the youtube_id column")
                split = _split_name(row["split"])
                if split is None:
                    raise _line_error(p, lineno, line, f"unknown split {row['split']!r}",
                                      "train, val, validate or test")
                try:
                    start = _parse_int(row["time_start"], "time_start")
                    end = _parse_int(row["time_end"], "time_end")
                except _Malformed as e:
                    raise _line_error(p, lineno, line, str(e),
                                      "integer seconds in time_start and time_end") from None
                label = row.get("label", "")
                if not label:
                    _count(skipped, f"{split}: no label")
                    continue
                values = {"split": split, "youtube_id": row["youtube_id"], "time_start": start,
                          "time_end": end, "label": "_".join(label.split())}
                rows.append((split, label, _format_path(path_template, values,
                                                        f"{p}, line {lineno}")))
    classes = sorted({label for _, label, _ in rows})
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, list[Entry]] = {}
    for split, label, path in rows:
        splits.setdefault(split, []).append(Entry(path, (index[label],)))
    return Conversion(_ordered(splits), classes, "video", skipped)


def parse_activitynet(json_path: PathLike, *,
                      path_template: str = "v_{video_id}.mp4") -> Conversion:
    """ActivityNet v1.3 from the official `activity_net.v1-3.min.json`.

    Untrimmed and multi-label: a video's labels are the distinct labels of its annotated
    segments (segment times are not used). `subset` training / validation / testing goes to
    train / val / test; videos without annotations (all of testing) are skipped and counted.
    Classes are the distinct annotation labels sorted alphabetically (the taxonomy is not
    used). Paths follow `path_template`, fields {video_id} and {split}; the default matches
    the common downloaders' `v_{video_id}.mp4` (change the extension if yours differ).
    """
    p = Path(json_path)
    data = _load_json(p, "ActivityNet annotation file")
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise ValueError(f"{p}: expected an object with a 'database' object mapping video ids "
                         f"to {{'subset', 'annotations', ...}} (ActivityNet v1.3 format)")
    videos: list[tuple[str, str, list[str]]] = []  # (split, path, label names)
    skipped: dict[str, int] = {}
    for video_id, info in database.items():
        where = f"{p}: database[{video_id!r}]"
        if not isinstance(info, dict) or not isinstance(info.get("subset"), str):
            raise ValueError(f"{where} has no 'subset'; expected training, validation or testing")
        split = _split_name(info["subset"])
        if split is None:
            raise ValueError(f"{where}: unknown subset {info['subset']!r}; expected training, "
                             f"validation or testing")
        annotations = info.get("annotations") or []
        if not isinstance(annotations, list):
            raise ValueError(f"{where}: 'annotations' must be a list; got {annotations!r}")
        names: list[str] = []
        for j, ann in enumerate(annotations):
            label = ann.get("label") if isinstance(ann, dict) else None
            if not isinstance(label, str) or not label.strip():
                raise ValueError(f"{where}['annotations'][{j}] = {ann!r} has no 'label' string")
            if label.strip() not in names:
                names.append(label.strip())
        if not names:
            _count(skipped, f"{split}: no annotations")
            continue
        path = _format_path(path_template, {"video_id": video_id, "split": split}, where)
        videos.append((split, path, names))
    classes = sorted({name for _, _, names in videos for name in names})
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, list[Entry]] = {}
    for split, path, names in videos:
        splits.setdefault(split, []).append(Entry(path, tuple(sorted(index[n] for n in names))))
    return Conversion(_ordered(splits), classes, "video", skipped)


def _sthv2_classes(path: Path) -> list[str]:
    data = _load_json(path, "Something-Something V2 labels file")
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected an object mapping template names to index strings, "
                         f"e.g. {{\"Approaching something with your camera\": \"0\", ...}}")
    by_index: dict[int, str] = {}
    for name, raw in data.items():
        text = str(raw).strip()
        if not _INT.fullmatch(text) or int(text) < 0:
            raise ValueError(f"{path}: index of {name!r} must be an integer >= 0; got {raw!r}")
        if int(text) in by_index:
            raise ValueError(f"{path}: index {int(text)} is given to both {by_index[int(text)]!r} "
                             f"and {name!r}")
        by_index[int(text)] = name
    gaps = sorted(set(range(len(by_index))) - set(by_index))
    if gaps:
        raise ValueError(f"{path}: indices must be 0..{len(by_index) - 1} without gaps; missing "
                         f"{gaps[:5]}")
    return [by_index[i] for i in range(len(by_index))]


def parse_sthv2(labels_json: PathLike, train_json: PathLike, val_json: PathLike, *,
                test_json: PathLike | None = None,
                path_template: str = "{id}.webm") -> Conversion:
    """Something-Something V2 from the official JSON files.

    `something-something-v2-labels.json` maps each template name to its index (a string);
    `...-train.json` / `...-validation.json` list `{"id", "template", "label", "placeholders"}`
    items. An item's class is its `template` with the brackets removed ("Putting [something]
    on [something]" -> "Putting something on something") looked up in the labels file; the
    item's `label` (the filled-in sentence) is not used. Items without a template (all of the
    test file) are skipped and counted. Paths follow `path_template`, fields {id} and {split}.
    """
    classes = _sthv2_classes(Path(labels_json))
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, list[Entry]] = {}
    skipped: dict[str, int] = {}
    sources = [("train", train_json), ("val", val_json)]
    if test_json is not None:
        sources.append(("test", test_json))
    for split, json_path in sources:
        p = Path(json_path)
        items = _load_json(p, f"Something-Something V2 {split} file")
        if not isinstance(items, list):
            raise ValueError(f"{p}: expected a list of {{\"id\": ..., \"template\": ...}} items")
        entries = splits.setdefault(split, [])
        for j, item in enumerate(items):
            if not isinstance(item, dict) or "id" not in item:
                raise ValueError(f"{p}: item {j} has no 'id': {item!r}")
            template = item.get("template")
            if template is None:
                _count(skipped, f"{split}: no label")
                continue
            name = str(template).replace("[", "").replace("]", "")
            if name not in index:
                close = difflib.get_close_matches(name, classes, n=1)
                hint = f" (closest: {close[0]!r})" if close else ""
                raise ValueError(f"{p}: item {j} (id {item['id']!r}) has template {template!r}, "
                                 f"whose class {name!r} is not in {labels_json}{hint}")
            path = _format_path(path_template, {"id": item["id"], "split": split},
                                f"{p}: item {j}")
            entries.append(Entry(path, (index[name],)))
    return Conversion(_ordered(splits), classes, "video", skipped)


def _parse_split_lists(train_list: PathLike, val_list: PathLike, *, classes_path: PathLike | None,
                       format: str, label_base: int, comma_labels: bool,
                       what: str) -> Conversion:
    classes = read_classes(classes_path) if classes_path is not None else None
    num_classes = len(classes) if classes is not None else None
    splits = {split: _read_list(path, format, num_classes, label_base=label_base,
                                comma_labels=comma_labels, what=f"{what} {split} list")
              for split, path in (("train", train_list), ("val", val_list))}
    if classes is None:  # no names given: name each class by its index
        top = max((max(e.labels) for entries in splits.values() for e in entries), default=-1)
        classes = [str(i) for i in range(top + 1)]
    return Conversion(_ordered(splits), classes, format, {})


def parse_fcvid(train_list: PathLike, val_list: PathLike, *,
                classes_path: PathLike | None = None, format: str = "video",
                label_base: int = 0) -> Conversion:
    """FCVID from split lists: the official train list and the official test list (our val).

    The paper (like AR-Net and later work) evaluates on FCVID's test half and calls it
    validation, so `val_list` is the official test list. Accepted lines (whitespace-separated):
    format="video": `video_path label[,label...]` (labels joined by commas, the FCVID release
    style) or `video_path label [label ...]` (mmaction style); format="rawframes": AR-Net's
    `fcvid_*_split.txt` lines `frame_dir num_frames label[,label...]`. `label_base=1` converts
    1-based labels to 0-based. `classes_path` is a name-per-line file (AR-Net `classInd.txt`);
    without it classes are named by their index "0".."K-1", K = largest label + 1.
    """
    return _parse_split_lists(train_list, val_list, classes_path=classes_path, format=format,
                              label_base=label_base, comma_labels=True, what="FCVID")


def parse_minikinetics(train_list: PathLike, val_list: PathLike, *,
                       classes_path: PathLike | None = None, format: str = "rawframes",
                       label_base: int = 0) -> Conversion:
    """Mini-Kinetics (200 classes) from AR-Net's split lists.

    format="rawframes" (default): `mini_train_videofolder.txt` / `mini_val_videofolder.txt`
    lines `frame_dir num_frames label`; format="video": `video_path label`. Paths are kept as
    written: they must be relative to the data root you train with. `classes_path` is a
    name-per-line file (AR-Net `minik_classInd.txt`); without it classes are named "0".."K-1".
    """
    return _parse_split_lists(train_list, val_list, classes_path=classes_path, format=format,
                              label_base=label_base, comma_labels=False, what="Mini-Kinetics")


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".3gp", ".ogv")
VAL_FRACTION = 0.2  # parse_folders: the share of each class drawn for validation
_NOT_VIDEO = "not a video file, by its extension"
_FOLDER_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test"}


def _extensions(extensions: Sequence[str]) -> tuple[str, ...]:
    """"mp4", ".MP4" -> ".mp4"; an empty list is an error."""
    if isinstance(extensions, str):
        extensions = [extensions]
    out = tuple("." + e.strip().lower().lstrip(".") for e in extensions if e.strip().strip("."))
    if not out:
        raise ValueError(f"extensions is empty; give file extensions such as mp4 avi (default: "
                         f"{' '.join(e[1:] for e in VIDEO_EXTENSIONS)})")
    return out


def _class_videos(folder: Path, root: Path, extensions: tuple[str, ...],
                  skipped: dict[str, int]) -> list[str]:
    """Paths (relative to `root`, sorted) of the video files anywhere under one class folder;
    other files are counted in `skipped`."""
    videos, others = [], 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix.lower() in extensions and not path.name.startswith("."):
            videos.append(path.relative_to(root).as_posix())
        else:
            others += 1
    if others:
        skipped[_NOT_VIDEO] = skipped.get(_NOT_VIDEO, 0) + others
    if not videos:
        raise ValueError(f"class folder {folder} holds no video file ({others} other file(s); "
                         f"video extensions: {' '.join(extensions)}); add its videos, remove "
                         f"the folder, or pass the extensions of its videos with --extensions")
    return videos


def _class_folders(folder: Path, skipped: dict[str, int]) -> dict[str, Path]:
    """Class name -> folder for the sub-folders of `folder` (hidden ones left out); loose files
    beside them are counted in `skipped`."""
    classes = {}
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            classes[child.name] = child
        else:
            _count(skipped, "file outside a class folder")
    return classes


def _split_by_class(by_class: dict[str, list[str]], fraction: float, seed: int
                    ) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """Seeded and stratified: each class's videos shuffled and round(n * fraction) of them (at
    least one, never all) drawn for validation. -> (train, val, classes with one video)."""
    rng = random.Random(seed)
    train, val, single = {}, {}, []
    for name in sorted(by_class):
        videos = sorted(by_class[name])
        rng.shuffle(videos)
        n_val = min(max(1, round(len(videos) * fraction)), len(videos) - 1) if fraction else 0
        if fraction and len(videos) == 1:
            single.append(name)
        val[name], train[name] = sorted(videos[:n_val]), sorted(videos[n_val:])
    return train, {k: v for k, v in val.items() if v}, single


def _split_folders(root: Path, skipped: dict[str, int]) -> dict[str, Path]:
    """split -> folder of class folders: ROOT/train, ROOT/val (or validation), ROOT/test when
    ROOT/train exists, else ROOT itself as the train split."""
    tops = {child.name: child for child in root.iterdir()
            if child.is_dir() and not child.name.startswith(".")}
    if "train" not in tops:
        return {"train": root}
    for name in sorted(set(tops) - set(_FOLDER_SPLITS)):
        _count(skipped, f"folder {name}/ beside train/ (not val/, validation/ or test/)")
    if "val" in tops and "validation" in tops:
        raise ValueError(f"{root} holds both val/ and validation/; keep one of them")
    return {_FOLDER_SPLITS[name]: folder for name, folder in sorted(tops.items())
            if name in _FOLDER_SPLITS}


def parse_folders(root: PathLike, *, val_fraction: float = VAL_FRACTION, seed: int = 0,
                  extensions: Sequence[str] = VIDEO_EXTENSIONS) -> Conversion:
    """A folder per class, `root/<class>/<video>` (UCF-101's layout, torchvision's and Hugging
    Face's video folders), or `root/train/<class>/...` beside `root/val/<class>/...` (or
    `validation/`; a `test/` folder becomes a labelled test list).

    Class names are the folder names, sorted (label i is the i-th). Videos are the files whose
    extension is in `extensions` anywhere under a class folder; other files are skipped and
    counted. Paths are relative to `root`: train with `data.root` = `root`. Without a val
    folder, `val_fraction` of each class (at least one video, never its last) goes to val,
    drawn with `seed`; a class with one video stays in train and is named in `notes`. A missing
    root, a root without class folders and an empty class folder are errors.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"data root not found: {root_path} (resolved to "
                                f"{root_path.absolute()}); expected ROOT/<class>/<video> or "
                                f"ROOT/train/<class>/<video>")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1) (the share of each class drawn for "
                         f"validation; 0: no val list), got {val_fraction}")
    exts = _extensions(extensions)
    skipped: dict[str, int] = {}
    found: dict[str, dict[str, list[str]]] = {}  # split -> class name -> paths
    for split, folder in _split_folders(root_path, skipped).items():
        folders = _class_folders(folder, skipped)
        if not folders:
            raise ValueError(f"{folder} holds no class folder; expected {folder}/<class>/<video> "
                             f"(one folder per class, named after it)")
        found[split] = {name: _class_videos(d, root_path, exts, skipped)
                        for name, d in folders.items()}
    classes = sorted({name for by_class in found.values() for name in by_class})
    notes = []
    untrained = sorted(set(classes) - set(found["train"]))
    if untrained:
        notes.append(f"{len(untrained)} class(es) with no training video (only in val/ or "
                     f"test/): {', '.join(untrained[:10])}{' ...' if len(untrained) > 10 else ''}")
    if "val" not in found:
        found["train"], found["val"], single = _split_by_class(found["train"], val_fraction, seed)
        if single:
            more = " ..." if len(single) > 10 else ""
            notes.append(f"{len(single)} class(es) with one video, kept in train only: "
                         f"{', '.join(single[:10])}{more}")
    index = {name: i for i, name in enumerate(classes)}
    splits = {split: [Entry(path, (index[name],)) for name in sorted(by_class)
                      for path in by_class[name]] for split, by_class in found.items()}
    spaced = [e.path for entries in splits.values() for e in entries
              if any(c.isspace() for c in e.path)]
    if spaced:
        raise ValueError(f"{len(spaced)} video path(s) under {root_path} contain whitespace "
                         f"(first: {spaced[0]!r}), which the list format uses as its separator; "
                         f"rename those files and folders (e.g. spaces to '_') and run again")
    return Conversion(_ordered(splits), classes, "video", skipped, tuple(notes))

PARSERS: dict[str, Callable[..., Conversion]] = {
    "kinetics400": parse_kinetics400,
    "activitynet": parse_activitynet,
    "sthv2": parse_sthv2,
    "fcvid": parse_fcvid,
    "minikinetics": parse_minikinetics,
    "folders": parse_folders,
}


@dataclass(frozen=True)
class ConvertReport:
    """What `convert` wrote: file paths, entries per split, classes and skipped videos."""

    dataset: str
    out_dir: Path
    files: dict[str, Path]  # "train" / "val" / "test" / "classes" -> written file
    counts: dict[str, int]  # split -> number of entries written
    num_classes: int
    format: str
    skipped: dict[str, int]  # reason -> number of videos left out
    notes: tuple[str, ...] = ()  # what else the parser found (Conversion.notes)

    def summary(self) -> str:
        lines = [f"{self.dataset} -> {self.out_dir} ({self.format} lists)"]
        lines += [f"  {self.files[s].name:<12}{n:>9} videos" for s, n in self.counts.items()]
        lines.append(f"  {self.files['classes'].name:<12}{self.num_classes:>9} classes")
        lines += [f"  skipped {n} ({reason})" for reason, n in self.skipped.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def convert(dataset: str, out_dir: PathLike, *, overwrite: bool = False,
            **sources: Any) -> ConvertReport:
    """Convert one dataset's official annotations into `out_dir`/{train,val,test,classes}.txt.

    `sources` are the keyword arguments of the dataset's parser in PARSERS, e.g.
    `convert("activitynet", "data/anet", json_path="activity_net.v1-3.min.json")`. Splits
    without entries get no file (a `test.txt` left by an earlier run is not removed).
    Existing files are only replaced with overwrite=True. Returns counts for the caller to
    print (`report.summary()`).
    """
    if dataset not in PARSERS:
        close = difflib.get_close_matches(str(dataset), PARSERS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {dataset!r}{hint}; choose one of "
                         f"{', '.join(PARSERS)}")
    parser = PARSERS[dataset]
    params = inspect.signature(parser).parameters
    takes = f"{dataset} takes {', '.join(params)} (see {parser.__name__})"
    for name in sources:
        if name not in params:
            close = difflib.get_close_matches(name, params, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"convert({dataset!r}, ...): unexpected argument {name!r}{hint}; "
                            f"{takes}")
    try:
        inspect.signature(parser).bind(**sources)
    except TypeError as e:
        raise TypeError(f"convert({dataset!r}, ...): {e}; {takes}") from None
    conversion = parser(**sources)
    if not any(conversion.splits.values()):
        raise ValueError(f"{dataset}: the annotations hold no labelled video "
                         f"(skipped: {conversion.skipped or 'none'}); nothing to write")
    out = Path(out_dir)
    files = {split: out / f"{split}.txt" for split in conversion.splits}
    files["classes"] = out / "classes.txt"
    existing = [str(p) for p in files.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass overwrite=True "
                              f"(--overwrite) to replace, or choose another out_dir")
    for split, entries in conversion.splits.items():
        write_list(files[split], entries, format=conversion.format)
    write_classes(files["classes"], conversion.classes)
    return ConvertReport(dataset=dataset, out_dir=out, files=files,
                         counts={s: len(e) for s, e in conversion.splits.items()},
                         num_classes=len(conversion.classes), format=conversion.format,
                         skipped=dict(conversion.skipped), notes=conversion.notes)


# ---------------------------------------------------------------- `reskd data convert` options

# The options of `reskd data convert` (argparse dest names: csv, json, labels, train, val, test,
# classes, label_base, format, path_template, root, val_fraction, seed, extensions) each
# dataset cannot do without.
NEEDS: dict[str, tuple[str, ...]] = {
    "kinetics400": ("csv",),
    "activitynet": ("json",),
    "sthv2": ("labels", "train", "val"),
    "fcvid": ("train", "val"),
    "minikinetics": ("train", "val"),
    "folders": ("root",),
}

# dataset -> {convert() keyword: option name}; path_template is added for every dataset.
_KEYWORDS: dict[str, dict[str, str]] = {
    "kinetics400": {"csv_paths": "csv"},
    "activitynet": {"json_path": "json"},
    "sthv2": {"labels_json": "labels", "train_json": "train", "val_json": "val",
              "test_json": "test"},
    "fcvid": {"train_list": "train", "val_list": "val", "classes_path": "classes",
              "label_base": "label_base", "format": "format"},
    "minikinetics": {"train_list": "train", "val_list": "val", "classes_path": "classes",
                     "label_base": "label_base", "format": "format"},
    "folders": {"root": "root", "val_fraction": "val_fraction", "seed": "seed",
                "extensions": "extensions"},
}


def convert_sources(dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`convert`'s keyword arguments for `dataset` from the options of `reskd data convert`.

    `options` maps option names as argparse stores them (csv, json, labels, train, val, test,
    classes, label_base, format, path_template) to their values, None (or absent) for an option
    not given; other keys (e.g. the rest of `vars(args)`) are ignored, and so are options the
    dataset does not take (--format for kinetics400). Options not given are left out, so the
    parser's defaults apply. Raises ValueError naming the missing options, e.g.
    "reskd data convert sthv2 needs --labels, --val", or the unknown dataset.
    Use: `convert(dataset, out, overwrite=..., **convert_sources(dataset, vars(args)))`.
    """
    if dataset not in _KEYWORDS:
        close = difflib.get_close_matches(str(dataset), DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {dataset!r}{hint}; choose one of "
                         f"{', '.join(DATASETS)}")
    missing = [f"--{name}" for name in NEEDS[dataset] if not options.get(name)]
    if missing:
        raise ValueError(f"reskd data convert {dataset} needs {', '.join(missing)}")
    sources: dict[str, Any] = {}
    for keyword, name in {**_KEYWORDS[dataset], "path_template": "path_template"}.items():
        value = options.get(name)
        if value is not None and value != "":  # an empty --path-template is not given either
            sources[keyword] = value
    return sources

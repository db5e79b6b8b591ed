"""Annotation lists: read and write them, and convert the official dataset annotations to them.

Our lists are the authors' mmaction2 0.x formats, one video per line, fields separated by
whitespace (so a path cannot contain spaces, as in mmaction2):

    video       relative/path.mp4 label [label ...]
    rawframes   frame_dir total_frames label [label ...]

Labels are 0-based class indices; a multi-label video (ActivityNet, FCVID) lists several.
Blank lines and lines starting with `#` are skipped. Line i of `classes.txt` names label i.

The `parse_*` functions read one dataset's official annotation files and return a
`Conversion` (unpacks as `splits, classes`); `convert` runs one and writes `train.txt`,
`val.txt`, `test.txt` (where the dataset has a labelled test split) and `classes.txt`.
Videos without a label are skipped and counted in `Conversion.skipped`, never dropped silently.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import json
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FORMATS",
    "Entry",
    "read_list",
    "write_list",
    "read_classes",
    "write_classes",
    "Conversion",
    "parse_kinetics400",
    "parse_activitynet",
    "parse_sthv2",
    "parse_fcvid",
    "parse_minikinetics",
    "PARSERS",
    "ConvertReport",
    "convert",
]

PathLike = str | os.PathLike

FORMATS = ("video", "rawframes")
SPLITS = ("train", "val", "test")  # the order lists are written and reported in

_LINE_SYNTAX = {
    "video": "'relative/path.mp4 label [label ...]'",
    "rawframes": "'frame_dir total_frames label [label ...]'",
}
_INT = re.compile(r"-?[0-9]+")  # ASCII digits only: int() would also take '1_0' and '٣'


@dataclass(frozen=True)
class Entry:
    """One line of an annotation list: a video file (or frame folder) and its class indices.

    `path` is relative to the data root. `num_frames` is set for raw-frame lists only.
    `labels` is stored as a tuple of ints, so `Entry("a.mp4", [3])` == `Entry("a.mp4", (3,))`.
    """

    path: str
    labels: tuple[int, ...]
    num_frames: int | None = None

    def __post_init__(self) -> None:
        # operator.index takes Python and numpy integers and refuses floats and strings.
        try:
            labels = tuple(operator.index(label) for label in self.labels)
        except TypeError:
            raise TypeError(f"Entry.labels must be a sequence of integer class indices; got "
                            f"{self.labels!r} for {self.path!r}") from None
        object.__setattr__(self, "labels", labels)  # frozen: bypass the dataclass setter
        if self.num_frames is not None:
            try:
                object.__setattr__(self, "num_frames", operator.index(self.num_frames))
            except TypeError:
                raise TypeError(f"Entry.num_frames must be an integer or None; got "
                                f"{self.num_frames!r} for {self.path!r}") from None


# ----------------------------------------------------------------------------- helpers


def _check_format(format: str) -> None:
    if format not in FORMATS:
        close = difflib.get_close_matches(str(format), FORMATS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}; got "
                         f"{format!r}{hint}")


def _require_file(path: PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p} (resolved to {p.absolute()})")
    if p.is_dir():
        raise IsADirectoryError(f"{what} must be a file, but {p} is a directory")
    return p


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of every non-blank, non-comment line."""
    # split on "\n" only: str.splitlines() also splits on form feeds and other separators,
    # which would make our line numbers disagree with the user's editor.
    text = path.read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield lineno, line


class _Malformed(Exception):
    """A problem with one line; the caller adds the file, line number and line text."""


def _line_error(path: Path, lineno: int, line: str, problem: str, expected: str) -> ValueError:
    return ValueError(f"{path}, line {lineno}: {problem} in {line!r}; expected {expected}")


def _parse_int(token: str, what: str) -> int:
    if not _INT.fullmatch(token):
        raise _Malformed(f"{what} {token!r} is not an integer")
    value = int(token)
    if value < 0:
        raise _Malformed(f"{what} {value} is negative")
    return value


def _parse_labels(tokens: Sequence[str], num_classes: int | None,
                  label_base: int) -> tuple[int, ...]:
    labels: list[int] = []
    for token in tokens:
        label = _parse_int(token, "label") - label_base
        if label < 0:
            raise _Malformed(f"label {token} is below the first label index {label_base}")
        if num_classes is not None and label >= num_classes:
            raise _Malformed(f"label {token} is out of range for {num_classes} classes "
                             f"(valid: {label_base}..{label_base + num_classes - 1})")
        if label in labels:
            raise _Malformed(f"label {token} is repeated")
        labels.append(label)
    return tuple(labels)


def _parse_line(line: str, format: str, num_classes: int | None, *, label_base: int = 0,
                comma_labels: bool = False) -> Entry:
    """One list line -> Entry; raises _Malformed saying what is wrong."""
    tokens = line.split()
    if comma_labels:  # FCVID style 'path 3,17': labels may also be separated by commas
        tokens = tokens[:1] + [t for tok in tokens[1:] for t in tok.split(",")]
        if "" in tokens:
            raise _Malformed("empty label between commas")
    if format == "video":
        if len(tokens) < 2:
            raise _Malformed("missing label")
        return Entry(tokens[0], _parse_labels(tokens[1:], num_classes, label_base))
    if len(tokens) < 3:
        hint = " (is this a video list? read it with format='video')" if len(tokens) == 2 else ""
        raise _Malformed(f"missing {'label' if len(tokens) == 2 else 'frame count and label'}"
                         f"{hint}")
    num_frames = _parse_int(tokens[1], "frame count")
    if num_frames == 0:
        raise _Malformed("frame count is 0 (no frames were extracted for this video)")
    return Entry(tokens[0], _parse_labels(tokens[2:], num_classes, label_base), num_frames)


def _expected(format: str, num_classes: int | None, label_base: int = 0,
              comma_labels: bool = False) -> str:
    syntax = _LINE_SYNTAX[format]
    if comma_labels:
        syntax += " (labels may also be joined by commas, 'path 3,17')"
    low = label_base
    labels = (f"integer labels {low}..{low + num_classes - 1}" if num_classes is not None
              else f"integer labels >= {low}")
    frames = " and total_frames >= 1" if format == "rawframes" else ""
    return f"{syntax} with {labels}{frames}, separated by whitespace"


def _read_list(path: PathLike, format: str, num_classes: int | None, *, label_base: int = 0,
               comma_labels: bool = False, what: str = "annotation list") -> list[Entry]:
    _check_format(format)
    if num_classes is not None and (isinstance(num_classes, bool) or
                                    not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer or None; got {num_classes!r}")
    p = _require_file(path, what)
    entries = []
    for lineno, line in _numbered_lines(p):
        try:
            entries.append(_parse_line(line, format, num_classes, label_base=label_base,
                                       comma_labels=comma_labels))
        except _Malformed as e:
            raise _line_error(p, lineno, line, str(e),
                              _expected(format, num_classes, label_base, comma_labels)) from None
    return entries


# ------------------------------------------------------------------------- lists and classes


def read_list(path: PathLike, *, format: str = "video",
              num_classes: int | None = None) -> list[Entry]:
    """Entries of an annotation list in `format` ("video" or "rawframes"), in file order.

    Labels are checked against `num_classes` when given. A malformed line raises ValueError
    naming the file, the 1-based line number, the line and the expected syntax.
    """
    return _read_list(path, format, num_classes)


def _check_entry(i: int, entry: Any, format: str) -> None:
    """Everything that would make `entry` unreadable (or read back differently) as a line."""
    if not isinstance(entry, Entry):
        raise TypeError(f"entries[{i}] must be an Entry; got {type(entry).__name__} {entry!r}")
    where = f"entries[{i}] (path {entry.path!r})"
    if not isinstance(entry.path, str) or not entry.path:
        raise ValueError(f"{where}: path must be a non-empty string")
    if any(c.isspace() for c in entry.path):
        raise ValueError(f"{where}: path contains whitespace, which the list format uses as "
                         f"its separator; rename the file or folder")
    if entry.path.startswith("#"):
        raise ValueError(f"{where}: path starts with '#', which would be read back as a comment")
    if not entry.labels:
        raise ValueError(f"{where}: has no label; every list line needs at least one")
    for label in entry.labels:
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise ValueError(f"{where}: labels must be integers >= 0; got {entry.labels!r}")
    if len(set(entry.labels)) != len(entry.labels):
        raise ValueError(f"{where}: repeated label in {entry.labels!r}")
    if format == "rawframes":
        n = entry.num_frames
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{where}: format='rawframes' needs num_frames >= 1; got {n!r}")
    elif entry.num_frames is not None:
        raise ValueError(f"{where}: has num_frames={entry.num_frames!r} but format='video' "
                         f"would drop it; write with format='rawframes' or leave num_frames None")


def write_list(path: PathLike, entries: Iterable[Entry], *, format: str = "video") -> None:
    """Write `entries` as an annotation list in `format`; `read_list` reads it back unchanged.

    Every entry is checked first (nothing is written if one is bad); parent folders are created.
    """
    _check_format(format)
    entries = list(entries)
    for i, entry in enumerate(entries):
        _check_entry(i, entry, format)
    lines = []
    for e in entries:
        frames = [str(e.num_frames)] if format == "rawframes" else []
        lines.append(" ".join([e.path, *frames, *map(str, e.labels)]))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_classes(path: PathLike) -> list[str]:
    """Class names, one per line (line i names label i), stripped; blank lines at the end skipped.

    A blank line before the last name (it would shift every later index) or a repeated name
    raises ValueError naming the line(s).
    """
    p = _require_file(path, "class-name file")
    lines = [raw.strip() for raw in p.read_text(encoding="utf-8-sig").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ValueError(f"{p}: class-name file is empty; expected one class name per line")
    first_line: dict[str, int] = {}
    for lineno, name in enumerate(lines, start=1):
        if not name:
            raise ValueError(f"{p}, line {lineno}: blank line between class names; line n "
                             f"names label n-1, so a blank line shifts every later class. "
                             f"Remove it")
        if name in first_line:
            raise ValueError(f"{p}: class name {name!r} appears twice, on lines "
                             f"{first_line[name]} and {lineno}")
        first_line[name] = lineno
    return lines


def write_classes(path: PathLike, classes: Sequence[str]) -> None:
    """Write class names one per line; `read_classes` reads them back unchanged."""
    seen: dict[str, int] = {}
    for i, name in enumerate(classes):
        if not isinstance(name, str) or not name or name != name.strip() or "\n" in name \
                or "\r" in name:
            raise ValueError(f"classes[{i}] = {name!r}: class names must be non-empty strings "
                             f"on one line, without leading or trailing whitespace")
        if name in seen:
            raise ValueError(f"class name {name!r} is repeated: classes[{seen[name]}] and "
                             f"classes[{i}]")
        seen[name] = i
    if not seen:
        raise ValueError("classes is empty; expected at least one class name")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(name + "\n" for name in classes), encoding="utf-8")


# -------------------------------------------------------------------------------- converters


@dataclass(frozen=True)
class Conversion:
    """What a `parse_*` function found: entries per split, class names, skipped videos.

    `splits` maps "train" / "val" / "test" to entries (splits without entries are absent);
    `skipped` maps a reason such as "test: no label" to a count. Unpacks as
    `splits, classes = parse_...(...)`.
    """

    splits: dict[str, list[Entry]]
    classes: list[str]
    format: str = "video"
    skipped: dict[str, int] = field(default_factory=dict)

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


PARSERS: dict[str, Callable[..., Conversion]] = {
    "kinetics400": parse_kinetics400,
    "activitynet": parse_activitynet,
    "sthv2": parse_sthv2,
    "fcvid": parse_fcvid,
    "minikinetics": parse_minikinetics,
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

    def summary(self) -> str:
        lines = [f"{self.dataset} -> {self.out_dir} ({self.format} lists)"]
        lines += [f"  {self.files[s].name:<12}{n:>9} videos" for s, n in self.counts.items()]
        lines.append(f"  {self.files['classes'].name:<12}{self.num_classes:>9} classes")
        lines += [f"  skipped {n} ({reason})" for reason, n in self.skipped.items()]
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
                         skipped=dict(conversion.skipped))

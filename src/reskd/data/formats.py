"""Annotation lists: read and write them (the official annotations are converted to them by
`reskd.data.converters`).

Our lists are the authors' mmaction2 0.x formats, one video per line, fields separated by
whitespace (so a path cannot contain spaces, as in mmaction2):

    video       relative/path.mp4 label [label ...]
    rawframes   frame_dir total_frames label [label ...]

Labels are 0-based class indices; a multi-label video (ActivityNet, FCVID) lists several.
Blank lines and lines starting with `#` are skipped. Line i of `classes.txt` names label i.
"""

from __future__ import annotations

import difflib
import operator
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FORMATS",
    "Entry",
    "read_list",
    "write_list",
    "read_classes",
    "write_classes",
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

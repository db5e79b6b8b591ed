"""Annotation lists: read, write and check them, on tiny files in the mmaction2 list formats."""

import re
from pathlib import Path

import pytest

from reskd.data.formats import (
    Entry,
    read_classes,
    read_list,
    write_classes,
    write_list,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ read_list


def test_read_video_list_skips_blank_and_comment_lines(tmp_path):
    p = write(tmp_path / "train.txt",
              "# a comment\n"
              "abseiling/a.mp4 0\n"
              "\n"
              "  multi/b.mp4 3 1  \n"
              "c.webm 2\n")
    assert read_list(p) == [
        Entry("abseiling/a.mp4", (0,)),
        Entry("multi/b.mp4", (3, 1)),  # label order kept as written
        Entry("c.webm", (2,)),
    ]


def test_read_rawframes_list(tmp_path):
    p = write(tmp_path / "val.txt", "frames/v1 300 4\r\nframes/v2 12 0 7\r\n")
    assert read_list(p, format="rawframes", num_classes=8) == [
        Entry("frames/v1", (4,), num_frames=300),
        Entry("frames/v2", (0, 7), num_frames=12),
    ]


@pytest.mark.parametrize("format, line, problem", [
    ("video", "a.mp4", "missing label"),
    ("video", "a.mp4 x", "label 'x' is not an integer"),
    ("video", "a.mp4 1.0", "label '1.0' is not an integer"),
    ("video", "a.mp4 -2", "label -2 is negative"),
    ("video", "a.mp4 5", "label 5 is out of range for 5 classes (valid: 0..4)"),
    ("video", "a.mp4 1 1", "label 1 is repeated"),
    ("rawframes", "frames/a 30", "missing label (is this a video list? read it with "
                                 "format='video')"),
    ("rawframes", "frames/a", "missing frame count and label"),
    ("rawframes", "frames/a ten 1", "frame count 'ten' is not an integer"),
    ("rawframes", "frames/a -3 1", "frame count -3 is negative"),
    ("rawframes", "frames/a 0 1", "frame count is 0"),
])
def test_malformed_line_names_file_line_text_and_expectation(tmp_path, format, line, problem):
    good = "ok.mp4 1" if format == "video" else "frames/ok 10 1"
    p = write(tmp_path / "my_list.txt", f"# header\n{good}\n{line}\n{good}\n")
    with pytest.raises(ValueError) as info:
        read_list(p, format=format, num_classes=5)
    message = str(info.value)
    assert message.startswith(f"{p}, line 3: {problem}")
    assert repr(line) in message
    expected = "'relative/path.mp4 label" if format == "video" else "'frame_dir total_frames"
    assert f"expected {expected}" in message
    assert "integer labels 0..4" in message


def test_read_list_missing_file_and_bad_format(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.txt"))):
        read_list(tmp_path / "nope.txt")
    p = write(tmp_path / "a.txt", "a.mp4 0\n")
    with pytest.raises(ValueError, match=r"format must be one of .*got 'rawframe' "
                                         r"\(did you mean 'rawframes'\?\)"):
        read_list(p, format="rawframe")


# ----------------------------------------------------------------------------- write_list


def test_write_then_read_round_trips(tmp_path):
    videos = [Entry("a/x.mp4", (3,)), Entry("b.mp4", [0, 2])]
    write_list(tmp_path / "sub" / "v.txt", videos)
    assert (tmp_path / "sub" / "v.txt").read_text() == "a/x.mp4 3\nb.mp4 0 2\n"
    assert read_list(tmp_path / "sub" / "v.txt") == videos

    frames = [Entry("f/x", (1,), 64), Entry("f/y", (0, 1), 8)]
    write_list(tmp_path / "f.txt", frames, format="rawframes")
    assert (tmp_path / "f.txt").read_text() == "f/x 64 1\nf/y 8 0 1\n"
    assert read_list(tmp_path / "f.txt", format="rawframes") == frames


@pytest.mark.parametrize("entry, format, problem", [
    (Entry("has space.mp4", (1,)), "video", "path contains whitespace"),
    (Entry("#x.mp4", (1,)), "video", "starts with '#'"),
    (Entry("a.mp4", ()), "video", "has no label"),
    (Entry("a.mp4", (-1,)), "video", "labels must be integers >= 0"),
    (Entry("a.mp4", (1,), 10), "video", "num_frames=10 but format='video'"),
    (Entry("f/a", (1,)), "rawframes", "needs num_frames >= 1; got None"),
])
def test_write_list_refuses_entries_it_could_not_read_back(tmp_path, entry, format, problem):
    with pytest.raises(ValueError, match=re.escape(f"entries[1] (path {entry.path!r})") + ".*"
                       + re.escape(problem)):
        write_list(tmp_path / "x.txt", [Entry("ok", (0,), 1 if format == "rawframes" else None),
                                        entry], format=format)
    assert not (tmp_path / "x.txt").exists()  # nothing is written when an entry is bad


# -------------------------------------------------------------------------------- classes


def test_read_classes_strips_and_skips_trailing_blank_lines(tmp_path):
    p = write(tmp_path / "classes.txt", "abseiling\n  air drumming \nzumba\n\n\n")
    assert read_classes(p) == ["abseiling", "air drumming", "zumba"]


def test_read_classes_errors(tmp_path):
    p = write(tmp_path / "dup.txt", "a\nb\nc\nb\n")
    with pytest.raises(ValueError, match=r"dup.txt: class name 'b' appears twice, on lines "
                                         r"2 and 4"):
        read_classes(p)
    p = write(tmp_path / "gap.txt", "a\n\nb\n")
    with pytest.raises(ValueError, match=r"gap.txt, line 2: blank line between class names"):
        read_classes(p)
    with pytest.raises(FileNotFoundError, match="class-name file not found"):
        read_classes(tmp_path / "missing.txt")


def test_write_classes_round_trip_and_errors(tmp_path):
    write_classes(tmp_path / "c.txt", ["air drumming", "zumba"])
    assert read_classes(tmp_path / "c.txt") == ["air drumming", "zumba"]
    with pytest.raises(ValueError, match=r"'zumba' is repeated: classes\[0\] and classes\[2\]"):
        write_classes(tmp_path / "d.txt", ["zumba", "yoga", "zumba"])
    with pytest.raises(ValueError, match=r"classes\[1\] = ' yoga'"):
        write_classes(tmp_path / "d.txt", ["zumba", " yoga"])


def test_entry_normalises_labels_to_a_tuple_of_ints():
    import numpy as np

    assert Entry("a.mp4", [np.int64(3), 1]) == Entry("a.mp4", (3, 1))
    assert type(Entry("a.mp4", [np.int64(3)]).labels[0]) is int
    with pytest.raises(TypeError, match="integer class indices; got 3 for 'a.mp4'"):
        Entry("a.mp4", 3)
    with pytest.raises(TypeError, match="integer class indices"):
        Entry("a.mp4", (1.0,))

"""Annotation lists and converters, on tiny files written in the published formats."""

import json
import re
from pathlib import Path

import pytest

from reskd.data.formats import (
    Entry,
    convert,
    parse_activitynet,
    parse_fcvid,
    parse_kinetics400,
    parse_minikinetics,
    parse_sthv2,
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


# ---------------------------------------------------------------------------- Kinetics-400

K400_TRAIN = """label,youtube_id,time_start,time_end,split,is_cc
zumba,--07WQ2iBlw,1,11,train,0
abseiling,-3B32lodo2M,59,69,train,0
"passing American football (in game)",-4wsuPCjDBc,5,15,train,0
"""
K400_VAL = """label,youtube_id,time_start,time_end,split,is_cc
abseiling,0wR5jVB-WPk,417,427,val,0
"""
K400_TEST = """youtube_id,time_start,time_end,split
aaa-test-id,12,22,test
"""


def test_parse_kinetics400(tmp_path):
    train = write(tmp_path / "train.csv", K400_TRAIN)
    val = write(tmp_path / "validate.csv", K400_VAL)
    test = write(tmp_path / "test.csv", K400_TEST)
    splits, classes = parse_kinetics400([train, val, test])
    # classes sorted alphabetically: abseiling, passing American football (in game), zumba
    assert classes == ["abseiling", "passing American football (in game)", "zumba"]
    assert splits == {
        "train": [Entry("train/--07WQ2iBlw_000001_000011.mp4", (2,)),
                  Entry("train/-3B32lodo2M_000059_000069.mp4", (0,)),
                  Entry("train/-4wsuPCjDBc_000005_000015.mp4", (1,))],
        "val": [Entry("val/0wR5jVB-WPk_000417_000427.mp4", (0,))],
    }
    conversion = parse_kinetics400([train, val, test])
    assert conversion.skipped == {"test: no label": 1}  # the test CSV has no label column


def test_parse_kinetics400_custom_template(tmp_path):
    train = write(tmp_path / "train.csv", K400_TRAIN)
    splits, _ = parse_kinetics400(train, path_template="videos_{split}/{label}/{youtube_id}.mp4")
    assert [e.path for e in splits["train"]] == [
        "videos_train/zumba/--07WQ2iBlw.mp4",
        "videos_train/abseiling/-3B32lodo2M.mp4",
        "videos_train/passing_American_football_(in_game)/-4wsuPCjDBc.mp4",
    ]
    with pytest.raises(ValueError, match=r"path_template '\{video\}.mp4' cannot be filled .*"
                                         r"train.csv, line 2.*\{youtube_id\}"):
        parse_kinetics400(train, path_template="{video}.mp4")


def test_parse_kinetics400_errors(tmp_path):
    bad_header = write(tmp_path / "h.csv", "label,youtube_id,start,end,split\nzumba,x,1,11,train\n")
    with pytest.raises(ValueError, match=r"h.csv, line 1: header .* lacks column\(s\) "
                                         r"time_start, time_end"):
        parse_kinetics400(bad_header)
    bad_split = write(tmp_path / "s.csv", K400_TRAIN + "zumba,abc,1,11,holdout,0\n")
    with pytest.raises(ValueError, match=r"s.csv, line 5: unknown split 'holdout' in "
                                         r"'zumba,abc,1,11,holdout,0'"):
        parse_kinetics400(bad_split)
    bad_time = write(tmp_path / "t.csv", K400_TRAIN + "zumba,abc,1.5,11,train,0\n")
    with pytest.raises(ValueError, match=r"t.csv, line 5: time_start '1.5' is not an integer"):
        parse_kinetics400(bad_time)
    short = write(tmp_path / "f.csv", K400_TRAIN + "zumba,abc,1,11\n")
    with pytest.raises(ValueError, match=r"f.csv, line 5: 4 fields .* expected 6 fields"):
        parse_kinetics400(short)
    no_id = write(tmp_path / "i.csv", K400_TRAIN + "zumba,,1,11,train,0\n")
    with pytest.raises(ValueError, match=r"i.csv, line 5: empty youtube_id"):
        parse_kinetics400(no_id)
    with pytest.raises(FileNotFoundError, match="Kinetics CSV not found"):
        parse_kinetics400(tmp_path / "missing.csv")


# ----------------------------------------------------------------------------- ActivityNet

ANET = {
    "version": "VERSION 1.3",
    "taxonomy": [
        {"parentName": "Root", "nodeName": "Sports", "nodeId": 1, "parentId": 0},
        {"parentName": "Sports", "nodeName": "Long jump", "nodeId": 2, "parentId": 1},
        {"parentName": "Sports", "nodeName": "Archery", "nodeId": 3, "parentId": 1},
        {"parentName": "Sports", "nodeName": "Zumba", "nodeId": 4, "parentId": 1},
    ],
    "database": {
        "sJFgo9H6zNo": {
            "subset": "training", "duration": 139.042, "resolution": "640x360",
            "url": "https://www.youtube.com/watch?v=sJFgo9H6zNo",
            "annotations": [
                {"segment": [0.01, 123.42], "label": "Zumba"},
                {"segment": [125.0, 130.0], "label": "Long jump"},
                {"segment": [131.0, 138.0], "label": "Zumba"},  # repeated label: counted once
            ],
        },
        "-V0tPbrCq5I": {
            "subset": "validation", "duration": 82.5, "resolution": "480x360",
            "url": "https://www.youtube.com/watch?v=-V0tPbrCq5I",
            "annotations": [{"segment": [2.5, 80.0], "label": "Archery"}],
        },
        "testonly123": {
            "subset": "testing", "duration": 50.0, "resolution": "640x360",
            "url": "https://www.youtube.com/watch?v=testonly123", "annotations": [],
        },
    },
}


def test_parse_activitynet(tmp_path):
    p = write(tmp_path / "activity_net.v1-3.min.json", json.dumps(ANET))
    conversion = parse_activitynet(p)
    # classes: distinct annotation labels, sorted: Archery 0, Long jump 1, Zumba 2
    assert conversion.classes == ["Archery", "Long jump", "Zumba"]
    assert conversion.splits == {
        "train": [Entry("v_sJFgo9H6zNo.mp4", (1, 2))],
        "val": [Entry("v_-V0tPbrCq5I.mp4", (0,))],
    }
    assert conversion.skipped == {"test: no annotations": 1}
    splits, _ = parse_activitynet(p, path_template="{split}/v_{video_id}.mkv")
    assert splits["val"] == [Entry("val/v_-V0tPbrCq5I.mkv", (0,))]


def test_parse_activitynet_errors(tmp_path):
    bad = json.loads(json.dumps(ANET))
    bad["database"]["sJFgo9H6zNo"]["subset"] = "train-ish"
    p = write(tmp_path / "anet.json", json.dumps(bad))
    with pytest.raises(ValueError, match=r"anet.json: database\['sJFgo9H6zNo'\]: unknown subset "
                                         r"'train-ish'"):
        parse_activitynet(p)
    p = write(tmp_path / "list.json", "[1, 2]")
    with pytest.raises(ValueError, match=r"list.json: expected an object with a 'database'"):
        parse_activitynet(p)
    p = write(tmp_path / "broken.json", "{\"database\": ")
    with pytest.raises(ValueError, match=r"broken.json is not valid JSON"):
        parse_activitynet(p)


# ------------------------------------------------------------------- Something-Something V2

SSV2_LABELS = {
    "Approaching something with your camera": "0",
    "Putting something on a surface": "1",
    "Putting something on something": "2",
}
SSV2_TRAIN = [
    {"id": "78687", "label": "putting a cup on a table",
     "template": "Putting [something] on [something]", "placeholders": ["a cup", "a table"]},
    {"id": "42326", "label": "approaching a lamp with your camera",
     "template": "Approaching [something] with your camera", "placeholders": ["a lamp"]},
]
SSV2_VAL = [
    {"id": "74225", "label": "putting a pen on a surface",
     "template": "Putting [something] on a surface", "placeholders": ["a pen"]},
]
SSV2_TEST = [{"id": "1420"}, {"id": "1421"}]


def _ssv2_files(tmp_path, train=SSV2_TRAIN):
    return (write(tmp_path / "something-something-v2-labels.json", json.dumps(SSV2_LABELS)),
            write(tmp_path / "something-something-v2-train.json", json.dumps(train)),
            write(tmp_path / "something-something-v2-validation.json", json.dumps(SSV2_VAL)),
            write(tmp_path / "something-something-v2-test.json", json.dumps(SSV2_TEST)))


def test_parse_sthv2(tmp_path):
    labels, train, val, test = _ssv2_files(tmp_path)
    conversion = parse_sthv2(labels, train, val, test_json=test)
    assert conversion.classes == list(SSV2_LABELS)  # ordered by the index strings
    assert conversion.splits == {
        "train": [Entry("78687.webm", (2,)), Entry("42326.webm", (0,))],
        "val": [Entry("74225.webm", (1,))],
    }
    assert conversion.skipped == {"test: no label": 2}


def test_parse_sthv2_unknown_template(tmp_path):
    typo = [{"id": "5", "template": "Putting [something] onto a surface", "label": "x"}]
    labels, train, val, _ = _ssv2_files(tmp_path, train=typo)
    with pytest.raises(ValueError, match=r"train.json: item 0 \(id '5'\) has template .*class "
                                         r"'Putting something onto a surface' is not in .*"
                                         r"closest: 'Putting something on a surface'"):
        parse_sthv2(labels, train, val)


# -------------------------------------------------------------------- FCVID and Mini-Kinetics


def test_parse_fcvid_comma_and_space_separated_labels(tmp_path):
    train = write(tmp_path / "fcvid_train.txt",
                  "videos/basketball/a.mp4 1\n"
                  "videos/party/b.mp4 0,2\n"  # FCVID release style: labels joined by commas
                  "videos/party/c.mp4 2 0\n")  # mmaction style
    val = write(tmp_path / "fcvid_test.txt", "videos/party/d.mp4 0\n")
    names = write(tmp_path / "classInd.txt", "party\nbasketball\nwedding\n")
    splits, classes = parse_fcvid(train, val, classes_path=names)
    assert classes == ["party", "basketball", "wedding"]
    assert splits == {
        "train": [Entry("videos/basketball/a.mp4", (1,)), Entry("videos/party/b.mp4", (0, 2)),
                  Entry("videos/party/c.mp4", (2, 0))],
        "val": [Entry("videos/party/d.mp4", (0,))],
    }
    # 1-based labels; no class file: classes named by index
    one_based = write(tmp_path / "one.txt", "a.mp4 1,3\n")
    splits, classes = parse_fcvid(one_based, one_based, label_base=1)
    assert splits["train"] == [Entry("a.mp4", (0, 2))]
    assert classes == ["0", "1", "2"]
    names = write(tmp_path / "two.txt", "party\nbasketball\n")
    with pytest.raises(ValueError, match=r"one.txt, line 1: label 3 is out of range for 2 classes "
                                         r"\(valid: 1..2\)"):
        parse_fcvid(one_based, one_based, classes_path=names, label_base=1)


def test_parse_fcvid_errors_name_file_and_line(tmp_path):
    names = write(tmp_path / "classInd.txt", "party\nbasketball\n")
    val = write(tmp_path / "val.txt", "a.mp4 0\n")
    train = write(tmp_path / "fcvid_train.txt", "a.mp4 0\nb.mp4 1,2\n")
    with pytest.raises(ValueError, match=r"fcvid_train.txt, line 2: label 2 is out of range "
                                         r"for 2 classes .* in 'b.mp4 1,2'"):
        parse_fcvid(train, val, classes_path=names)
    train = write(tmp_path / "fcvid_train.txt", "a.mp4 0,,1\n")
    with pytest.raises(ValueError, match=r"fcvid_train.txt, line 1: empty label between commas"):
        parse_fcvid(train, val)
    with pytest.raises(FileNotFoundError, match=r"FCVID val list not found: .*nope.txt"):
        parse_fcvid(val, tmp_path / "nope.txt")


def test_parse_minikinetics_arnet_lists(tmp_path):
    train = write(tmp_path / "mini_train_videofolder.txt",
                  "train/abseiling/-3B32lodo2M_000059_000069 300 0\n"
                  "train/zumba/--07WQ2iBlw_000001_000011 250 1\n")
    val = write(tmp_path / "mini_val_videofolder.txt",
                "val/zumba/0wR5jVB-WPk_000417_000427 298 1\n")
    names = write(tmp_path / "minik_classInd.txt", "abseiling\nzumba\n")
    conversion = parse_minikinetics(train, val, classes_path=names)
    assert conversion.format == "rawframes"
    assert conversion.classes == ["abseiling", "zumba"]
    assert conversion.splits == {
        "train": [Entry("train/abseiling/-3B32lodo2M_000059_000069", (0,), 300),
                  Entry("train/zumba/--07WQ2iBlw_000001_000011", (1,), 250)],
        "val": [Entry("val/zumba/0wR5jVB-WPk_000417_000427", (1,), 298)],
    }
    bad = write(tmp_path / "bad.txt", "train/abseiling/x 300\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 1: missing label"):
        parse_minikinetics(bad, val)


# -------------------------------------------------------------------------------- convert


def test_convert_writes_lists_and_reports_counts(tmp_path):
    p = write(tmp_path / "activity_net.v1-3.min.json", json.dumps(ANET))
    out = tmp_path / "anet"
    report = convert("activitynet", out, json_path=p)
    assert sorted(f.name for f in out.iterdir()) == ["classes.txt", "train.txt", "val.txt"]
    assert (out / "train.txt").read_text() == "v_sJFgo9H6zNo.mp4 1 2\n"
    assert (out / "val.txt").read_text() == "v_-V0tPbrCq5I.mp4 0\n"
    assert read_classes(out / "classes.txt") == ["Archery", "Long jump", "Zumba"]
    assert report.counts == {"train": 1, "val": 1}
    assert report.num_classes == 3
    assert report.skipped == {"test: no annotations": 1}
    assert report.summary().splitlines() == [
        f"activitynet -> {out} (video lists)",
        "  train.txt           1 videos",
        "  val.txt             1 videos",
        "  classes.txt         3 classes",
        "  skipped 1 (test: no annotations)",
    ]
    # files are not replaced unless asked
    with pytest.raises(FileExistsError, match=r"train.txt.*already exist.*overwrite=True"):
        convert("activitynet", out, json_path=p)
    convert("activitynet", out, json_path=p, overwrite=True)


def test_convert_rawframes_and_test_split(tmp_path):
    train = write(tmp_path / "train.csv", K400_TRAIN)
    test = write(tmp_path / "test.csv", "label,youtube_id,time_start,time_end,split\n"
                                        "zumba,t1,3,13,test\n")
    report = convert("kinetics400", tmp_path / "k", csv_paths=[train, test])
    assert report.counts == {"train": 3, "test": 1}
    assert read_list(tmp_path / "k" / "test.txt") == [Entry("test/t1_000003_000013.mp4", (2,))]

    frames = write(tmp_path / "mini.txt", "f/a 30 1\n")
    convert("minikinetics", tmp_path / "m", train_list=frames, val_list=frames)
    assert read_list(tmp_path / "m" / "val.txt", format="rawframes") == [Entry("f/a", (1,), 30)]


def test_convert_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'kinetics' \(did you mean "
                                         r"'kinetics400'\?\); choose one of kinetics400, "
                                         r"activitynet, sthv2, fcvid, minikinetics"):
        convert("kinetics", tmp_path, csv_paths=[])
    with pytest.raises(TypeError, match=r"convert\('activitynet', ...\): unexpected argument "
                                        r"'json' \(did you mean 'json_path'\?\); activitynet "
                                        r"takes json_path, path_template"):
        convert("activitynet", tmp_path, json="x.json")
    with pytest.raises(TypeError, match=r"missing a required argument: 'val_list'"):
        convert("fcvid", tmp_path, train_list="x.txt")


def test_entry_normalises_labels_to_a_tuple_of_ints():
    import numpy as np

    assert Entry("a.mp4", [np.int64(3), 1]) == Entry("a.mp4", (3, 1))
    assert type(Entry("a.mp4", [np.int64(3)]).labels[0]) is int
    with pytest.raises(TypeError, match="integer class indices; got 3 for 'a.mp4'"):
        Entry("a.mp4", 3)
    with pytest.raises(TypeError, match="integer class indices"):
        Entry("a.mp4", (1.0,))

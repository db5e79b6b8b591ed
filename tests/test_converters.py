"""Converters of the official annotations, on tiny files written in the published formats."""

import json
from pathlib import Path

import pytest

from reskd.data.converters import (
    DATASETS,
    NEEDS,
    PARSERS,
    convert,
    convert_sources,
    parse_activitynet,
    parse_fcvid,
    parse_kinetics400,
    parse_minikinetics,
    parse_sthv2,
)
from reskd.data.formats import Entry, read_classes, read_list


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


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


# ------------------------------------------------------------------------- convert_sources

# `vars(args)` of `reskd data convert` with nothing but the dataset given
NO_OPTIONS = {"dataset": None, "out": "lists", "overwrite": False, "csv": None, "json": None,
              "labels": None, "train": None, "val": None, "test": None, "classes": None,
              "label_base": 0, "format": None, "path_template": None}


def test_convert_sources_names_the_missing_options():
    with pytest.raises(ValueError, match=r"^reskd data convert sthv2 needs --labels, --val$"):
        convert_sources("sthv2", {**NO_OPTIONS, "train": "train.json"})
    with pytest.raises(ValueError, match=r"^reskd data convert kinetics400 needs --csv$"):
        convert_sources("kinetics400", {**NO_OPTIONS, "csv": []})  # empty --csv: not given
    with pytest.raises(ValueError, match=r"unknown dataset 'kinetics' \(did you mean "
                                         r"'kinetics400'\?\)"):
        convert_sources("kinetics", NO_OPTIONS)
    assert set(NEEDS) == set(PARSERS) == set(DATASETS)


def test_convert_sources_maps_options_to_convert_keywords():
    options = {**NO_OPTIONS, "train": "t.txt", "val": "v.txt", "classes": "classInd.txt",
               "label_base": 1, "format": "rawframes", "path_template": "x/{id}.mp4"}
    assert convert_sources("fcvid", options) == {
        "train_list": "t.txt", "val_list": "v.txt", "classes_path": "classInd.txt",
        "label_base": 1, "format": "rawframes", "path_template": "x/{id}.mp4"}
    # options a dataset does not take are dropped, options not given are left to the defaults
    assert convert_sources("kinetics400", {**NO_OPTIONS, "csv": ["a.csv"], "format": "video"}) \
        == {"csv_paths": ["a.csv"]}
    assert convert_sources("sthv2", {**NO_OPTIONS, "labels": "l.json", "train": "t.json",
                                     "val": "v.json", "test": "x.json"}) == {
        "labels_json": "l.json", "train_json": "t.json", "val_json": "v.json",
        "test_json": "x.json"}


def test_convert_sources_feeds_convert(tmp_path):
    p = write(tmp_path / "activity_net.v1-3.min.json", json.dumps(ANET))
    options = {**NO_OPTIONS, "json": str(p), "path_template": "{split}/v_{video_id}.mkv"}
    report = convert("activitynet", tmp_path / "anet", **convert_sources("activitynet", options))
    assert report.counts == {"train": 1, "val": 1}
    assert (tmp_path / "anet" / "val.txt").read_text() == "val/v_-V0tPbrCq5I.mkv 0\n"

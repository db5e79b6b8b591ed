"""`reskd data convert` end to end on an ActivityNet v1.3-format fixture."""

import json
import subprocess
import sys


def test_convert_activitynet(tmp_path):
    db = {"database": {
        "abc": {"subset": "training", "duration": 10.0, "url": "",
                "annotations": [{"label": "Surfing", "segment": [0, 3]},
                                {"label": "Diving", "segment": [4, 6]}]},
        "xyz": {"subset": "validation", "duration": 9.0, "url": "",
                "annotations": [{"label": "Surfing", "segment": [1, 2]}]},
        "tst": {"subset": "testing", "duration": 5.0, "url": "", "annotations": []}},
        "taxonomy": [], "version": "VERSION 1.3"}
    src = tmp_path / "anet.json"
    src.write_text(json.dumps(db))
    out = tmp_path / "lists"
    proc = subprocess.run([sys.executable, "-m", "reskd", "data", "convert", "activitynet",
                           "--json", str(src), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "classes.txt").read_text().split() == ["Diving", "Surfing"]
    assert (out / "train.txt").read_text().split() == ["v_abc.mp4", "0", "1"]
    assert (out / "val.txt").read_text().split() == ["v_xyz.mp4", "1"]
    assert "skipped 1" in proc.stdout
    again = subprocess.run([sys.executable, "-m", "reskd", "data", "convert", "activitynet",
                            "--json", str(src), "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "already exist" in again.stderr

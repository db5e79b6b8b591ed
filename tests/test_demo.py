"""`reskd demo --quick`: the README's main job, end to end through the real CLI."""

import json
import subprocess
import sys


def test_quick_demo_writes_results_report_and_checkpoints(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "reskd", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    for name, size in (("teacher", 64), ("baseline", 32), ("reskd", 32)):
        r = results[name]
        assert isinstance(r["top1"], float) and 0 <= r["top1"] <= 100
        assert isinstance(r["gmacs"], float) and r["size"] == size
        assert (out / name / "model.pt").is_file()
    # the students cost a quarter of the teacher (input 32 vs 64 px, same network)
    assert abs(results["teacher"]["gmacs"] / results["reskd"]["gmacs"] - 4) < 0.1
    # both students are trained and tested on the teacher's 64 px crop shrunk to 32 px: the
    # baseline differs from the ResKD student only in the KD
    from reskd.checkpoint import load_checkpoint

    views = {name: load_checkpoint(out / name / "model.pt")["views"] for name in results
             if name in ("teacher", "baseline", "reskd")}
    assert views["baseline"] == views["reskd"]
    assert (views["reskd"]["size"], views["reskd"]["crop_size"]) == (32, 64)
    assert views["teacher"]["crop_size"] == 64
    report = (out / "report.md").read_text()
    assert "ResKD student" in report and "GMACs" in report
    # the report's table is `reskd compare`'s, rows labelled by what differs in their configs
    assert "| teacher | data.size=64 |" in report and "| baseline | data.size=32 |" in report
    assert "| reskd | data.size=32, distill.teacher=teacher |" in report
    assert (out / "compare.png").stat().st_size > 10_000
    # validated every epoch: the curves have a point per epoch
    records = [json.loads(x) for x in (out / "reskd" / "metrics.jsonl").read_text().splitlines()]
    assert ["val" in r for r in records] == [True, True]
    speed = json.loads((out / "reskd" / "speed.json").read_text())
    assert speed["videos_per_s"] == results["reskd"]["videos_per_s"]

"""bench/gpu_check.py --smoke --json on CPU, imported as on the GPU machine (torch, torchvision,
numpy and pyyaml only): every section is there, every figure carries dtype, batch and shape,
and the precision comparison ran and passed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Packages the GPU machine does not have: importing any of them fails here as it would there.
ABSENT = ("av", "tqdm", "onnx", "onnxruntime", "matplotlib", "tensorboard", "scipy", "pandas")
RUN = (f"import runpy, sys; sys.modules.update(dict.fromkeys({ABSENT!r})); "
       "sys.argv = ['bench/gpu_check.py', '--smoke', '--json']; "
       "sys.exit(runpy.run_path('bench/gpu_check.py', run_name='gpu_check')['main']())")


def test_smoke_run_reports_every_section():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", RUN], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    assert report["smoke"] is True and report["ok"] is True
    assert {"machine", "inference", "kd_step", "data_path", "elapsed_s"} <= set(report)
    assert report["machine"]["device"].startswith("cpu")
    assert any("tqdm" in note for note in report["notes"])  # the stub stood in, as it may there

    rows = report["inference"]["rows"]
    assert {r["size"] for r in rows} == {64, 32, 16}
    for r in rows:
        assert r["videos_per_s"] > 0 and r["vs_paper_v100"] > 0
        assert r["dtype"] in ("fp32", "bf16") and r["batch"] == 2 and r["shape"][:2] == [2, 2]
    assert len(report["inference"]["speedups"]) == 2 * len({r["mode"] for r in rows})

    kd = report["kd_step"]
    assert kd["shape"] == {"teacher": [2, 2, 3, 64, 64], "student": [2, 2, 3, 32, 32]}
    reference = kd["reference"]["parts"]
    assert all(math.isfinite(reference[k]) and reference[k] > 0
               for k in ("loss", "ce", "feature_kd"))
    assert set(kd["comparison"]) == {"bf16", "fp16", "fp32"}
    for name, c in kd["comparison"].items():
        assert c["ok"] and c["rtol"] == report["rtol"][name]
        assert set(c["rel_diff"]) == {"loss", "ce", "feature_kd"}
        assert all(0 <= d <= c["rtol"] for d in c["rel_diff"].values())
    # the half precisions really ran in half precision: their losses are not fp32's bits
    assert kd["comparison"]["bf16"]["rel_diff"]["loss"] > 0
    assert set(kd["timing"]) == {"bf16", "fp16", "fp32"}
    for t in kd["timing"].values():
        assert t["step_s"] > 0 and t["batch"] == 2 and t["shape"] == kd["shape"]

    data = report["data_path"]
    assert data["clips"] == {"dtype": "uint8", "shape": [2, 2, 64, 64, 3], "pinned": False,
                             "mib": 2 * 2 * 64 * 64 * 3 / 2**20}
    assert set(data["ms_per_batch"]) == {"copy", "views", "step", "views+step"}
    assert data["cpu_path_max_abs_diff"] < 1e-5  # the device views are the CPU path's numbers
    assert data["step_consumes_videos_per_s"] > 0

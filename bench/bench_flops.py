"""Reproduce the paper's GFLOPs cells with reskd.efficiency.flops.count_macs.

Run: .venv/bin/python bench/bench_flops.py
Prints counted GMACs per video (times test views), the paper's value and the ratio for every
cell, plus the machine facts, and exits 1 if any ratio is out of tolerance. Models are built on
the meta device: counts depend on shapes only, so they are exact and take well under a second.
"""

from __future__ import annotations

import os
import platform
import sys

import torch
import torchvision

from reskd.efficiency.flops import count_macs
from reskd.models import build_model


def main() -> int:
    # (name, builder, input shape for one view, views, size, paper GMACs, relative tolerance)
    cells = [
        (f"TSN-R50 16f {s}", lambda: torchvision.models.resnet50(weights=None, num_classes=200),
         (16, 3, s, s), 1, paper, 0.005)
        for s, paper in [(224, 65.9), (144, 28.3), (112, 17.4), (96, 12.1), (72, 8.3), (56, 4.8)]
    ]
    cells += [
        (f"SlowOnly-R50 8x8 {s} x30", lambda: build_model("slowonly_r50", num_classes=400),
         (1, 8, 3, s, s), 30, paper, 0.005)
        for s, paper in [(224, 1260.0), (112, 332.0)]
    ]
    cells += [
        (f"Swin-S 32f {s} x12",
         lambda: torchvision.models.video.swin3d_s(weights=None, num_classes=400),
         (1, 3, 32, s, s), 12, paper, 0.01)
        for s, paper in [(224, 1639.0), (112, 421.0)]
    ]

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"python {platform.python_version()}, cpu_count {os.cpu_count()}, "
          f"threads {torch.get_num_threads()}, device meta, dtype float32, batch 1 video")
    header = f"{'cell':<26}{'input (one view)':<22}{'gmacs':>10}{'paper':>9}{'ratio':>8}{'tol':>7}"
    header += f"{'+matmul':>10}{'params_m':>10}"
    print(header)
    failures = 0
    for name, build, shape, views, paper, tol in cells:
        with torch.device("meta"):
            model = build()
            x = torch.empty(shape)
        count = count_macs(model, x)
        gmacs = count.gmacs * views
        ratio = gmacs / paper
        ok = abs(ratio - 1) <= tol
        failures += not ok
        print(f"{name:<26}{str(shape):<22}{gmacs:>10.2f}{paper:>9.1f}{ratio:>8.4f}"
              f"{tol:>7.1%}{count.gmacs_with_matmul * views:>10.1f}{count.params_m:>10.2f}"
              f"{'' if ok else '  OUT OF TOLERANCE'}")
    print(f"{len(cells) - failures}/{len(cells)} cells within tolerance")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

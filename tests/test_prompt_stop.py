"""SIGTERM and Ctrl-C during data preparation stop within a second or two, with a clear message
and an exit status of 143 / 130, and leave nothing half-written that looks complete.

Each test starts a real `reskd` command on enough real videos to keep it busy for a while,
signals it once it is working, and times how long it takes to exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import numbered_frames, write_video

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
LIMIT_S = 3.0  # from the signal to the stop message (the target is a second or two; a busy CI adds)


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "reskd", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def has_workers(proc: subprocess.Popen) -> bool:
    """Whether `proc` has started Python child processes (its worker pool), on Linux. Other
    children are not workers: importing torch may briefly run a helper program (ldconfig),
    and a signal sent then would land before reskd's handlers are installed."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if not children.is_file():
        return False
    for pid in children.read_text().split():
        try:
            if b"python" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:  # gone already
            continue
    return False


def signal_when(proc: subprocess.Popen, ready, sig: int,
                timeout: float = 60.0) -> tuple[float, str]:
    """Waits until `ready()` (the command is working), sends `sig`, returns (seconds from the
    signal to reskd's "stopped by" line, stderr). The process must exit within 30 s of the
    signal (what follows the line is the interpreter's teardown, torch's included, which takes
    seconds on a loaded machine)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"exited before the signal: {proc.communicate()}"
        assert time.monotonic() < deadline, "never got to work"
        time.sleep(0.05)
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(sig)
    lines, stopped = [], None
    for line in proc.stderr:  # until the process closes stderr
        lines.append(line)
        if stopped is None and "stopped by" in line:
            stopped = time.monotonic() - sent
    try:
        proc.wait(timeout=max(1.0, 30 - (time.monotonic() - sent)))
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("still running 30 s after the signal") from None
    return (stopped if stopped is not None else float("inf")), "".join(lines)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> tuple[Path, Path]:
    """(root, list): 300 entries, each a 150-frame 96x128 video (hard links of 3 files)."""
    root = tmp_path_factory.mktemp("busy")
    for k in range(3):
        write_video(root / f"v{k}.mp4", numbered_frames(150, 96, 128, seed=k), codec="libx264")
    lines = []
    for i in range(300):
        os.link(root / f"v{i % 3}.mp4", root / f"e{i:03d}.mp4")
        lines.append(f"e{i:03d}.mp4 {i % 3}")
    (root / "list.txt").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("a\nb\nc\n")
    return root, root / "list.txt"


def test_sigint_stops_data_check_and_writes_no_report(videos, tmp_path):
    root, lst = videos
    out = tmp_path / "bad.txt"
    proc = start("data", "check", str(lst), "--workers", "2", "--out", str(out))
    seconds, err = signal_when(proc, lambda: has_workers(proc), signal.SIGINT)
    assert proc.returncode == 130, err
    assert seconds < LIMIT_S, (seconds, err)
    assert "stopped by SIGINT while checking 300 entries" in err and "no report" in err, err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_sigterm_stops_synthesis_and_leaves_no_dataset(tmp_path):
    out = tmp_path / "synth"
    proc = start("data", "synth", "--out", str(out), "--num-train", "4000", "--num-val", "10")
    seconds, err = signal_when(proc, lambda: any(tmp_path.glob(".synth.partial-*")),
                               signal.SIGTERM)
    assert proc.returncode == 143, err
    assert seconds < LIMIT_S, (seconds, err)
    assert "stopped by SIGTERM while writing the synth dataset" in err, err
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor its temp folder


def test_sigterm_stops_prepare_keeping_only_finished_copies(videos, tmp_path):
    root, lst = videos
    out = tmp_path / "prepared"
    proc = start("data", "prepare", str(lst), "--root", str(root), "--out", str(out),
                 "--short-side", "64", "--workers", "2")
    def finished() -> list[Path]:  # a hidden .NAME.partial.mp4 is being written
        return sorted(p for p in out.glob("videos/*.mp4") if not p.name.startswith("."))

    seconds, err = signal_when(proc, lambda: len(finished()) >= 2, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert seconds < LIMIT_S, (seconds, err)
    assert "stopped by SIGTERM while re-encoding 300 videos" in err, err
    assert not (out / "list.txt").exists()  # the list comes last
    from reskd.data.decoders import decode_video

    assert 2 <= len(finished()) < 300
    for path in finished():  # each one complete: every frame decodes
        frames, _ = decode_video(path, np.arange)
        assert frames.shape == (150, 64, 86, 3)  # 85.33 rounds to 85, then even


def test_sigterm_stops_filling_the_decode_cache(videos, tmp_path):
    root, lst = videos
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  root: {root}\n  train_list: list.txt\n  classes: classes.txt\n"
                      "  cache_decoded: true\n  num_segments: 2\n  size: 32\n  workers: 0\n"
                      "model:\n  arch: resnet\n  block: basic\n  layers: [1, 1, 1, 1]\n"
                      "  widths: [8, 8, 16, 16]\n  stem: small\n"
                      f"runtime:\n  out: {tmp_path / 'run'}\n  progress: false\n")
    proc = start("train", str(config))
    seconds, err = signal_when(proc, lambda: (tmp_path / "run" / "config.yaml").exists(),
                               signal.SIGTERM)
    assert proc.returncode == 143, err
    assert seconds < LIMIT_S, (seconds, err)
    assert "stopped by SIGTERM while decoding videos into memory" in err, err
    assert not list((tmp_path / "run").glob("checkpoint*"))

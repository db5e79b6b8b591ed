"""Integration: `reskd convert` both ways and `reskd distill` from imported teachers (an
mmaction2 checkpoint; torchvision weights by name, read from a local hub cache), on tiny real
MP4 files, through the real CLI (in this process: a subprocess adds seconds of start-up per
call)."""

from __future__ import annotations

from pathlib import Path

import torch

from conftest import numbered_frames, sets, write_video
from test_imports import cache_weights
from test_mmaction2_parity import CLIPS, SEGMENTS, fixture, mm_state, save_mm

TINY = ["data.num_segments=4", "data.short_side_ratio=1.0", "data.crop_scales=[1.0]",
        "data.batch_size=2", "data.workers=0", "optim.epochs=1", "runtime.progress=false",
        "runtime.precision=fp32", "runtime.tensorboard=false"]


class Run:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def reskd(capsys, *args: str, ok: bool = True) -> Run:
    """The real CLI (argument parsing, commands, error reporting), in this process."""
    from reskd.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    if ok and code != 0:
        raise AssertionError(f"reskd {' '.join(args)} failed:\n{out}\n{err}")
    return Run(code, out, err)


def tiny_dataset(root: Path, classes: list[str], labels: list[int]) -> Path:
    """Videos of 8 frames at 64 x 64, one per label; returns a config naming them."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, label in enumerate(labels):
        write_video(root / f"v{i}.mp4", numbered_frames(8, 64, 64, seed=i))
        lines.append(f"v{i}.mp4 {label}")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    config = root / "data.yaml"
    config.write_text(f"data:\n  root: {root}\n  train_list: train.txt\n  classes: classes.txt\n")
    return config


def test_convert_an_mmaction2_checkpoint_and_back(tmp_path, capsys):
    from reskd.models import load_model_checkpoint

    original = mm_state("tsm_r18")
    source = save_mm(tmp_path / "tsm.pth", original)
    out = tmp_path / "tsm" / "model.pt"
    proc = reskd(capsys, "convert", source, str(out),
                 *sets(f"data.num_segments={SEGMENTS}", "model.num_classes=5", "data.size=64"))
    lines = proc.stdout.splitlines()
    assert "backbone.layer1.0.conv1.conv.net.weight -> backbone.layer1.0.conv1.weight " \
           "(64, 64, 3, 3)" in lines
    assert sum(" -> " in line for line in lines) == len(original)  # every key reported
    model, ckpt = load_model_checkpoint(out)
    assert ckpt["model_kwargs"]["arch"] == "tsm_resnet18" and ckpt["size"] == 64
    assert ckpt["frames"] == SEGMENTS and ckpt["gmacs"] > 0
    with torch.no_grad():
        assert (model(CLIPS) - fixture("tsm_r18")["logits"]).abs().max() <= 1e-5
    flops = reskd(capsys, "flops", "--checkpoint", str(out))
    assert "tsm_resnet18" in flops.stdout

    back = tmp_path / "back.pth"
    proc = reskd(capsys, "convert", str(out), str(back))
    assert "type='ResNetTSM', depth=18" in proc.stdout and "num_segments=4" in proc.stdout
    payload = torch.load(back, weights_only=True)
    assert sorted(payload["state_dict"]) == sorted(original)
    assert all(torch.equal(payload["state_dict"][k], v) for k, v in original.items())
    assert payload["meta"]["dataset_meta"]["classes"] == [str(i) for i in range(5)]


def test_convert_names_every_key_it_cannot_map(tmp_path, capsys):
    state = {**mm_state("tsn_r18"), "backbone.layer4.1.nonlocal_block.g.conv.weight":
             torch.zeros(2, 2, 1, 1)}
    proc = reskd(capsys, "convert", save_mm(tmp_path / "x.pth", state), str(tmp_path / "m.pt"),
                 ok=False)
    assert proc.returncode == 2
    assert "backbone.layer4.1.nonlocal_block.g.conv.weight" in proc.stderr
    assert "no reskd counterpart" in proc.stderr


def test_distill_from_an_mmaction2_teacher(tmp_path, capsys):
    config = tiny_dataset(tmp_path / "data", [f"class{i}" for i in range(5)], [0, 1, 2, 3])
    teacher = save_mm(tmp_path / "tsn_r18.pth", mm_state("tsn_r18"))
    out = tmp_path / "run"
    proc = reskd(capsys, "distill", str(config),
                 *sets(*TINY, "model.arch=resnet18", "data.size=32", f"distill.teacher={teacher}",
                       f"runtime.out={out}"))
    assert (out / "model.pt").is_file()
    # mmaction2 checkpoints do not record their input size: assumed 224, with a note
    assert "assuming 224 px" in proc.stdout + proc.stderr


def test_distill_from_a_torchvision_teacher_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    _, weights = cache_weights("R3D_18_Weights.KINETICS400_V1")  # in the local hub cache
    kinetics = list(weights.meta["categories"])
    config = tiny_dataset(tmp_path / "data", [c.replace(" ", "_") for c in kinetics], [0, 7])
    out = tmp_path / "run"
    proc = reskd(capsys, "distill", str(config),
                 *sets(*TINY, "model.arch=r3d_18", "data.size=56",
                       "distill.teacher=torchvision:R3D_18_Weights.KINETICS400_V1",
                       f"runtime.out={out}"))
    log = proc.stdout + proc.stderr
    assert "from a 112px teacher" in log  # the weights' own crop size
    assert "renormalised" in log and "clips of 16 frames" in log
    assert (out / "model.pt").is_file()
    # a dataset whose classes are not the teacher's is an error naming both
    (tmp_path / "data" / "classes.txt").write_text(
        "\n".join(["not_a_kinetics_class", *kinetics[1:]]) + "\n")
    proc = reskd(capsys, "distill", str(config),
                 *sets(*TINY, "model.arch=r3d_18", "data.size=56",
                       "distill.teacher=torchvision:R3D_18_Weights.KINETICS400_V1",
                       f"runtime.out={tmp_path / 'run2'}"), ok=False)
    assert (proc.returncode == 2
            and "label 0: teacher 'abseiling', dataset 'not_a_kinetics_class'" in proc.stderr)

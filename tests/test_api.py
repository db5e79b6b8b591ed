"""The public Python API (`reskd.__all__`): its names, its defaults (the config's), and each
object doing what the CLI does with it; the examples run end to end on real video files."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import reskd
from reskd.config import DataConfig, DistillConfig, ModelConfig
from reskd.data import transforms as T
from reskd.distill.distiller import KDWeights, distill_loss
from reskd.models import build_model

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"Distiller", "Preprocessing", "Sampling", "Views", "build_model", "gmacs",
          "load_model", "read_video", "save_student"}
TINY = dict(widths=(8, 16, 32, 64), stem="small", num_segments=2)


def tiny(num_classes: int = 3) -> torch.nn.Module:
    return reskd.build_model("resnet", num_classes=num_classes, **TINY)


def crops(n: int = 2, t: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, t, 3, size, size), generator=g, dtype=torch.uint8)


def test_the_public_names_are_all_there_and_documented():
    assert set(reskd.__all__) == PUBLIC, "a public name was added or removed: update PUBLIC"
    for name in reskd.__all__:
        obj = getattr(reskd, name)
        assert inspect.getdoc(obj), f"reskd.{name} has no docstring"
    assert reskd.__version__ != "0+unknown"


def test_the_api_defaults_are_the_configs():
    data, kd = DataConfig(), DistillConfig()
    views = reskd.Views(student_size=112)
    assert (views.crop_size, views.shrink, views.short_side_ratio, views.test_short_side_ratio,
            views.crop, views.scales, views.crop_positions, views.crop_area, views.crop_aspect,
            views.flip, views.mean, views.std, views.downsample_to) == (
        data.crop_size, data.shrink, data.short_side_ratio, data.test_short_side_ratio,
        data.crop, data.crop_scales, data.crop_positions, data.crop_area, data.crop_aspect,
        data.flip, data.mean, data.std, data.downsample_to)
    sampling = reskd.Sampling()
    assert (sampling.num_segments, sampling.clip_len, sampling.frame_interval) == (
        data.num_segments, data.clip_len, data.frame_interval)
    w = reskd.Distiller(tiny(), tiny()).weights
    assert (w.feature, w.clip, w.frame, w.pixel_logit, w.temperature, w.pixel_logit_reduction,
            w.sizes_per_step) == (kd.alpha, kd.clip_kd, kd.frame_kd, kd.pixel_logit_kd,
                                  kd.temperature, kd.pixel_logit_reduction, kd.sizes_per_step)
    assert KDWeights() == w
    distiller = inspect.signature(reskd.Distiller).parameters
    assert distiller["teacher_bn"].default == kd.teacher_bn
    model, built = ModelConfig(), inspect.signature(build_model).parameters
    for name, param in built.items():
        if hasattr(model, name) and name not in ("arch", "num_classes"):
            assert param.default == getattr(model, name), name
    assert built["num_segments"].default == data.num_segments


def test_views_are_the_cli_recipe_on_any_batch():
    views = reskd.Views(teacher_size=64, student_size=32)
    clips = crops()
    teacher_view, student_view = views(clips)
    assert teacher_view.shape == (2, 2, 3, 64, 64) and student_view.shape == (2, 2, 3, 32, 32)
    direct = T.crop_views(clips, (64, 32), mean=views.mean, std=views.std, shrink_filter="bilinear")
    assert torch.equal(teacher_view, direct[0]) and torch.equal(student_view, direct[1])
    assert abs(teacher_view.mean().item()) < 1  # normalised once, not twice
    one_t, one_s = views(clips[0])  # one clip (T, C, H, W) is the same numbers
    assert torch.equal(one_s, student_view[0]) and torch.equal(one_t, teacher_view[0])
    # a crop of another side is resized to the crop size first, as the training crop is
    bigger_t, _ = views(crops(size=80))
    assert bigger_t.shape[-1] == 64
    alone = reskd.Views(student_size=32)
    assert alone(crops(size=32))[0] is None


@pytest.mark.parametrize("bad, error, match", [
    (lambda v: v(crops().float() / 255), TypeError, "expects uint8 pixels"),
    (lambda v: v(crops().permute(0, 1, 3, 4, 2).contiguous()), ValueError, r"\(N, T, C, H, W\)"),
    (lambda v: reskd.Views(teacher_size=32, student_size=64), ValueError, "below the student"),
    (lambda v: reskd.Views(student_size=32, mean=(124, 116, 104)), ValueError, r"\[0, 1\] units"),
    (lambda v: reskd.Views(student_size=32, shrink="nearest"), ValueError, "bilinear, antialias"),
])
def test_views_refuse_what_they_would_get_wrong(bad, error, match):
    with pytest.raises(error, match=match):
        bad(reskd.Views(teacher_size=64, student_size=32))


def test_views_from_checkpoint_are_the_recorded_recipe(tmp_path):
    views = reskd.Views(teacher_size=64, student_size=32, shrink="antialias",
                        short_side_ratio=1.0)
    path = reskd.save_student(tiny(), tmp_path / "s.pt", views=views, classes=3, frames=2)
    again = reskd.Views.from_checkpoint(path)
    assert (again.student_size, again.crop_size, again.shrink, again.short_side_ratio) == (
        32, 64, "antialias", 1.0)
    assert reskd.Views.from_checkpoint(path, teacher_size=64).sizes == (64, 32)


def test_distiller_freezes_the_teacher_and_returns_the_loss_parts():
    teacher, student = tiny(), tiny()
    distiller = reskd.Distiller(teacher, student, feature=100.0, clip=1.0)
    assert not any(p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in student.parameters())
    distiller.eval()
    distiller.train()  # the student's mode; the teacher keeps eval + BatchNorm in train mode
    assert student.training and not teacher.training
    assert all(m.training for m in teacher.modules() if isinstance(m, torch.nn.BatchNorm2d))
    teacher_view, student_view = reskd.Views(teacher_size=64, student_size=32)(crops())
    labels = torch.tensor([0, 2])
    torch.manual_seed(0)  # the same dropout masks for both calls
    parts = distiller(teacher_view, student_view, labels)
    assert {"loss", "ce", "kd", "feature_kd", "clip_kd", "logits"} <= set(parts)
    assert parts["loss"].item() == pytest.approx(
        parts["ce"].item() + 100 * parts["feature_kd"].item() + parts["clip_kd"].item(), rel=1e-5)
    parts["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None for p in student.parameters())
    torch.manual_seed(0)
    same = distill_loss(student, teacher, student_view, teacher_view, labels,
                        weights=distiller.weights)  # the CLI's function: the same numbers
    assert same["loss"].item() == pytest.approx(parts["loss"].item(), rel=1e-6)


def test_distiller_names_what_a_model_lacks():
    with pytest.raises(TypeError, match="features, head"):
        reskd.Distiller(torchvision.models.resnet18(), tiny())
    with pytest.raises(ValueError, match="temperature"):
        reskd.Distiller(tiny(), tiny(), temperature=0)


def test_save_student_makes_a_model_that_load_model_reloads(tmp_path):
    student = tiny(num_classes=3).eval()
    views = reskd.Views(teacher_size=64, student_size=32)
    path = reskd.save_student(student, tmp_path / "model.pt", views=views,
                              classes=["a", "b", "c"], frames=2)
    again = reskd.load_model(path)
    pre = again.preprocessing
    assert (pre.size, pre.frames, pre.classes) == (32, 2, ("a", "b", "c"))
    x = views(crops())[1]
    with torch.no_grad():
        assert torch.equal(again(x), student(x))
    assert reskd.gmacs(again, size=32, frames=2) == pytest.approx(
        reskd.gmacs(student, size=32, frames=2))
    with pytest.raises(TypeError, match="reskd.build_model"):
        reskd.save_student(torchvision.models.resnet18(), tmp_path / "x.pt", views=views,
                           classes=3)
    with pytest.raises(ValueError, match="2 classes given, the model has 3"):
        reskd.save_student(student, tmp_path / "x.pt", views=views, classes=["a", "b"])


def test_load_model_reads_torchvision_weights_files_with_their_preprocessing(tmp_path):
    path = tmp_path / "r3d.pth"
    torch.save(torchvision.models.video.r3d_18(num_classes=400).state_dict(), path)
    model = reskd.load_model(path)
    pre = model.preprocessing
    assert model.build_options["arch"] == "r3d_18" and pre.size == 112 and len(pre.classes) == 400
    assert pre.mean == pytest.approx((0.43216, 0.394666, 0.37645), abs=1e-4)
    with pytest.raises(ValueError, match="leave size out"):
        reskd.load_model(path, size=64)


def test_read_video_takes_indices_or_a_sampling(tmp_path):
    from conftest import numbered_frames, write_video

    frames = numbered_frames(10, 16, 16)
    path = write_video(tmp_path / "v.mp4", frames)
    assert np.array_equal(reskd.read_video(path, [0, 3, 9]), frames[[0, 3, 9]])
    assert np.array_equal(reskd.read_video(path), frames)
    sampling = reskd.Sampling(num_segments=2)
    got = reskd.read_video(path, lambda n: sampling.test_indices(n, 1))
    assert np.array_equal(got, frames[sampling.test_indices(10, 1)])


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder of `reskd data synth`, a teacher model.pt for its 10 classes at 64 px)."""
    root = tmp_path_factory.mktemp("api")
    data = root / "data"
    subprocess.run([sys.executable, "-m", "reskd", "data", "synth", "--out", str(data),
                    "--num-train", "16", "--num-val", "8", "--frames", "2"], check=True,
                   capture_output=True)
    classes = (data / "classes.txt").read_text().split()
    teacher = reskd.save_student(reskd.build_model("resnet", num_classes=10, **TINY),
                                 root / "teacher.pt", views=reskd.Views(student_size=64),
                                 classes=classes, frames=2)
    return data, teacher


@pytest.mark.parametrize("example", [
    "own_loop.py", pytest.param("lightning_module.py", marks=pytest.mark.slow)])
def test_the_examples_distil_a_student_the_cli_takes(example, tiny_data, tmp_path):
    data, teacher = tiny_data
    out = tmp_path / "student.pt"
    run = subprocess.run([sys.executable, str(ROOT / "examples" / example), "--data", str(data),
                          "--teacher", str(teacher), "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"saved {out}" in run.stdout
    student = reskd.load_model(out)
    assert student.preprocessing.size == 32 and student.preprocessing.frames == 2
    config = tmp_path / "data.yaml"
    config.write_text(f"data:\n  root: {data}\n  val_list: val.txt\n  classes: classes.txt\n")
    cli = [sys.executable, "-m", "reskd"]
    test = subprocess.run([*cli, "test", str(config), "--checkpoint", str(out), "--json"],
                          capture_output=True, text=True, check=True)
    result = json.loads(test.stdout[test.stdout.index("{"):])
    assert result["num_videos"] == 8 and result["size"] == 32 and result["failed"] == []
    video = data / (data / "val.txt").read_text().split()[0]
    predict = subprocess.run([*cli, "predict", "--checkpoint", str(out), "--json", str(video)],
                             capture_output=True, text=True, check=True)
    assert json.loads(predict.stdout[predict.stdout.index("["):])[0]["top"]
    flops = subprocess.run([*cli, "flops", "--checkpoint", str(out), "--json"],
                           capture_output=True, text=True, check=True)
    assert json.loads(flops.stdout)["gmacs_per_video"] == pytest.approx(
        reskd.gmacs(student, size=32, frames=2), rel=1e-3)
    if example == "lightning_module.py":  # (slow) ONNX export with its parity check, once
        export = subprocess.run([*cli, "export", "--checkpoint", str(out), "--out",
                                 str(tmp_path / "student.onnx")], capture_output=True, text=True,
                                check=True)
        assert json.loads(export.stdout)["max_abs_diff"] < 1e-4


def test_examples_stay_short_and_use_only_the_public_api():
    loop = (ROOT / "examples" / "own_loop.py").read_text()
    assert len(loop.splitlines()) < 60
    for name in ("own_loop.py", "lightning_module.py"):
        text = (ROOT / "examples" / name).read_text()
        assert "reskd.engine" not in text and "from reskd." not in text, name

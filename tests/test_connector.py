"""Cross-family feature KD: the learned connector (distill.connector=conv) between a student
map and a teacher map of other channels or time steps, trained with the student and never
saved with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import reskd
from conftest import sets, write_data_config
from reskd.distill.distiller import Connector

TINY = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]", "model.stem=small",
        "data.num_segments=2", "data.short_side_ratio=1.0", "data.crop_scales=[1.0,0.875]",
        "data.batch_size=8", "data.workers=0", "optim.optimizer=adamw", "optim.lr=0.002",
        "optim.epochs=2", "runtime.progress=false"]
NARROW, WIDE = "model.widths=[8,8,16,16]", "model.widths=[16,16,32,32]"


def reskd_cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "reskd", *args], capture_output=True, text=True,
                          timeout=600)
    if ok and proc.returncode != 0:
        raise AssertionError(f"reskd {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_the_connector_maps_channels_and_resamples_time():
    connector = Connector(16, 48)
    f = torch.randn(2, 4, 16, 3, 3)  # (N, T', C, h, w)
    assert connector(f, 4).shape == (2, 4, 48, 3, 3)
    halved = connector(f, 2)  # a tubelet-2 teacher: half the time steps
    assert halved.shape == (2, 2, 48, 3, 3)
    same = connector(f, 4)  # linear resampling to half the steps averages neighbouring pairs
    assert torch.allclose(halved, (same[:, 0::2] + same[:, 1::2]) / 2, atol=1e-5)


def test_a_distiller_with_a_connector_trains_it_and_saves_the_plain_student(tmp_path):
    teacher = reskd.build_model("resnet", num_classes=3, widths=(16, 32, 64, 128), stem="small",
                                num_segments=2)
    student = reskd.build_model("resnet", num_classes=3, widths=(8, 16, 32, 64), stem="small",
                                num_segments=2)
    views = reskd.Views(teacher_size=64, student_size=32)
    teacher_view, student_view = views(torch.randint(0, 256, (2, 2, 3, 64, 64),
                                                     dtype=torch.uint8))
    labels = torch.tensor([0, 2])
    with pytest.raises(ValueError, match="distill.connector=conv"):
        reskd.Distiller(teacher, student)(teacher_view, student_view, labels)
    distiller = reskd.Distiller(teacher, student, connector="conv")
    optimizer = torch.optim.SGD(distiller.trainable_parameters(), lr=0.1)
    before = distiller.connector.proj.weight.detach().clone()
    parts = distiller(teacher_view, student_view, labels)
    assert parts["feature_kd"] > 0
    parts["loss"].backward()
    optimizer.step()
    assert not torch.equal(distiller.connector.proj.weight, before)
    path = reskd.save_student(distiller.student, tmp_path / "s.pt", views=views, classes=3,
                              frames=2)
    saved = torch.load(path, weights_only=True)["model"]
    assert not any("proj" in k or "connector" in k for k in saved)
    assert reskd.load_model(path).preprocessing.size == 32


@pytest.mark.slow
def test_distill_from_a_wider_teacher_with_a_connector(tmp_path):
    from reskd.data.synth import make_synth_dataset

    data = make_synth_dataset(tmp_path / "data", seed=1, num_train=32, num_val=16, workers=1)
    config = write_data_config(tmp_path / "tiny.yaml", Path(data["root"]))
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    reskd_cli("train", str(config), *sets(*TINY, WIDE, "data.size=64", f"runtime.out={teacher}"))
    distil = [*TINY, NARROW, "data.size=32", "data.crop_size=64", f"runtime.out={student}",
              f"distill.teacher={teacher / 'model.pt'}"]
    refused = reskd_cli("distill", str(config), *sets(*distil), ok=False)
    assert refused.returncode != 0 and "distill.connector=conv" in refused.stderr
    reskd_cli("distill", str(config), *sets(*distil, "distill.connector=conv"))
    state = torch.load(student / "checkpoint.pt", weights_only=True)
    assert set(state["connector"]) == {"proj.weight", "proj.bias"}
    model = torch.load(student / "model.pt", weights_only=True)
    assert "connector" not in model
    plain = reskd.build_model("resnet", num_classes=10, layers=(1, 1, 1, 1), widths=(8, 8, 16, 16),
                              stem="small", num_segments=2)
    plain.load_state_dict(model["model"])  # exactly the plain student's weights, nothing more
    resumed = reskd_cli("distill", str(config), *sets(*distil, "distill.connector=conv",
                                                      "optim.epochs=3"), "--resume")
    assert "epoch 3" in resumed.stdout + resumed.stderr


@pytest.mark.slow
def test_the_worked_path_videomae_teacher_to_a_cnn_student_and_onnx(tmp_path):
    """docs/cross-family.md on a tiny scale: a VideoMAE teacher folder (hidden 32, T' = T/2)
    -> a ResNet student (16 channels, T' = T) by feature KD through the connector, exported
    to ONNX with its parity check; and a VideoMAE student from that folder on the command
    line (model.arch=hf), tested after the folder is gone."""
    transformers = pytest.importorskip("transformers")
    import json
    import shutil

    from reskd.data.synth import make_synth_dataset

    data = make_synth_dataset(tmp_path / "data", seed=1, num_train=16, num_val=8, workers=1)
    names = (Path(data["root"]) / "classes.txt").read_text().split()
    config = transformers.VideoMAEConfig(
        image_size=64, patch_size=16, num_frames=2, tubelet_size=2, hidden_size=32,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        id2label=dict(enumerate(names)))
    folder = tmp_path / "videomae"
    transformers.VideoMAEForVideoClassification(config).save_pretrained(folder)
    yaml = write_data_config(tmp_path / "tiny.yaml", Path(data["root"]))
    common = [*TINY, "optim.epochs=1", "data.size=32", f"distill.teacher={folder}"]
    cnn = tmp_path / "cnn"
    reskd_cli("distill", str(yaml), *sets(*common, NARROW, f"runtime.out={cnn}",
                                         "distill.connector=conv"))
    record = json.loads((cnn / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["feature_kd"] > 0
    pixel = tmp_path / "cnn_pixel"  # the loss measured best for such pairs (docs/results.md)
    reskd_cli("distill", str(yaml), *sets(*common, NARROW, f"runtime.out={pixel}",
                                         "distill.alpha=0", "distill.pixel_logit_kd=500"))
    record = json.loads((pixel / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["pixel_logit_kd"] > 0
    export = reskd_cli("export", "--checkpoint", str(cnn / "model.pt"), "--out",
                       str(tmp_path / "cnn.onnx"))
    assert json.loads(export.stdout)["max_abs_diff"] < 1e-4
    hf = tmp_path / "hf_student"
    data_only = [s for s in common if not s.startswith("model.")]
    reskd_cli("distill", str(yaml), *sets(*data_only, "model.arch=hf",
                                         f"model.pretrained={folder}", f"runtime.out={hf}"))
    shutil.rmtree(folder)  # the student's checkpoint rebuilds from its recorded config
    test = reskd_cli("test", str(yaml), "--checkpoint", str(hf / "model.pt"), "--json")
    assert json.loads(test.stdout)["size"] == 32


def test_pixel_logit_kd_meets_a_tubelet_teacher_in_time():
    """A tubelet-2 teacher has T/2 time steps: the student's pixel logits are resampled to
    them, i.e. each pair of frames averaged (classifying the pair's mean feature)."""
    from reskd.distill.losses import pixel_logit_kd

    student = torch.randn(2, 4, 5, 2, 2)  # (N, T, K, h, w)
    teacher = torch.randn(2, 2, 5, 4, 4)  # (N, T/2, K, H, W)
    pairs = (student[:, 0::2] + student[:, 1::2]) / 2
    assert pixel_logit_kd(student, teacher, 4.0).item() == pytest.approx(
        pixel_logit_kd(pairs, teacher, 4.0).item(), rel=1e-5)
    with pytest.raises(ValueError, match="same N and K"):
        pixel_logit_kd(student, torch.randn(2, 2, 7, 4, 4), 4.0)

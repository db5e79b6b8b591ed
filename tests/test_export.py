"""reskd.export: ONNX parity with eager PyTorch, metadata, dynamic batch; model-only checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from reskd.models import load_model_checkpoint  # noqa: E402
from reskd.engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from reskd.export import (ExportMismatchError, export_onnx, export_student_checkpoint,  # noqa: E402
                          read_onnx_metadata, run_export, verify_onnx)
from reskd.models import build_model  # noqa: E402

CLASSES = ["archery", "bowling", "cycling"]
KWARGS = {"arch": "resnet", "num_classes": 3, "block": "basic", "layers": [1, 1, 1, 1],
          "widths": [8, 8, 16, 16], "stem": "small", "strides": [1, 2, 2, 2], "dropout": 0.0}
SIZE, FRAMES = 32, 4


def tiny_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    k = {**KWARGS, **{key: tuple(KWARGS[key]) for key in ("layers", "widths", "strides")}}
    model = build_model(**k)
    with torch.no_grad():  # non-trivial classifier and BN statistics, so logits differ by model
        model.fc.weight.normal_()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def context() -> dict:
    return {"config": {"model": {"arch": "resnet"}}, "classes": CLASSES, "model_kwargs": KWARGS,
            "size": SIZE, "frames": FRAMES,
            "sampling": {"num_segments": FRAMES, "clip_len": 0, "frame_interval": 1,
                         "test_clips": 1, "test_crops": 1, "short_side_ratio": 1.25},
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "gmacs": 0.002,
            "views": {"size": SIZE, "crop_size": 2 * SIZE, "shrink": "bilinear",
                      "short_side_ratio": 1.25, "downsample_to": 0,
                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "test_average": "prob"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[torch.nn.Module, dict, dict]:
    model = tiny_model(0)
    ckpt = context()
    out = tmp_path_factory.mktemp("onnx") / "student.onnx"
    info = export_onnx(model, ckpt, out)
    return model, ckpt, info


def test_export_matches_eager_and_reports_its_measurements(exported):
    _, _, info = exported
    path = Path(info["path"])
    assert path.is_file() and info["bytes"] == path.stat().st_size > 0
    assert info["max_abs_diff"] <= 1e-4
    assert info["videos_per_s"] > 0
    assert info["input_shape"] == [1, FRAMES, 3, SIZE, SIZE]
    assert {"device", "dtype", "batch", "threads"} <= set(info)


def test_dynamic_batch_through_onnxruntime(exported):
    model, _, info = exported
    session = ort.InferenceSession(info["path"], providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "clips" and inp.shape[1:] == [FRAMES, 3, SIZE, SIZE]
    assert isinstance(inp.shape[0], str)  # symbolic batch axis
    x = torch.randn(2, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    (got,) = session.run(None, {"clips": x.numpy()})
    with torch.inference_mode():
        want = model(x).numpy()
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_metadata_round_trips(exported):
    _, ckpt, info = exported
    meta = read_onnx_metadata(info["path"])
    for key in ("classes", "size", "frames", "mean", "std", "sampling", "views",
                "test_average", "gmacs"):
        assert meta[key] == ckpt[key], key


def test_comparing_with_a_different_model_raises_with_both_numbers(exported):
    _, _, info = exported
    other = tiny_model(1)
    with pytest.raises(ExportMismatchError, match=r"= \S+ > tolerance 0\.001"):
        verify_onnx(info["path"], other, frames=FRAMES, size=SIZE)
    # and the exported model itself passes the same check
    assert verify_onnx(info["path"], exported[0], frames=FRAMES, size=SIZE) <= 1e-4


def test_student_checkpoint_from_a_train_state(tmp_path):
    model = tiny_model(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    model(torch.randn(2, FRAMES, 3, SIZE, SIZE)).sum().backward()
    optimizer.step()  # momentum buffers: real optimizer state
    model.eval()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    train_state = {**context(), "kind": "train-state", "model": model.state_dict(),
                   "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                   "epoch": 3, "step": 30, "history": [{"epoch": 3, "val": {"top1": 55.0}}]}
    save_checkpoint(train_state, tmp_path / "checkpoint.pt")
    info = export_student_checkpoint(tmp_path / "checkpoint.pt", tmp_path / "student.pt")
    assert info["dropped"] == ["optimizer", "scheduler", "step"]
    out = load_checkpoint(tmp_path / "student.pt")
    assert out["kind"] == "model" and out["metrics"] == {"top1": 55.0}
    assert not {"optimizer", "scheduler", "step"} & set(out)
    for key, value in context().items():
        assert out[key] == value, key
    loaded, _ = load_model_checkpoint(tmp_path / "student.pt")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert info["bytes"] < (tmp_path / "checkpoint.pt").stat().st_size


def test_run_export_rejects_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="valid: onnx, checkpoint"):
        run_export(tmp_path / "x.pt", format="tflite")

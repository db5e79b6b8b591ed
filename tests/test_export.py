"""reskd.export: ONNX parity with eager PyTorch, metadata, dynamic batch; model-only checkpoints;
the INT8 student (quantized, parity-checked on a tiny trained run's real videos)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from reskd.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from reskd.export import (  # noqa: E402
    ExportMismatchError,
    Int8ParityError,
    check_int8_parity,
    checkpoint_video_set,
    compare_top1,
    export_onnx,
    export_student_checkpoint,
    read_onnx_metadata,
    run_export,
    verify_onnx,
)
from reskd.models import build_model, load_model_checkpoint  # noqa: E402

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
                      "short_side_ratio": 1.25, "test_short_side_ratio": 1.25,
                      "downsample_to": 0, "mean": [0.485, 0.456, 0.406],
                      "std": [0.229, 0.224, 0.225]},
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


# ---------------------------------------------------------------------------------------------
# INT8: a tiny trained run on tiny real videos

TINY_RUN = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
            "model.widths=[8,8,16,16]", "model.stem=small", "data.num_segments=2",
            "data.size=32", "data.short_side_ratio=1.0", "data.batch_size=8", "data.workers=0",
            "optim.optimizer=adamw", "optim.lr=0.002", "optim.epochs=1", "runtime.progress=false"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """(model.pt of a one-epoch tiny run, its data folder: 24 train + 12 val real MP4s)."""
    from conftest import write_data_config
    from reskd.config import load_config
    from reskd.data.synth import make_synth_dataset
    from reskd.runs import run_train

    data = tmp_path_factory.mktemp("synth")
    make_synth_dataset(data, seed=1, num_train=24, num_val=12, workers=1)
    config = write_data_config(tmp_path_factory.mktemp("cfg") / "tiny.yaml", data)
    out = tmp_path_factory.mktemp("run")
    result = run_train(load_config(config, [*TINY_RUN, f"runtime.out={out}"]), distill=False,
                       log=lambda _: None)
    return Path(result["model"]), data


@pytest.fixture(scope="module")
def int8_export(run, tmp_path_factory) -> dict:
    checkpoint, _ = run
    out = tmp_path_factory.mktemp("int8") / "student.onnx"
    return run_export(checkpoint, out=out, int8=True, calibration_videos=8, validation_videos=0,
                      min_agreement=0.0, min_seconds=0.0)


def test_int8_export_writes_a_quantized_model_onnxruntime_runs(run, int8_export):
    checkpoint, _ = run
    q = int8_export["int8"]
    path = Path(q["path"])
    assert path.name == "student.int8.onnx" and q["bytes"] == path.stat().st_size
    assert q["bytes"] < int8_export["bytes"]  # int8 weights
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(path))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    per_channel = [n for n in graph.graph.initializer if n.data_type == onnx.TensorProto.INT8
                   and len(n.dims) == 1 and n.dims[0] > 1]  # one zero point per channel
    assert per_channel
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 2, 3, 32, 32), np.float32)
    (logits,) = session.run(None, {"clips": x})
    assert logits.shape == (3, 10) and np.isfinite(logits).all()
    meta = read_onnx_metadata(path)
    ckpt = load_checkpoint(checkpoint)
    assert meta["classes"] == ckpt["classes"] and meta["size"] == 32
    assert meta["quantization"] == {"format": "qdq", "weights": "int8", "per_channel": True,
                                    "activations": "uint8", "calibration": "minmax",
                                    "calibration_clips": 8}


def test_int8_export_reports_parity_accuracy_and_speed(int8_export):
    q = int8_export["int8"]
    assert q["calibration_videos"] == 8 and q["calibration_clips"] == 8  # 1 view per video
    assert q["calibration_failed"] == [] and q["validation_failed"] == []
    assert q["validation_videos"] == 12
    for key in ("top1_fp32", "top1_int8", "top1_agreement"):  # multiples of one video in 12
        assert 0 <= q[key] <= 100 and round(q[key] * 12 / 100, 6) % 1 == 0, key
    assert q["videos_per_s_fp32"] > 0 and q["videos_per_s_int8"] > 0 and q["speedup"] > 0
    assert q["input_shape"] == [1, 2, 3, 32, 32] and {"device", "threads", "batch"} <= set(q)


def test_parity_check_agrees_with_itself_and_fails_on_a_broken_model(run, int8_export, tmp_path):
    checkpoint, _ = run
    model, ckpt = load_model_checkpoint(checkpoint)
    val_set = checkpoint_video_set(ckpt, "val_list")
    fp32 = int8_export["path"]
    same = check_int8_parity(fp32, fp32, val_set, min_agreement=100.0)
    assert same["top1_agreement"] == 100.0 and same["top1_reference"] == same["top1_candidate"]
    # A model whose logits are rolled by one class: its top-1 class is never the fp32 one's.
    with torch.no_grad():
        model.fc.weight.copy_(model.fc.weight.roll(1, 0))
        model.fc.bias.copy_(model.fc.bias.roll(1, 0))
    broken = export_onnx(model, ckpt, tmp_path / "broken.onnx")["path"]
    assert compare_top1(fp32, broken, val_set)["top1_agreement"] == 0.0
    with pytest.raises(Int8ParityError, match=r"on the top-1 class of 0\.00% of 12 validation "
                                              r"videos, below the 50\.00% required"):
        check_int8_parity(fp32, broken, val_set, min_agreement=50.0)
    with pytest.raises(ValueError, match="0 to 100; got 101"):
        check_int8_parity(fp32, fp32, val_set, min_agreement=101)


def test_int8_data_that_cannot_be_found_names_the_path_and_the_option(run, tmp_path):
    checkpoint, data = run
    ckpt = load_checkpoint(checkpoint)
    with pytest.raises(FileNotFoundError, match=r"nowhere.*--data-root"):
        checkpoint_video_set(ckpt, "train_list", data_root=tmp_path / "nowhere")
    (tmp_path / "train.txt").write_text((data / "train.txt").read_text())  # list, no videos
    with pytest.raises(FileNotFoundError, match=r"24 of 24 videos .* --data-root"):
        checkpoint_video_set(ckpt, "train_list", data_root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"other\.txt \(--val-list\) not found"):
        checkpoint_video_set(ckpt, "val_list", list_path=tmp_path / "other.txt")
    # the recorded lists are followed; videos= keeps that many, spread over the list
    val = checkpoint_video_set(ckpt, "val_list", videos=4)
    every = checkpoint_video_set(ckpt, "val_list")
    assert [e.path for e in val.entries] == [every.entries[i].path for i in (0, 4, 7, 11)]
    with pytest.raises(ValueError, match="only apply with int8=True"):
        run_export(checkpoint, out=tmp_path / "x.onnx", calibration_videos=4)


def test_cli_int8_export_end_to_end(run, tmp_path, capsys):
    from reskd.cli import main

    checkpoint, data = run
    out = tmp_path / "cli.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--int8",
                 "--calibration-videos", "4", "--validation-videos", "6",
                 "--min-agreement", "0", "--data-root", str(data)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["int8"]["path"] == str(tmp_path / "cli.int8.onnx")
    assert info["int8"]["validation_videos"] == 6 and info["int8"]["calibration_videos"] == 4
    ort.InferenceSession(info["int8"]["path"], providers=["CPUExecutionProvider"])
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out), "--int8",
                 "--data-root", str(tmp_path / "gone")]) == 2
    err = capsys.readouterr().err
    assert "gone" in err and "--data-root" in err

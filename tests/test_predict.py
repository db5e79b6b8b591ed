"""reskd.predict: rigged checkpoints on tiny real videos; views identical to `test`'s."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import numbered_frames, write_video
from reskd.checkpoint import save_checkpoint
from reskd.data.datasets import VideoDataset
from reskd.data.formats import Entry
from reskd.data.sampling import Sampling
from reskd.data.transforms import Views
from reskd.models import build_model
from reskd.predict import format_predictions, predict_checkpoint, predict_videos, video_views

CLASSES = ["archery", "bowling", "cycling"]
TINY = dict(block="basic", layers=[1, 1, 1, 1], widths=[8, 8, 16, 16], stem="small",
            strides=[1, 2, 2, 2], dropout=0.0)


def tiny_checkpoint(path: Path, *, size: int = 32, frames: int = 4, test_clips: int = 2,
                    test_crops: int = 3, winner: int | None = 2) -> tuple[torch.nn.Module, dict]:
    """A tiny TSN checkpoint with full context; `winner` rigs the classifier to that class."""
    kwargs = {"arch": "resnet", "num_classes": len(CLASSES), **TINY}
    torch.manual_seed(0)
    model = build_model(**{**kwargs, "layers": tuple(TINY["layers"]),
                           "widths": tuple(TINY["widths"]), "strides": tuple(TINY["strides"])})
    if winner is not None:
        with torch.no_grad():
            model.fc.weight.zero_()
            model.fc.bias.zero_()
            model.fc.bias[winner] = 10.0  # every view gives logits (0, 0, 10)
    ckpt = {"config": {}, "classes": CLASSES, "model_kwargs": kwargs, "size": size,
            "frames": frames,
            "sampling": {"num_segments": frames, "clip_len": 0, "frame_interval": 1,
                         "test_clips": test_clips, "test_crops": test_crops,
                         "short_side_ratio": 1.25},
            "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "gmacs": 0.001,
            "views": {"size": size, "crop_size": size, "shrink": "bilinear",
                      "short_side_ratio": 1.25, "downsample_to": 0, "mean": [0.5, 0.4, 0.3],
                      "std": [0.2, 0.25, 0.3]}, "test_average": "prob",
            "kind": "model", "model": model.state_dict(), "metrics": {}}
    save_checkpoint(ckpt, path)
    return model.eval(), ckpt


@pytest.fixture
def videos(tmp_path) -> dict[str, Path]:
    good = [write_video(tmp_path / f"v{i}.mp4", numbered_frames(10 + i, 32, 48, seed=i))
            for i in range(2)]
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 50)
    return {"good0": good[0], "good1": good[1], "garbage": garbage,
            "missing": tmp_path / "missing.mp4"}


def test_rigged_checkpoint_predicts_its_class_and_reports_bad_files(tmp_path, videos):
    model, ckpt = tiny_checkpoint(tmp_path / "model.pt")
    paths = [videos["good0"], videos["garbage"], videos["missing"], videos["good1"]]
    results = predict_videos(model, ckpt, paths, topk=2)
    assert [r["path"] for r in results] == [str(p) for p in paths]
    p_win = math.exp(10) / (math.exp(10) + 2)
    for r in (results[0], results[3]):
        assert "error" not in r
        assert [t["class"] for t in r["top"]][0] == "cycling"
        assert r["top"][0]["index"] == 2
        assert r["top"][0]["score"] == pytest.approx(p_win, rel=1e-6)
        assert r["top"][1]["score"] == pytest.approx(1 / (math.exp(10) + 2), rel=1e-5)
        assert len(r["top"]) == 2
        assert r["latency_ms"] > 0
    assert set(results[1]) == {"path", "error"} and results[1]["error"]
    assert results[2] == {"path": str(videos["missing"]), "error": "file not found"}
    text = format_predictions(results)
    assert "cycling" in text and "file not found" in text
    assert text.splitlines()[-1] == "4 video(s), 2 failed to decode"


def test_topk_is_capped_at_the_class_count_and_validated(tmp_path, videos):
    model, ckpt = tiny_checkpoint(tmp_path / "model.pt", test_clips=1, test_crops=1)
    (r,) = predict_videos(model, ckpt, [videos["good0"]], topk=10)
    assert [t["index"] for t in r["top"]][0] == 2
    assert sorted(t["index"] for t in r["top"]) == [0, 1, 2]
    assert sum(t["score"] for t in r["top"]) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="topk"):
        predict_videos(model, ckpt, [videos["good0"]], topk=0)


def test_views_equal_the_test_datasets_views(tmp_path, videos):
    """predict preprocesses exactly as `reskd test` (VideoDataset in test mode) does."""
    _, ckpt = tiny_checkpoint(tmp_path / "model.pt", test_clips=2, test_crops=3)
    s = ckpt["sampling"]
    dataset = VideoDataset(
        [Entry(videos["good1"].name, (0,))], videos["good1"].parent,
        sampling=Sampling.from_record(s),
        views=Views(student_size=ckpt["size"], short_side_ratio=s["short_side_ratio"],
                       mean=tuple(ckpt["mean"]), std=tuple(ckpt["std"])),
        train=False, num_classes=3, test_clips=s["test_clips"], test_crops=s["test_crops"])
    expected = dataset[0]["views"]
    got = video_views(videos["good1"], ckpt)
    assert got.shape == (6, 4, 3, 32, 32)  # (clips * crops, T, C, S, S)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_predict_checkpoint_loads_and_matches_in_memory_model(tmp_path, videos):
    model, ckpt = tiny_checkpoint(tmp_path / "model.pt", winner=None, test_clips=1, test_crops=1)
    direct = predict_videos(model, ckpt, [videos["good0"]], topk=3)
    loaded = predict_checkpoint(tmp_path / "model.pt", [videos["good0"]], topk=3,
                                device="cpu", precision="fp32")
    assert [t["index"] for t in loaded[0]["top"]] == [t["index"] for t in direct[0]["top"]]
    np.testing.assert_allclose([t["score"] for t in loaded[0]["top"]],
                               [t["score"] for t in direct[0]["top"]], rtol=1e-6)


def test_predict_gives_the_scores_of_reskd_test(tmp_path, videos):
    """`reskd predict` and `reskd test` score a video alike: the checkpoint's recipe with a
    shrink from a larger crop, `downsample_to`, 2 clips x 3 crops and logit averaging."""
    from reskd.config import load_config
    from reskd.runs import run_test

    path = tmp_path / "model.pt"
    _, ckpt = tiny_checkpoint(path, size=24, winner=None, test_clips=2, test_crops=3)
    ckpt["views"].update(crop_size=32, downsample_to=16)
    ckpt["test_average"] = "logit"
    save_checkpoint(ckpt, path)
    (videos["good0"].parent / "list.txt").write_text(
        f"{videos['good0'].name} 0\n{videos['good1'].name} 1\n")
    cfg = load_config(None, [f"data.root={videos['good0'].parent}", "data.val_list=list.txt",
                             "data.num_segments=4", "data.test_clips=2", "data.test_crops=3",
                             "data.test_average=logit", "data.workers=0", "data.batch_size=2",
                             "runtime.precision=fp32", "runtime.progress=false"])
    tested = run_test(cfg, path, log=lambda _: None, scores=True)["scores"]
    predicted = predict_checkpoint(path, [videos["good0"], videos["good1"]], topk=3,
                                   device="cpu", precision="fp32")
    for video, result in zip(("good0", "good1"), predicted):
        want = torch.tensor(tested[videos[video].name]).softmax(-1)  # mean logits -> probabilities
        got = torch.zeros(3)
        for t in result["top"]:
            got[t["index"]] = t["score"]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # the parity is not vacuous: the two videos score differently, and without downsample_to
    # the scores change
    assert not torch.allclose(torch.tensor(tested[videos["good0"].name]),
                              torch.tensor(tested[videos["good1"].name]))
    ckpt["views"]["downsample_to"] = 0
    save_checkpoint(ckpt, path)
    sharp = run_test(cfg, path, log=lambda _: None, scores=True)["scores"]
    assert not torch.allclose(torch.tensor(sharp[videos["good0"].name]),
                              torch.tensor(tested[videos["good0"].name]), atol=1e-4)

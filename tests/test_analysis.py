"""reskd.analysis: ERF and attention on hand-checkable models; Figure 4 PNGs end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import numbered_frames, write_video
from reskd.analysis.attention import attention_maps, upsample_maps
from reskd.analysis.erf import default_position, effective_receptive_field
from reskd.analysis.plots import plot_attention_overlay, plot_erf_pair
from reskd.analysis.viz import to_uint8_frames, viz_attention, viz_erf
from reskd.checkpoint import save_checkpoint
from reskd.models import build_model
from reskd.models.tsn import TSN

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = {"arch": "resnet", "num_classes": 3, "block": "basic", "layers": [1, 1, 1, 1],
        "widths": [8, 8, 16, 16], "stem": "small", "strides": [1, 2, 2, 2], "dropout": 0.0}


def conv_model(stride: int = 1) -> TSN:
    """One 3x3 conv (all weights 1, no bias) as the whole backbone: the ERF is its 3x3 support."""
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=1, bias=False)
    nn.init.ones_(conv.weight)
    return TSN(conv, 4, 2, dropout=0.0).eval()


def tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(**{**TINY, **{k: tuple(TINY[k]) for k in ("layers", "widths", "strides")}})


def save_tiny(path: Path, *, seed: int, size: int) -> Path:
    model = tiny_model(seed)
    save_checkpoint({"config": {}, "classes": ["a", "b", "c"], "model_kwargs": TINY,
                     "size": size, "frames": 3,
                     "sampling": {"num_segments": 3, "clip_len": 0, "frame_interval": 1,
                                  "test_clips": 2, "test_crops": 3, "short_side_ratio": 1.0},
                     "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "gmacs": 0.001,
                     "views": {"size": size, "crop_size": size, "shrink": "bilinear",
                               "short_side_ratio": 1.0, "downsample_to": 0,
                               "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
                     "kind": "model", "model": model.state_dict(), "metrics": {}}, path)
    return path


def support(shape: tuple[int, int], rows: range, cols: range) -> np.ndarray:
    expected = np.zeros(shape, np.float32)
    expected[rows.start:rows.stop, cols.start:cols.stop] = 1.0
    return expected


# --- ERF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("position, rows, cols", [
    ((2, 5), range(1, 4), range(4, 7)),  # interior: the full 3x3 around (2, 5)
    ((0, 0), range(0, 2), range(0, 2)),  # corner: zero padding cuts the support to 2x2
])
def test_erf_of_one_conv_is_its_3x3_support(position, rows, cols):
    clips = torch.randn(2, 3, 3, 9, 9)  # (N, T, C, H, W)
    erf = effective_receptive_field(conv_model(), clips, position=position)
    # each support pixel: |grad| = 4 output channels x 3 colours x 3 frames, same for all
    np.testing.assert_array_equal(erf, support((9, 9), rows, cols))


@pytest.mark.parametrize("size, stride, centre", [
    (9, 1, 4),  # odd 9x9 map: its centre pixel (4, 4)
    (8, 1, 4),  # even 8x8 map: bottom-right of the central 2x2, (4, 4)
    (8, 2, 2),  # stride 2, 4x4 map: (2, 2), which sees input pixels 3..5
])
def test_erf_default_position(size, stride, centre):
    h = (size + 1) // stride if stride > 1 else size
    assert default_position(h, h) == (centre, centre)
    erf = effective_receptive_field(conv_model(stride), torch.randn(1, 2, 3, size, size))
    c = centre * stride
    np.testing.assert_array_equal(erf, support((size, size), range(c - 1, c + 2),
                                               range(c - 1, c + 2)))


@pytest.mark.parametrize("size", [32, 64])  # student and teacher sizes of the tiny model
def test_erf_of_a_resnet_has_the_input_shape(size):
    model = tiny_model(0).train()
    erf = effective_receptive_field(model, torch.randn(3, 2, 3, size, size), batch=2)
    assert erf.shape == (size, size) and erf.dtype == np.float32
    assert erf.max() == 1.0 and erf.min() >= 0.0
    assert model.training  # mode restored


def test_erf_rejects_a_position_outside_the_map():
    with pytest.raises(ValueError, match=r"outside the 9x9 feature map"):
        effective_receptive_field(conv_model(), torch.randn(1, 1, 3, 9, 9), position=(9, 0))


# --- attention ----------------------------------------------------------------------------------


def test_attention_maps_of_known_activations():
    model = TSN(nn.Identity(), 3, 2).eval()  # features = the input itself
    clips = torch.zeros(1, 2, 3, 2, 2)  # (N, T, C, H, W)
    clips[0, 0, :, 0, 0] = torch.tensor([1.0, 1.0, 1.0])  # mean of squares 1
    clips[0, 0, :, 0, 1] = torch.tensor([2.0, 0.0, 0.0])  # 4/3
    clips[0, 0, :, 1, 1] = torch.tensor([3.0, 0.0, 0.0])  # 3; (1, 0) stays 0
    clips[0, 1] = 5.0  # a constant frame has no focus
    maps = attention_maps(model, clips)
    assert maps.shape == (1, 2, 2, 2)
    expected = torch.tensor([[1 / 3, 4 / 9], [0.0, 1.0]])
    torch.testing.assert_close(maps[0, 0], expected)
    assert torch.equal(maps[0, 1], torch.zeros(2, 2))


def test_upsample_maps_keeps_leading_axes_and_range():
    maps = torch.rand(2, 3, 4, 4)  # (N, T, h, w)
    up = upsample_maps(maps, (16, 12))
    assert up.shape == (2, 3, 16, 12)
    assert 0.0 <= float(up.min()) and float(up.max()) <= 1.0
    assert torch.equal(upsample_maps(np.full((1, 2, 2), 0.5, np.float32), (4, 4)),
                       torch.full((1, 4, 4), 0.5))


# --- plots and the viz commands -----------------------------------------------------------------


def test_plot_erf_pair_writes_a_png(tmp_path):
    out = plot_erf_pair(np.random.rand(8, 8), np.random.rand(8, 8), ("baseline", "ResKD"),
                        tmp_path / "sub" / "erf.png")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 1000


def test_plot_attention_overlay_writes_a_png_and_checks_shapes(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    maps = np.random.rand(3, 4, 4)
    out = plot_attention_overlay(frames, maps, maps[::-1], ("baseline", "ResKD"),
                                 tmp_path / "att.png")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 1000
    with pytest.raises(ValueError, match=r"\(T=3, h, w\)"):
        plot_attention_overlay(frames, maps[:2], maps, ("baseline", "ResKD"), tmp_path / "x.png")


def test_to_uint8_frames_inverts_normalisation():
    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    view = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (T, C, H, W)
    m, s = torch.tensor(mean).view(1, 3, 1, 1) * 255, torch.tensor(std).view(1, 3, 1, 1) * 255
    view = (view - m) / s
    np.testing.assert_array_equal(to_uint8_frames(view, mean, std), frames)


def test_viz_erf_and_attention_end_to_end(tmp_path):
    video = write_video(tmp_path / "v.mp4", numbered_frames(8, 40, 48))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    base = save_tiny(tmp_path / "base.pt", seed=0, size=32)
    kd = save_tiny(tmp_path / "kd.pt", seed=1, size=32)
    teacher = save_tiny(tmp_path / "teacher.pt", seed=2, size=40)
    result = viz_erf(base, kd, [video, bad], tmp_path / "erf.png", teacher_ckpt=teacher)
    assert Path(result["out"]).read_bytes()[:8] == PNG_MAGIC
    assert result["clips"] == 2  # test_clips of the one decodable video
    assert [p["erf_shape"] for p in result["panels"]] == [[32, 32], [32, 32], [40, 40]]
    assert len(result["failed"]) == 1 and result["failed"][0].startswith(str(bad))
    result = viz_attention(base, kd, video, tmp_path / "att.png", max_frames=2)
    assert Path(result["out"]).read_bytes()[:8] == PNG_MAGIC
    assert result["frames"] == [0, 2] and result["size"] == 32
    with pytest.raises(ValueError, match="see different inputs"):
        viz_attention(base, teacher, video, tmp_path / "x.png")

"""Labels that need motion: `model.temporal` (the shift on every ResNet reskd builds), the
motion variant of the synthetic videos, and `reskd study motion` through the real CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import av
import numpy as np
import pytest
import torch

from reskd.config import ConfigError, load_config
from reskd.data import synth
from reskd.models import ARCH_OPTIONS, build_from_kwargs, build_model, is_tsm
from reskd.models.tsm import TSM, TemporalShiftConv2d
from reskd.models.tsn import TSN

SMALL = dict(num_classes=3, block="basic", layers=(1, 1, 1, 1), widths=(8, 8, 16, 16),
             stem="small", strides=(1, 2, 2, 2), dropout=0.0)


def small(temporal: str, frames: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("resnet", temporal=temporal, num_segments=frames, **SMALL).eval()
    with torch.no_grad():  # a non-trivial classifier: the logits must carry the features
        model.fc.weight.normal_()
    return model


# ---- model.temporal ----------------------------------------------------------------------------


def test_shift_on_the_small_resnet_sees_frame_order_and_tsn_does_not():
    tsn, tsm = small("none"), small("shift")
    assert type(tsn) is TSN and type(tsm) is TSM
    tsm.load_state_dict(tsn.state_dict())  # same weights and names: only the shift differs
    x = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    reversed_ = x.flip(1)  # (N, T, C, H, W), frames in reverse order
    with torch.no_grad():
        torch.testing.assert_close(tsn(x), tsn(reversed_))  # averaging frames ignores order
        assert (tsm(x) - tsm(reversed_)).abs().max() > 1e-3
    shifted = [m for m in tsm.backbone.modules() if isinstance(m, TemporalShiftConv2d)]
    assert len(shifted) == 4  # conv1 of each of the four blocks


@pytest.mark.parametrize("arch", ["resnet18", "resnet50s", "resnet"])
def test_every_tsn_over_resnet_arch_takes_the_shift(arch):
    with torch.device("meta"):
        model = build_model(arch, num_classes=3, temporal="shift", num_segments=4)
    assert isinstance(model, TSM) and model.num_segments == 4


def test_tsm_archs_are_the_resnet_with_the_shift():
    with torch.device("meta"):
        alias = build_model("tsm_resnet18", num_classes=3, num_segments=4)
        shifted = build_model("resnet18", num_classes=3, temporal="shift", num_segments=4)
    assert type(alias) is type(shifted) is TSM
    assert {k: v.shape for k, v in alias.state_dict().items()} == \
        {k: v.shape for k, v in shifted.state_dict().items()}
    assert is_tsm({"arch": "tsm_resnet18"}) and is_tsm({"arch": "resnet", "temporal": "shift"})
    assert not is_tsm({"arch": "resnet18"})


@pytest.mark.parametrize("arch", ["slowonly_r50", "swin3d_t", "r3d_18", "mvit_v2_s"])
def test_shift_on_an_arch_without_a_resnet_is_an_error_naming_those_that_take_it(arch):
    with pytest.raises(ValueError) as err, torch.device("meta"):
        build_model(arch, num_classes=3, temporal="shift")
    message = str(err.value)
    assert f"model.temporal='shift' has no effect on arch {arch!r}" in message
    users = message.split("used by: ")[1].split(". ")[0].split(", ")
    assert set(users) == {a for a, (_, used) in ARCH_OPTIONS.items() if "temporal" in used}
    assert {"resnet", "resnet50s", "resnet50", "tsm_resnet50"} <= set(users)
    assert not {"slowonly_r50", "swin3d_t"} & set(users)


def test_unknown_temporal_is_an_error_in_the_builder_and_the_config():
    with pytest.raises(ValueError, match="model.temporal must be one of 'none', 'shift'"):
        build_model("resnet", temporal="tsm", **SMALL)
    with pytest.raises(ConfigError, match="model.temporal: expected one of none, shift"):
        load_config(None, ["model.temporal=tsm"])
    assert load_config(None, ["model.temporal=shift"]).model.temporal == "shift"


def test_a_checkpoint_without_the_key_loads_as_tsn():
    old = {"arch": "resnet", "num_segments": 4, **{k: list(v) if isinstance(v, tuple) else v
                                                     for k, v in SMALL.items()}}
    assert type(build_from_kwargs(old)) is TSN
    assert type(build_from_kwargs({**old, "temporal": "shift"})) is TSM


def test_the_shift_costs_no_macs_and_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    from reskd.efficiency.flops import count_macs
    from reskd.export import export_onnx, verify_onnx

    tsn, tsm = small("none"), small("shift")
    x = torch.zeros(1, 4, 3, 32, 32)
    assert count_macs(tsm, x).gmacs == count_macs(tsn, x).gmacs > 0
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    ckpt = {"classes": ["a", "b", "c"], "size": 32, "frames": 4, "mean": mean, "std": std,
            "gmacs": count_macs(tsm, x).gmacs,
            "sampling": {"num_segments": 4, "clip_len": 0, "frame_interval": 1,
                         "test_clips": 1, "test_crops": 1, "short_side_ratio": 1.0},
            "views": {"size": 32, "crop_size": 64, "shrink": "bilinear", "short_side_ratio": 1.0,
                      "test_short_side_ratio": 1.0, "downsample_to": 0, "mean": mean,
                      "std": std}}
    info = export_onnx(tsm, ckpt, tmp_path / "tsm.onnx")  # parity at batch 1 and 2 inside
    assert info["max_abs_diff"] <= 1e-4
    # the graph holds the shift: the TSN's logits differ from the exported TSM's
    with pytest.raises(Exception, match="tolerance"):
        verify_onnx(info["path"], tsn, frames=4, size=32, tolerance=1e-3)


def test_a_shifted_torchvision_resnet_converts_to_mmaction2_as_its_tsm():
    from reskd.models.imports import _mmaction_arch

    assert _mmaction_arch({"arch": "resnet50", "temporal": "shift"}) == "tsm_resnet50"
    assert _mmaction_arch({"arch": "tsm_resnet50"}) == "tsm_resnet50"
    assert _mmaction_arch({"arch": "resnet50"}) == "resnet50"
    with pytest.raises(ValueError, match="a TSM over resnet .*no mmaction2 counterpart"):
        _mmaction_arch({"arch": "resnet", "temporal": "shift"})


def test_feature_kd_step_with_a_shifted_student_and_teacher():
    from reskd.distill.losses import feature_kd

    teacher, student = small("shift"), small("shift").train()
    clips = torch.randn(2, 4, 3, 64, 64)  # (N, T, C, H, W)
    small_clips = torch.nn.functional.interpolate(clips.flatten(0, 1), size=32, mode="bilinear")
    with torch.no_grad():
        _, f_t = teacher(clips, return_features=True)  # (N, T, C', 4, 4)
    _, f_s = student(small_clips.unflatten(0, (2, 4)), return_features=True)  # (N, T, C', 2, 2)
    assert f_t.shape[-2:] == (4, 4) and f_s.shape[-2:] == (2, 2)
    loss = feature_kd(f_s, f_t)
    loss.backward()
    grads = [m.weight.grad for m in student.backbone.modules()
             if isinstance(m, TemporalShiftConv2d)]
    assert loss.item() > 0 and all(g is not None and g.abs().sum() > 0 for g in grads)


# ---- the motion variant of the synthetic videos ------------------------------------------------

# sha256 of three default clips (render_clip) as the generator wrote them before label="motion"
# existed: the default dataset must stay bit-identical.
DEFAULT_CLIPS_SHA256 = "940ce960fea1cc8e2842597d42015db8fcfa30238c51b86b04d0ea74f066ea51"


def test_the_default_clips_and_params_are_unchanged(tmp_path):
    images, _ = synth.load_mnist()
    photos = synth.load_photos("train")
    digest = hashlib.sha256()
    for i in range(3):
        rng = np.random.default_rng([5, 0, i])
        digest.update(synth.render_clip(rng, images[i * 700], photos, frames=4, size=64).tobytes())
    assert digest.hexdigest() == DEFAULT_CLIPS_SHA256
    synth.make_synth_dataset(tmp_path / "d", num_train=2, num_val=2, frames=2, workers=0)
    params = json.loads((tmp_path / "d" / "synth.json").read_text())["params"]
    assert params == {"seed": 0, "num_train": 2, "num_val": 2, "frames": 2, "size": 64}


def _moving_x(clip: np.ndarray) -> float:
    """Mean horizontal step of the centroid of what changed between consecutive frames of a
    (T, H, W, 3) uint8 clip with a still background: only the digit moves."""
    luma = clip.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (T, H, W)
    xs = []
    for t in range(len(luma) - 1):
        changed = np.abs(luma[t + 1] - luma[t]) > 40  # (H, W): the digit's strokes moved
        xs.append(np.nonzero(changed)[1].mean())
    return float(np.diff(xs).mean())


def test_motion_labels_follow_the_digit_in_the_decoded_videos(tmp_path):
    info = synth.make_synth_dataset(tmp_path / "m", num_train=12, num_val=6, frames=4,
                                    workers=0, label="motion")
    assert info["classes"] == ["left", "right"]
    lines = (tmp_path / "m" / "train.txt").read_text().split("\n")[:-1]
    lines += (tmp_path / "m" / "val.txt").read_text().split("\n")[:-1]
    labels = [int(line.split()[1]) for line in lines]
    assert labels.count(0) == labels.count(1) == 9  # balanced in each split
    for line, label in zip(lines, labels):
        with av.open(str(tmp_path / "m" / line.split()[0])) as container:
            clip = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        assert clip.shape == (4, 64, 64, 3)
        step = _moving_x(clip)
        assert (step > 0.3) if label == 1 else (step < -0.3), (line, step)
    params = json.loads((tmp_path / "m" / "synth.json").read_text())["params"]
    assert params["label"] == "motion"


def test_a_motion_clip_played_backwards_is_a_clip_of_the_other_direction():
    # the same draws with the other direction give the path reversed in time, so a model that
    # ignores frame order cannot tell the two classes apart
    for i in range(20):
        rng = np.random.default_rng([0, 0, i])
        right = synth._motion_path(rng, 1, frames=4, room=40, scale=1.0)  # (T, 2)
        assert ((right >= 0) & (right <= 40)).all() and (np.diff(right[:, 0]) > 0).all()
        left = synth._motion_path(np.random.default_rng([0, 0, i]), 0, frames=4, room=40,
                                  scale=1.0)
        assert ((left >= 0) & (left <= 40)).all() and (np.diff(left[:, 0]) < 0).all()


def test_motion_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="label must be one of 'digit', 'motion'"):
        synth.make_synth_dataset(tmp_path / "x", label="colour")
    with pytest.raises(ValueError, match="at least 2 frames"):
        synth.make_synth_dataset(tmp_path / "x", label="motion", frames=1)


# ---- reskd study motion ------------------------------------------------------------------------


def reskd(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reskd", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_data_synth_label_motion_through_the_cli(tmp_path):
    proc = reskd("data", "synth", "--out", tmp_path / "m", "--label", "motion", "--frames", "2",
                 "--num-train", "2", "--num-val", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["classes"] == ["left", "right"]
    params = json.loads((tmp_path / "m" / "synth.json").read_text())["params"]
    assert (params["label"], params["frames"]) == ("motion", 2)
    wrong = reskd("data", "synth", "--out", tmp_path / "t", "--kind", "textures", "--label",
                  "motion")
    assert wrong.returncode == 2 and "options of --kind digits" in wrong.stderr


@pytest.mark.slow
def test_study_motion_quick_writes_its_table_through_the_cli(tmp_path):
    out = tmp_path / "motion"
    proc = reskd("study", "motion", "--quick", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((out / "motion.json").read_text())
    assert payload["chance"] == 50.0 and set(payload["rows"]) == {"tsn64", "tsm64", "baseline32",
                                                                  "reskd32"}
    runs = payload["runs"]
    assert runs["reskd32/seed0"]["teacher"] == "tsm64/seed0"
    assert runs["tsm64/seed0"]["gmacs"] == pytest.approx(runs["tsn64/seed0"]["gmacs"])
    assert load_config(out / "runs/tsn64/seed0/config.yaml").model.temporal == "none"
    for name in ("tsm64", "baseline32", "reskd32"):
        cfg = load_config(out / f"runs/{name}/seed0/config.yaml")
        assert (cfg.model.temporal, cfg.data.num_segments, cfg.data.crop_size) == ("shift", 4, 64)
    meta = json.loads((out / "data" / "synth.json").read_text())
    assert meta["params"]["label"] == "motion" and meta["classes"] == ["left", "right"]
    assert "| TSM, ResKD | `shift` | 32x32 |" in (out / "motion.md").read_text()
    assert (out / "compare" / "compare.md").is_file()
    # the shifted small resnet's checkpoints through flops (frames checked) and ONNX export
    student = out / "runs/reskd32/seed0/model.pt"
    flops = reskd("flops", "--checkpoint", student, "--json")
    assert flops.returncode == 0, flops.stderr[-2000:]
    assert (json.loads(flops.stdout)["gmacs_per_view"]
            == pytest.approx(runs["reskd32/seed0"]["gmacs"]))
    wrong = reskd("flops", "--checkpoint", student, "--frames", "8")
    assert wrong.returncode == 2 and "TSM model built for 4 frames" in wrong.stderr
    exported = reskd("export", "--checkpoint", student, "--format", "onnx", "--out",
                     tmp_path / "student.onnx")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert json.loads(exported.stdout)["max_abs_diff"] <= 1e-3
    again = reskd("study", "motion", "--quick", "--out", out)  # reuses the data and every run
    assert again.returncode == 0 and again.stdout.count("done before") == 4, again.stderr[-2000:]
    assert "synthetic videos, label=motion, frames=4" in (out / "motion.md").read_text()
    # a digit-label dataset given as --data is refused, not replaced
    synth.make_synth_dataset(tmp_path / "digits", num_train=2, num_val=2, workers=0)
    refused = reskd("study", "motion", "--quick", "--out", tmp_path / "m2", "--data",
                    tmp_path / "digits")
    assert refused.returncode == 2 and "--label motion" in refused.stderr

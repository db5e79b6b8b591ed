"""Hugging Face transformers video classifiers as reskd models (reskd.models.hf): tiny random
configs built here, saved with save_pretrained into tmp folders; nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import reskd
from reskd.models import build_model
from reskd.models.hf import (
    HFVideoClassifier,
    config_at_size,
    config_dict,
    load_hf_source,
    sincos_table,
)
from reskd.models.imports import load_model_source

transformers = pytest.importorskip("transformers")

FRAMES, SIZE, PATCH, K = 4, 32, 8, 5
LAYERS = dict(num_hidden_layers=2, num_attention_heads=2)


def tiny_config(family: str):
    """A transformers config of `family`: 32 px, 4 frames, patch 8, 2 layers, 5 classes."""
    t = transformers
    labels = {"id2label": {i: f"class {i}" for i in range(K)}}
    if family == "videomae":
        return t.VideoMAEConfig(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES,
                                tubelet_size=2, hidden_size=32, intermediate_size=64,
                                **LAYERS, **labels)
    if family == "timesformer":
        return t.TimesformerConfig(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES,
                                   hidden_size=32, intermediate_size=64, **LAYERS, **labels)
    if family == "vivit":
        return t.VivitConfig(image_size=SIZE, tubelet_size=[2, PATCH, PATCH], num_frames=FRAMES,
                             hidden_size=32, intermediate_size=64, **LAYERS, **labels)
    return t.VJEPA2Config(crop_size=SIZE, patch_size=PATCH, frames_per_clip=FRAMES,
                          tubelet_size=2, hidden_size=48, mlp_ratio=2.0, num_pooler_layers=1,
                          pred_hidden_size=32, pred_num_hidden_layers=1,
                          pred_num_attention_heads=2, **LAYERS, **labels)


CLASSES = {"videomae": "VideoMAEForVideoClassification",
           "timesformer": "TimesformerForVideoClassification",
           "vivit": "VivitForVideoClassification", "vjepa2": "VJEPA2ForVideoClassification"}
FAMILIES = tuple(CLASSES)
# T' for T = FRAMES: tubelets of 2 frames, TimeSformer one token per frame
T_OUT = {"videomae": 2, "timesformer": 4, "vivit": 2, "vjepa2": 2}


def hf_model(family: str, seed: int = 0):
    torch.manual_seed(seed)
    model = getattr(transformers, CLASSES[family])(tiny_config(family)).eval()
    for p in model.parameters():  # random, not the init's zeros/ones: every weight matters
        p.data.normal_(0, 0.2)
    return model


def hf_logits(model, x: torch.Tensor) -> torch.Tensor:
    key = "pixel_values_videos" if model.config.model_type == "vjepa2" else "pixel_values"
    return model(**{key: x}).logits


def clip(size: int = SIZE, n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, FRAMES, 3, size, size, generator=torch.Generator().manual_seed(seed))


def save_folder(model, path: Path, *, processor: bool = True) -> Path:
    model.save_pretrained(path)  # config.json + model.safetensors
    if processor:  # as published video models have it: crop, mean/std in [0, 1] units
        (path / "preprocessor_config.json").write_text(json.dumps({
            "crop_size": {"height": SIZE, "width": SIZE}, "size": {"shortest_edge": SIZE},
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}))
    return path


def grid_from_hf(family: str, hidden: torch.Tensor) -> torch.Tensor:
    """transformers' last_hidden_state (N, L, C) rearranged into the documented map."""
    N, _, C = hidden.shape
    h = w = SIZE // PATCH
    if family == "timesformer":  # class token, then (h*w, T): space outer, time inner
        return hidden[:, 1:].reshape(N, h, w, FRAMES, C).permute(0, 3, 4, 1, 2)
    tokens = hidden[:, 1:] if family == "vivit" else hidden  # ViViT: class token first
    return tokens.reshape(N, T_OUT[family], h, w, C).permute(0, 1, 4, 2, 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_parity_features_and_head(family):
    """The wrapper's logits are transformers' own; its map is transformers' last hidden state
    in the documented order; head(features) and forward(return_features) agree."""
    hf = hf_model(family)
    model = HFVideoClassifier(hf).eval()
    x = clip()
    with torch.no_grad():
        ref = hf_logits(hf, x)
        logits, f = model(x, return_features=True)
        base = getattr(hf, family)  # the backbone: hf.videomae, hf.timesformer, ...
        kwargs = {"skip_predictor": True} if family == "vjepa2" else {}
        key = "pixel_values_videos" if family == "vjepa2" else "pixel_values"
        hidden = base(**{key: x}, **kwargs).last_hidden_state
        f_again = model.features(x)
        assert torch.allclose(logits, ref, atol=1e-4), (logits - ref).abs().max()
        C = model.feature_channels
        assert C == hf.config.hidden_size
        assert f.shape == (2, T_OUT[family], C, SIZE // PATCH, SIZE // PATCH)
        assert torch.allclose(f, grid_from_hf(family, hidden), atol=1e-5)
        assert torch.allclose(model.head(f_again), logits, atol=1e-6)
    assert model.num_classes == K


def test_logit_heads_per_family():
    """VideoMAE: frame and pixel logits; V-JEPA 2: frame logits; the class-token models say
    which KD terms work."""
    x = clip(n=1)
    m = HFVideoClassifier(hf_model("videomae"))
    f = m.features(x)
    assert m.frame_logits(f).shape == (1, 2, K)
    assert m.pixel_logits(f).shape == (1, 2, K, 4, 4)
    v = HFVideoClassifier(hf_model("vjepa2"))
    assert v.frame_logits(v.features(x)).shape == (1, 2, K)
    t = HFVideoClassifier(hf_model("timesformer"))
    f = t.features(x)
    for fn in (t.frame_logits, t.pixel_logits):
        with pytest.raises(NotImplementedError, match="feature KD .distill.alpha. and clip-level"):
            fn(f)
    with pytest.raises(ValueError, match="class token"):
        t.head(f * 1.0)  # a new tensor: no class token


@pytest.mark.parametrize("family", FAMILIES)
def test_low_resolution_student(family, tmp_path):
    """Half size: the teacher's model runs on it, and a student built for 16 px from the
    32 px weights (position tables resized) matches transformers at 16 px where transformers
    can run it."""
    teacher = hf_model(family)
    folder = save_folder(teacher, tmp_path / family)
    small = clip(size=SIZE // 2)
    with torch.no_grad():
        assert HFVideoClassifier(teacher)(small).shape == (2, K)
    student = build_model("hf", num_classes=3, pretrained=str(folder),
                          hf_config=config_at_size(config_dict(teacher.config), SIZE // 2))
    assert student.num_classes == 3
    report = " ".join(student.report)
    assert "classifier.weight (3, " in report and "left as initialised" in report
    if family in ("timesformer", "vivit"):
        assert "position_embeddings" in report and "interpolated" in report
    student.eval()
    with torch.no_grad():
        logits, f = student(small, return_features=True)
        assert logits.shape == (2, 3)
        assert f.shape == (2, T_OUT[family], student.feature_channels, 2, 2)
        # transformers' own model of the student's config, with the same weights
        own = getattr(transformers, CLASSES[family])(student.hf.config).eval()
        own.load_state_dict(student.hf.state_dict())
        assert torch.allclose(hf_logits(own, small), logits, atol=1e-4)


def test_videomae_table_rebuilt():
    """VideoMAE's sin-cos table for the student's grid is the one transformers builds."""
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    model = HFVideoClassifier(hf_model("videomae"))
    n = 2 * (SIZE // 2 // PATCH) ** 2  # 16 px, 4 frames: 2 x 2 x 2 tokens
    table = model.position_table(n)
    assert table.shape == (1, n, 32)
    assert torch.allclose(table, get_sinusoid_encoding_table(n, 32), atol=1e-6)
    assert torch.allclose(sincos_table(392, 96), get_sinusoid_encoding_table(392, 96)[0],
                          atol=1e-6)


def test_load_folder_with_preprocessing(tmp_path):
    """A save_pretrained folder (safetensors) loads through load_model_source and
    reskd.load_model, with its processor's size and mean/std, frames and class names."""
    hf = hf_model("timesformer")
    folder = save_folder(hf, tmp_path / "tsf")
    assert (folder / "model.safetensors").is_file()
    model, ctx = load_model_source(str(folder))
    assert ctx["classes"] == [f"class {i}" for i in range(K)]
    assert (ctx["size"], ctx["frames"], ctx["mean"], ctx["std"]) == (
        SIZE, FRAMES, [0.5] * 3, [0.25] * 3)
    assert ctx["model_kwargs"]["arch"] == "hf"
    loaded = reskd.load_model(folder)
    p = loaded.preprocessing
    assert (p.size, p.frames, p.mean, p.std) == (SIZE, FRAMES, (0.5,) * 3, (0.25,) * 3)
    assert p.classes == tuple(f"class {i}" for i in range(K))
    x = clip()
    with torch.no_grad():
        assert torch.allclose(loaded(x), hf_logits(hf, x), atol=1e-4)
        assert torch.allclose(model(x), hf_logits(hf, x), atol=1e-4)


def test_save_student_round_trip_offline(tmp_path):
    """An HF student saved with reskd.save_student rebuilds from the checkpoint alone (its
    config is in model_kwargs["hf_config"]), the source folder gone."""
    import shutil

    folder = save_folder(hf_model("vivit"), tmp_path / "vivit")
    student = reskd.build_model("hf", num_classes=3, pretrained=str(folder))
    assert student.build_options["hf_config"]["model_type"] == "vivit"
    views = reskd.Views(teacher_size=SIZE, student_size=SIZE // 2)
    path = reskd.save_student(student, tmp_path / "student.pt", views=views,
                              classes=["a", "b", "c"], frames=FRAMES)
    shutil.rmtree(folder)
    loaded = reskd.load_model(path)
    assert loaded.preprocessing.classes == ("a", "b", "c")
    assert loaded.preprocessing.size == SIZE // 2
    x = clip(size=SIZE // 2)
    with torch.no_grad():
        assert torch.allclose(loaded(x), student.eval()(x), atol=1e-6)
    rebuilt = build_model("hf", num_classes=3, hf_config=loaded.build_options["hf_config"])
    assert isinstance(rebuilt, HFVideoClassifier)

    # FLOPs of the saved student: the CLI's `reskd flops --checkpoint`
    from reskd.experiments.sweep import flops_report

    report = flops_report(checkpoint=path)
    # patch conv + per layer qkv/out/MLP linears: 2 x (4 + 2 x 2) x 32^2 MACs per token
    tokens = 2 * 2 * 2  # 16 px, 4 frames: T' = 2, 2 x 2 patches
    linear = 2 * tokens * 8 * 32 * 32 + tokens * 32 * 3 * 2 * 8 * 8
    assert linear <= report["gmacs_per_view"] * 1e9 < 1.5 * linear + 1e5
    assert report["gmacs_with_matmul_per_view"] > report["gmacs_per_view"]


def test_bin_weights_only(tmp_path):
    """A pytorch_model.bin of tensors loads (weights_only); one whose pickle needs more is
    refused with the reason."""
    hf = hf_model("videomae")
    folder = tmp_path / "bin"
    hf.save_pretrained(folder)
    state = hf.state_dict()
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    model, _ = load_hf_source(str(folder))
    x = clip(n=1)
    with torch.no_grad():
        assert torch.allclose(model(x), hf_logits(hf, x), atol=1e-4)
    torch.save({**state, "extra": Path("/")}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="refused.*weights_only=True"):
        load_hf_source(str(folder))


def test_absent_hub_id_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError) as err:
        reskd.load_model("hf:someone/not-cached-video-model")
    message = str(err.value)
    assert "someone/not-cached-video-model" in message
    assert str(tmp_path / "hub") in message
    assert "hf download someone/not-cached-video-model" in message
    with pytest.raises(ValueError, match="hf:ORG/NAME"):
        reskd.load_model("hf:no-slash")


def test_distiller_with_hf_teacher_and_student():
    """The Distiller's calls (teacher.features then head for clip KD; student forward with
    return_features) work with a class-token teacher, and the loss back-propagates."""
    teacher = HFVideoClassifier(hf_model("vivit"))  # class token: clip KD through head
    student = HFVideoClassifier(hf_model("videomae", seed=3))  # same T' = 2 and C = 32
    distiller = reskd.Distiller(teacher, student, feature=1.0, clip=1.0)
    parts = distiller(clip(), clip(size=SIZE // 2), torch.tensor([0, 1]))
    parts["loss"].backward()
    assert torch.isfinite(parts["loss"]) and parts["clip_kd"] > 0
    assert student.hf.classifier.weight.grad is not None


@pytest.mark.slow
def test_published_checkpoint_from_cache(monkeypatch):
    """A real published VideoMAE, only when already in the HF cache (never downloaded): the
    wrapper's logits equal transformers' own."""
    from reskd.models.hf import hub_cache_dir

    repo = "MCG-NJU/videomae-base-finetuned-kinetics"
    if not (hub_cache_dir() / f"models--{repo.replace('/', '--')}").is_dir():
        pytest.skip(f"{repo} is not in the HF cache {hub_cache_dir()} (not downloaded in tests)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = reskd.load_model(f"hf:{repo}")
    assert model.preprocessing.frames == 16 and len(model.preprocessing.classes) == 400
    own = transformers.VideoMAEForVideoClassification.from_pretrained(
        repo, local_files_only=True).eval()
    x = torch.randn(1, 16, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), hf_logits(own, x), atol=1e-4)



def test_cli_distill_from_an_hf_teacher_folder(tmp_path):
    """`reskd distill` with distill.teacher=<save_pretrained folder>: its size, frames, mean/std
    and class names travel with it, and clip-level logit KD distils from its head."""
    import subprocess
    import sys

    from conftest import sets, write_data_config
    from reskd.data.synth import make_synth_dataset

    data = tmp_path / "data"
    make_synth_dataset(data, seed=1, num_train=16, num_val=8, workers=1)
    names = (data / "classes.txt").read_text().split()
    config = transformers.VideoMAEConfig(
        image_size=64, patch_size=16, num_frames=2, tubelet_size=2, hidden_size=32,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        id2label=dict(enumerate(names)))
    transformers.VideoMAEForVideoClassification(config).save_pretrained(tmp_path / "teacher")
    tiny = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
            "model.widths=[8,8,16,16]", "model.stem=small", "data.num_segments=2",
            "data.short_side_ratio=1.0", "data.batch_size=8", "data.workers=0",
            "optim.epochs=1", "runtime.progress=false", "data.size=32",
            f"runtime.out={tmp_path / 'student'}", f"distill.teacher={tmp_path / 'teacher'}",
            "distill.alpha=0", "distill.clip_kd=1"]
    proc = subprocess.run(
        [sys.executable, "-m", "reskd", "distill",
         str(write_data_config(tmp_path / "tiny.yaml", data)), *sets(*tiny)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from a 64px teacher" in proc.stdout
    record = json.loads((tmp_path / "student" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["clip_kd"] > 0

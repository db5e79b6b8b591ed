"""Teachers and students from what users have: torchvision weights through torchvision's own
weights API (pointed at local files under a temporary TORCH_HOME, so nothing is downloaded),
torchvision weights files, and the context (size, mean/std, frames, classes) that travels
with them. Every reskd model built from torchvision weights gives torchvision's logits."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
import torchvision

from reskd.engine.train import train_step
from reskd.models import build_model
from reskd.models.imports import Renormalized, check_classes, load_model_source, renormalized
from reskd.models.torchvision_video import MVIT_ARCHS, VIDEO_RESNET_ARCHS, MViT
from reskd.models.weights import WEIGHTS_ARCH, hub_cache_file, torchvision_arch, torchvision_weights

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "record_mmaction2_fixtures", ROOT / "scripts" / "record_mmaction2_fixtures.py")
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)


def filled_torchvision(model_name: str, **kwargs) -> torch.nn.Module:
    """A torchvision model with the stand-in weights of `record.fill` (realistic scales, no
    initialisation cost); integer buffers are the model's own."""
    with torch.device("meta"):
        model = torchvision.models.get_model(model_name, **kwargs)
    model = model.to_empty(device="cpu")
    for m in model.modules():
        if hasattr(m, "define_relative_position_index"):  # Swin: recompute the index buffer
            m.define_relative_position_index()
    state = {k: record.fill(k, tuple(v.shape)) if v.is_floating_point()
             else (torch.zeros_like(v) if k.endswith("num_batches_tracked") else v)
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return model.eval()


def cache_weights(name: str) -> tuple[torch.nn.Module, object]:
    """(torchvision's model, the weights member) with the model's weights saved where
    torchvision's weights API reads `name` from (the hub cache under TORCH_HOME)."""
    weights = torchvision_weights(name)
    enum = type(weights).__name__
    model_name = enum.lower().replace("_weights", "") if enum.startswith("Swin_") \
        else WEIGHTS_ARCH[enum]
    model = filled_torchvision(model_name, num_classes=len(weights.meta["categories"]))
    path = hub_cache_file(weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model, weights


@pytest.fixture(autouse=True)
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def clip(n=2, t=4, size=64, seed=0) -> torch.Tensor:
    return torch.randn(n, t, 3, size, size, generator=torch.Generator().manual_seed(seed))


def assert_same_logits(ours: torch.nn.Module, theirs: torch.nn.Module, x: torch.Tensor,
                       video: bool = True) -> None:
    with torch.no_grad():
        a = ours.eval()(x)  # (N, T, C, H, W)
        b = theirs(x.transpose(1, 2) if video else x[:, 0])  # (N, C, T, H, W) / (N, C, H, W)
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["R2Plus1D_18_Weights.KINETICS400_V1",
                                  "R3D_18_Weights.KINETICS400_V1",
                                  "MC3_18_Weights.KINETICS400_V1",
                                  "Swin3D_T_Weights.KINETICS400_V1"])
def test_torchvision_video_weights_by_name_give_torchvision_logits(name):
    reference, weights = cache_weights(name)
    model, context = load_model_source(f"torchvision:{name}")
    assert_same_logits(model, reference, clip())
    transforms = weights.transforms()
    assert context["size"] == transforms.crop_size[0]  # 112 for the 3D ResNets, 224 for Swin
    assert context["mean"] == pytest.approx(list(transforms.mean))
    assert context["classes"] == weights.meta["categories"] and len(context["classes"]) == 400
    assert context["recipe_frames"] in (16, 32) and context["frames"] is None


@pytest.mark.slow
def test_the_papers_swin_b_teacher_gives_torchvision_logits():
    name = "Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1"
    reference, _ = cache_weights(name)
    model, context = load_model_source(f"torchvision:{name}")
    assert context["model_kwargs"]["arch"] == "swin3d_b" and context["recipe_frames"] == 32
    assert_same_logits(model, reference, clip(n=1, t=2, size=64))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["MViT_V1_B_Weights.KINETICS400_V1",
                                  "MViT_V2_S_Weights.KINETICS400_V1"])
def test_torchvision_mvit_weights_give_torchvision_logits_at_their_size(name):
    reference, _ = cache_weights(name)  # positional tables made for 16 frames at 224
    model, _ = load_model_source(f"torchvision:{name}")
    assert_same_logits(model, reference, clip(n=1, t=16, size=224))


@pytest.mark.parametrize("arch", MVIT_ARCHS)
def test_mvit_matches_torchvision_and_runs_at_other_sizes(arch):
    reference = filled_torchvision(arch, num_classes=5)
    # torchvision's MViT runs only at the size its position tables are made for (224 px, 16
    # frames); cut them to 64 px, 4 frames (16 x 16 x 2 tokens) to compare at a small size
    p = reference.pos_encoding
    p.spatial_size, p.temporal_size = (16, 16), 2
    if p.spatial_pos is not None:  # V1's absolute positions
        p.spatial_pos = torch.nn.Parameter(p.spatial_pos.detach()[:256].clone())
        p.temporal_pos = torch.nn.Parameter(p.temporal_pos.detach()[:2].clone())
    model = MViT(copy.deepcopy(reference), 5)
    model.fc.load_state_dict(reference.head[1].state_dict())
    assert_same_logits(model, reference, clip(t=4, size=64))
    model = MViT(filled_torchvision(arch, num_classes=5), 5).eval()  # tables for 224 px, 16 frames
    with torch.no_grad():  # other sizes: positions interpolated (V1) or relative (V2)
        logits, f = model(clip(n=1, t=8, size=96), return_features=True)
    assert logits.shape == (1, 5) and f.shape == (1, 4, 768, 3, 3)
    assert torch.isfinite(logits).all()
    with torch.no_grad():
        assert torch.equal(model.head(f), logits)  # the map carries its class token
    with pytest.raises(ValueError, match="class token"):
        model.head(f.clone())  # a tensor made from the map does not


def test_2d_imagenet_resnet_weights_by_name(tmp_path):
    reference, _ = cache_weights("ResNet18_Weights.IMAGENET1K_V1")
    model, context = load_model_source("torchvision:ResNet18_Weights.IMAGENET1K_V1")
    assert context["model_kwargs"]["arch"] == "resnet18" and len(context["classes"]) == 1000
    assert_same_logits(model, reference, clip(t=1), video=False)  # TSN on one frame = 2D
    student = build_model("tsm_resnet18", num_classes=7, num_segments=4,
                          pretrained="torchvision:ResNet18_Weights.IMAGENET1K_V1")
    assert torch.equal(student.backbone.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    # the same weights as a file: the arch is read from the keys
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    from_file, context = load_model_source(str(path))
    assert context["size"] == 224 and len(context["classes"]) == 1000
    assert_same_logits(from_file, reference, clip(t=1), video=False)


def test_2d_imagenet_swin_inflates_to_a_3d_swin_that_sees_a_still_clip_as_the_image():
    reference, _ = cache_weights("Swin_T_Weights.IMAGENET1K_V1")
    model = build_model("swin3d_t", num_classes=1000,
                        pretrained="torchvision:Swin_T_Weights.IMAGENET1K_V1").eval()
    table = model.backbone.features[0][0].attn.relative_position_bias_table  # (15 * 13 * 13, 3)
    assert table.shape == (15 * 169, 3)
    assert torch.equal(table[:169], reference.features[1][0].attn.relative_position_bias_table)
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    still = image.unsqueeze(1).expand(1, 2, 3, 224, 224)  # (N, T, C, H, W): 2 equal frames
    with torch.no_grad():
        a, b = model(still), reference(image)
    assert (a - b).abs().max().item() <= 1e-4  # the patch embedding sums two halves
    with pytest.raises(ValueError, match="2D ImageNet image weights"):
        load_model_source("torchvision:Swin_T_Weights.IMAGENET1K_V1")


def test_torchvision_names_are_checked_before_anything_is_read():
    with pytest.raises(ValueError, match="Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1"):
        torchvision_weights("torchvision:Swin3D_B_Weights.IMAGENET")  # lists the valid ones
    with pytest.raises(ValueError, match="reskd reads"):
        torchvision_weights("torchvision:ViT_B_16_Weights.IMAGENET1K_V1")


def test_torchvision_files_name_their_arch():
    for name in ("r2plus1d_18", "r3d_18", "mc3_18", "swin3d_s", "swin_b", "resnet50",
                 "mvit_v1_b", "mvit_v2_s"):
        with torch.device("meta"):
            state = torchvision.models.get_model(name).state_dict()
        assert torchvision_arch(state) == ("swin3d_b" if name == "swin_b" else name)
    assert torchvision_arch({"foo": torch.zeros(1)}) is None


def test_class_lists_that_differ_are_errors_naming_both():
    names = ["abseiling", "air drumming", "answering questions"]
    check_classes("t", 3, names, ["Abseiling", "air_drumming", "answering  questions"])
    with pytest.raises(ValueError, match=r"has 3 classes \(abseiling, .*but this config has 2 "
                                         r"\(a, b\)"):
        check_classes("t", 3, names, ["a", "b"])
    with pytest.raises(ValueError, match=r"label 1: teacher 'air drumming', dataset 'archery'"):
        check_classes("t", 3, names, ["abseiling", "archery", "answering questions"])
    check_classes("t", 3, names, ["0", "1", "2"])  # a config without class names: count only


def test_a_teacher_normalised_otherwise_sees_exactly_its_own_input():
    model = build_model("r3d_18", num_classes=4).eval()
    own_mean, own_std = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)
    data_mean, data_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    frames = torch.rand(1, 4, 3, 32, 32)  # in [0, 1]
    as_data = ((frames - torch.tensor(data_mean).view(3, 1, 1))
               / torch.tensor(data_std).view(3, 1, 1))
    as_own = (frames - torch.tensor(own_mean).view(3, 1, 1)) / torch.tensor(own_std).view(3, 1, 1)
    wrapped = renormalized(model, data_mean=data_mean, data_std=data_std, mean=own_mean,
                           std=own_std)
    assert isinstance(wrapped, Renormalized) and wrapped.feature_channels == 512
    with torch.no_grad():
        torch.testing.assert_close(wrapped(as_data), model(as_own), atol=1e-5, rtol=0)
        torch.testing.assert_close(wrapped.features(as_data), model.features(as_own),
                                   atol=1e-5, rtol=0)
    assert renormalized(model, data_mean=data_mean, data_std=data_std, mean=data_mean,
                        std=data_std) is model


@pytest.mark.parametrize("arch", [*VIDEO_RESNET_ARCHS, *MVIT_ARCHS])
def test_each_imported_arch_counts_gmacs_and_takes_a_distillation_step(arch):
    from reskd.distill.distiller import Distiller, freeze
    from reskd.experiments.sweep import flops_report

    report = flops_report(model_name=arch, size=64, frames=4, num_classes=5)
    assert report["gmacs_per_view"] > 0 and report["model"] == arch
    teacher = freeze(build_model(arch, num_classes=5)).eval()
    student = build_model(arch, num_classes=5)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.01)
    before = [p.detach().clone() for p in student.parameters()]
    batch = {"student": clip(n=2, t=4, size=32), "teacher": clip(n=2, t=4, size=64, seed=1),
             "label": torch.tensor([0, 3])}
    parts = train_step(student, batch, optimizer=optimizer, device=torch.device("cpu"),
                       distiller=Distiller(teacher, student))
    assert torch.isfinite(parts["loss"]) and parts["feature_kd"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))


def test_imagenet_means_the_papers_v1_weights_and_imagenet_v2_the_newer_ones():
    # torchvision's DEFAULT for ResNet-50 is IMAGENET1K_V2 (80.9% top-1); the paper's R50 started
    # from V1 (76.1%). Two different weight files in the hub cache tell which one was read.
    from reskd.models.weights import hub_cache_file

    enum = torchvision.models.ResNet50_Weights
    filled = {}
    for i, member in enumerate(("IMAGENET1K_V1", "IMAGENET1K_V2")):
        state = torchvision.models.resnet50().state_dict()
        state["conv1.weight"] = torch.full_like(state["conv1.weight"], float(i + 1))
        path = hub_cache_file(enum[member])
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, path)
        filled[member] = state["conv1.weight"]
    for pretrained, member in (("imagenet", "IMAGENET1K_V1"), ("imagenet_v2", "IMAGENET1K_V2")):
        model = build_model("resnet50", num_classes=5, num_segments=2, pretrained=pretrained)
        conv1 = next(v for k, v in model.state_dict().items() if k.endswith("conv1.weight")
                     and v.shape == filled[member].shape)
        assert torch.equal(conv1, filled[member]), pretrained
    with pytest.raises(ValueError, match="no IMAGENET1K_V2 for resnet18"):
        build_model("resnet18", num_classes=5, num_segments=2, pretrained="imagenet_v2")

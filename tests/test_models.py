import pytest
import torch
import torchvision

from reskd.models import build_model


@pytest.mark.parametrize("size,hw", [(224, 7), (112, 4)])
def test_tsn_resnet50_shapes_at_teacher_and_student_sizes(size, hw):
    model = build_model("resnet50", num_classes=10).eval()
    x = torch.randn(1, 2, 3, size, size)
    with torch.no_grad():
        f = model.features(x)
        assert f.shape == (1, 2, 2048, hw, hw)
        assert model.head(f).shape == (1, 10)
        assert model.frame_logits(f).shape == (1, 2, 10)
        assert model.pixel_logits(f).shape == (1, 2, 10, hw, hw)
        logits, f2 = model(x, return_features=True)
        torch.testing.assert_close(logits, model.head(f))


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"])
def test_torchvision_layout_matches(arch):
    # built on the meta device: same parameter names and shapes, no slow init
    with torch.device("meta"):
        ref = getattr(torchvision.models, arch)(weights=None)
        model = build_model(arch, num_classes=7)
    ours = {k: v.shape for k, v in model.backbone.state_dict().items()}
    theirs = {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    assert ours == theirs


def test_torchvision_weights_load_from_a_local_file(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    model = build_model("resnet18", num_classes=7, pretrained=str(path))
    for k, v in ref.state_dict().items():
        if not k.startswith("fc."):
            torch.testing.assert_close(model.backbone.state_dict()[k], v)


def test_resnet50_parameter_count_is_25_6m():
    model = build_model("resnet50", num_classes=1000)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 25.6


def test_r50s_doubles_the_last_map():
    model = build_model("resnet50s", num_classes=3).eval()
    with torch.no_grad():
        assert model.features(torch.randn(1, 1, 3, 112, 112)).shape[-2:] == (7, 7)


def test_small_demo_resnet_keeps_2x2_at_32px():
    model = build_model("resnet", num_classes=10, block="basic", layers=(1, 1, 1, 1),
                        widths=(16, 32, 64, 128), stem="small", strides=(1, 2, 2, 2)).eval()
    with torch.no_grad():
        assert model.features(torch.randn(1, 4, 3, 32, 32)).shape == (1, 4, 128, 2, 2)
        assert model.features(torch.randn(1, 4, 3, 64, 64)).shape == (1, 4, 128, 4, 4)


def test_bad_arch_lists_valid_ones():
    with pytest.raises(ValueError, match="resnet50s"):
        build_model("resnet51", num_classes=3)


def test_bad_pretrained_file(tmp_path):
    torch.save({"foo": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="missing keys"):
        build_model("resnet18", num_classes=3, pretrained=str(tmp_path / "x.pth"))
    with pytest.raises(FileNotFoundError):
        build_model("resnet18", num_classes=3, pretrained=str(tmp_path / "none.pth"))

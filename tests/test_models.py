import dataclasses
import inspect

import pytest
import torch
import torchvision

from reskd.config import ModelConfig
from reskd.models import ARCH_OPTIONS, ARCHS, STRUCTURAL_DEFAULTS, build_model, drop_ignored_options


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


# ---- strict structural options: an option the arch ignores is an error, not a no-op ------------


def test_option_table_covers_every_arch_and_the_defaults_match():
    assert set(ARCH_OPTIONS) == set(ARCHS)
    signature = inspect.signature(build_model).parameters
    config = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    for name, default in STRUCTURAL_DEFAULTS.items():
        assert signature[name].default == default == config[name], name


@pytest.mark.parametrize("arch,option,value", [
    ("resnet50", "stem", "small"),
    ("resnet50s", "strides", (1, 1, 2, 2)),
    ("slowonly_r50", "layers", [1, 1, 2, 2]),  # lists, as configs give them
    ("swin3d_t", "widths", (8, 8, 16, 16)),
    ("tsm_resnet50", "block", "bottleneck"),
])
def test_an_ignored_option_is_an_error_naming_option_arch_and_users(arch, option, value):
    with pytest.raises(ValueError) as err, torch.device("meta"):
        build_model(arch, num_classes=3, **{option: value})
    message = str(err.value)
    shown = repr(list(value)) if isinstance(value, (list, tuple)) else repr(value)
    assert f"model.{option}={shown}" in message
    assert f"arch {arch!r}" in message
    users = message.split("used by: ")[1].split(". ")[0].split(", ")
    assert "resnet" in users and arch not in users
    assert "Remove it from the config" in message


def test_the_error_lists_exactly_the_archs_that_use_the_option():
    with pytest.raises(ValueError, match=r"used by: resnet\. ") as err:
        build_model("resnet50", num_classes=3, stem="small", widths=(8, 8, 16, 16))
    message = str(err.value)  # every ignored option at once, not one per run
    assert "model.stem='small'" in message and "model.widths=[8, 8, 16, 16]" in message
    with pytest.raises(ValueError) as err:
        build_model("resnet50s", num_classes=3, strides=[1, 1, 2, 2])
    users = str(err.value).split("used by: ")[1].split(". ")[0].split(", ")
    assert set(users) == {a for a in ARCHS if a.startswith(("resnet", "tsm_"))} - {"resnet50s"}


@pytest.mark.parametrize("arch", ARCHS)
def test_defaults_pass_for_every_arch(arch):
    # the config's defaults as cli.model_kwargs passes them: lists, and always num_segments
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in STRUCTURAL_DEFAULTS.items()}
    with torch.device("meta"):
        build_model(arch, num_classes=3, num_segments=4, dropout=0.0, **defaults)


@pytest.mark.parametrize("arch", ["resnet50", "tsm_resnet50"])
def test_strides_are_used_by_torchvision_resnets_and_tsm(arch):
    with torch.device("meta"):
        model = build_model(arch, num_classes=3, strides=[1, 1, 2, 2])
    assert model.backbone.stride == 16  # the R50-S strides, not the default 32


def test_arch_resnet_uses_every_option():
    with torch.device("meta"):
        model = build_model("resnet", num_classes=3, block="bottleneck", layers=(1, 2, 1, 1),
                            widths=(8, 8, 16, 16), stem="small", strides=(1, 1, 2, 2))
    assert len(model.backbone.layer2) == 2  # layers
    assert model.backbone.stride == 2 * 4  # small stem (2) x strides (1, 1, 2, 2)
    assert model.feature_channels == 16 * 4  # widths, bottleneck expansion


def test_drop_ignored_options_makes_old_checkpoint_kwargs_buildable():
    old = {"arch": "resnet50", "num_classes": 3, "block": "bottleneck", "layers": [3, 4, 6, 3],
           "widths": [64, 128, 256, 512], "stem": "small", "strides": [1, 1, 2, 2],
           "dropout": 0.5, "num_segments": 8}
    with pytest.raises(ValueError, match="model.stem"), torch.device("meta"):
        build_model(**old)
    clean = drop_ignored_options(old)
    assert clean["stem"] == "imagenet" and clean["block"] == "basic"
    assert clean["layers"] == [1, 1, 1, 1]  # reset, and still a list as checkpoints store it
    assert clean["strides"] == [1, 1, 2, 2]  # resnet50 uses strides: left alone
    assert old["stem"] == "small"  # a copy; the checkpoint's dict is untouched
    with torch.device("meta"):
        build_model(**clean)
    tiny = {"arch": "resnet", "stem": "small", "widths": (8, 8, 16, 16)}
    assert drop_ignored_options(tiny) == tiny
    assert drop_ignored_options({"arch": "resnet51", "stem": "small"})["stem"] == "small"


def test_tsn_dropout_at_clip_is_one_mask_on_the_frame_averaged_feature_frame_a_mask_each():
    """model.dropout_at: "clip" is the authors' and mmaction2's TSN head (pool each frame, average
    over frames, dropout, fc); "frame" (the default) a mask per frame, then fc, then the average.
    One mask per clip keeps dropout's noise; a mask per frame averages it away."""
    torch.manual_seed(0)
    options = dict(num_classes=5, widths=(8, 8, 16, 16), stem="small", dropout=0.5)
    clip = build_model("resnet", dropout_at="clip", **options)
    frame = build_model("resnet", **options)
    frame.load_state_dict(clip.state_dict())
    f = torch.rand(1, 16, 16, 2, 2)  # (N, T, C', h, w): 16 frames
    pooled = f.mean(dim=(-2, -1))  # (N, T, C')
    for model, expected in [(clip, lambda: clip.fc(clip.dropout(pooled.mean(dim=1)))),
                            (frame, lambda: frame.fc(frame.dropout(pooled)).mean(dim=1))]:
        model.train()
        torch.manual_seed(1)
        got = model.head(f)
        torch.manual_seed(1)
        torch.testing.assert_close(got, expected())
    with torch.no_grad():  # clip-logit noise over dropout draws
        once, per_frame = (torch.stack([m.head(f) for _ in range(300)]).var(dim=0).mean()
                           for m in (clip, frame))
    assert once > 8 * per_frame  # ~T = 16 times
    clip.eval(), frame.eval()  # no dropout: both orders are the same linear map
    torch.testing.assert_close(clip.head(f), frame.head(f))
    with pytest.raises(ValueError, match="model.dropout_at=.clip. has no effect on arch"):
        with torch.device("meta"):
            build_model("slowonly_r50", num_classes=4, dropout_at="clip")


def test_classifier_init_std_is_a_model_option_default_0_01_authors_tsn_0_001():
    torch.manual_seed(0)
    wide = dict(num_classes=400, widths=(8, 8, 16, 512), stem="small")
    assert 0.008 < build_model("resnet", **wide).fc.weight.std().item() < 0.012
    tsn = build_model("resnet", fc_init_std=0.001, **wide)  # the authors' RKD2DHead
    assert 0.0008 < tsn.fc.weight.std().item() < 0.0012
    assert torch.count_nonzero(tsn.fc.bias) == 0
    so = build_model("slowonly_r50", num_classes=400, fc_init_std=0.001)
    assert 0.0008 < so.fc.weight.std().item() < 0.0012
    with pytest.raises(ValueError, match="model.fc_init_std must be positive"):
        build_model("resnet", num_classes=3, fc_init_std=0.0)


def test_drop_path_sets_the_stochastic_depth_rate_of_swin_and_rejects_other_archs():
    def last_rate(model):
        return [m.p for m in model.modules() if type(m).__name__ == "StochasticDepth"][-1]

    with torch.device("meta"):
        assert last_rate(build_model("swin3d_t", num_classes=3)) == pytest.approx(0.1)
        assert (last_rate(build_model("swin3d_t", num_classes=3, drop_path=0.3))
                == pytest.approx(0.3))
        assert last_rate(build_model("mvit_v2_s", num_classes=3, drop_path=0.0)) == 0.0
    with pytest.raises(ValueError, match="model.drop_path=0.2 has no effect on arch 'resnet18'"):
        build_model("resnet18", num_classes=3, drop_path=0.2)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        build_model("swin3d_t", num_classes=3, drop_path=1.5)

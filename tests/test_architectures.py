"""TSM, SlowOnly and Video Swin: shapes at teacher and student sizes, parameter counts, the
temporal shift, weight loading and I3D inflation. Big models are counted on the meta device."""

import pytest
import torch
import torchvision

from reskd.efficiency.flops import count_macs
from reskd.models import ARCHS, build_model
from reskd.models.slowonly import inflate_from_2d
from reskd.models.swin import load_swin_weights
from reskd.models.tsm import TemporalShiftConv2d, temporal_shift


def _params_m(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


# ---- shapes: (arch, frames in, frames out, channels, build kwargs) ------------------------------

SHAPE_CASES = [
    ("tsm_resnet50", 2, 2, 2048, {"num_segments": 2}),
    ("slowonly_r50", 4, 4, 2048, {}),
    ("swin3d_t", 4, 2, 768, {}),  # the patch embedding halves T
]


@pytest.fixture(scope="module")
def built() -> dict:
    return {arch: build_model(arch, num_classes=5, **kw).eval()
            for arch, _, _, _, kw in SHAPE_CASES}


@pytest.mark.parametrize("size,hw", [(224, 7), (112, 4)])
@pytest.mark.parametrize("arch,t_in,t_out,channels", [c[:4] for c in SHAPE_CASES])
def test_shapes_at_teacher_and_student_sizes(built, arch, t_in, t_out, channels, size, hw):
    model = built[arch]
    assert arch in ARCHS
    assert model.num_classes == 5 and model.feature_channels == channels
    x = torch.randn(1, t_in, 3, size, size)  # (N, T, C, H, W)
    with torch.no_grad():
        logits, f = model(x, return_features=True)
        assert f.shape == (1, t_out, channels, hw, hw)
        assert logits.shape == (1, 5)
        torch.testing.assert_close(model.head(f), logits)
        assert model.frame_logits(f).shape == (1, t_out, 5)
        pixel = model.pixel_logits(f)
        assert pixel.shape == (1, t_out, 5, hw, hw)
        # the clip logits are the pooled pixel logits (linear classifier, eval mode)
        torch.testing.assert_close(pixel.mean(dim=(1, 3, 4)), logits, rtol=1e-4, atol=1e-5)


def test_swin_runs_at_64(built):
    with torch.no_grad():
        f = built["swin3d_t"].features(torch.randn(1, 4, 3, 64, 64))
    assert f.shape == (1, 2, 768, 2, 2)


# ---- parameter counts and GMACs (meta device: shapes only, no init cost) ------------------------

@pytest.mark.parametrize("arch,num_classes,params_m", [
    ("tsm_resnet50", 1000, 25.6),  # the shift has no parameters: torchvision ResNet-50
    ("slowonly_r50", 400, 32.5),
    ("swin3d_s", 400, 49.8),
])
def test_parameter_counts(arch, num_classes, params_m):
    with torch.device("meta"):
        model = build_model(arch, num_classes=num_classes)
    assert round(_params_m(model), 1) == params_m


def test_tsm_costs_what_tsn_costs():
    with torch.device("meta"):
        tsn = build_model("resnet50", num_classes=174)
        tsm = build_model("tsm_resnet50", num_classes=174, num_segments=8)
        x = torch.empty(1, 8, 3, 112, 112)
    assert count_macs(tsm, x).gmacs == count_macs(tsn, x).gmacs
    # the paper's ResKD-TSM cell (Table 2, SSv2, 8 frames at 112): 8.7
    assert round(count_macs(tsm, x).gmacs, 1) == 8.7


# ---- TSM --------------------------------------------------------------------------------------

def test_temporal_shift_on_a_hand_made_tensor():
    n, t, c = 2, 3, 16  # fold = 16 // 8 = 2 channels each way
    x = torch.arange(n * t * c, dtype=torch.float32).reshape(n, t, c, 1, 1) + 1  # no zeros
    out = temporal_shift(x.flatten(0, 1), num_segments=t).unflatten(0, (n, t))
    # channels 0-1: frame i takes frame i+1; the last frame gets zeros
    torch.testing.assert_close(out[:, :-1, 0:2], x[:, 1:, 0:2])
    assert (out[:, -1, 0:2] == 0).all()
    # channels 2-3: frame i takes frame i-1; the first frame gets zeros
    torch.testing.assert_close(out[:, 1:, 2:4], x[:, :-1, 2:4])
    assert (out[:, 0, 2:4] == 0).all()
    # channels 4-15 untouched; videos never mix
    torch.testing.assert_close(out[:, :, 4:], x[:, :, 4:])
    expected = x.clone()
    expected[:, :, 0:4] = 0
    expected[:, :-1, 0:2] = x[:, 1:, 0:2]
    expected[:, 1:, 2:4] = x[:, :-1, 2:4]
    assert torch.equal(out, expected)


def test_temporal_shift_keeps_channels_last():
    x = torch.randn(4, 16, 3, 3)
    out = temporal_shift(x.contiguous(memory_format=torch.channels_last), num_segments=2)
    torch.testing.assert_close(out, temporal_shift(x, num_segments=2))


def test_temporal_shift_rejects_a_batch_that_is_not_whole_clips():
    with pytest.raises(ValueError, match="num_segments=4"):
        temporal_shift(torch.zeros(6, 8, 1, 1), num_segments=4)


def test_tsm_shifts_before_conv1_of_every_block_and_keeps_names():
    with torch.device("meta"):
        tsm = build_model("tsm_resnet50", num_classes=7, num_segments=8)
        ref = torchvision.models.resnet50(weights=None)
    shifted = [name for name, m in tsm.backbone.named_modules()
               if isinstance(m, TemporalShiftConv2d)]
    assert len(shifted) == 3 + 4 + 6 + 3
    assert all(name.endswith(".conv1") for name in shifted)
    ours = {k: v.shape for k, v in tsm.backbone.state_dict().items()}
    assert ours == {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("fc.")}


def test_torchvision_resnet50_weights_load_into_tsm_unchanged(tmp_path):
    ref = torchvision.models.resnet50(weights=None)
    path = tmp_path / "r50.pth"
    torch.save(ref.state_dict(), path)
    model = build_model("tsm_resnet50", num_classes=7, num_segments=4, pretrained=str(path))
    state = model.backbone.state_dict()
    for k, v in ref.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(state[k], v), k


def test_tsm_shift_mixes_frames_and_tsn_does_not():
    kw = dict(num_classes=3, strides=(1, 2, 2, 2))
    tsm = build_model("tsm_resnet18", num_segments=2, **kw).eval()
    for m in tsm.modules():  # undo the zero-init of the last BN: residual branches must count
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
    tsn = build_model("resnet18", **kw).eval()
    tsn.load_state_dict(tsm.state_dict())
    x = torch.randn(1, 2, 3, 32, 32)
    y = x.clone()
    y[:, 1] = torch.randn(3, 32, 32)  # change frame 1 only
    with torch.no_grad():
        # TSN's frame 0 does not see frame 1; TSM's does
        torch.testing.assert_close(tsn.features(x)[:, 0], tsn.features(y)[:, 0])
        assert not torch.allclose(tsm.features(x)[:, 0], tsm.features(y)[:, 0])


def test_tsm_rejects_a_clip_of_another_length():
    model = build_model("tsm_resnet18", num_classes=3, num_segments=4)
    with pytest.raises(ValueError, match="num_segments=4"):
        model.features(torch.zeros(1, 8, 3, 32, 32))


# ---- SlowOnly ---------------------------------------------------------------------------------

def test_slowonly_layout_and_temporal_kernels():
    with torch.device("meta"):
        model = build_model("slowonly_r50", num_classes=400)
    b = model.backbone
    assert b.conv1.kernel_size == (1, 7, 7) and b.conv1.stride == (1, 2, 2)
    assert b.maxpool.kernel_size == (1, 3, 3) and b.maxpool.stride == (1, 2, 2)
    kernels = {i: {blk.conv1.kernel_size for blk in getattr(b, f"layer{i}")} for i in range(1, 5)}
    assert kernels == {1: {(1, 1, 1)}, 2: {(1, 1, 1)}, 3: {(3, 1, 1)}, 4: {(3, 1, 1)}}
    assert [getattr(b, f"layer{i}")[0].conv2.stride for i in range(1, 5)] == [
        (1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert [len(getattr(b, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]


def test_inflation_arithmetic(tmp_path):
    ref = torchvision.models.resnet50(weights=None)
    path = tmp_path / "r50.pth"
    torch.save(ref.state_dict(), path)
    model = build_model("slowonly_r50", num_classes=3, pretrained=str(path))  # inflates
    w2d = ref.layer3[0].conv1.weight  # (256, 512, 1, 1)
    w3d = model.backbone.layer3[0].conv1.weight  # (256, 512, 3, 1, 1)
    assert w3d.shape == (256, 512, 3, 1, 1)
    for k in range(3):
        torch.testing.assert_close(w3d[:, :, k], w2d / 3)
    torch.testing.assert_close(w3d.sum(dim=2), w2d)
    assert torch.equal(model.backbone.conv1.weight[:, :, 0], ref.conv1.weight)  # k_t = 1: as is
    assert torch.equal(model.backbone.layer4[2].bn3.running_var, ref.layer4[2].bn3.running_var)


def test_inflated_slowonly_on_identical_frames_equals_2d_resnet50():
    """A static clip: away from the clip ends (zero temporal padding) every frame of the
    inflated model's map is the 2D network's map. res4 + res5 have 9 temporal convs, so with
    20 frames frames 9 and 10 are out of reach of the ends."""
    ref = torchvision.models.resnet50(weights=None)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BN statistics and affine terms
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
    # float64 throughout, inflation included: in float32, w/3 rounds, and 50 layers amplify
    # that to ~1e-3 relative, a tolerance that could hide a real mistake
    state = ref.double().state_dict()
    model3d = build_model("slowonly_r50", num_classes=3).eval().double()
    inflate_from_2d(model3d.backbone, state)
    model2d = build_model("resnet50", num_classes=3).eval().double()
    model2d.backbone.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    frame = torch.randn(1, 1, 3, 32, 32, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        f3d = model3d.features(frame.expand(1, 20, 3, 32, 32))  # (1, 20, 2048, 1, 1)
        f2d = model2d.features(frame)  # (1, 1, 2048, 1, 1)
    for t in (9, 10):
        torch.testing.assert_close(f3d[:, t], f2d[:, 0], rtol=1e-9, atol=1e-9)
    assert not torch.allclose(f3d[:, 0], f2d[:, 0], rtol=1e-3, atol=1e-3)  # the end is cut


def test_inflation_rejects_weights_of_another_network():
    model = build_model("slowonly_r50", num_classes=3)
    with pytest.raises(ValueError, match="missing"):
        inflate_from_2d(model.backbone, torchvision.models.resnet18(weights=None).state_dict())


def test_slowonly_channels_last_gives_the_same_output():
    model = build_model("slowonly_r50", num_classes=3).eval()
    x = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        model.to(memory_format=model.memory_format)
        model.channels_last = True
        torch.testing.assert_close(model(x), plain, rtol=1e-4, atol=1e-5)


# ---- Video Swin -------------------------------------------------------------------------------

def test_swin_state_dict_is_torchvision_without_head():
    with torch.device("meta"):
        model = build_model("swin3d_s", num_classes=400)
        ref = torchvision.models.video.swin3d_s(weights=None)
    ours = {k: v.shape for k, v in model.backbone.state_dict().items()}
    assert ours == {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("head.")}


def _uninitialised(arch: str, num_classes: int) -> torch.nn.Module:
    """Built on meta, then given real memory: skips the slow trunc-normal init."""
    with torch.device("meta"):
        model = build_model(arch, num_classes=num_classes)
    return model.to_empty(device="cpu")


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")  # the meta Swin-S
def test_swin_weights_load_from_a_local_file(tmp_path):
    with torch.device("meta"):
        ref = torchvision.models.video.swin3d_t(weights=None, num_classes=400)
    ref = ref.to_empty(device="cpu")
    with torch.no_grad():
        for v in ref.state_dict().values():
            v.normal_() if v.is_floating_point() else v.random_(0, 100)
    path = tmp_path / "swin_t.pth"
    torch.save(ref.state_dict(), path)
    same = build_model("swin3d_t", num_classes=400, pretrained=str(path))
    assert torch.equal(same.fc.weight, ref.head.weight)  # same classes: head kept
    state = same.backbone.state_dict()
    for k, v in ref.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(state[k], v), k
    other = _uninitialised("swin3d_t", num_classes=7)
    load_swin_weights(other, str(path))  # new classes: head dropped, backbone loaded
    assert other.fc.weight.shape == (7, 768)
    assert torch.equal(other.backbone.patch_embed.proj.weight, ref.patch_embed.proj.weight)
    with torch.device("meta"):
        small = build_model("swin3d_s", num_classes=7)
    with pytest.raises(ValueError, match="do not fit"):
        load_swin_weights(small, str(path))
    with pytest.raises(FileNotFoundError):
        build_model("swin3d_t", num_classes=7, pretrained=str(tmp_path / "none.pth"))


def test_unknown_arch_lists_the_new_ones():
    with pytest.raises(ValueError, match="tsm_resnet50.*slowonly_r50.*swin3d_s"):
        build_model("swin3d_x", num_classes=3)

"""reskd reads mmaction2 checkpoints and gives mmaction2's logits (fixtures recorded from real
mmaction2 1.2.0 models by scripts/record_mmaction2_fixtures.py; mmaction2 is not installed
here). Each fixture lists the model's state-dict keys and shapes; the weights are regenerated
by the script's `fill`, saved as an mmaction2 checkpoint and loaded the way a user's would be."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from reskd.models import build_model
from reskd.models.imports import load_model_source
from reskd.models.mmaction import from_mmaction, to_mmaction

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "mmaction2"
_spec = importlib.util.spec_from_file_location(
    "record_mmaction2_fixtures", ROOT / "scripts" / "record_mmaction2_fixtures.py")
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)

SEGMENTS = record.SEGMENTS
CLIPS = torch.load(FIXTURES / "input.pt", weights_only=True)["input"]  # (2, 4, 3, 64, 64)


def fixture(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def mm_state(name: str, seed: int = 0, prefix: str = "") -> dict[str, torch.Tensor]:
    f = fixture(name)
    return record.filled(f["keys"], record.fixture_ints(f), seed, prefix)


def save_mm(path: Path, state: dict) -> str:
    """As mmaction2 saves a checkpoint: the weights under "state_dict", beside a meta."""
    torch.save({"meta": {"mmaction2_version": "1.2.0", "epoch": 1}, "state_dict": state}, path)
    return str(path)


def assert_logits(model, expected: torch.Tensor) -> None:
    with torch.no_grad():
        logits = model.eval()(CLIPS)
    assert logits.shape == expected.shape
    assert (logits - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name,arch", [("tsn_r18", "resnet18"), ("tsm_r18", "tsm_resnet18"),
                                       ("slowonly_r50", "slowonly_r50"), ("swin_t", "swin3d_t")])
def test_mmaction2_checkpoints_give_mmaction2_logits_and_convert_back(tmp_path, name, arch):
    original = mm_state(name)
    path = save_mm(tmp_path / f"{name}.pth", original)
    model, context = load_model_source(path, num_segments=SEGMENTS)
    assert context["model_kwargs"]["arch"] == arch
    assert_logits(model, fixture(name)["logits"])
    # every source key is accounted for in the report, mapped to a key of the model
    mapped = from_mmaction(torch.load(path, weights_only=True), num_segments=SEGMENTS)
    assert len(mapped.mapped) == len(original) and not mapped.dropped
    assert {dst for _, dst in mapped.mapped} == set(model.state_dict())
    # and back: mmaction2 gets its own state dict, key for key and bit for bit
    back = to_mmaction(arch, model.state_dict()).state
    assert sorted(back) == sorted(original)
    for key, value in original.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key


def test_the_authors_resKD_checkpoints_give_each_half(tmp_path):
    swin = fixture("reskd_swin")
    teacher = mm_state("swin_t", seed=1)
    student = mm_state("swin_t", seed=2)
    state = {**{k.replace("backbone.", "backbone.high_res_path.", 1): v
                for k, v in teacher.items() if k.startswith("backbone.")},
             **{k.replace("backbone.", "backbone.low_res_path.", 1): v
                for k, v in student.items() if k.startswith("backbone.")},
             **{k: v for k, v in student.items() if k.startswith("cls_head.")},
             **{k.replace("fc_cls", "fc_cls_t"): v for k, v in teacher.items()
                if k.startswith("cls_head.")}}
    path = save_mm(tmp_path / "rkd_swin.pth", state)
    model, _ = load_model_source(path)  # a teacher: the teacher half by default
    assert_logits(model, swin["logits"]["teacher"])
    model, _ = load_model_source(path + "#student")
    assert_logits(model, swin["logits"]["student"])
    mapped = from_mmaction(torch.load(path, weights_only=True), half="student")
    assert sum(why.startswith("the other half") for _, why in mapped.dropped) == len(
        [k for k in teacher if k.startswith("backbone.")])

    tsn = fixture("reskd_tsn")
    state = {**{k.replace("backbone.", "backbone.high_res_path.", 1): v
                for k, v in mm_state("tsn_r34", seed=1).items() if k.startswith("backbone.")},
             **{k.replace("backbone.", "backbone.low_res_path.", 1): v
                for k, v in mm_state("tsn_r18", seed=2).items()}}
    path = save_mm(tmp_path / "rkd_tsn.pth", state)
    model, context = load_model_source(path, half="student")
    assert context["model_kwargs"]["arch"] == "resnet18"
    assert_logits(model, tsn["logits"]["student"])
    with pytest.raises(ValueError, match="holds no classifier for the teacher half"):
        load_model_source(path)


def test_a_key_without_a_reskd_counterpart_is_an_error_naming_it(tmp_path):
    state = mm_state("tsn_r18")
    state["backbone.layer1.0.se.fc.weight"] = torch.zeros(4, 4)
    with pytest.raises(ValueError, match=r"backbone\.layer1\.0\.se\.fc\.weight"):
        load_model_source(save_mm(tmp_path / "extra.pth", state))


def test_an_mmaction2_checkpoint_as_model_pretrained_starts_a_student(tmp_path):
    state = mm_state("tsn_r18")
    path = save_mm(tmp_path / "tsn.pth", state)
    model = build_model("tsm_resnet18", num_classes=7, num_segments=SEGMENTS, pretrained=path)
    assert torch.equal(model.backbone.layer1[0].conv1.weight,
                       state["backbone.layer1.0.conv1.conv.weight"])
    assert model.fc.weight.shape == (7, 512)  # new classes: a fresh classifier
    with pytest.raises(ValueError, match="do not fit model.arch='resnet34'"):
        build_model("resnet34", num_classes=7, pretrained=path)


class HistoryBuffer:
    """Stands in for mmengine's log buffer, which a Runner's checkpoint pickles."""

    def __init__(self):
        import numpy as np

        self.values = np.array([1.5, 1.2])


def test_a_runner_checkpoint_with_pickled_objects_reads_without_running_their_code(tmp_path):
    from reskd.models.weights import read_weights_file

    state = mm_state("tsn_r18")
    path = tmp_path / "runner.pth"
    torch.save({"meta": {"epoch": 3}, "state_dict": state,
                "message_hub": {"log_scalars": {"train/loss": HistoryBuffer()}}}, path)
    with pytest.raises(Exception, match="HistoryBuffer"):
        torch.load(path, weights_only=True)  # what a plain safe load says
    loaded = read_weights_file(path)
    assert type(loaded["message_hub"]["log_scalars"]["train/loss"]) is not HistoryBuffer
    model, _ = load_model_source(str(path), num_segments=SEGMENTS)
    assert_logits(model, fixture("tsn_r18")["logits"])

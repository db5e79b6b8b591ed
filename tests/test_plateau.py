"""Runs that go wrong quietly, made visible: a training plateau (the log warns once, resume
included, and `reskd compare` marks the run) and a 1x1 student map under feature KD (distill
warns before training and names the fix). Tiny real runs on real MP4 files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import write_data_config

# A tiny TSN over a 4-stage ResNet; the stem and size are each test's.
TINY = ["model.arch=resnet", "model.block=basic", "model.layers=[1,1,1,1]",
        "model.widths=[8,8,16,16]", "data.short_side_ratio=1.0", "data.workers=0",
        "runtime.progress=false", "runtime.tensorboard=false"]
# A run that cannot leave its first epoch: every epoch sees the same 32 clips in one batch
# (8 segments of the 8-frame videos: every frame; the whole frame, unflipped), no dropout, and
# an lr too small to move the weights, so train top-1 is the same number every epoch.
STUCK = [*TINY, "model.stem=small", "data.size=32", "data.num_segments=8", "data.batch_size=32",
         "data.crop_scales=[1.0]", "data.flip=false", "model.dropout=0.0", "optim.lr=1e-9",
         "optim.epochs=3"]
KNOBS = ("likely knobs: optim.lr (try x0.3 or x3), model.fc_init_std (the classifier's init), "
         "optim.warmup_epochs (a longer or shorter warm-up)")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from reskd.data.synth import make_synth_dataset

    root = tmp_path_factory.mktemp("synth")
    make_synth_dataset(root, seed=1, num_train=32, num_val=8, workers=1)
    return root


# ---- the rule -----------------------------------------------------------------------------


def test_a_run_still_at_its_first_epoch_after_a_third_of_its_epochs_gets_one_message():
    from reskd.engine.train import plateau_message

    top1 = [18.4, 20.1, 22.3, 21.9]  # 12 epochs: decided at epoch 4
    assert plateau_message(top1, 12, 10) == (
        f"plateau: train top-1 has stayed at 21.9% (epoch 1: 18.4%, chance 10.0%) for 4 of 12 "
        f"epochs; {KNOBS}")
    assert plateau_message(top1[:3], 12, 10) is None  # too early to say
    assert plateau_message([10.0, 10.0], 3, 10) is not None  # 3 epochs: decided at epoch 2
    assert plateau_message([10.0, 10.0], 2, 10) is None  # too short a run to judge


def test_a_rise_of_more_than_a_tenth_of_what_is_left_is_not_a_plateau():
    from reskd.engine.train import plateau_message

    assert plateau_message([20.0, 28.0, 27.0, 26.0], 12, 10) is not None  # 8 = a tenth of 80
    assert plateau_message([20.0, 28.1, 27.0, 26.0], 12, 10) is None
    assert plateau_message([20.0, 40.0, 22.0, 21.0], 12, 10) is None  # rose once: best counts
    assert plateau_message([2.0, 30.0, 55.0, 70.0], 12, 400) is None  # learning


def test_a_run_past_halfway_from_chance_is_not_stuck_and_chance_needs_the_classes():
    from reskd.engine.train import plateau_message

    assert plateau_message([80.0, 81.0, 81.5, 82.0], 12, 10) is None  # a fine-tune starts high
    # 2 classes: chance is 50%, halfway 75%; stuck at 51% is a plateau
    assert "(epoch 1: 50.0%, chance 50.0%)" in plateau_message([50.0, 51.0, 52.0, 51.0], 12, 2)
    assert plateau_message([50.0, 51.0, 52.0, 75.0], 12, 2) is None
    assert "(epoch 1: 20.0%) for" in plateau_message([20.0, 21.0, 22.0, 21.0], 12, 0)


# ---- a real run: logged once, resumed, compared -------------------------------------------


def test_a_stuck_run_warns_once_across_a_resume_and_compare_marks_it(data, tmp_path):
    from reskd.analysis.compare import compare_runs
    from reskd.config import load_config
    from reskd.engine.train import Interrupted
    from reskd.runs import run_train

    config = write_data_config(tmp_path / "tiny.yaml", data)
    cfg = load_config(config, [*STUCK, f"runtime.out={tmp_path / 'stuck'}"])
    logged: list[str] = []

    def after_the_warning() -> str | None:  # stop at the epoch that warned, to resume after it
        return "SIGTERM" if any("plateau" in m for m in logged) else None

    with pytest.raises(Interrupted, match="after epoch 2"):
        run_train(cfg, distill=False, log=logged.append, should_stop=after_the_warning)
    run_train(cfg, distill=False, resume=True, log=logged.append)
    warned = [m for m in logged if "plateau" in m]
    records = [json.loads(x) for x in (tmp_path / "stuck" / "metrics.jsonl").read_text()
               .splitlines()]
    assert [r["train_top1"] for r in records] == [records[0]["train_top1"]] * 3
    top1 = records[0]["train_top1"]
    message = (f"plateau: train top-1 has stayed at {top1:.1f}% (epoch 1: {top1:.1f}%, chance "
               f"10.0%) for 2 of 3 epochs; {KNOBS}")
    assert warned == [f"warning: {message}"]  # once, right after epoch 2's line
    assert logged[logged.index(warned[0]) - 1].startswith("epoch 2/3  loss")
    assert [r.get("plateau") for r in records] == [None, message, None]

    steady = tmp_path / "steady"  # the same run without the flag in its metrics.jsonl
    shutil.copytree(tmp_path / "stuck", steady)
    (steady / "metrics.jsonl").write_text("".join(
        json.dumps({k: v for k, v in r.items() if k != "plateau"}) + "\n" for r in records))
    result = compare_runs([tmp_path / "stuck", steady], tmp_path / "cmp")
    rows = [line.split(" | ")[0][2:] for line in result["table"][2:4]]
    assert rows == ["stuck (plateau)", "steady"]
    note = f"- stuck (plateau): {message.removeprefix('plateau: ')}"
    assert result["table"][4:] == ["", note]  # under the table: what the mark means
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| stuck (plateau) |" in md and note in md


# ---- a 1x1 student map under feature KD ---------------------------------------------------


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory) -> Path:
    """A 64 px teacher with the stock stem (7x7/2 conv + max-pool, stride 32): a 2x2 map."""
    from reskd.config import load_config
    from reskd.runs import run_train

    folder = tmp_path_factory.mktemp("teacher")
    config = write_data_config(folder / "tiny.yaml", data, val_list="")
    cfg = load_config(config, [*TINY, "model.stem=imagenet", "data.size=64", "data.num_segments=2",
                               "data.batch_size=16", "optim.epochs=1", f"runtime.out={folder}"])
    return Path(run_train(cfg, distill=False, log=lambda _: None)["model"])


def _distill_log(data: Path, teacher: Path, out: Path, stem: str) -> list[str]:
    from reskd.config import load_config
    from reskd.runs import run_train

    config = write_data_config(out.parent / "tiny.yaml", data, val_list="")
    cfg = load_config(config, [*TINY, f"model.stem={stem}", "data.size=32", "data.crop_size=64",
                               "data.num_segments=2", "data.batch_size=16", "optim.epochs=1",
                               f"distill.teacher={teacher}", f"runtime.out={out}"])
    logged: list[str] = []
    run_train(cfg, distill=True, log=logged.append)
    return logged


def test_distill_warns_before_training_when_the_students_map_is_1x1(data, teacher, tmp_path):
    logged = _distill_log(data, teacher, tmp_path / "student", "imagenet")
    warned = [m for m in logged if "pre-pool map" in m]
    assert warned == [
        "warning: the student's pre-pool map (N, T', C', h, w) is (1, 2, 16, 1, 1) at 32 px, "
        "the teacher's (1, 2, 16, 2, 2) at 64 px: resized to 2x2, a 1x1 map is constant, so "
        "feature KD carries no spatial hint (only the teacher's map averaged over positions); "
        "use model.stem=small (no max-pool: half the stride) or smaller model.strides (e.g. "
        "[1,1,2,2]) so the student's map is at least 2x2"]
    assert logged.index(warned[0]) < next(i for i, m in enumerate(logged)
                                          if m.startswith("distilling"))


def test_distill_is_quiet_when_the_students_map_is_2x2(data, teacher, tmp_path):
    logged = _distill_log(data, teacher, tmp_path / "student", "small")  # stride 16: 2x2 at 32
    assert not [m for m in logged if "pre-pool map" in m or m.startswith("warning")]


def test_the_map_warning_names_only_flat_sizes_and_needs_a_larger_teacher_map():
    from reskd.distill.distiller import flat_map_warning

    maps = {16: (1, 2, 16, 1, 1), 32: (1, 2, 16, 2, 2)}
    message = flat_map_warning(maps, (1, 2, 16, 4, 4), teacher_size=64, terms="feature KD",
                               fixes=["a larger data.size (swin3d_t fixes its layout)"])
    assert "is (1, 2, 16, 1, 1) at 16 px, the teacher's (1, 2, 16, 4, 4) at 64 px" in message
    assert message.endswith("use a larger data.size (swin3d_t fixes its layout) so the "
                            "student's map is at least 2x2")
    assert flat_map_warning({32: (1, 2, 16, 1, 1)}, (1, 2, 16, 1, 1), teacher_size=32,
                            terms="feature KD", fixes=["x"]) is None  # both 1x1: nothing lost
    assert flat_map_warning({32: (1, 2, 16, 2, 2)}, (1, 2, 16, 4, 4), teacher_size=64,
                            terms="feature KD", fixes=["x"]) is None

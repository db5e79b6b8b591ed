"""The any-resolution student (`distill.student_sizes`): one student trained on the same crop at
several sizes, a BatchNorm per size, run at any of them by test / predict / flops / bench /
export / sweep, and an error for any other size. A run without student_sizes is unchanged.

The data is the views guard's: tiny lossless videos whose frames are one still picture, no flip,
the whole frame as the crop, so a test view can be compared bit for bit with a training view.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import write_still_videos
from reskd.checkpoint import checkpoint_at_size, checkpoint_sizes, load_checkpoint
from reskd.config import ConfigError, load_config, save_config
from reskd.data import transforms as T
from reskd.distill.distiller import Distiller, distill_loss
from reskd.distill.losses import classification_loss, feature_kd
from reskd.engine.optim import make_optimizer
from reskd.engine.train import train_step
from reskd.models import build_from_kwargs, load_model_checkpoint
from reskd.models.fold import fold_batchnorm
from reskd.models.size_bn import SizeBatchNorm, set_size
from reskd.runs import make_dataset, model_kwargs, run_test, run_train

TEACHER, SIZES, FRAME = 64, (16, 24, 32), 72
TINY = {"arch": "resnet", "num_classes": 2, "block": "basic", "layers": [1, 1, 1, 1],
        "widths": [8, 8, 16, 16], "stem": "small", "strides": [1, 2, 2, 2], "dropout": 0.0,
        "num_segments": 2}
quiet = lambda *_: None  # noqa: E731


def reskd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reskd", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def still_video(tmp_path_factory) -> Path:
    return write_still_videos(tmp_path_factory.mktemp("still"), FRAME)


def overrides(root: Path, out: Path, size: int, *extra: str) -> list[str]:
    return [f"data.root={root}", "data.train_list=list.txt", "data.val_list=list.txt",
            "data.classes=classes.txt", f"data.size={size}", "data.short_side_ratio=1.0",
            "data.crop_scales=[1.0]", "data.flip=false", "data.batch_size=2", "data.workers=0",
            "model.arch=resnet", "model.widths=[8,8,16,16]", "model.stem=small",
            "data.num_segments=2", "optim.epochs=1", "runtime.progress=false",
            "runtime.precision=fp32", "runtime.channels_last=false", "runtime.tensorboard=false",
            f"runtime.out={out}", *extra]


@pytest.fixture(scope="module")
def trained(still_video, tmp_path_factory) -> dict:
    """A 64 px teacher, an any-resolution student at 16/24/32 distilled from it, and a 16 px
    student distilled alone; the student's config as a YAML too."""
    tmp = tmp_path_factory.mktemp("anyres")
    teacher = run_train(load_config(None, overrides(still_video, tmp / "t", TEACHER)),
                        distill=False, log=quiet)
    cfg = load_config(None, overrides(still_video, tmp / "s", 32,
                                      f"distill.teacher={teacher['model']}",
                                      f"data.crop_size={TEACHER}",
                                      "distill.student_sizes=[16,24,32]"))
    student = run_train(cfg, distill=True, log=quiet)
    alone = run_train(load_config(None, overrides(still_video, tmp / "s16", 16,
                                                  f"distill.teacher={teacher['model']}",
                                                  f"data.crop_size={TEACHER}")),
                      distill=True, log=quiet)
    save_config(cfg, tmp / "student.yaml")
    return {"teacher": teacher["model"], "student": student["model"], "alone": alone["model"],
            "cfg": cfg, "yaml": tmp / "student.yaml", "root": still_video}


@pytest.mark.parametrize("crop, shrink", [(64, "bilinear"), (80, "antialias")])
def test_each_size_view_is_exactly_the_single_size_view(crop, shrink):
    frames = np.random.default_rng(1).integers(0, 256, (2, 90, 100, 3), dtype=np.uint8)
    common = dict(crop_size=crop, shrink=shrink, short_side_ratio=1.1, flip=True)
    multi = T.Views(teacher_size=TEACHER, student_size=32, student_sizes=SIZES, **common)
    got = multi.train(frames, np.random.default_rng(7))
    assert set(got) == {"teacher", "student", "students"} and set(got["students"]) == {16, 24}
    for size, view in [(32, got["student"]), *got["students"].items()]:
        one = T.Views(teacher_size=TEACHER, student_size=size, **common).train(
            frames, np.random.default_rng(7))
        assert torch.equal(view, one["student"]), size
        assert torch.equal(got["teacher"], one["teacher"])


def test_a_step_trains_every_size_with_its_own_batchnorm():
    torch.manual_seed(0)
    teacher = build_from_kwargs(TINY).eval()
    student = build_from_kwargs({**TINY, "bn_sizes": list(SIZES)})
    first = student.backbone.bn1
    assert isinstance(first, SizeBatchNorm) and set(first.norms) == {"16", "24", "32"}
    optimizer = make_optimizer(student, optimizer="adamw", lr=1e-3, momentum=0.9,
                               nesterov=False, weight_decay=0.0)
    batch = {"student": torch.randn(2, 2, 3, 32, 32), "teacher": torch.randn(2, 2, 3, 64, 64),
             "students": {16: torch.randn(2, 2, 3, 16, 16), 24: torch.randn(2, 2, 3, 24, 24)},
             "label": torch.tensor([0, 1])}
    before = {s: first.norms[str(s)].running_mean.clone() for s in SIZES}
    parts = train_step(student, batch, optimizer=optimizer, device=torch.device("cpu"),
                       distiller=Distiller(teacher, student), grad_clip=20.0)
    for s in SIZES:
        assert parts[f"s{s}_feature_kd"].item() > 0 and parts[f"s{s}_ce"].item() > 0
        assert not torch.equal(first.norms[str(s)].running_mean, before[s])  # each size's own
    ce, kd = parts["ce"].item(), parts["kd"].item()
    assert ce == pytest.approx(sum(parts[f"s{s}_ce"].item() for s in SIZES), rel=1e-6)
    assert kd == pytest.approx(100 * sum(parts[f"s{s}_feature_kd"].item() for s in SIZES),
                               rel=1e-5)
    assert parts["loss"].item() == pytest.approx(ce + kd, rel=1e-6)
    assert first.size == "32"  # left at the model's own size, for validation

    # two sizes per step: the model's own and one drawn; the other BatchNorm is untouched
    student = build_from_kwargs({**TINY, "bn_sizes": list(SIZES)})
    optimizer = make_optimizer(student, optimizer="adamw", lr=1e-3, momentum=0.9,
                               nesterov=False, weight_decay=0.0)
    parts = train_step(student, batch, optimizer=optimizer, device=torch.device("cpu"),
                       distiller=Distiller(teacher, student, sizes_per_step=2))
    trained = {s for s in SIZES if f"s{s}_ce" in parts}
    assert len(trained) == 2 and 32 in trained
    (skipped,) = set(SIZES) - trained
    assert torch.equal(student.backbone.bn1.norms[str(skipped)].running_mean,
                       torch.zeros_like(before[16]))


def test_the_checkpoint_records_its_sizes_and_runs_at_each(trained):
    ckpt = load_checkpoint(trained["student"])
    assert ckpt["views"]["student_sizes"] == [16, 24, 32] and ckpt["size"] == 32
    assert ckpt["model_kwargs"]["bn_sizes"] == [16, 24, 32]
    assert sorted(ckpt["gmacs_by_size"]) == [16, 24, 32]
    assert ckpt["gmacs_by_size"][32] == ckpt["gmacs"]
    cfg = trained["cfg"]
    train_set = make_dataset(cfg, "train_list", train=True, sizes=(TEACHER, 32), num_classes=2,
                             crop_size=TEACHER, student_sizes=SIZES, log=quiet)
    item = train_set.views.views_of(train_set[0]["clip"])  # the training views of video 0
    for size in SIZES:
        model, at = load_model_checkpoint(trained["student"], size)
        assert at["size"] == at["views"]["size"] == size
        assert at["gmacs"] == ckpt["gmacs_by_size"][size]
        assert not any(isinstance(m, SizeBatchNorm) for m in model.modules())  # a plain network
        # ... and the checkpoint it comes with is that network's, nothing of the other sizes
        assert "student_sizes" not in at["views"] and "bn_sizes" not in at["model_kwargs"]
        build_from_kwargs(at["model_kwargs"]).load_state_dict(at["model"])
        # its test views are its training views at that size (still frames, whole-frame crop)
        from reskd.predict import video_views

        view = item["student"] if size == 32 else item["students"][size]
        assert torch.equal(video_views(trained["root"] / "v0.mp4", at)[0], view)
        # the deployed network is the trained one at that size, folded too
        x = view[None]  # (1, T, C, s, s)
        reference = build_from_kwargs(ckpt["model_kwargs"])
        reference.load_state_dict(ckpt["model"])
        set_size(reference, size)
        with torch.no_grad():
            want = reference.eval()(x)
            assert torch.equal(model(x), want)
            folded, n = fold_batchnorm(model)
            assert n > 0 and torch.allclose(folded(x), want, atol=1e-5)

    from reskd.experiments.sweep import flops_report

    plain = build_from_kwargs(TINY)
    report = flops_report(checkpoint=trained["student"], size=16)
    assert report["gmacs_per_video"] == pytest.approx(ckpt["gmacs_by_size"][16])
    assert report["params_m"] == pytest.approx(sum(p.numel() for p in plain.parameters()) / 1e6)


def test_an_unsupported_size_is_an_error_listing_the_supported_ones(trained):
    from reskd.efficiency.benchmark import bench_report
    from reskd.experiments.sweep import flops_report

    with pytest.raises(ValueError, match=r"supports --size 16, 24, 32 .*got --size 20"):
        load_model_checkpoint(trained["student"], 20)
    with pytest.raises(ValueError, match=r"supports --size 16, 24, 32"):
        flops_report(checkpoint=trained["student"], size=20)
    with pytest.raises(ValueError, match=r"supports --size 16, 24, 32"):
        bench_report(checkpoint=trained["student"], sizes=[32, 20], frames=2, batch=1,
                     modes=["fp32"])
    with pytest.raises(ValueError, match=r"supports --size 64 only"):
        load_model_checkpoint(trained["teacher"], 32)


def test_cli_test_and_flops_take_the_size(trained):
    student, config = str(trained["student"]), str(trained["yaml"])
    out = reskd("test", config, "--checkpoint", student, "--size", "16", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["size"] == 16 and result["num_videos"] == 4
    assert result["top1"] == run_test(trained["cfg"], student, log=quiet, size=16)["top1"]
    out = reskd("flops", "--checkpoint", student, "--size", "24", "--json")
    assert out.returncode == 0, out.stderr
    gmacs = load_checkpoint(student)["gmacs_by_size"][24]
    assert json.loads(out.stdout)["gmacs_per_video"] == pytest.approx(gmacs)
    out = reskd("flops", "--checkpoint", student, "--size", "20")
    assert out.returncode == 2 and "supports --size 16, 24, 32" in out.stderr


@pytest.mark.slow
def test_cli_predict_takes_the_size_and_test_and_predict_refuse_others(trained):
    student, video = str(trained["student"]), str(trained["root"] / "v0.mp4")
    out = reskd("predict", video, "--checkpoint", student, "--size", "16", "--json",
                "--precision", "fp32")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)[0]["top"]) == 2
    for command in (["test", str(trained["yaml"]), "--checkpoint", student, "--size", "20"],
                    ["predict", video, "--checkpoint", student, "--size", "20"]):
        out = reskd(*command)
        assert out.returncode == 2 and "supports --size 16, 24, 32" in out.stderr, command


def test_export_runs_the_network_of_the_size_asked_for(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    from reskd.export import read_onnx_metadata, run_export

    info = run_export(trained["student"], out=tmp_path / "s16.onnx", size=16)
    assert info["input_shape"][-1] == 16 and info["max_abs_diff"] < 1e-3
    meta = read_onnx_metadata(tmp_path / "s16.onnx")
    assert meta["size"] == 16 and meta["views"]["size"] == 16
    assert "student_sizes" not in meta["views"]  # the graph runs at 16 px only
    with pytest.raises(ValueError, match="supports --size 16, 24, 32"):
        run_export(trained["student"], out=tmp_path / "s20.onnx", size=20)


def test_sweep_on_an_anyres_checkpoint_writes_table4_with_the_separate_student(trained, tmp_path):
    from reskd.experiments.sweep import sweep

    payload = sweep(out=tmp_path / "sweep", checkpoint=trained["student"],
                    checkpoints={16: trained["alone"]}, config=trained["yaml"], batch=1,
                    rounds=1, min_seconds=0.01, log=quiet)
    rows = payload["rows"]
    assert [r["size"] for r in rows] == [32, 24, 16] and payload["frames"] == 2
    for row in rows:
        direct = run_test(trained["cfg"], trained["student"], log=quiet, size=row["size"])
        assert row["accuracy"] == direct["top1"] and row["videos_per_s"] > 0
    assert rows[0]["reduction"] == 1.0 and rows[2]["reduction"] > 3
    assert rows[2]["reference"]["accuracy"] is not None and rows[0]["reference"] is None
    text = (tmp_path / "sweep" / "sweep.md").read_text()
    assert "| separately trained |" in text and "| any-res - separate |" in text
    assert (tmp_path / "sweep" / "tradeoff.png").stat().st_size > 0
    with pytest.raises(ValueError, match="supports --size 16, 24, 32"):
        sweep(out=tmp_path / "bad", checkpoint=trained["student"], sizes=[32, 20], log=quiet)


def test_student_sizes_are_validated(still_video, tmp_path):
    base = overrides(still_video, tmp_path, 32)
    for sets, message in [
            (["distill.student_sizes=[16,24]"], "must be one of distill.student_sizes"),
            (["distill.student_sizes=[32]"], "two or more distinct"),
            (["distill.student_sizes=[16,32]", "distill.sizes_per_step=3"], "between 2 and 2"),
            (["distill.sizes_per_step=2"], "needs distill.student_sizes"),
            (["distill.student_sizes=[16,32]", "distill.size_bn=mixed"], "distill.size_bn")]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, base + sets)
    with pytest.raises(ConfigError, match="use `reskd distill`"):
        run_train(load_config(None, base + ["distill.student_sizes=[16,32]"]), distill=False,
                  log=quiet)


def test_without_student_sizes_the_single_size_path_is_unchanged(trained, still_video, tmp_path):
    cfg = load_config(None, overrides(still_video, tmp_path, 32))
    assert "bn_sizes" not in model_kwargs(cfg, 2)
    spec = T.Views(teacher_size=TEACHER, student_size=32, crop_size=TEACHER)
    frames = np.random.default_rng(2).integers(0, 256, (2, 72, 72, 3), dtype=np.uint8)
    views = spec.train(frames, np.random.default_rng(3))
    assert set(views) == {"teacher", "student"} and "student_sizes" not in spec.record()
    direct = T.train_views(frames, (TEACHER, 32), short_side_ratio=spec.short_side_ratio,
                           scales=spec.scales, flip=True, mean=spec.mean, std=spec.std,
                           rng=np.random.default_rng(3), crop_size=TEACHER)
    assert torch.equal(views["teacher"], direct[0]) and torch.equal(views["student"], direct[1])
    ckpt = load_checkpoint(trained["teacher"])
    assert checkpoint_at_size(ckpt, None) is ckpt and checkpoint_sizes(ckpt) == (64,)
    model, same = load_model_checkpoint(trained["teacher"])
    assert same.keys() == ckpt.keys() and same["size"] == 64 and same["views"] == ckpt["views"]
    assert not any(isinstance(m, SizeBatchNorm) for m in model.modules())

    # the one-size loss is CE + alpha * feature KD, bit for bit as written in the paper
    torch.manual_seed(0)
    teacher, student = build_from_kwargs(TINY).eval(), build_from_kwargs(TINY)
    xs, xt = torch.randn(2, 2, 3, 32, 32), torch.randn(2, 2, 3, 64, 64)
    labels = torch.tensor([0, 1])
    parts = distill_loss(student, teacher, xs, xt, labels)
    logits, f_student = student(xs, return_features=True)
    with torch.no_grad():
        f_teacher = teacher.features(xt)
    ce = classification_loss(logits, labels)
    want = ce + (torch.zeros(()) + 100.0 * feature_kd(f_student, f_teacher))
    assert torch.equal(parts["loss"], want) and set(parts) == {"loss", "ce", "kd", "logits",
                                                                "feature_kd"}
    assert torch.equal(parts["feature_kd"], F.mse_loss(
        F.interpolate(f_student.flatten(0, 1), size=f_teacher.shape[-2:], mode="bilinear",
                      align_corners=False).unflatten(0, f_student.shape[:2]), f_teacher))


def test_anyres_study_plans_the_three_arms_per_seed_and_the_teacher_once():
    from reskd.experiments.studies import anyres_runs

    runs = anyres_runs(sizes=(32, 24, 16), high=64, seeds=(0, 1))
    assert [r.key for r in runs[:8]] == [
        "teacher64/seed0", "anyres/seed0", "reskd32/seed0", "reskd24/seed0", "reskd16/seed0",
        "baseline32/seed0", "baseline24/seed0", "baseline16/seed0"]
    assert len(runs) == 1 + 2 * 7 and all("data.crop_size=64" in r.overrides for r in runs)
    anyres = runs[1]
    assert "distill.student_sizes=[16,24,32]" in anyres.overrides
    assert "data.size=32" in anyres.overrides and anyres.info == {"sizes": [16, 24, 32]}
    assert ({r.teacher for r in runs if r.name.startswith(("anyres", "reskd"))}
            == {"teacher64/seed0"})
    assert not any(r.teacher for r in runs if r.name.startswith(("baseline", "teacher")))
    with pytest.raises(ValueError, match="two or more student sizes below"):
        anyres_runs(sizes=(64, 32), high=64, seeds=(0,))


@pytest.mark.slow
def test_study_anyres_quick_writes_its_table_and_reuses_finished_runs(tmp_path):
    out = tmp_path / "study"
    first = reskd("study", "anyres", "--quick", "--out", str(out))
    assert first.returncode == 0, first.stderr
    payload = json.loads((out / "anyres.json").read_text())
    assert set(payload["rows"]) >= {"anyres16", "anyres24", "anyres32", "reskd16", "baseline16"}
    record = payload["runs"]["anyres/seed0"]
    assert sorted(record["by_size"]) == ["16", "24", "32"] and record["test_seconds"] > 0
    text = (out / "anyres.md").read_text()
    assert "ResKD, one for all sizes" in text and "Training time per seed" in text
    assert (out / "anyres.png").stat().st_size > 0
    again = reskd("study", "anyres", "--quick", "--out", str(out), "--teacher",
                  str(out / "runs" / "teacher64" / "seed0" / "model.pt"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("done before") == 7 and "testing anyres" not in again.stdout

"""`reskd study resolution|ablation`: run plans, the up-sampled frames of Figure 1a, and both
studies end to end through the real CLI on tiny synthetic videos (numbers not meaningful)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reskd.config import ConfigError, load_config
from reskd.data.transforms import degrade
from reskd.experiments.studies import ablation_runs, resolution_runs


def reskd(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reskd", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_degrade_keeps_the_shape_and_removes_detail_finer_than_the_resolution():
    checker = (torch.arange(64).view(1, -1) + torch.arange(64).view(-1, 1)) % 2  # 1-px checks
    x = checker.float().expand(2, 3, 64, 64) * 255
    y = degrade(x, 16)
    assert y.shape == x.shape
    assert y.std() < 0.01 * x.std()  # a 16x16 image cannot hold 1-pixel checks
    wave = torch.sin(torch.arange(64) * 2 * torch.pi / 32)  # period 32 px: survives 32x32
    smooth = (128 + 100 * wave.view(1, -1) * wave.view(-1, 1)).expand(2, 3, 64, 64)
    assert (degrade(smooth, 32) - smooth)[..., 4:-4, 4:-4].abs().max() < 0.05 * 255
    assert degrade(x, 0) is x and degrade(x, 64) is x


def test_downsample_to_is_validated_against_the_size():
    with pytest.raises(ConfigError, match="data.downsample_to"):
        load_config(None, ["data.size=64", "data.downsample_to=96"])
    assert load_config(None, ["data.size=64", "data.downsample_to=32"]).data.downsample_to == 32


def test_resolution_runs_plan_native_upsampled_and_s_runs():
    runs = resolution_runs(sizes=[64, 32], high=64, s_sizes=[32], s_set=["model.strides=[1,1,2,2]"],
                           seeds=[0, 1])
    keys = [r.key for r in runs]
    assert keys == ["native64/seed0", "native32/seed0", "upsampled32/seed0", "S32/seed0",
                    "native64/seed1", "native32/seed1", "upsampled32/seed1", "S32/seed1"]
    up = runs[2]
    assert up.overrides == ("data.crop_size=64", "data.size=64", "data.downsample_to=32")
    assert runs[3].overrides == ("model.strides=[1,1,2,2]", "data.crop_size=64", "data.size=32")
    assert all("data.crop_size=64" in r.overrides for r in runs)  # one crop, shrunk per size
    with pytest.raises(ValueError, match="--high=64"):
        resolution_runs(sizes=[128], high=64, s_sizes=[], s_set=[], seeds=[0])


def test_ablation_runs_train_teachers_once_and_students_per_seed():
    runs = ablation_runs(student_size=32, teacher_size=64, big_set=["model.layers=[1,1,2,2]"],
                         seeds=[3, 4])
    by_key = {r.key: r for r in runs}
    teachers = [r for r in runs if r.name.startswith("teacher_")]
    assert [t.key for t in teachers] == ["teacher_big64/seed3", "teacher_big32/seed3",
                                         "teacher_same64/seed3"]
    assert runs[:3] == teachers  # teachers come before every student
    assert len(runs) == 3 + 2 * 6
    assert by_key["pixel_kd/seed4"].teacher == "teacher_big64/seed3"
    assert by_key["model_distill/seed4"].teacher == "teacher_big32/seed3"
    assert by_key["resolution_distill/seed3"].teacher == "teacher_same64/seed3"
    assert by_key["baseline/seed4"].teacher == ""
    assert "distill.frame_kd=1" in by_key["frame_kd/seed3"].overrides
    assert "distill.alpha=0" in by_key["clip_kd/seed3"].overrides
    assert "model.layers=[1,1,2,2]" not in by_key["resolution_distill/seed3"].overrides
    with pytest.raises(ValueError, match="must exceed"):
        ablation_runs(student_size=64, teacher_size=64, big_set=[], seeds=[0])


def test_study_resolution_quick_writes_table_json_plot_and_reuses_finished_runs(tmp_path):
    out = tmp_path / "res"
    proc = reskd("study", "resolution", "--quick", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((out / "resolution.json").read_text())
    assert set(payload["rows"]["native"]) == {"64", "32"}
    assert set(payload["rows"]["upsampled"]) == {"64", "32"} and set(payload["rows"]["S"]) == {"32"}
    runs = payload["runs"]
    assert runs["upsampled32/seed0"]["gmacs"] == pytest.approx(runs["native64/seed0"]["gmacs"])
    assert runs["native64/seed0"]["gmacs"] == pytest.approx(4 * runs["native32/seed0"]["gmacs"],
                                                            rel=0.05)
    # the -S network keeps 2x larger maps after the stem: about 3x the MACs at the same input
    assert runs["S32/seed0"]["gmacs"] > 2 * runs["native32/seed0"]["gmacs"]
    up_cfg = load_config(out / "runs/upsampled32/seed0/config.yaml")
    assert (up_cfg.data.size, up_cfg.data.downsample_to) == (64, 32)
    assert load_config(out / "runs/S32/seed0/config.yaml").model.strides == (1, 1, 2, 2)
    table = (out / "resolution.md").read_text()
    assert "Figure 1a" in table and "Figure 1b" in table and "| 32x32 |" in table
    assert (out / "resolution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # `reskd compare` of every run: one line each, labelled by its overrides
    compared = (out / "compare" / "compare.md").read_text()
    assert ("| upsampled32/seed0 | data.downsample_to=32, data.size=64, model.strides=[1,2,2,2] |"
            in compared)
    assert compared.count("/seed0 |") == len(runs) and (out / "compare" / "compare.png").is_file()

    # a rerun trains nothing; a run without its record resumes from its checkpoint
    (out / "runs/S32/seed0/study.json").unlink()
    again = reskd("study", "resolution", "--quick", "--out", out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("done before") == 3
    assert "S32/seed0: resuming" in again.stdout
    assert json.loads((out / "resolution.json").read_text())["rows"]["S"]["32"]["values"] == \
        payload["rows"]["S"]["32"]["values"]

    # another recipe in the same folder is refused, never mixed into the table
    other = reskd("study", "resolution", "--quick", "--out", out, "--set", "optim.lr=0.01")
    assert other.returncode == 2
    assert "optim.lr: 0.002 there, 0.01 now" in other.stderr and "new --out" in other.stderr


def test_study_ablation_quick_fills_tables_5_and_6(tmp_path):
    out = tmp_path / "abl"
    # SIGTERM in the first run's first step: that run saves its position, the study stops
    stopped = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("kill_at_step.py")), "1", "TERM", "study",
         "ablation", "--quick", "--seeds", "0", "--out", str(out)], capture_output=True,
        text=True, timeout=600)
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "stopped by SIGTERM" in stopped.stderr
    assert "run the same `reskd study` command again" in stopped.stderr
    (first,) = out.glob("runs/*/seed0/checkpoint.pt")
    assert torch.load(first, weights_only=True)["step"] == 1
    assert not list(out.glob("runs/*/seed0/study.json"))  # no run counted as finished
    proc = reskd("study", "ablation", "--quick", "--seeds", "0", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{first.parent.parent.name}/seed0: resuming" in proc.stdout
    payload = json.loads((out / "ablation.json").read_text())
    assert list(payload["table5"]) == ["baseline", "clip_kd", "frame_kd", "pixel_kd"]
    assert list(payload["table6"]) == ["baseline", "model_distill", "resolution_distill",
                                       "pixel_kd"]
    for stats in [*payload["table5"].values(), *payload["table6"].values()]:
        assert len(stats["values"]) == 1 and 0 <= stats["mean"] <= 100
    cfg = load_config(out / "runs/frame_kd/seed0/config.yaml")
    assert (cfg.distill.alpha, cfg.distill.frame_kd, cfg.distill.clip_kd) == (0, 1, 0)
    assert cfg.distill.teacher.endswith("teacher_big64/seed0/model.pt")
    teacher = load_config(out / "runs/teacher_big64/seed0/config.yaml")
    assert (teacher.model.layers, teacher.data.size) == ((1, 1, 2, 2), 64)
    model = load_config(out / "runs/model_distill/seed0/config.yaml")
    assert model.distill.teacher.endswith("teacher_big32/seed0/model.pt")
    table = (out / "ablation.md").read_text()
    for row in ("Clip-level KD", "Frame-level KD", "Pixel-level KD", "Model distill.",
                "Resolution distill.", "ResKD"):
        assert f"| {row} |" in table
    assert (out / "ablation.png").is_file()


def test_study_with_a_config_needs_its_sizes_and_a_real_file(tmp_path):
    proc = reskd("study", "ablation", "--config", tmp_path / "nope.yaml", "--teacher-size", 224,
                 "--out", tmp_path / "x")
    assert proc.returncode == 2 and "nope.yaml does not exist" in proc.stderr
    proc = reskd("study", "resolution",
                 "--config", "configs/table1_activitynet_r50_baseline112.yaml",
                 "--out", tmp_path / "y")
    assert proc.returncode == 2 and "give --sizes" in proc.stderr


def test_paper_scale_plans_build_every_run_from_a_table1_config(tmp_path):
    """At paper scale the same plans run from a YAML: R50 at 112, R152 and R50-S by default."""
    from reskd.experiments.studies import _default_big_set, _default_s_set, make_base

    config = str(Path(__file__).parent.parent / "configs/table1_activitynet_r50_baseline112.yaml")
    base = make_base(tmp_path, config=config, overrides=[], epochs=None, scale={})
    assert base.metric == "mAP"  # ActivityNet is multi-label
    runs = ablation_runs(student_size=112, teacher_size=224,
                         big_set=_default_big_set("resnet50"), seeds=[0])
    cfgs = {r.key: base.make(r, tmp_path) for r in runs}
    assert (cfgs["teacher_big224/seed0"].model.arch, cfgs["teacher_big224/seed0"].data.size) == \
        ("resnet152", 224)
    assert (cfgs["teacher_same224/seed0"].model.arch, cfgs["teacher_same224/seed0"].data.size) == \
        ("resnet50", 224)
    assert cfgs["pixel_kd/seed0"].distill.alpha == 100 and cfgs["pixel_kd/seed0"].data.size == 112
    assert cfgs["baseline/seed0"].runtime.out == str(tmp_path / "runs/baseline/seed0")
    # every run, the baseline and the low-resolution teacher too, shrinks the 224 crop
    assert {c.data.crop_size for c in cfgs.values()} == {224}
    s_runs = resolution_runs(sizes=[224, 112, 56], high=224, s_sizes=[112],
                             s_set=_default_s_set(base), seeds=[0])
    s112 = base.make(next(r for r in s_runs if r.key == "S112/seed0"), tmp_path)
    assert (s112.model.arch, s112.data.size) == ("resnet50s", 112)
    up56 = base.make(next(r for r in s_runs if r.key == "upsampled56/seed0"), tmp_path)
    assert (up56.data.size, up56.data.downsample_to) == (224, 56)


def test_views_runs_pair_a_baseline_with_a_student_per_filter_and_size():
    from reskd.experiments.studies import views_runs

    runs = views_runs(sizes=[32, 16], high=64, s_sizes=[16], s_set=["model.strides=[1,1,2,2]"],
                      seeds=[0, 1])
    assert runs[0].key == "teacher64/seed0" and len(runs) == 1 + 2 * 2 * 2 * 2
    by_key = {r.key: r for r in runs}
    base, kd = by_key["baseline_antialias16/seed1"], by_key["reskd_antialias16/seed1"]
    assert base.teacher == "" and kd.teacher == "teacher64/seed0"
    # the pair differs only in the KD: same crop, filter, size and network
    assert set(kd.overrides) - set(base.overrides) == {
        "distill.alpha=100", "distill.clip_kd=0", "distill.frame_kd=0", "distill.pixel_logit_kd=0"}
    assert {"data.crop_size=64", "data.shrink=antialias", "data.size=16",
            "model.strides=[1,1,2,2]"} <= set(base.overrides)
    assert "model.strides=[1,1,2,2]" not in by_key["baseline_bilinear32/seed0"].overrides
    with pytest.raises(ValueError, match="below the teacher"):
        views_runs(sizes=[64], high=64, s_sizes=[], s_set=[], seeds=[0])


@pytest.mark.slow
def test_study_views_quick_writes_its_table(tmp_path):
    out = tmp_path / "views"
    proc = reskd("study", "views", "--quick", "--sizes", "32", "--s-sizes", "16", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((out / "views.json").read_text())
    assert set(payload["rows"]) == {"teacher64", "baseline_bilinear32", "reskd_bilinear32",
                                    "baseline_antialias32", "reskd_antialias32"}
    table = (out / "views.md").read_text()
    assert "| 32x32 (2x fewer pixels a side) | bilinear |" in table
    assert "| 32x32 (2x fewer pixels a side) | antialias |" in table
    student = load_config(out / "runs/reskd_antialias32/seed0/config.yaml")
    assert (student.data.crop_size, student.data.shrink) == (64, "antialias")

"""The guard of the view recipe: every model is tested on views made the way it was trained.

For each architecture family and both shrink filters, a teacher is trained and a student
distilled for a few steps on a tiny lossless video whose frames are all the same picture (so
that which frames a sampler picks does not matter), without flip and with the whole frame as
the crop. The student's test views, as `reskd test` and `reskd predict` make them from its
checkpoint alone, must then be bit-identical to its training views of those frames.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_still_videos
from reskd.checkpoint import RecipeAssumedWarning, load_checkpoint
from reskd.config import load_config
from reskd.data import transforms as T
from reskd.data.transforms import checkpoint_views
from reskd.predict import video_views
from reskd.runs import make_dataset, run_train, with_checkpoint_views

TEACHER, STUDENT, FRAME = 64, 32, 72  # the 72 px frame is resized to the 64 px crop
# the 3D families train at half these sizes: a real ResNet-50 / Swin-T step at 64 px costs tens
# of seconds on 2 cores
SMALL = {"slowonly", "swin"}

# arch family -> overrides that make it tiny and its sampling right
FAMILIES = {
    "tsn": ["model.arch=resnet", "model.widths=[8,8,16,16]", "model.stem=small",
            "data.num_segments=2"],
    "tsm": ["model.arch=tsm_resnet18", "data.num_segments=2"],
    "slowonly": ["model.arch=slowonly_r50", "data.clip_len=4", "data.frame_interval=1"],
    "swin": ["model.arch=swin3d_t", "data.clip_len=4", "data.frame_interval=1"],
}


@pytest.fixture(scope="module")
def still_video(tmp_path_factory) -> Path:
    return write_still_videos(tmp_path_factory.mktemp("still"), FRAME)


def overrides(root: Path, out: Path, family: str, size: int, shrink: str) -> list[str]:
    return [f"data.root={root}", "data.train_list=list.txt", "data.classes=classes.txt",
            f"data.size={size}", f"data.shrink={shrink}", "data.short_side_ratio=1.0",
            "data.crop_scales=[1.0]", "data.flip=false", "data.batch_size=2", "data.workers=0",
            "optim.epochs=1", "runtime.progress=false", "runtime.precision=fp32",
            "runtime.channels_last=false",
            f"runtime.out={out}", *FAMILIES[family]]


@pytest.mark.parametrize("shrink", ["bilinear", "antialias"])
@pytest.mark.parametrize("family", [pytest.param(f, marks=[pytest.mark.slow] if f in SMALL else [])
                                    for f in FAMILIES])
def test_student_is_tested_on_its_training_views(still_video, tmp_path, family, shrink):
    quiet = lambda *_: None  # noqa: E731
    TEACHER, STUDENT = (32, 16) if family in SMALL else (64, 32)
    teacher = run_train(load_config(None, overrides(still_video, tmp_path / "t", family,
                                                    TEACHER, shrink)), distill=False, log=quiet)
    cfg = load_config(None, overrides(still_video, tmp_path / "s", family, STUDENT, shrink)
                      + [f"distill.teacher={teacher['model']}"])
    student = run_train(cfg, distill=True, log=quiet)
    ckpt = load_checkpoint(student["model"])
    assert ckpt["views"] == {"size": STUDENT, "crop_size": TEACHER, "shrink": shrink,
                             "short_side_ratio": 1.0, "test_short_side_ratio": 1.0,
                             "downsample_to": 0, "mean": list(cfg.data.mean),
                             "std": list(cfg.data.std)}

    # training views as the distillation made them: (teacher view, student view)
    train_set = make_dataset(cfg, "train_list", train=True, sizes=(TEACHER, STUDENT),
                             num_classes=2, crop_size=TEACHER, log=quiet)
    item = train_set.views.views_of(train_set[0]["clip"])  # as the training step makes them
    teacher_view, student_view = item["teacher"], item["student"]  # (T, C, 64|32, ...)
    assert student_view.shape[-2:] == (STUDENT, STUDENT)

    # test views from the checkpoint alone: `reskd test` (a config that says nothing of views)
    # and `reskd predict`
    bare = load_config(None, [f"data.root={still_video}", "data.val_list=list.txt",
                              *FAMILIES[family]])
    test_cfg = with_checkpoint_views(bare, ckpt, log=quiet)
    test_set = make_dataset(test_cfg, "val_list", train=False, sizes=(test_cfg.data.size,),
                            num_classes=2, crop_size=test_cfg.data.crop_size, log=quiet)
    tested = test_set[0]["views"][0]  # first clip, centre crop: (T, C, 32, 32)
    assert torch.equal(tested, student_view)
    assert torch.equal(video_views(still_video / "v0.mp4", ckpt)[0], student_view)

    # the teacher, too, is tested on its training views (no shrink at its own size)
    t_ckpt = load_checkpoint(teacher["model"])
    assert t_ckpt["views"]["crop_size"] == TEACHER
    assert torch.equal(video_views(still_video / "v0.mp4", t_ckpt)[0], teacher_view)


def test_the_two_filters_make_different_student_views():
    frames = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    kw = dict(short_side_ratio=1.0, crops=1, mean=(0.5,) * 3, std=(0.25,) * 3, crop_size=64)
    bilinear = T.test_views(frames, 16, shrink_filter="bilinear", **kw)
    antialias = T.test_views(frames, 16, shrink_filter="antialias", **kw)
    # at 4x, bilinear without antialiasing averages 2x2 of every 4x4 block; the antialiased
    # filter spans the whole block, so on noise its views are smoother (lower variance)
    assert not torch.equal(bilinear, antialias)
    assert antialias.std() < 0.8 * bilinear.std()


def test_a_checkpoint_without_a_recipe_loads_and_says_what_it_assumes(still_video, tmp_path):
    run = run_train(load_config(None, overrides(still_video, tmp_path / "old", "tsn", STUDENT,
                                                "bilinear")), distill=False, log=lambda *_: None)
    ckpt = load_checkpoint(run["model"])
    del ckpt["views"], ckpt["test_average"]  # as checkpoints were written before recipes
    with pytest.warns(RecipeAssumedWarning, match=r"resized straight to 32 px with antialiasing"):
        views = checkpoint_views(ckpt, "old.pt")
    assert (views.sizes, views.crop_size, views.shrink) == ((STUDENT,), STUDENT, "antialias")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecipeAssumedWarning)
        assert video_views(still_video / "v0.mp4", ckpt).shape[-2:] == (STUDENT, STUDENT)


def test_test_config_notes_the_keys_the_checkpoint_overrules(still_video, tmp_path):
    teacher = run_train(load_config(None, overrides(still_video, tmp_path / "t", "tsn", TEACHER,
                                                    "bilinear")), distill=False,
                        log=lambda *_: None)
    ckpt = load_checkpoint(teacher["model"])
    notes = []
    cfg = with_checkpoint_views(load_config(None, ["data.size=48"]), ckpt, "t.pt", log=notes.append)
    assert cfg.data.size == TEACHER and cfg.data.crop_size == TEACHER
    assert len(notes) == 1 and "data.size=48" in notes[0] and "t.pt" in notes[0]

"""The experiment configs in configs/: every file loads strictly, says which paper table it
reproduces, points at a teacher config that fits it, and takes one real training (or
distillation) step on tiny synthetic MP4s.

The step uses the config's own architecture, sampling, optimizer and KD weights; only sizes are
shrunk by overrides (data root, frames, input side, batch), and ImageNet weights are switched
off (tests stay offline). It calls the same library functions as `reskd train` / `reskd
distill` (`reskd.runs.make_dataset`, `model_kwargs`, `build_from_kwargs`, `kd_weights`,
`make_optimizer`, `distill_loss`) without a subprocess, to keep 29 configs fast.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from pathlib import Path

import pytest
import torch

from reskd.config import AUTHORS_TSN_RECIPE, Config, load_config
from reskd.models import build_from_kwargs
from reskd.runs import distiller_for, make_dataset, model_kwargs, read_classes_for

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
TEACHER_PATH = re.compile(r"^runs/(?P<name>[A-Za-z0-9_]+)/model\.pt$")
# Teachers the paper took off the shelf -> the config that builds (and could fine-tune) the
# same model: ResKD-Swin_S's is the official Kinetics-400 Video Swin-B (Appendix A.2).
OFFICIAL_TEACHERS = {
    "torchvision:Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1":
        "table3_kinetics400_swin_b_teacher224"}
# What every model of Tables 1-6 starts from, as the paper and the authors' configs: ImageNet
# ResNets (torchvision://resnet50 / 152, i.e. IMAGENET1K_V1; SlowOnly inflated from it, TSM
# the same trunk), Swin-S from ImageNet-1K Swin-S inflated to 3D; the Swin-B teacher config
# fine-tunes torchvision's ImageNet-1K Swin-B, since the paper's own teacher is the
# official Kinetics-400 model (OFFICIAL_TEACHERS) and was not trained.
PAPER_INIT = {"resnet50": "imagenet", "resnet152": "imagenet", "tsm_resnet50": "imagenet",
              "slowonly_r50": "imagenet", "swin3d_s": "torchvision:Swin_S_Weights.IMAGENET1K_V1",
              "swin3d_b": "torchvision:Swin_B_Weights.IMAGENET1K_V1"}
FRAMES = 2  # TSN segments or dense clip length in the tiny step
STUDENT_SIZE, TEACHER_SIZE = 32, 64  # Video Swin needs >= 32; ResKD keeps teacher = 2 x student


# Paper section 4.2 and the recipes: data root -> (classes, multi-label, frames per clip).
DATASETS = {"data/activitynet": (200, True, 16), "data/fcvid": (239, True, 16),
            "data/minikinetics": (200, False, 8), "data/sthv2": (174, False, 8)}
K400_FRAMES = {"slowonly_r50": 8, "swin3d_b": 32, "swin3d_s": 32}  # dense 8x8x1 and 32x2x1


def dataset_facts(cfg: Config) -> tuple[int, bool, int]:
    if cfg.data.root == "data/kinetics400":
        return 400, False, K400_FRAMES[cfg.model.arch]
    return DATASETS[cfg.data.root]


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def is_distill(cfg: Config) -> bool:
    return bool(cfg.distill.teacher)


def teacher_name(cfg: Config) -> str:
    if cfg.distill.teacher in OFFICIAL_TEACHERS:
        return OFFICIAL_TEACHERS[cfg.distill.teacher]
    match = TEACHER_PATH.match(cfg.distill.teacher)
    if match is None:
        raise AssertionError(f"distill.teacher should be runs/<teacher config>/model.pt, got "
                             f"{cfg.distill.teacher!r}")
    return match["name"]


def frames_of(cfg: Config) -> int:
    return cfg.data.clip_len or cfg.data.num_segments


# ---------------------------------------------------------------------------------------------
# Static checks: no models, no data


def test_every_paper_table_has_configs():
    tables = {int(p.name[len("table")]) for p in CONFIGS}
    assert tables == {1, 2, 3, 4, 5, 6}
    assert all(re.fullmatch(r"table[1-6]_[a-z0-9_]+\.yaml", p.name) for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_header_names_the_table_number_and_command(path):
    text = path.read_text()
    header = text[:text.index("\n\n")].splitlines()
    assert all(line.startswith("#") for line in header)
    table = path.name[len("table")]
    assert header[0].startswith(f"# Paper Table {table},"), header[0]
    assert any(line.startswith("# Paper:") for line in header), "the paper's number is missing"
    cfg = load_config(path)
    command = "distill" if is_distill(cfg) else "train"
    assert f"#   reskd {command} configs/{path.name}" in header


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_loads_strictly_and_uses_the_shared_conventions(path):
    cfg = load_config(path)  # unknown keys or bad values raise
    d = cfg.data
    assert cfg.runtime.out == f"runs/{path.stem}"
    assert d.root.startswith("data/") and not Path(d.root).is_absolute()
    assert (d.train_list, d.val_list, d.classes) == ("train.txt", "val.txt", "classes.txt")
    # e.g. FCVID has 239 classes (the authors' released config has 239 head classes but 200
    # dataset classes)
    assert (cfg.model.num_classes, d.multi_label, frames_of(cfg)) == dataset_facts(cfg)
    assert round(d.size * d.short_side_ratio) == round(d.size * 256 / 224)  # 112 -> 128
    if not is_distill(cfg):
        assert "\ndistill:" not in path.read_text(), "a train config with a distill section"


DISTILL = [p for p in CONFIGS if is_distill(load_config(p))]


@pytest.mark.parametrize("path", DISTILL, ids=ids(DISTILL))
def test_distill_config_fits_its_teacher_config(path):
    cfg = load_config(path)
    teacher_path = CONFIG_DIR / f"{teacher_name(cfg)}.yaml"
    assert teacher_path.is_file(), f"{path.name}: no config makes {cfg.distill.teacher}"
    teacher = load_config(teacher_path)
    assert not is_distill(teacher)
    if cfg.distill.teacher not in OFFICIAL_TEACHERS:
        assert teacher.runtime.out + "/model.pt" == cfg.distill.teacher
    assert cfg.distill.teacher_size == teacher.data.size >= cfg.data.size
    assert frames_of(teacher) == frames_of(cfg)
    assert teacher.model.num_classes == cfg.model.num_classes
    assert (teacher.data.root, teacher.data.multi_label) == (cfg.data.root, cfg.data.multi_label)
    k = cfg.distill
    assert k.alpha + k.clip_kd + k.frame_kd + k.pixel_logit_kd > 0, "no KD term is on"
    if k.alpha > 0:  # feature KD needs equal channel counts (Swin-B -> Swin-S uses logit KD)
        assert feature_channels(cfg.model.arch) == feature_channels(teacher.model.arch)


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_starts_from_the_papers_weights_not_random(path):
    import torchvision

    cfg = load_config(path)
    assert cfg.model.pretrained == PAPER_INIT[cfg.model.arch], (
        f"{path.name}: model.pretrained={cfg.model.pretrained!r}; the paper's "
        f"{cfg.model.arch} starts from {PAPER_INIT[cfg.model.arch]!r}")
    named = [w for w in (cfg.model.pretrained, cfg.distill.teacher) if w.startswith("torchvision:")]
    for name in named:  # resolves to real torchvision weights (metadata only, no download)
        weights = torchvision.models.get_weight(name[len("torchvision:"):])
        if name == cfg.distill.teacher:
            assert len(weights.meta["categories"]) == cfg.model.num_classes


# The authors' recipe choices per model family (their released mmaction2 configs), which the
# global defaults do not carry (bench/bench_defaults.py measured those on from-scratch runs):
# every paper config must say them itself, as YAML keys, so a change of default never moves a
# paper reproduction.
AUTHORS_RECIPE = {
    "tsn": AUTHORS_TSN_RECIPE,
    "3d": {"model.fc_init_std": 0.01, "optim.bias_lr_mult": 1.0, "optim.warmup_start_factor": 0.1,
           "data.crop": "random_resized"},
}


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_sets_the_authors_recipe_choices_explicitly(path):
    import yaml

    written = yaml.safe_load(path.read_text())
    family = "3d" if load_config(path).model.arch in ("slowonly_r50", "swin3d_s", "swin3d_b") \
        else "tsn"
    for key, value in AUTHORS_RECIPE[family].items():
        section, name = key.split(".")
        assert written[section].get(name) == value, (
            f"{path.name}: {key} must be written in the config as {value!r} (the authors' "
            f"choice), got {written[section].get(name)!r}")


@functools.cache
def feature_channels(arch: str) -> int:
    with torch.device("meta"):  # shapes only, no memory or init time
        return build_from_kwargs(model_kwargs(Config(), 10) | {"arch": arch}).feature_channels


def test_readme_lists_every_config():
    readme = (CONFIG_DIR / "README.md").read_text()
    missing = [p.name for p in CONFIGS if p.name not in readme]
    assert not missing, f"configs/README.md does not list {missing}"
    assert "recipe details from the authors' code" in readme.lower()


# ---------------------------------------------------------------------------------------------
# One real step per config


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from reskd.data.synth import make_synth_dataset

    out = tmp_path_factory.mktemp("configs_synth") / "data"
    make_synth_dataset(out, seed=1, num_train=16, num_val=8, workers=1)  # 10 classes, 8 x 64 x 64
    return out


def tiny(path: Path, root: Path, tmp: Path, *, size: int) -> Config:
    """The config at `path` with sizes shrunk for a CPU step; everything else as written."""
    cfg = load_config(path)
    frames = [f"data.clip_len={FRAMES}"] if cfg.data.clip_len else [f"data.num_segments={FRAMES}"]
    return load_config(path, [f"data.root={root}", "model.num_classes=0", "model.pretrained=",
                              f"data.size={size}", "data.batch_size=2", "data.workers=0",
                              "optim.epochs=1", "optim.schedule=cosine", "optim.milestones=[]",
                              f"runtime.out={tmp}", *frames])


_PRISTINE: dict[str, torch.nn.Module] = {}


@pytest.fixture(scope="module", autouse=True)
def _free_models():
    yield
    _PRISTINE.clear()


def fresh_model(kwargs: dict) -> torch.nn.Module:
    """A randomly initialised model; initialising ResNet-152 or Swin-B once and copying it
    afterwards saves seconds per config on CPU."""
    key = repr(sorted(kwargs.items()))
    if key not in _PRISTINE:
        torch.manual_seed(0)
        _PRISTINE[key] = build_from_kwargs(kwargs)
    return copy.deepcopy(_PRISTINE[key])


def first_batch(cfg: Config, sizes: tuple[int, ...], num_classes: int) -> dict:
    from torch.utils.data import SequentialSampler

    from reskd.data.datasets import make_loader

    dataset = make_dataset(cfg, "train_list", train=True, sizes=sizes, num_classes=num_classes)
    loader = make_loader(dataset, batch_size=cfg.data.batch_size, workers=cfg.data.workers,
                         sampler=SequentialSampler(dataset), drop_last=True)
    batch = next(iter(loader))
    assert batch["clip"].dtype == torch.uint8  # the views are made where the model runs
    return {**batch, **dataset.views.views_of(batch["clip"])}


# The whole file takes about 60 s on 2 busy CPU cores (ResNet-152 and Swin-B steps are the
# heaviest, about 4-5 s each), so no step carries the slow marker.
@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_one_training_step(path, data_root, tmp_path):
    from reskd.distill.distiller import freeze, set_teacher_mode
    from reskd.engine.optim import make_optimizer
    from reskd.engine.train import train_step

    written = load_config(path)
    distill = is_distill(written)
    # Table 6's model distillation keeps teacher and student at one size; the rest halve it.
    same_size = distill and written.distill.teacher_size == written.data.size
    cfg = tiny(path, data_root, tmp_path, size=STUDENT_SIZE)
    classes = read_classes_for(cfg)
    num_classes = len(classes)
    assert num_classes == 10
    kwargs = model_kwargs(cfg, num_classes)
    model = fresh_model(kwargs)
    teacher, sizes = None, (cfg.data.size,)
    if distill:
        t_size = STUDENT_SIZE if same_size else TEACHER_SIZE
        t_cfg = tiny(CONFIG_DIR / f"{teacher_name(written)}.yaml", data_root, tmp_path, size=t_size)
        teacher = freeze(fresh_model(model_kwargs(t_cfg, num_classes)))
        set_teacher_mode(teacher, cfg.distill.teacher_bn)
        teacher_before = [p.detach().clone() for p in teacher.parameters()]
        sizes = (t_size, cfg.data.size)

    batch = first_batch(cfg, sizes, num_classes)
    views = [batch["teacher"], batch["student"]] if distill else [batch["student"]]
    assert [tuple(v.shape) for v in views] == [(2, FRAMES, 3, s, s) for s in sizes]
    labels = batch["label"]
    assert labels.dtype == torch.int64 and labels.shape == (2,)  # multi-label trains on one label

    o = cfg.optim
    optimizer = make_optimizer(model, optimizer=o.optimizer, lr=o.lr, momentum=o.momentum,
                               nesterov=o.nesterov, weight_decay=o.weight_decay,
                               bias_lr_mult=o.bias_lr_mult, backbone_lr_mult=o.backbone_lr_mult,
                               no_decay_names=o.no_decay_names)
    fc_before = model.fc.weight.detach().clone()
    model.train()
    distiller = distiller_for(cfg, teacher, model) if teacher is not None else None
    weights = distiller.weights if distiller is not None else None
    parts = train_step(model, batch, optimizer=optimizer, device=torch.device("cpu"),
                       distiller=distiller, grad_clip=o.grad_clip)
    if teacher is not None:
        on = {name for name, w in [("feature_kd", weights.feature), ("clip_kd", weights.clip),
                                   ("frame_kd", weights.frame),
                                   ("pixel_logit_kd", weights.pixel_logit)] if w > 0}
        assert on and on == {k for k in parts if k.endswith("_kd")}
        assert all(parts[k] > 0 for k in on)  # two random networks never agree exactly
        assert parts["loss"].item() == pytest.approx(parts["ce"].item() + parts["kd"].item(),
                                                     rel=1e-4)
    assert math.isfinite(parts["loss"].item())
    assert not torch.equal(model.fc.weight, fc_before), "the step did not update the classifier"
    if teacher is not None:
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
        assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), teacher_before))


def test_the_robustness_bench_configs_load_and_leave_the_recipe_to_the_defaults():
    """bench/bench_defaults.py's configs are written as a user would: they load strictly and
    set none of the recipe keys the bench compares (else it would not measure the defaults)."""
    import yaml

    bench = CONFIG_DIR.parent / "bench" / "defaults"
    paths = sorted(bench.glob("*.yaml"))
    assert {p.stem for p in paths} == {"digits", "textures", "motion"}
    for path in paths:
        load_config(path)
        written = yaml.safe_load(path.read_text())
        for key in AUTHORS_TSN_RECIPE:
            section, name = key.split(".")
            assert name not in written.get(section, {}), f"{path.name} sets {key}"

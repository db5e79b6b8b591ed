"""Model builders: one call from an architecture name and keyword options to a video model.

Every model takes clips (N, T, C, H, W) and has `features` / `head` (see `reskd.models.base`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from reskd.checkpoint import checkpoint_at_size
from reskd.config import TEMPORAL, DataConfig, ModelConfig
from reskd.models.base import read_state_dict
from reskd.models.hf import build_hf_model
from reskd.models.resnet import TORCHVISION_RESNETS, ResNetTrunk
from reskd.models.size_bn import at_size, with_size_batchnorm
from reskd.models.slowonly import SLOWONLY_DEPTHS, inflate_from_2d, slowonly
from reskd.models.swin import SWIN_ARCHS, load_swin_weights, video_swin
from reskd.models.torchvision_video import MVIT_ARCHS, VIDEO_RESNET_ARCHS, torchvision_video_model
from reskd.models.tsm import TSM
from reskd.models.tsn import TSN
from reskd.models.weights import is_weights_source, load_pretrained

TSM_ARCHS = tuple(f"tsm_{name}" for name in TORCHVISION_RESNETS)
ARCHS = (*TORCHVISION_RESNETS, "resnet50s", "resnet", *TSM_ARCHS, *SLOWONLY_DEPTHS, *SWIN_ARCHS,
         *VIDEO_RESNET_ARCHS, *MVIT_ARCHS, "hf")

_MODEL, _DATA = ModelConfig(), DataConfig()  # build_model's defaults are the config's

# The structural options of `build_model` and their defaults (the config's `model.*`).
STRUCTURAL_DEFAULTS: dict[str, object] = {
    name: getattr(_MODEL, name)
    for name in ("block", "layers", "widths", "stem", "strides", "temporal", "dropout_at")}

# arch -> (what it is, the structural options it uses). Any other structural option is fixed by
# the arch, so `build_model` rejects a non-default value for it instead of silently ignoring it.
ARCH_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{a: ("a torchvision ResNet", ("strides", "temporal", "dropout_at"))
       for a in TORCHVISION_RESNETS},
    "resnet50s": ("the paper's R50-S: a torchvision ResNet-50 with strides fixed at (1, 1, 2, 2)",
                  ("temporal", "dropout_at")),
    "resnet": ("a ResNet built from block/layers/widths/stem/strides", tuple(STRUCTURAL_DEFAULTS)),
    # tsm_resnetX is resnetX with model.temporal=shift (kept for configs and checkpoints)
    **{a: ("TSM over a torchvision ResNet", ("strides", "temporal", "dropout_at"))
       for a in TSM_ARCHS},
    **{a: ("SlowOnly, a fixed mmaction2 layout", ()) for a in SLOWONLY_DEPTHS},
    **{a: ("Video Swin, a fixed torchvision layout", ()) for a in SWIN_ARCHS},
    **{a: ("a torchvision 3D ResNet, a fixed layout", ()) for a in VIDEO_RESNET_ARCHS},
    **{a: ("a torchvision MViT, a fixed layout", ()) for a in MVIT_ARCHS},
    "hf": ("a Hugging Face transformers video classifier (VideoMAE, TimeSformer, ViViT, "
           "V-JEPA 2), its layout from hf_config or model.pretrained", ()),
}


def _as_value(value: object) -> object:
    """Lists and tuples compare by value: configs give lists, Python callers tuples."""
    return tuple(value) if isinstance(value, list) else value


def _shown(value: object) -> str:
    """A value as a config override writes it: sequences as lists, strings quoted."""
    return repr(list(value)) if isinstance(value, (list, tuple)) else repr(value)


def ignored_options(arch: str, options: dict) -> list[str]:
    """The structural options in `options` that `arch` does not use but that differ from the
    default, i.e. those that would silently have no effect."""
    used = ARCH_OPTIONS[arch][1]
    return [name for name, default in STRUCTURAL_DEFAULTS.items()
            if name in options and name not in used and _as_value(options[name]) != default]


def check_options(arch: str, options: dict) -> None:
    """Raises ValueError naming each option in `options` that `arch` ignores (see
    `ignored_options`) as its config key, with the archs that use it and the fix."""
    problems = []
    for name in ignored_options(arch, options):
        users = [a for a, (_, used) in ARCH_OPTIONS.items() if name in used]
        other = "arch 'resnet'" if users == ["resnet"] else "one of those archs"
        problems.append(f"model.{name}={_shown(options[name])} has no effect on arch {arch!r} "
                        f"({ARCH_OPTIONS[arch][0]}); it is used by: {', '.join(users)}. "
                        f"Remove it from the config (default "
                        f"{_shown(STRUCTURAL_DEFAULTS[name])}), or use {other}.")
    if problems:
        raise ValueError(" ".join(problems))


def drop_ignored_options(kwargs: dict) -> dict:
    """A copy of build_model keyword options (a checkpoint's "model_kwargs") with the structural
    options its arch ignores reset to their defaults: checkpoints written before build_model
    rejected them still load, and the model is the one they were trained with."""
    out = dict(kwargs)
    arch = out.get("arch")
    if arch not in ARCH_OPTIONS:
        return out  # build_model reports the unknown arch
    for name in ignored_options(arch, out):
        default = STRUCTURAL_DEFAULTS[name]
        out[name] = list(default) if isinstance(out[name], list) else default
    return out


def build_model(arch: str, *, num_classes: int, block: str = _MODEL.block,
                layers: tuple[int, ...] = _MODEL.layers, widths: tuple[int, ...] = _MODEL.widths,
                stem: str = _MODEL.stem, strides: tuple[int, ...] = _MODEL.strides,
                temporal: str = _MODEL.temporal, dropout: float = _MODEL.dropout,
                num_segments: int = _DATA.num_segments, drop_path: float = _MODEL.drop_path,
                fc_init_std: float = _MODEL.fc_init_std, dropout_at: str = _MODEL.dropout_at,
                pretrained: str = _MODEL.pretrained, hf_config: dict | None = None) -> nn.Module:
    """A video model with the uniform API of `reskd.models.base`. `arch`:

    - TSN over a ResNet: resnet18/34/50/101/152 (torchvision layout), resnet50s (the paper's
      R50-S, strides (1, 1, 2, 2)), or "resnet" built from block/layers/widths/stem/strides;
      with `temporal="shift"` each becomes a TSM (residual temporal shift in every block;
      clips must have exactly `num_segments` frames);
    - TSM: tsm_resnet18..152, aliases of resnet18..152 with `temporal="shift"`;
    - SlowOnly: slowonly_r50 (SlowOnly-R50 8x8, mmaction2 layout);
    - Video Swin: swin3d_t / swin3d_s / swin3d_b (torchvision);
    - torchvision's 3D ResNets r3d_18 / mc3_18 / r2plus1d_18 and MViT mvit_v1_b / mvit_v2_s
      (`reskd.models.torchvision_video`);
    - "hf": a Hugging Face transformers video classifier (`reskd.models.hf`) built from
      `hf_config` (a transformers config as a dict, what a checkpoint stores) and/or loaded
      from `pretrained` (a save_pretrained folder or `hf:ORG/NAME`; its config is used when
      `hf_config` is not given; with neither, VideoMAE-B's layout, randomly initialised).
      `num_classes` sets the classifier's outputs.

    `fc_init_std` is the classifier's init std (every arch); `dropout_at` ("frame" or
    "clip", `reskd.models.tsn`) where a TSN/TSM head drops out. Their defaults (0.01, "frame")
    are the ones measured to train robustly from scratch (bench/bench_defaults.py); the
    authors' TSN/TSM recipe (0.001, "clip") is set in the paper's configs.

    The structural options block/layers/widths/stem/strides/dropout_at apply only where
    `ARCH_OPTIONS`
    says so; a non-default value for an arch that fixes it raises ValueError rather than being
    silently ignored (`drop_ignored_options` cleans old checkpoints' kwargs).

    `pretrained`: "" (random init), "imagenet" (torchvision's IMAGENET1K_V1, as the paper;
    "imagenet_v2" for V2; through torchvision's weights API, which downloads once into
    the torch hub cache; ResNets, TSM, and SlowOnly by inflation) or a path: a torchvision-layout
    ResNet state dict (ResNets, TSM; SlowOnly inflates it) or a torchvision swin3d state dict.
    Also a torchvision weights name (`torchvision:ENUM.MEMBER`) and, as a file, any model's
    torchvision weights, an mmaction2 checkpoint or a reskd checkpoint: `reskd.models.weights`.
    """
    if arch not in ARCH_OPTIONS:
        raise ValueError(f"unknown model.arch {arch!r}; valid: {', '.join(ARCHS)}")
    if temporal not in TEMPORAL:
        raise ValueError(f"model.temporal must be one of {', '.join(map(repr, TEMPORAL))}, got "
                         f"{temporal!r}")
    check_options(arch, {"block": block, "layers": layers, "widths": widths, "stem": stem,
                         "strides": strides, "temporal": temporal, "dropout_at": dropout_at})
    if not fc_init_std > 0:
        raise ValueError(f"model.fc_init_std must be positive (0.01: mmaction2's heads, 0.001: "
                         f"the authors' TSN/TSM), got {fc_init_std}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    if hf_config is not None and arch != "hf":
        raise ValueError(f"hf_config is the config of arch 'hf' (a transformers video model); "
                         f"arch {arch!r} takes none: remove it, or use arch 'hf'")
    if drop_path != -1 and arch not in SWIN_ARCHS + MVIT_ARCHS:
        raise ValueError(f"model.drop_path={drop_path} has no effect on arch {arch!r}: stochastic "
                         f"depth is Video Swin's and MViT's "
                         f"({', '.join(SWIN_ARCHS + MVIT_ARCHS)}). "
                         f"Remove it (default -1: the arch's own rate).")
    if drop_path != -1 and not 0 <= drop_path < 1:
        raise ValueError(f"model.drop_path must be in [0, 1) or -1 (the arch's own rate), got "
                         f"{drop_path}")
    options = dict(num_classes=num_classes, block=block, layers=layers, widths=widths,
                   stem=stem, strides=strides, temporal=temporal, dropout=dropout,
                   num_segments=num_segments, drop_path=drop_path, fc_init_std=fc_init_std,
                   dropout_at=dropout_at, hf_config=hf_config)
    if pretrained and arch != "hf" and is_weights_source(pretrained):
        model = ARCH_BUILDERS[arch](arch, **options, pretrained="")
        load_pretrained(model, arch, pretrained)
        return model
    return ARCH_BUILDERS[arch](arch, **options, pretrained=pretrained)


# The builders of the families, one each. They take all of build_model's options (after its
# checks: an option a family ignores has its default, `check_options`) and use their own.


def _build_resnet_tsn(arch: str, *, num_classes: int, block: str, layers: tuple[int, ...],
                      widths: tuple[int, ...], stem: str, strides: tuple[int, ...],
                      temporal: str, dropout: float, num_segments: int, fc_init_std: float,
                      dropout_at: str, pretrained: str, **_other_families) -> nn.Module:
    """TSN over a ResNet trunk (torchvision depths, R50-S or "resnet" from block/layers/...),
    a TSM with `temporal="shift"`; tsm_resnetX is resnetX shifted."""
    if arch in TSM_ARCHS:  # an alias: the ResNet, shifted
        arch, temporal = arch[len("tsm_"):], "shift"
    if arch in TORCHVISION_RESNETS:
        block, layers = TORCHVISION_RESNETS[arch]
        trunk = ResNetTrunk(block=block, layers=layers, stem="imagenet", strides=strides)
    elif arch == "resnet50s":
        block, layers = TORCHVISION_RESNETS["resnet50"]
        trunk = ResNetTrunk(block=block, layers=layers, stem="imagenet", strides=(1, 1, 2, 2))
    else:  # "resnet"
        trunk = ResNetTrunk(block=block, layers=layers, widths=widths, stem=stem, strides=strides)
    if pretrained:
        load_backbone_weights(trunk, pretrained, arch)
    head = {"fc_init_std": fc_init_std, "dropout_at": dropout_at}
    if temporal == "shift":
        return TSM(trunk, trunk.out_channels, num_classes, dropout, num_segments=num_segments,
                   **head)
    return TSN(trunk, trunk.out_channels, num_classes, dropout, **head)


def _build_slowonly(arch: str, *, num_classes: int, dropout: float, fc_init_std: float,
                    pretrained: str, **_other_families) -> nn.Module:
    """SlowOnly; `pretrained` names 2D ResNet-50 weights, inflated to 3D."""
    model = slowonly(arch, num_classes=num_classes, dropout=dropout, fc_init_std=fc_init_std)
    if pretrained:
        inflate_from_2d(model.backbone, read_resnet_state_dict(pretrained, "resnet50"))
    return model


def _build_swin(arch: str, *, num_classes: int, dropout: float, drop_path: float,
                fc_init_std: float, pretrained: str, **_other_families) -> nn.Module:
    """Video Swin; `pretrained`: "imagenet"-style names or a torchvision swin3d state dict."""
    model = video_swin(arch, num_classes=num_classes, dropout=dropout, drop_path=drop_path,
                       fc_init_std=fc_init_std)
    if pretrained:
        load_swin_weights(model, pretrained)
    return model


def _build_torchvision_video(arch: str, *, num_classes: int, dropout: float, drop_path: float,
                             fc_init_std: float, pretrained: str,
                             **_other_families) -> nn.Module:
    """torchvision's 3D ResNets and MViTs: only weights sources (loaded by build_model)."""
    if pretrained:
        raise ValueError(f"model.pretrained={pretrained!r} for {arch}: give a torchvision "
                         f"weights name (torchvision:ENUM.MEMBER) or a weights file")
    return torchvision_video_model(arch, num_classes=num_classes, dropout=dropout,
                                   drop_path=drop_path, fc_init_std=fc_init_std)


def _build_hf(arch: str, *, num_classes: int, hf_config: dict | None, pretrained: str,
              **_other_families) -> nn.Module:
    """A transformers video classifier (`reskd.models.hf.build_hf_model`)."""
    return build_hf_model(hf_config, num_classes=num_classes, pretrained=pretrained)


# arch -> the builder of its family; the same archs as ARCH_OPTIONS.
ARCH_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    **{a: _build_resnet_tsn for a in (*TORCHVISION_RESNETS, "resnet50s", "resnet", *TSM_ARCHS)},
    **{a: _build_slowonly for a in SLOWONLY_DEPTHS},
    **{a: _build_swin for a in SWIN_ARCHS},
    **{a: _build_torchvision_video for a in (*VIDEO_RESNET_ARCHS, *MVIT_ARCHS)},
    "hf": _build_hf,
}


def is_tsm(kwargs: dict) -> bool:
    """Whether build_model keyword options (a checkpoint's "model_kwargs") make a TSM."""
    return kwargs.get("arch", "") in TSM_ARCHS or kwargs.get("temporal", "none") == "shift"


def load_backbone_weights(trunk: nn.Module, pretrained: str, arch: str) -> None:
    """Loads ImageNet weights into a trunk; the classifier (fc.*) is left out (new classes)."""
    name = "resnet50" if arch == "resnet50s" else arch
    state = read_resnet_state_dict(pretrained, name)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = trunk.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"pretrained weights {pretrained!r} do not fit {arch}: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")


# "imagenet" is the weights the paper's ResNets started from: torchvision's IMAGENET1K_V1 (76.1%
# top-1 for R50; the paper used torch 1.7). torchvision's DEFAULT is V2 (80.9% for R50, a
# heavily augmented recipe), which a run asks for as "imagenet_v2".
IMAGENET_WEIGHTS = {"imagenet": "IMAGENET1K_V1", "imagenet_v2": "IMAGENET1K_V2"}


def read_resnet_state_dict(pretrained: str, name: str) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict: "imagenet" / "imagenet_v2" (torchvision's weights API,
    IMAGENET1K_V1 / _V2 of ResNet `name`) or a file."""
    if pretrained in IMAGENET_WEIGHTS:
        import torchvision

        if name not in TORCHVISION_RESNETS:
            raise ValueError(f"model.pretrained={pretrained} needs a torchvision ResNet arch "
                             f"({', '.join(TORCHVISION_RESNETS)}), got {name!r}")
        enum = torchvision.models.get_model_weights(name)
        member = IMAGENET_WEIGHTS[pretrained]
        if member not in enum.__members__:
            raise ValueError(f"model.pretrained={pretrained}: torchvision has no {member} for "
                             f"{name} (it has {', '.join(enum.__members__)}); use 'imagenet'")
        return enum[member].get_state_dict(progress=True)
    return read_state_dict(pretrained, "'imagenet', 'imagenet_v2' or a path to a torchvision "
                                       "ResNet state dict")


def build_from_kwargs(kwargs: dict, pretrained: str = "") -> nn.Module:
    """`build_model` from the keyword dict a run and its checkpoint store ("model_kwargs",
    lists as YAML and JSON write them); as strict as `build_model`. "bn_sizes" (an
    any-resolution student's) gives it a BatchNorm per size (`reskd.models.size_bn`)."""
    kwargs = {key: _as_value(v) for key, v in kwargs.items()}
    bn_sizes = kwargs.pop("bn_sizes", ())
    model = build_model(**kwargs, pretrained=pretrained)
    return with_size_batchnorm(model, bn_sizes) if bn_sizes else model


def load_model_checkpoint(path: str | Path, size: int | None = None) -> tuple[nn.Module, dict]:
    """(model, checkpoint) from any reskd checkpoint; the model is on CPU in eval mode.
    Options its arch ignores, which checkpoints made before options were strict may hold,
    are reset to their defaults (`drop_ignored_options`).

    `size` (None: the checkpoint's own) must be one the checkpoint supports (a ValueError
    lists them): an any-resolution student comes back as the ordinary network for that size
    (its BatchNorms for it, `size_bn.at_size`) with the checkpoint of that network
    (`checkpoint_at_size`: size, view recipe, GMACs, builder options and weights)."""
    from reskd.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    at = checkpoint_at_size(ckpt, size, path)
    model = build_from_kwargs(drop_ignored_options(ckpt["model_kwargs"]))
    model.load_state_dict(ckpt["model"])
    if at is not ckpt:  # an any-resolution student: the network of that size
        model = at_size(model, at["size"])
        at["model"] = model.state_dict()
    return model.eval(), at

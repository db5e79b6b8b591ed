"""Whole models from what users have: a teacher (`distill.teacher`) or a model to convert,
with the context it needs to be used correctly, from

- a reskd checkpoint (`reskd train`): its own context;
- a torchvision weights name, `torchvision:ENUM.MEMBER` (e.g.
  `torchvision:Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1`), through torchvision's weights API;
- a file of torchvision weights (`torch.save(model.state_dict())`): the arch is read from its
  keys, the preprocessing is that arch's torchvision default weights';
- an mmaction2 checkpoint (TSN, TSM, SlowOnly, Video Swin; from the authors' ResKD checkpoints
  the teacher half, or `PATH#student`);
- a Hugging Face transformers video classifier (VideoMAE, TimeSformer, ViViT, V-JEPA 2): a
  folder written by `save_pretrained` (holding config.json) or a hub id `hf:ORG/NAME` read
  through the HF cache (`reskd.models.hf`); its processor's size and mean/std, its config's
  frames and class names (id2label) are its context.

The context is a dict shaped like a reskd checkpoint's: "model_kwargs", "classes" (names, or
None when the source has none), "size" (the input side it was trained at; None when the source
does not say: mmaction2), "frames" (frames a clip must have; None: any), "recipe_frames" (the
clip length its recipe used, for a note), "mean" / "std" (its input normalisation), "source"
and "report" (how every weight was filled). `renormalized` makes a model that was trained with
another normalisation take the dataset's, exactly; `check_classes` compares class lists.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from reskd.config import IMAGENET_MEAN, IMAGENET_STD
from reskd.models import build_model, is_tsm, load_model_checkpoint
from reskd.models.hf import is_hf_source, load_hf_source
from reskd.models.mmaction import kind_of_arch, mmaction_model_config, to_mmaction
from reskd.models.resnet import TORCHVISION_RESNETS
from reskd.models.weights import (
    WEIGHTS_ARCH,
    file_kind,
    fit,
    is_torchvision_name,
    read_weights_file,
    reskd_layout,
    split_half,
    torchvision_state_dict,
    torchvision_to_reskd,
    torchvision_weights,
)

# reskd arch -> the torchvision weights whose preprocessing a file of its weights is assumed to
# have (a file carries none)
DEFAULT_WEIGHTS = {arch: f"{enum}.DEFAULT" for enum, arch in WEIGHTS_ARCH.items()
                   if not enum.startswith("Swin_")}


def _preprocessing(weights) -> dict:
    """size, mean, std, recipe_frames and classes of a torchvision weights member."""
    transforms = weights.transforms()
    docs = weights.meta.get("_docs", "")
    clip_len = re.search(r"clip_len=(\d+)", docs)
    return {"size": int(transforms.crop_size[0]), "mean": [float(v) for v in transforms.mean],
            "std": [float(v) for v in transforms.std],
            "recipe_frames": int(clip_len.group(1)) if clip_len else None,
            "classes": list(weights.meta["categories"])}


def _torchvision_model(spec: str, *, num_segments: int, dropout: float):
    weights = torchvision_weights(spec)
    enum = type(weights).__name__
    arch = WEIGHTS_ARCH[enum]
    if enum.startswith("Swin_"):
        raise ValueError(f"{spec} are 2D ImageNet image weights: a starting point for a video "
                         f"Swin (model.pretrained={spec} with model.arch={arch}, inflated to "
                         f"3D), not a video teacher; as a teacher use "
                         f"torchvision:Swin3D_{arch[-1].upper()}_Weights.KINETICS400_V1")
    context = _preprocessing(weights)
    with torch.device("meta"):  # every tensor comes from the weights: no initialisation
        model = build_model(arch, num_classes=len(context["classes"]),
                            num_segments=num_segments, dropout=dropout)
    report = fit(model, torchvision_to_reskd(torchvision_state_dict(weights)), spec,
                 need_head=True)
    return model, {**context, "model_kwargs": _kwargs(model, arch, num_segments, dropout),
                   "frames": None, "report": report}


def _kwargs(model: nn.Module, arch: str, num_segments: int, dropout: float, **extra) -> dict:
    return {"arch": arch, "num_classes": model.num_classes, "dropout": dropout,
            "num_segments": num_segments, **extra}


def _file_model(path: str, *, half: str, num_segments: int, dropout: float):
    path, half = split_half(path, half)
    loaded = read_weights_file(path)
    kind = file_kind(loaded)
    if kind == "reskd":
        model, ckpt = load_model_checkpoint(path)
        return model, {**ckpt, "recipe_frames": ckpt.get("frames"), "report": []}
    state, about = reskd_layout(f"{path}#{half}", num_segments=num_segments)
    arch = about["arch"]
    if arch is None:
        raise ValueError(f"{path} is not a reskd checkpoint, nor a torchvision or mmaction2 one: "
                         f"it holds a bare state dict (parameter name -> tensor) whose keys "
                         f"(first: {', '.join(list(state)[:3])}) are no layout reskd knows")
    head = state.get("fc.weight")
    if head is None:
        raise ValueError(f"{path} holds no classifier (fc / head / cls_head.fc_cls): a teacher "
                         f"needs one")
    extra = {}
    if kind == "mmaction2":
        extra = {k: v for k, v in about["mapped"].kwargs.items() if k != "num_segments"}
    with torch.device("meta"):
        model = build_model(arch, num_classes=int(head.shape[0]), num_segments=num_segments,
                            dropout=dropout, **extra)
    report = fit(model, state, path, need_head=True)
    if kind == "mmaction2":
        meta = loaded.get("meta") if isinstance(loaded.get("meta"), dict) else {}
        classes = (meta.get("dataset_meta") or {}).get("classes") or meta.get("CLASSES")
        context = {"size": None, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                   "recipe_frames": None,
                   "classes": list(classes) if isinstance(classes, (list, tuple)) else None,
                   "report": about["mapped"].report()}
    else:
        context = {**_preprocessing(torchvision_weights(DEFAULT_WEIGHTS[arch])), "report": report}
        if len(context["classes"]) != model.num_classes:
            context["classes"] = None
    return model, {**context, "frames": None,
                   "model_kwargs": _kwargs(model, arch, num_segments, dropout, **extra)}


def load_model_source(spec: str, *, half: str = "teacher", num_segments: int = 8,
                      dropout: float = 0.5) -> tuple[nn.Module, dict]:
    """(model on CPU in eval mode, its context: module docstring) from a reskd checkpoint, a
    torchvision weights name or file, or an mmaction2 checkpoint (`half` of an authors' ResKD
    checkpoint, unless the path ends in #teacher / #student), or a Hugging Face model (a
    save_pretrained folder or `hf:ORG/NAME`). TSM models are built for `num_segments` frames."""
    if is_hf_source(spec):
        model, context = load_hf_source(spec)
    elif is_torchvision_name(spec):
        model, context = _torchvision_model(spec, num_segments=num_segments, dropout=dropout)
    else:
        model, context = _file_model(spec, half=half, num_segments=num_segments, dropout=dropout)
    return model.eval(), {**context, "source": spec}


# ---------------------------------------------------------------------------------------------
# Using an imported model on a dataset


def _normalised(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


def _named(classes: list[str]) -> bool:
    """False for the placeholder names "0", "1", ... of a config without a class file."""
    return any(name != str(i) for i, name in enumerate(classes))


def check_classes(source: str, num_classes: int, source_classes: list[str] | None,
                  classes: list[str]) -> None:
    """ValueError naming both lists when a model's classes are not the dataset's: another
    count, or (where both have names) another name at some label, compared ignoring case,
    underscores and spacing."""
    def preview(names):
        return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")

    if num_classes != len(classes):
        theirs = f" ({preview(source_classes)})" if source_classes else ""
        raise ValueError(f"teacher {source} has {num_classes} classes{theirs} but this config "
                         f"has {len(classes)} ({preview(classes)}); distil on the dataset the "
                         f"teacher was trained on, with its class list in its order")
    if not source_classes or not _named(source_classes) or not _named(classes):
        return
    differ = [i for i, (a, b) in enumerate(zip(source_classes, classes))
              if _normalised(a) != _normalised(b)]
    if differ:
        shown = "; ".join(f"label {i}: teacher {source_classes[i]!r}, dataset {classes[i]!r}"
                          for i in differ[:3])
        raise ValueError(f"teacher {source} and this dataset name {len(differ)} of their "
                         f"{len(classes)} labels differently ({shown}); the dataset's class "
                         f"file (data.classes) must list the teacher's classes in the teacher's "
                         f"order")


class Renormalized(nn.Module):
    """A model that takes clips normalised with the dataset's mean/std and feeds its network
    clips normalised with its own: x' = (x * std_data + mean_data - mean) / std per channel,
    exact (the un-normalised frames are the same). Same API as the model inside."""

    def __init__(self, model: nn.Module, *, data_mean, data_std, mean, std):
        super().__init__()
        self.model = model
        data_mean, data_std = torch.tensor(data_mean), torch.tensor(data_std)
        mean, std = torch.tensor(mean), torch.tensor(std)
        # (C, 1, 1): broadcasts over (N, T, C, H, W); 3-D, so memory-format changes skip it
        self.register_buffer("scale", (data_std / std).view(3, 1, 1), persistent=False)
        self.register_buffer("shift", ((data_mean - mean) / std).view(3, 1, 1), persistent=False)
        self.feature_channels = model.feature_channels
        self.num_classes = model.num_classes
        self.memory_format = getattr(model, "memory_format", torch.channels_last)

    @property
    def channels_last(self) -> bool:
        return self.model.channels_last

    @channels_last.setter
    def channels_last(self, value: bool) -> None:
        self.model.channels_last = value

    def _renorm(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)  # (N, T, C, H, W)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(self._renorm(x))

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.model.head(f)

    def frame_logits(self, f: torch.Tensor) -> torch.Tensor:
        return self.model.frame_logits(f)

    def pixel_logits(self, f: torch.Tensor) -> torch.Tensor:
        return self.model.pixel_logits(f)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        return self.model(self._renorm(x), return_features=return_features)


def renormalized(model: nn.Module, *, data_mean, data_std, mean, std) -> nn.Module:
    """`model` itself when its normalisation is the data's, else a `Renormalized` one."""
    same = all(abs(a - b) < 1e-6 for a, b in zip([*data_mean, *data_std], [*mean, *std]))
    return model if same else Renormalized(model, data_mean=data_mean, data_std=data_std,
                                           mean=mean, std=std)


def _mmaction_arch(kwargs: dict) -> str:
    """The arch name the mmaction2 mapping knows: a shifted torchvision ResNet
    (model.temporal=shift) is its tsm_ alias; another shifted ResNet has no counterpart."""
    arch = kwargs["arch"]
    if not is_tsm(kwargs) or arch.startswith("tsm_"):
        return arch
    if arch in TORCHVISION_RESNETS:
        return f"tsm_{arch}"
    raise ValueError(f"a TSM over {arch} (model.temporal=shift) has no mmaction2 counterpart "
                     f"here; TSMs over resnet18..152 convert")


def convert_to_mmaction(source: str | Path, out: str | Path, *,
                        size: int | None = None) -> dict:
    """A reskd checkpoint -> an mmaction2 1.x recognizer checkpoint at `out`
    ({"meta", "state_dict"}, what mmengine's `load_checkpoint` reads). An any-resolution
    student is written as its network at `size` (default: its own). The meta holds the
    mmaction2 model config it loads into (data preprocessor with the checkpoint's mean/std
    x 255), the class names, size and frames. Returns {"out", "arch", "config", "report"}."""
    model, ckpt = load_model_checkpoint(source, size)
    kwargs = dict(ckpt["model_kwargs"])
    kwargs["arch"] = _mmaction_arch(kwargs)
    mapped = to_mmaction(kwargs["arch"], model.state_dict())
    config = mmaction_model_config(kwargs["arch"], kwargs["num_classes"],
                                   kwargs.get("num_segments", 8),
                                   mean=ckpt.get("mean"), std=ckpt.get("std"))
    meta = {"converted_from": str(source), "config": config,
            "dataset_meta": {"classes": list(ckpt.get("classes") or [])},
            "reskd": {"arch": kwargs["arch"], "size": ckpt.get("size"),
                      "frames": ckpt.get("frames")}}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": meta, "state_dict": mapped.state}, out)
    return {"out": str(out), "arch": kwargs["arch"], "config": config,
            "summary": f"mmaction2 {kind_of_arch(kwargs['arch'])}, {kwargs['num_classes']} "
                       f"classes",
            "report": [f"{src} -> {dst} {tuple(mapped.state[dst].shape)}"
                       for src, dst in mapped.mapped]}

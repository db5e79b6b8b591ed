"""Pretrained weights from what users have, loaded into a reskd model (`model.pretrained`).

A source is one of:

- `torchvision:ENUM.MEMBER`, a torchvision weights name, e.g.
  `torchvision:Swin3D_B_Weights.KINETICS400_IMAGENET22K_V1`,
  `torchvision:ResNet50_Weights.IMAGENET1K_V1`,
  `torchvision:Swin_S_Weights.IMAGENET1K_V1` (2D, inflated into swin3d_s),
  `torchvision:R2Plus1D_18_Weights.KINETICS400_V1`. Read through torchvision's weights API
  (`weights.get_state_dict`): downloaded once into the torch hub cache, then read from there;
- a file: a torchvision-layout state dict (what `torch.save(tv_model.state_dict())` writes),
  an mmaction2 checkpoint (`reskd.models.mmaction`; from the authors' ResKD checkpoints the
  student half unless asked otherwise) or a reskd checkpoint.

Weights are fitted key by key (`fit`): equal shapes are copied; a 2D kernel filling a 3D one
is inflated (repeated over time and divided by its length, I3D / Video Swin); a 2D Swin
relative-position table filling a 3D one is repeated over the temporal offsets (Video Swin's
inflation); relative-position *indices* are derived buffers and stay the model's own. The
classifier is loaded only when it has the model's class count (otherwise: new classes, it
stays freshly initialised, and the report says so). Any other key left over or missing is a
ValueError naming it.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from reskd.checkpoint import FORMAT
from reskd.models import mmaction
from reskd.models.resnet import TORCHVISION_RESNETS

TORCHVISION_PREFIX = "torchvision:"

# torchvision weights enum -> the reskd arch its weights build (2D Swin: the 3D arch they are
# inflated into; 2D ResNets: the TSN arch, also the trunk of TSM and, inflated, SlowOnly)
WEIGHTS_ARCH = {
    **{f"ResNet{name[len('resnet'):]}_Weights": name for name in TORCHVISION_RESNETS},
    "Swin_T_Weights": "swin3d_t", "Swin_S_Weights": "swin3d_s", "Swin_B_Weights": "swin3d_b",
    "Swin3D_T_Weights": "swin3d_t", "Swin3D_S_Weights": "swin3d_s", "Swin3D_B_Weights": "swin3d_b",
    "MViT_V1_B_Weights": "mvit_v1_b", "MViT_V2_S_Weights": "mvit_v2_s",
    "R3D_18_Weights": "r3d_18", "MC3_18_Weights": "mc3_18", "R2Plus1D_18_Weights": "r2plus1d_18",
}
IMAGE_WEIGHTS = tuple(k for k in WEIGHTS_ARCH if k.startswith(("ResNet", "Swin_")))


def is_torchvision_name(spec: str) -> bool:
    return spec.startswith(TORCHVISION_PREFIX)


def is_weights_source(spec: str) -> bool:
    """Whether `spec` is read here: a torchvision weights name or an existing file (with an
    optional #teacher / #student)."""
    return is_torchvision_name(spec) or Path(split_half(spec, "")[0]).is_file()


def torchvision_weights(spec: str):
    """The torchvision `WeightsEnum` member named by `torchvision:ENUM.MEMBER`."""
    from torchvision.models import get_weight

    name = spec[len(TORCHVISION_PREFIX):] if is_torchvision_name(spec) else spec
    enum_name, _, member = name.partition(".")
    if enum_name not in WEIGHTS_ARCH:
        raise ValueError(f"torchvision weights {name!r}: reskd reads {', '.join(WEIGHTS_ARCH)}; "
                         f"give ENUM.MEMBER, e.g. torchvision:Swin3D_B_Weights."
                         f"KINETICS400_IMAGENET22K_V1")
    members = type(get_weight(f"{enum_name}.DEFAULT")).__members__
    if member not in members:
        valid = ", ".join(f"{enum_name}.{m}" for m in members if m != "DEFAULT")
        raise ValueError(f"torchvision weights {name!r}: valid names are {valid}")
    return get_weight(f"{enum_name}.{member}")


def hub_cache_file(weights) -> Path:
    """Where torchvision's weights API keeps (and first looks for) the file of `weights`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def torchvision_state_dict(weights) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights member, through torchvision's own API: read
    from the hub cache, downloaded there first when absent."""
    cached = hub_cache_file(weights)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise OSError(f"could not get torchvision weights {weights!r} ({err}). torchvision "
                      f"downloads {weights.url} once to {cached}; without network, put that "
                      f"file there (set TORCH_HOME to choose the cache folder)") from err


class _Foreign:
    """Stands in for a class a checkpoint's pickle names (mmengine's log buffers, numpy
    arrays in its meta): never imported, never run; its state is dropped."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def read_weights_file(path: str | Path) -> dict:
    """The dict a weights file holds, loaded with weights_only=True. Objects of other
    libraries in it (an mmengine checkpoint's logs and numpy arrays) are read as inert
    placeholders rather than by importing their code; their tensors are all kept."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no such weights file {file} (give a torchvision weights name "
                                f"'torchvision:ENUM.MEMBER', or a reskd, mmaction2 or torchvision "
                                f"checkpoint file)")
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(file)
        stubs = [(type(n.rpartition(".")[2], (_Foreign,), {}), n) for n in names]
        try:
            with torch.serialization.safe_globals(stubs):
                loaded = torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise ValueError(f"{file}: cannot read it without running the code its pickle "
                             f"names ({', '.join(names[:4])}); re-save only its tensors, e.g. "
                             f"torch.save({{'state_dict': ckpt['state_dict']}}, 'weights.pth')"
                             ) from err
    if not isinstance(loaded, dict):
        raise ValueError(f"{file} is not a reskd checkpoint, nor a torchvision or mmaction2 "
                         f"weights file: it holds a {type(loaded).__name__}")
    return loaded


def file_kind(loaded: dict) -> str:
    """"reskd", "mmaction2" or "torchvision" (a bare state dict in torchvision's layout)."""
    if loaded.get("format") == FORMAT:
        return "reskd"
    state = loaded.get("state_dict", loaded)
    if isinstance(state, dict) and mmaction.looks_like_mmaction(
            {(k[len("module."):] if k.startswith("module.") else k): v
             for k, v in state.items()}):
        return "mmaction2"
    return "torchvision"


# ---------------------------------------------------------------------------------------------
# torchvision layouts -> reskd layouts


def torchvision_arch(state: dict[str, torch.Tensor]) -> str | None:
    """The reskd arch a torchvision-layout state dict is for; None when it is none of them."""
    if "patch_embed.proj.weight" in state:
        dim = state["patch_embed.proj.weight"].shape[0]
        depths = mmaction._stage_blocks(state, r"features\.(\d+)\.(\d+)\.norm1\.")
        arch = mmaction.SWIN_LAYOUTS.get((dim, depths))
        if arch:
            return arch
    elif "features.0.0.weight" in state and "features.1.0.attn.qkv.weight" in state:
        dim = state["features.0.0.weight"].shape[0]
        depths = mmaction._stage_blocks(state, r"features\.(\d+)\.(\d+)\.norm1\.")
        arch = mmaction.SWIN_LAYOUTS.get((dim, depths))
        if arch:
            return arch
    elif "conv_proj.weight" in state:
        return "mvit_v1_b" if "pos_encoding.spatial_pos" in state else "mvit_v2_s"
    elif "stem.0.weight" in state:
        if state["stem.0.weight"].shape[2] == 1:  # (45, 3, 1, 7, 7): the (2+1)D stem
            return "r2plus1d_18"
        kernel = state.get("layer2.0.conv1.0.weight")
        return "mc3_18" if kernel is not None and kernel.shape[2] == 1 else "r3d_18"
    elif "conv1.weight" in state:
        layers = mmaction._stage_blocks(state, r"layer(\d+)\.(\d+)\.")
        block = "bottleneck" if any(".conv3." in k for k in state) else "basic"
        for name, (b, ls) in TORCHVISION_RESNETS.items():
            if (b, ls) == (block, layers):
                return name
    return None


def _swin_2d_key(key: str) -> str:
    """torchvision 2D Swin -> 3D Swin names: the patch embedding is features.0 in 2D."""
    if key.startswith("features.0.0."):
        return "patch_embed.proj." + key[len("features.0.0."):]
    if key.startswith("features.0.2."):
        return "patch_embed.norm." + key[len("features.0.2."):]
    m = re.match(r"features\.(\d+)\.(.*)", key)
    return f"features.{int(m.group(1)) - 1}.{m.group(2)}" if m else key


def torchvision_to_reskd(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision-layout state dict -> reskd names: the network under `backbone.`, its
    classifier as `fc.` (2D Swin: renamed to the 3D layout; shapes are fitted by `fit`)."""
    swin_2d = "features.0.0.weight" in state and "patch_embed.proj.weight" not in state \
        and "features.1.0.attn.qkv.weight" in state
    out = {}
    for key, value in state.items():
        if swin_2d:
            key = _swin_2d_key(key)
        for head in ("head.1.", "head.", "fc."):  # MViT, Swin, ResNets
            if key.startswith(head):
                out["fc." + key[len(head):]] = value
                break
        else:
            out["backbone." + key] = value
    return out


# ---------------------------------------------------------------------------------------------
# Fitting a reskd-layout state dict into a model


def _inflated(key: str, value: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """`value` made `target`'s shape by 2D -> 3D inflation, or None if it does not fit."""
    if key.startswith("fc."):
        return None
    if (value.dim() == 4 and target.dim() == 5
            and value.shape == target.shape[:2] + target.shape[3:]):
        k_t = target.shape[2]
        return value.unsqueeze(2).repeat(1, 1, k_t, 1, 1) / k_t  # (O, I, kt, kh, kw)
    if (key.endswith("relative_position_bias_table") and value.dim() == 2 and target.dim() == 2
            and value.shape[1] == target.shape[1] and target.shape[0] > value.shape[0]
            and target.shape[0] % value.shape[0] == 0):
        # a relative-position table ((2Wh-1)(2Ww-1), heads) -> ((2Wd-1)(2Wh-1)(2Ww-1), heads)
        return value.repeat(target.shape[0] // value.shape[0], 1)
    return None


def fit(model: nn.Module, state: dict[str, torch.Tensor], source: str, *,
        need_head: bool = False) -> list[str]:
    """Loads `state` (reskd names) into `model`, inflating 2D weights where the model is 3D.
    Returns the report, one line per model key filled or left as initialised and why;
    ValueError naming the keys that fit nowhere, are missing, or (with `need_head`) the
    classifier when its class count differs.

    A model built on the meta device (no initialisation: fast for a big teacher) gets the
    weights' tensors themselves; it must then be filled completely."""
    own = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    report, unexpected, mismatched, kept = [], [], [], []
    for key, value in state.items():
        target = own.get(key)
        if target is None:
            unexpected.append(key)
        elif value.shape == target.shape:
            new[key] = value.to(target.dtype)
            report.append(f"{key} {tuple(value.shape)}")
        elif key.endswith("relative_position_index"):
            kept.append(key)  # derived from the window size; the model's own is right
        elif key.startswith("fc.") and not need_head:
            kept.append(key)
            report.append(f"{key} {tuple(target.shape)} left as initialised: the weights have "
                          f"{value.shape[0]} classes, the model {target.shape[0]}")
        elif (inflated := _inflated(key, value, target)) is not None:
            new[key] = inflated.to(target.dtype)
            report.append(f"{key} {tuple(target.shape)} inflated from {tuple(value.shape)}")
        else:
            mismatched.append(f"{key}: {tuple(value.shape)} vs the model's {tuple(target.shape)}")
    missing = [k for k in own if k not in new and k not in kept
               and not k.endswith("relative_position_index")
               and not (k.startswith("fc.") and not need_head and "fc.weight" not in state)]
    if unexpected or mismatched or missing:
        raise ValueError(f"weights {source} do not fit this {type(model).__name__}: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} "
                         f"unexpected (e.g. {unexpected[:3]}), {len(mismatched)} of other shapes "
                         f"(e.g. {mismatched[:3]})")
    on_meta = any(t.is_meta for t in own.values())
    model.load_state_dict(new, strict=False, assign=on_meta)
    empty = [k for k, t in model.state_dict().items() if t.is_meta]
    if empty:
        raise ValueError(f"weights {source} leave {len(empty)} tensors of this "
                         f"{type(model).__name__} unfilled (e.g. {empty[:3]})")
    if "fc.weight" not in state:
        report.append("fc.* left as initialised: the weights have no classifier")
    return report


def split_half(spec: str, default: str) -> tuple[str, str]:
    """`PATH#teacher` / `PATH#student` -> (PATH, half); anything else -> (spec, default). The
    half is what is read from an authors' ResKD checkpoint (teacher and student in one file)."""
    path, sep, half = spec.rpartition("#")
    return (path, half) if sep and half in mmaction.HALVES else (spec, default)


def reskd_layout(spec: str, *, half: str = "student",
                 num_segments: int = 8) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict in reskd names, what the source says about itself) for `spec`: a
    torchvision weights name or a file (`file_kind`). The second item has "kind"
    ("torchvision", "mmaction2", "reskd"), "arch" (the arch the weights are for; None when a
    torchvision file's layout is not one reskd knows) and, per kind, "weights" (torchvision's
    enum member), "mapped" (`reskd.models.mmaction.Mapped`) or "checkpoint"."""
    if is_torchvision_name(spec):
        weights = torchvision_weights(spec)
        state = torchvision_state_dict(weights)
        return torchvision_to_reskd(state), {
            "kind": "torchvision", "weights": weights,
            "arch": WEIGHTS_ARCH[type(weights).__name__]}
    spec, half = split_half(spec, half)
    loaded = read_weights_file(spec)
    kind = file_kind(loaded)
    if kind == "reskd":
        return loaded["model"], {"kind": "reskd", "arch": loaded["model_kwargs"]["arch"],
                                 "checkpoint": loaded}
    if kind == "mmaction2":
        mapped = mmaction.from_mmaction(loaded, half=half, num_segments=num_segments)
        rest = mmaction.left_over(mapped)
        if rest:
            raise ValueError(f"{spec}: {len(rest)} keys of this mmaction2 {mapped.kind} "
                             f"checkpoint have no reskd counterpart: {', '.join(rest[:6])}")
        return mapped.state, {"kind": "mmaction2", "arch": mapped.arch, "mapped": mapped}
    state = loaded.get("state_dict", loaded)
    state = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    return torchvision_to_reskd(state), {"kind": "torchvision", "arch": torchvision_arch(state)}


def load_pretrained(model: nn.Module, arch: str, spec: str) -> list[str]:
    """Loads the weights of `spec` (module docstring) into a built `model` of `arch`; the
    report of `fit`. The weights must be for `arch` or for what it is built from (a ResNet
    for TSN, TSM and - inflated - SlowOnly; a 2D or 3D Swin of the same size for swin3d)."""
    state, about = reskd_layout(spec, num_segments=getattr(model, "num_segments", 8))
    source_arch = about["arch"]
    if source_arch is not None and source_arch != arch and not _compatible(source_arch, arch):
        raise ValueError(f"model.pretrained={spec!r} holds {source_arch} weights, which do not "
                         f"fit model.arch={arch!r}; use weights of {arch} (or of the ResNet it is "
                         f"built on)")
    return fit(model, state, spec)


def _compatible(source: str, arch: str) -> bool:
    """Whether weights of `source` arch fill a model of `arch` (same trunk names)."""
    base = arch[len("tsm_"):] if arch.startswith("tsm_") else arch
    base = "resnet50" if base in ("resnet50s", "slowonly_r50") else base
    source = source[len("tsm_"):] if source.startswith("tsm_") else source
    return source == base

"""mmaction2 checkpoints <-> reskd state dicts: the key mapping, in both directions.

mmaction2 (0.x and 1.x) saves a recognizer as `{"state_dict": {...}, "meta": {...}}` with keys
`backbone.*` and `cls_head.*`. What reskd reads (every key is either mapped or named as left
over, never silently dropped):

- TSN (`Recognizer2D` + `ResNet` + `TSNHead`): `backbone.conv1.conv.weight`, `backbone.conv1.bn.*`,
  `backbone.layerI.J.convK.conv.weight`, `...convK.bn.*`, `...downsample.conv/bn.*` ->
  torchvision names under `backbone.` (conv1, bn1, convK, bnK, downsample.0/1);
  `cls_head.fc_cls.*` -> `fc.*`.
- TSM (`ResNetTSM`, shift_place "blockres", reskd's residual shift): as TSN, the shifted conv
  holding its weight one level down (`layerI.J.conv1.conv.net.weight`).
- SlowOnly (`ResNet3dSlowOnly`, R50 8x8): the TSN names with 5-D kernels.
- Video Swin (`SwinTransformer3D`, mmaction2 1.x and the original Video Swin code):
  `layers.I.blocks.J.*` -> torchvision's `features.{2I}.J.*` (`mlp.fc1/fc2` -> `mlp.0/3`),
  `layers.I.downsample.*` -> `features.{2I+1}.*`, `norm3` (1.x) or `norm` -> `norm`.
- The authors' ResKD checkpoints (their mmaction2 0.x fork, backbone `RKD`): teacher under
  `backbone.high_res_path.*`, student under `backbone.low_res_path.*`, the student's classifier
  `cls_head.fc_cls.*` and, for Swin, the teacher's `cls_head.fc_cls_t.*`. One half is read; the
  other half's keys are reported as dropped.

The functions here are pure (state dicts in, state dicts and reports out); building the model
and checking that every one of its keys was filled is `reskd.models.imports`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from reskd.models.resnet import TORCHVISION_RESNETS
from reskd.models.slowonly import SLOWONLY_DEPTHS

KINDS = ("tsn", "tsm", "slowonly", "swin")
HALVES = ("student", "teacher")
# (embed dim, depths) -> reskd arch, as torchvision and mmaction2 define T / S / B
SWIN_LAYOUTS = {(96, (2, 2, 6, 2)): "swin3d_t", (96, (2, 2, 18, 2)): "swin3d_s",
                (128, (2, 2, 18, 2)): "swin3d_b"}
# mmaction2's 2D and 3D ResNet stage strides (TSN, TSM, SlowOnly): not stored in the weights
MM_RESNET_STRIDES = (1, 2, 2, 2)


@dataclass
class Mapped:
    """A state dict in one layout made from one in the other, with the record of every key:
    `mapped` (source key, target key) and `dropped` (source key, why it was not used)."""

    kind: str
    arch: str
    kwargs: dict
    state: dict[str, torch.Tensor]
    mapped: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_classes(self) -> int | None:
        w = self.state.get("fc.weight")
        return None if w is None else int(w.shape[0])

    def report(self) -> list[str]:
        """One line per source key: "src -> dst (shape)" or "src dropped: why"."""
        lines = [f"{src} -> {dst} {tuple(self.state[dst].shape) if dst in self.state else ''}"
                 .rstrip() for src, dst in self.mapped]
        return lines + [f"{src} dropped: {why}" for src, why in self.dropped]


def unwrap(ckpt: dict) -> dict[str, torch.Tensor]:
    """The tensors of a recognizer checkpoint: its "state_dict" (or the dict itself), with a
    DDP "module." prefix removed."""
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"not an mmaction2 checkpoint: expected a dict with a 'state_dict', got "
                         f"{type(ckpt).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()
            if isinstance(v, torch.Tensor)}


def looks_like_mmaction(state: dict) -> bool:
    """True for the state dict of an mmaction2 recognizer (`backbone.*` and `cls_head.*`, or
    the authors' two-path backbone)."""
    keys = list(state)
    return (any(k.startswith("cls_head.") for k in keys)
            and any(k.startswith("backbone.") for k in keys))


def is_reskd_authors(state: dict) -> bool:
    return any(k.startswith(("backbone.high_res_path.", "backbone.low_res_path.")) for k in state)


def pick_half(state: dict, half: str) -> tuple[dict, list[tuple[str, str]], dict]:
    """An authors' ResKD checkpoint -> (one half as a plain recognizer state dict, the other
    half's keys as dropped, {plain key: original key}). `half`: "student" (low_res_path and
    cls_head.fc_cls) or "teacher" (high_res_path and, where saved, cls_head.fc_cls_t)."""
    if half not in HALVES:
        raise ValueError(f"half must be one of {', '.join(HALVES)}, got {half!r}")
    own, other = ("low_res_path", "high_res_path") if half == "student" else (
        "high_res_path", "low_res_path")
    head, other_head = ("fc_cls", "fc_cls_t") if half == "student" else ("fc_cls_t", "fc_cls")
    other_name = "teacher" if half == "student" else "student"
    out, dropped, origin = {}, [], {}
    for key, value in state.items():
        if key.startswith(f"backbone.{own}."):
            plain = "backbone." + key[len(f"backbone.{own}."):]
        elif key.startswith(f"cls_head.{head}."):
            plain = "cls_head.fc_cls." + key[len(f"cls_head.{head}."):]
        elif key.startswith(f"backbone.{other}."):
            dropped.append((key, f"the other half ({other_name})"))
            continue
        elif key.startswith(f"cls_head.{other_head}."):
            dropped.append((key, f"the {other_name}'s classifier"))
            continue
        else:
            plain = key
        out[plain] = value
        origin[plain] = key
    if not any(k.startswith("cls_head.fc_cls.") for k in out):
        raise ValueError(
            "this ResKD checkpoint holds no classifier for the teacher half (cls_head.fc_cls is "
            "the student's; only the authors' Swin head also saves the teacher's, fc_cls_t): use "
            "the teacher's own checkpoint (the config's pretrained_t) as distill.teacher, or "
            "take the student half")
    return out, dropped, origin


def detect_kind(state: dict) -> str:
    """"tsn", "tsm", "slowonly" or "swin" from a recognizer state dict; ValueError otherwise."""
    if "backbone.patch_embed.proj.weight" in state:
        return "swin"
    stem = state.get("backbone.conv1.conv.weight")
    if stem is not None:
        if stem.dim() == 5:
            return "slowonly"
        if any(re.match(r"backbone\.layer\d+\.\d+\.net\.", k) for k in state):
            raise ValueError("this TSM checkpoint shifts whole blocks (shift_place='block'); "
                             "reskd's TSM is the residual shift (shift_place='blockres')")
        return "tsm" if any(".conv.net." in k for k in state) else "tsn"
    raise ValueError(f"not an mmaction2 TSN/TSM/SlowOnly/Video Swin recognizer: no "
                     f"backbone.conv1.conv.weight or backbone.patch_embed.proj.weight among its "
                     f"keys (first: {', '.join(list(state)[:4])})")


# ---------------------------------------------------------------------------------------------
# Key rules, one per family and direction

_BLOCK_CONV = re.compile(r"^(layer\d+\.\d+)\.conv(\d)\.(conv\.net|conv|bn)\.(.+)$")
_DOWNSAMPLE = re.compile(r"^(layer\d+\.\d+)\.downsample\.(conv|bn)\.(.+)$")
_RESKD_CONV = re.compile(r"^(layer\d+\.\d+)\.(conv|bn)(\d)\.(.+)$")
_RESKD_DOWNSAMPLE = re.compile(r"^(layer\d+\.\d+)\.downsample\.([01])\.(.+)$")
_SWIN_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_SWIN_DOWN = re.compile(r"^layers\.(\d+)\.downsample\.(.+)$")
_TV_SWIN = re.compile(r"^features\.(\d+)\.(.+)$")
_MLP_MM = {"mlp.fc1.": "mlp.0.", "mlp.fc2.": "mlp.3.",
           "mlp.layers.0.0.": "mlp.0.", "mlp.layers.1.": "mlp.3."}  # original / mmcv FFN names


def _resnet_to_reskd(key: str) -> str | None:
    """A backbone key (without "backbone.") of an mmaction2 ResNet/ResNetTSM/ResNet3d."""
    if key.startswith("conv1.conv."):
        return "conv1." + key[len("conv1.conv."):]
    if key.startswith("conv1.bn."):
        return "bn1." + key[len("conv1.bn."):]
    m = _BLOCK_CONV.match(key)
    if m:
        block, k, part, rest = m.groups()
        return f"{block}.{'bn' if part == 'bn' else 'conv'}{k}.{rest}"
    m = _DOWNSAMPLE.match(key)
    if m:
        block, part, rest = m.groups()
        return f"{block}.downsample.{0 if part == 'conv' else 1}.{rest}"
    return None


def _resnet_to_mm(key: str, shifted: bool) -> str | None:
    if key.startswith("conv1."):
        return "conv1.conv." + key[len("conv1."):]
    if key.startswith("bn1."):
        return "conv1.bn." + key[len("bn1."):]
    m = _RESKD_CONV.match(key)
    if m:
        block, part, k, rest = m.groups()
        conv = "conv.net" if shifted and k == "1" else "conv"
        return f"{block}.conv{k}.{conv if part == 'conv' else 'bn'}.{rest}"
    m = _RESKD_DOWNSAMPLE.match(key)
    if m:
        block, index, rest = m.groups()
        return f"{block}.downsample.{'conv' if index == '0' else 'bn'}.{rest}"
    return None


def _swin_to_reskd(key: str) -> str | None:
    if key.startswith("patch_embed."):
        return key
    for final in ("norm3.", "norm."):
        if key.startswith(final):
            return "norm." + key[len(final):]
    m = _SWIN_BLOCK.match(key)
    if m:
        stage, block, rest = m.groups()
        for old, new in _MLP_MM.items():
            if rest.startswith(old):
                rest = new + rest[len(old):]
        return f"features.{2 * int(stage)}.{block}.{rest}"
    m = _SWIN_DOWN.match(key)
    if m:
        stage, rest = m.groups()
        return f"features.{2 * int(stage) + 1}.{rest}"
    return None


def _swin_to_mm(key: str) -> str | None:
    if key.startswith("patch_embed."):
        return key
    if key.startswith("norm."):
        return "norm3." + key[len("norm."):]  # mmaction2 1.x names the last stage's norm so
    m = _TV_SWIN.match(key)
    if not m:
        return None
    index, rest = int(m.group(1)), m.group(2)
    if index % 2:
        return f"layers.{index // 2}.downsample.{rest}"
    block, _, rest = rest.partition(".")
    for new, old in (("mlp.0.", "mlp.fc1."), ("mlp.3.", "mlp.fc2.")):
        if rest.startswith(new):
            rest = old + rest[len(new):]
    return f"layers.{index // 2}.blocks.{block}.{rest}"


def _head_to_reskd(key: str) -> str | None:
    return "fc." + key[len("cls_head.fc_cls."):] if key.startswith("cls_head.fc_cls.") else None


# ---------------------------------------------------------------------------------------------
# Architecture from the weights


def _stage_blocks(state: dict, pattern: str = r"backbone\.layer(\d+)\.(\d+)\.") -> tuple[int, ...]:
    """Blocks per stage, from the keys matching `pattern` (groups: stage, block)."""
    counts: dict[int, set[int]] = {}
    for key in state:
        m = re.match(pattern, key)
        if m:
            counts.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return tuple(len(counts[i]) for i in sorted(counts))


def guess_arch(kind: str, state: dict, num_segments: int = 8) -> tuple[str, dict]:
    """(reskd arch, extra build_model keyword options) for a recognizer's weights; ValueError
    naming the layout found when reskd has no such architecture."""
    if kind == "swin":
        dim = state["backbone.patch_embed.proj.weight"].shape[0]
        depths = _stage_blocks(state, r"backbone\.layers\.(\d+)\.blocks\.(\d+)\.")
        arch = SWIN_LAYOUTS.get((dim, depths))
        if arch is None:
            raise ValueError(f"a Video Swin with embedding dim {dim} and depths {list(depths)}: "
                             f"reskd has Swin-T (96, [2, 2, 6, 2]), Swin-S (96, [2, 2, 18, 2]) "
                             f"and Swin-B (128, [2, 2, 18, 2])")
        return arch, {}
    layers = _stage_blocks(state)
    bottleneck = any(re.match(r"backbone\.layer\d+\.\d+\.conv3\.", k) for k in state)
    block = "bottleneck" if bottleneck else "basic"
    if kind == "slowonly":
        for arch, (depths, kernels) in SLOWONLY_DEPTHS.items():
            found = tuple(state[f"backbone.layer{i + 1}.0.conv1.conv.weight"].shape[2]
                          for i in range(len(layers)))
            if layers == depths and bottleneck and found == kernels:
                return arch, {}
        raise ValueError(f"a SlowOnly with {block} blocks {list(layers)}: reskd's SlowOnly is "
                         f"R50 8x8 (bottleneck [3, 4, 6, 3], temporal kernels [1, 1, 3, 3])")
    name = next((n for n, (b, ls) in TORCHVISION_RESNETS.items()
                 if b == block and ls == layers), None)
    if kind == "tsm":
        if name is None:
            raise ValueError(f"a TSM over a ResNet with {block} blocks {list(layers)}: reskd's "
                             f"TSM archs are tsm_resnet18..152")
        return f"tsm_{name}", {"num_segments": num_segments}
    if name is not None:
        return name, {}
    # a ResNet of another depth or width (e.g. num_stages < 4): reskd's custom "resnet"
    widths = tuple(int(state[f"backbone.layer{i + 1}.0.conv1.conv.weight"].shape[0])
                   for i in range(len(layers)))
    return "resnet", {"block": block, "layers": layers, "widths": widths, "stem": "imagenet",
                      "strides": MM_RESNET_STRIDES[:len(layers)]}


# ---------------------------------------------------------------------------------------------
# The two directions


def from_mmaction(ckpt: dict, *, half: str = "student", num_segments: int = 8) -> Mapped:
    """An mmaction2 recognizer checkpoint (or its state dict) -> reskd keys. Keys that no rule
    maps are left in `dropped` with the reason "no reskd counterpart": the caller raises on
    them (`check_complete`)."""
    state = unwrap(ckpt)
    dropped: list[tuple[str, str]] = []
    origin = {k: k for k in state}
    if is_reskd_authors(state):
        state, dropped, origin = pick_half(state, half)
    kind = detect_kind(state)
    arch, extra = guess_arch(kind, state, num_segments)
    to_reskd = _swin_to_reskd if kind == "swin" else _resnet_to_reskd
    out, mapped = {}, []
    for key, value in state.items():
        if key.startswith("backbone."):
            new = to_reskd(key[len("backbone."):])
            new = None if new is None else "backbone." + new
        else:
            new = _head_to_reskd(key)
        if new is None:
            dropped.append((origin[key], "no reskd counterpart"))
            continue
        out[new] = value
        mapped.append((origin[key], new))
    return Mapped(kind=kind, arch=arch, kwargs=extra, state=out, mapped=mapped, dropped=dropped)


def left_over(mapped: Mapped) -> list[str]:
    """Source keys that were neither mapped nor dropped on purpose (another half, another
    head): every one is an error for the caller to name."""
    return [src for src, why in mapped.dropped if why == "no reskd counterpart"]


def kind_of_arch(arch: str) -> str:
    if arch.startswith("tsm_"):
        return "tsm"
    if arch.startswith("slowonly"):
        return "slowonly"
    if arch.startswith("swin3d"):
        return "swin"
    if arch in TORCHVISION_RESNETS or arch in ("resnet", "resnet50s"):
        return "tsn"
    raise ValueError(f"reskd arch {arch!r} has no mmaction2 counterpart here; these convert: "
                     f"resnet18..152, resnet50s, resnet (TSN), tsm_resnet18..152, slowonly_r50, "
                     f"swin3d_t/s/b")


def to_mmaction(arch: str, state: dict[str, torch.Tensor]) -> Mapped:
    """A reskd model state dict -> an mmaction2 recognizer state dict (TSN/TSM/SlowOnly/Video
    Swin, mmaction2 1.x names), every key mapped or ValueError naming those that are not."""
    kind = kind_of_arch(arch)
    out, mapped, unknown = {}, [], []
    for key, value in state.items():
        if key.startswith("fc."):
            new = "cls_head.fc_cls." + key[len("fc."):]
        elif key.startswith("backbone."):
            rest = key[len("backbone."):]
            new = _swin_to_mm(rest) if kind == "swin" else _resnet_to_mm(rest, kind == "tsm")
            new = None if new is None else "backbone." + new
        else:
            new = None
        if new is None:
            unknown.append(key)
            continue
        out[new] = value
        mapped.append((key, new))
    if unknown:
        raise ValueError(f"{len(unknown)} keys of this {arch} have no mmaction2 name: "
                         f"{', '.join(unknown[:5])}")
    out = dict(sorted(out.items(), key=lambda item: item[0].startswith("cls_head.")))
    return Mapped(kind=kind, arch=arch, kwargs={}, state=out, mapped=mapped)


def mmaction_model_config(arch: str, num_classes: int, num_segments: int = 8, *,
                          mean=None, std=None) -> str:
    """The mmaction2 1.x `model = dict(...)` that a converted checkpoint loads into; with
    `mean` / `std` (0-1 scale, reskd's) its data preprocessor, which works in 0-255."""
    text = _model_config(arch, num_classes, num_segments)
    if mean is None:
        return text
    shape = "NCHW" if kind_of_arch(arch) in ("tsn", "tsm") else "NCTHW"
    scaled = ", ".join(f"{round(v * 255, 3)}" for v in mean), ", ".join(
        f"{round(v * 255, 3)}" for v in std)
    return (text[:-1] + f", data_preprocessor=dict(type='ActionDataPreprocessor', "
            f"mean=[{scaled[0]}], std=[{scaled[1]}], format_shape='{shape}'))")


def _model_config(arch: str, num_classes: int, num_segments: int) -> str:
    kind = kind_of_arch(arch)
    if kind == "swin":
        size = {"swin3d_t": "tiny", "swin3d_s": "small", "swin3d_b": "base"}[arch]
        channels = 1024 if arch == "swin3d_b" else 768
        return (f"model = dict(type='Recognizer3D', backbone=dict(type='SwinTransformer3D', "
                f"arch='{size}', pretrained=None, patch_size=(2, 4, 4), window_size=(8, 7, 7)), "
                f"cls_head=dict(type='I3DHead', in_channels={channels}, "
                f"num_classes={num_classes}))")
    if kind == "slowonly":
        return ("model = dict(type='Recognizer3D', backbone=dict(type='ResNet3dSlowOnly', "
                "depth=50, pretrained=None, lateral=False, conv1_kernel=(1, 7, 7), "
                "conv1_stride_t=1, pool1_stride_t=1, inflate=(0, 0, 1, 1)), "
                f"cls_head=dict(type='I3DHead', in_channels=2048, num_classes={num_classes}))")
    name = arch[len("tsm_"):] if kind == "tsm" else "resnet50" if arch == "resnet50s" else arch
    if name not in TORCHVISION_RESNETS:
        raise ValueError(f"arch {arch!r} (a custom ResNet) has no mmaction2 ResNet depth")
    block, layers = TORCHVISION_RESNETS[name]
    depth = int(name[len("resnet"):])
    channels = 512 * (4 if block == "bottleneck" else 1)
    strides = ", strides=(1, 1, 2, 2)" if arch == "resnet50s" else ""
    if kind == "tsm":
        return (f"model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM', depth={depth}, "
                f"pretrained=None, num_segments={num_segments}, shift_div=8), "
                f"cls_head=dict(type='TSMHead', num_segments={num_segments}, "
                f"in_channels={channels}, num_classes={num_classes}))")
    return (f"model = dict(type='Recognizer2D', backbone=dict(type='ResNet', depth={depth}, "
            f"pretrained=None{strides}), cls_head=dict(type='TSNHead', in_channels={channels}, "
            f"num_classes={num_classes}))")

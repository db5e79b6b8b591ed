"""Hugging Face `transformers` video classifiers as reskd models (arch "hf").

VideoMAE, TimeSformer, ViViT and V-JEPA 2 (`*ForVideoClassification`) get the uniform API of
`reskd.models.base.VideoClassifier`: `model(x)` with x (N, T, C, H, W) normalised float ->
logits (N, K); `features(x)` -> the last token grid as a map (N, T', C, h, w), C the hidden
size (`feature_channels`); `head(map)` -> the logits the transformers model computes from the
same tokens. The HF model sits inside as `model.hf`; its parameters are the wrapper's (state
dict keys "hf.<transformers key>").

Token order and T' (h = H / patch, w = W / patch):

- VideoMAE: tubelets of 2 frames, tokens in (T', h, w) order: T' = T / 2. No class token; the
  head is mean-pool over all tokens, `fc_norm`, classifier (or, without `use_mean_pooling`,
  the first token after the final LayerNorm, as transformers does).
- TimeSformer: one token per frame and patch after the class token, in (h*w, T) order (space
  outer, time inner); the map is reordered to (T, C, h, w): T' = T.
- ViViT: class token, then tubelets of `tubelet_size[0]` frames (2 for the published models)
  in (T', h, w) order: T' = T / 2.
- V-JEPA 2: tubelets of `tubelet_size` (2) frames, (T', h, w) order, no class token: T' = T / 2;
  the head is the attentive pooler (cross-attention of a learned query over all tokens) and
  the classifier.

The class token (TimeSformer, ViViT) is not part of the grid, but the classifier reads it:
`features(x)` returns the grid tensor with the final class token attached to it as
`map.class_token` (N, C), and `head(map)` uses that. `forward(x, return_features=True)` returns
(logits, map) from one pass, so the Distiller's calls (`student(x, return_features=True)`,
`teacher.features(x)` then `teacher.head(map)`) are exact. A map made otherwise (resized, a
new tensor) has no class token, and `head` says so. `frame_logits` / `pixel_logits` (frame- and
pixel-level logit KD): VideoMAE applies `fc_norm` and the classifier per frame (tokens averaged
over h, w) and per token; V-JEPA 2 runs its attentive pooler per frame (no pixel logits); the
class-token models have no per-token classifier, so feature KD and clip-level logit KD are the
KD terms that work with them.

Every input size works (house rule 7), at the cost of what each family allows: VideoMAE's
fixed sin-cos table is rebuilt for the input's token count (`sincos_table`, cached per size);
ViViT's learned position table is interpolated (bicubic in space, linear in time) to the
input's grid; TimeSformer's layers read the grid from the config, which is set to the input's
frames and width for the call (its embeddings interpolate, nearest, as transformers does);
V-JEPA 2's RoPE positions come from the grid size its attention layers hold, set to the
input's for the call. A student for a smaller input (e.g. 112 from a 224 checkpoint) is best
built with a config of that size (`config_at_size`): the position tables are then resized once
from the checkpoint's, bicubic, when the weights are loaded (`fit_hf_state`). Not thread-safe
across concurrent calls at different sizes on one model (the per-call grid is module state).

Sources (`load_hf_source`): a folder that `save_pretrained` wrote (config.json plus
model.safetensors, a sharded safetensors index, or pytorch_model.bin) or a hub id written
`hf:ORG/NAME` (e.g. `hf:MCG-NJU/videomae-base-finetuned-kinetics`), read through the Hugging
Face cache only (`HF_HUB_OFFLINE=1` or `local_files_only` never touch the network). Never
`trust_remote_code`; safetensors are read as tensors, a `.bin` only by
`torch.load(weights_only=True)`: one that needs more is refused.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HF_PREFIX = "hf:"

# transformers model_type -> its video classifier class
FAMILIES = {
    "videomae": "VideoMAEForVideoClassification",
    "timesformer": "TimesformerForVideoClassification",
    "vivit": "VivitForVideoClassification",
    "vjepa2": "VJEPA2ForVideoClassification",
}
CLASS_TOKEN_FAMILIES = ("timesformer", "vivit")
DEFAULT_FAMILY = "videomae"  # arch "hf" without hf_config or pretrained: VideoMAE-B's layout
INSTALL_HINT = "pip install 'reskd[hf]' (transformers>=5, safetensors>=0.4)"


def _transformers():
    try:
        import transformers
    except ImportError as err:
        raise ImportError(f"Hugging Face video models need transformers: {INSTALL_HINT}") from err
    return transformers


# ---------------------------------------------------------------------------------------------
# Configs and models


def hf_config_from_dict(config: dict):
    """A transformers config of one of `FAMILIES` from its dict (`config.to_dict()`, what a
    reskd checkpoint stores as model_kwargs["hf_config"])."""
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in FAMILIES:
        raise ValueError(f"hf_config: model_type {model_type!r} is not a video classifier reskd "
                         f"wraps; valid: {', '.join(FAMILIES)}")
    transformers = _transformers()
    return transformers.CONFIG_MAPPING[model_type].from_dict(dict(config))


def config_dict(config) -> dict:
    """A transformers config as plain JSON values (safe in a weights_only checkpoint)."""
    return json.loads(config.to_json_string(use_diff=False))


def _side(config) -> int:
    size = config.crop_size if config.model_type == "vjepa2" else config.image_size
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def config_frames(config) -> int:
    """The clip length the config was made for (num_frames; V-JEPA 2's frames_per_clip)."""
    return int(config.frames_per_clip if config.model_type == "vjepa2" else config.num_frames)


def config_at_size(config: dict, size: int, *, frames: int | None = None) -> dict:
    """A config dict for inputs of `size` px (and `frames` frames when given): what a student
    at a smaller size is built from, so its position tables have that grid."""
    out = dict(config)
    out["crop_size" if out.get("model_type") == "vjepa2" else "image_size"] = int(size)
    if frames is not None:
        out["frames_per_clip" if out.get("model_type") == "vjepa2" else "num_frames"] = frames
    return out


def with_num_classes(config: dict, num_classes: int) -> dict:
    """`config` with `num_classes` outputs; its class names are kept when the count is its."""
    labels = config.get("id2label") or {}
    if len(labels) == num_classes:
        return dict(config)
    out = {k: v for k, v in config.items() if k not in ("id2label", "label2id")}
    out["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_classes)}
    out["label2id"] = {f"LABEL_{i}": i for i in range(num_classes)}
    return out


def sincos_table(n_position: int, dim: int) -> torch.Tensor:
    """VideoMAE's fixed 1-D sin-cos position table (n_position, dim), float32: angle
    pos / 10000^(2 (j // 2) / dim), sin on even j, cos on odd j (computed in float64 as
    transformers' numpy code does)."""
    pos = torch.arange(n_position, dtype=torch.float64)[:, None]  # (n, 1)
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                            2 * torch.div(j, 2, rounding_mode="floor") / dim)  # (n, dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


class HFVideoClassifier(nn.Module):
    """A transformers `*ForVideoClassification` with reskd's video model API (module
    docstring). Build it with `build_hf_model` or `reskd.build_model("hf", hf_config=...)`."""

    # The patch embeddings are Conv3d / Conv2d of one patch per stride: memory format changes
    # buy nothing, so `prepare_model` leaves the layout as it is.
    memory_format = torch.contiguous_format

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        config = hf_model.config
        if config.model_type not in FAMILIES:
            raise ValueError(f"{type(hf_model).__name__}: reskd wraps {', '.join(FAMILIES)}")
        if config.model_type == "timesformer" and config.attention_type != "divided_space_time":
            raise ValueError(f"TimeSformer attention_type {config.attention_type!r}: reskd "
                             f"wraps 'divided_space_time' (the published models')")
        self.hf = hf_model
        self.family = config.model_type
        self.feature_channels = int(config.hidden_size)
        self.num_classes = int(config.num_labels)
        self.channels_last = False  # set by reskd.engine.runtime.prepare_model; unused here
        self._tables: dict[tuple[int, int], torch.Tensor] = {}  # VideoMAE's, per token count

    # `reskd.build_model` / `load_model` set `build_options`, what `save_student` stores: the
    # config always goes with it, so a checkpoint rebuilds offline without the source.
    @property
    def build_options(self) -> dict:
        return self._build_options

    @build_options.setter
    def build_options(self, options: dict) -> None:
        self._build_options = {**options, "hf_config": self.hf_config}

    @property
    def hf_config(self) -> dict:
        return config_dict(self.hf.config)

    # ---- the token grid ----------------------------------------------------------------

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, C, H, W) -> the last token grid (N, T', C', h, w); TimeSformer and ViViT
        attach their class token as `.class_token` (N, C')."""
        if x.dim() != 5:
            raise ValueError(f"{type(self).__name__} takes clips (N, T, C, H, W), got shape "
                             f"{tuple(x.shape)}")
        grid, cls = getattr(self, f"_{self.family}_tokens")(x)
        if cls is not None:
            grid.class_token = cls
        return grid

    def _videomae_tokens(self, x: torch.Tensor):
        m = self.hf.videomae
        p = m.embeddings.patch_embeddings.projection(x.transpose(1, 2))  # (N, C, T', h, w)
        N, C, t, h, w = p.shape
        tokens = p.flatten(2).transpose(1, 2)  # (N, T'hw, C), (T', h, w) order
        tokens = tokens + self.position_table(t * h * w).to(tokens)
        out = m.encoder(tokens).last_hidden_state
        if m.layernorm is not None:
            out = m.layernorm(out)
        return out.view(N, t, h, w, C).permute(0, 1, 4, 2, 3), None  # (N, T', C, h, w)

    def position_table(self, n_tokens: int) -> torch.Tensor:
        """VideoMAE's sin-cos table (1, n_tokens, C) for an input of n_tokens tokens."""
        key = (n_tokens, self.feature_channels)
        if key not in self._tables:
            self._tables[key] = sincos_table(*key).unsqueeze(0)
        return self._tables[key]

    def _timesformer_tokens(self, x: torch.Tensor):
        N, T, _, H, W = x.shape
        patch = self.hf.config.patch_size
        with _config_grid(self.hf.config, num_frames=T, image_size=W):
            out = self.hf.timesformer(x).last_hidden_state  # (N, 1 + h*w*T, C)
        h, w, C = H // patch, W // patch, out.shape[-1]
        grid = out[:, 1:].reshape(N, h, w, T, C).permute(0, 3, 4, 1, 2)  # (N, T, C, h, w)
        return grid, out[:, 0]

    def _vivit_tokens(self, x: torch.Tensor):
        m = self.hf.vivit
        emb = m.embeddings
        p = emb.patch_embeddings.projection(x.transpose(1, 2))  # (N, C, T', h, w)
        N, C, t, h, w = p.shape
        tokens = p.flatten(2).transpose(1, 2)  # (N, T'hw, C), (T', h, w) order
        tokens = torch.cat([emb.cls_token.expand(N, -1, -1), tokens], dim=1)
        tokens = emb.dropout(tokens + vivit_positions(emb.position_embeddings,
                                                      _vivit_grid(self.hf.config), (t, h, w)))
        for layer in m.layers:
            tokens = layer(tokens, None)
        out = m.layernorm(tokens)  # (N, 1 + T'hw, C)
        return out[:, 1:].reshape(N, t, h, w, C).permute(0, 1, 4, 2, 3), out[:, 0]

    def _vjepa2_tokens(self, x: torch.Tensor):
        config = self.hf.config
        N, T, _, H, W = x.shape
        t = max(T, config.tubelet_size) // config.tubelet_size
        h, w = H // config.patch_size, W // config.patch_size
        with _rope_grid(self.hf, size=w, depth=t):
            out = self.hf.vjepa2.encoder(pixel_values_videos=x).last_hidden_state  # (N, T'hw, C)
        return out.reshape(N, t, h, w, -1).permute(0, 1, 4, 2, 3), None  # (N, T', C, h, w)

    # ---- the classifier ---------------------------------------------------------------

    def _class_token(self, f: torch.Tensor) -> torch.Tensor:
        cls = getattr(f, "class_token", None)
        if cls is None:
            raise ValueError(f"head(map) of a {self.family} model needs the class token, which "
                             f"the map returned by `features(x)` carries as `map.class_token`; "
                             f"this map has none (resized or made elsewhere). Call model(x) or "
                             f"model(x, return_features=True) instead")
        return cls

    def head(self, f: torch.Tensor) -> torch.Tensor:
        """(N, T', C, h, w) -> logits (N, K), as transformers computes them."""
        if self.family in CLASS_TOKEN_FAMILIES:
            return self.hf.classifier(self._class_token(f))
        tokens = f.permute(0, 1, 3, 4, 2).flatten(1, 3)  # (N, T'hw, C), (T', h, w) order
        if self.family == "vjepa2":
            return self.hf.classifier(self.hf.pooler(tokens))
        if self.hf.fc_norm is not None:  # VideoMAE with use_mean_pooling
            return self.hf.classifier(self.hf.fc_norm(tokens.mean(1)))
        return self.hf.classifier(tokens[:, 0])

    def _no_token_logits(self, what: str) -> NotImplementedError:
        return NotImplementedError(
            f"{what} logits of a {self.family} model: its classifier reads "
            f"{'the class token' if self.family in CLASS_TOKEN_FAMILIES else 'pooled tokens'} "
            f"only, so there is no per-{'frame' if what == 'frame' else 'position'} classifier "
            f"to apply. KD terms that work: feature KD (distill.alpha) and clip-level logit KD "
            f"(distill.clip_kd)"
            + (", frame-level logit KD (distill.frame_kd)" if self.family == "vjepa2" else ""))

    def frame_logits(self, f: torch.Tensor) -> torch.Tensor:
        """(N, T', C, h, w) -> (N, T', K): VideoMAE's fc_norm + classifier on each frame's
        mean token; V-JEPA 2's attentive pooler over each frame's tokens."""
        N, t, C = f.shape[:3]
        if self.family == "vjepa2":
            tokens = f.permute(0, 1, 3, 4, 2).flatten(2, 3).flatten(0, 1)  # (N T', hw, C)
            return self.hf.classifier(self.hf.pooler(tokens)).view(N, t, -1)
        if self.family != "videomae":
            raise self._no_token_logits("frame")
        pooled = f.mean(dim=(-2, -1))  # (N, T', C)
        return self.hf.classifier(self._token_norm(pooled))

    def pixel_logits(self, f: torch.Tensor) -> torch.Tensor:
        """(N, T', C, h, w) -> (N, T', K, h, w): VideoMAE's classifier on each token."""
        if self.family != "videomae":
            raise self._no_token_logits("pixel")
        logits = self.hf.classifier(self._token_norm(f.movedim(2, -1)))  # (N, T', h, w, K)
        return logits.movedim(-1, 2)

    def _token_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.hf.fc_norm(tokens) if self.hf.fc_norm is not None else tokens

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """(N, T, C, H, W) -> logits (N, K), or (logits, map) with return_features."""
        f = self.features(x)
        return (self.head(f), f) if return_features else self.head(f)


@contextmanager
def _config_grid(config, **values):
    """Sets config attributes (TimeSformer's layers read num_frames / image_size from the
    config) for one call, then restores them."""
    old = {k: getattr(config, k) for k in values}
    try:
        for k, v in values.items():
            setattr(config, k, v)
        yield
    finally:
        for k, v in old.items():
            setattr(config, k, v)


@contextmanager
def _rope_grid(hf_model: nn.Module, *, size: int, depth: int):
    """V-JEPA 2's RoPE attention layers with the input's grid (tokens per row, tubelets) for
    one call; their own (from config.crop_size) restored after."""
    layers = [m for m in hf_model.vjepa2.encoder.modules() if hasattr(m, "grid_size")]
    old = [(m.grid_size, m.grid_depth) for m in layers]
    try:
        for m in layers:
            m.grid_size, m.grid_depth = size, depth
        yield
    finally:
        for m, (s, d) in zip(layers, old):
            m.grid_size, m.grid_depth = s, d


def _vivit_grid(config) -> tuple[int, int, int]:
    """(T', h, w) of the position table a ViViT config builds."""
    side = config.image_size
    side = side if isinstance(side, (list, tuple)) else (side, side)
    tt, th, tw = config.tubelet_size
    return config.num_frames // tt, side[0] // th, side[1] // tw


def vivit_positions(table: torch.Tensor, grid: tuple[int, int, int],
                    new: tuple[int, int, int]) -> torch.Tensor:
    """ViViT's learned table (1, 1 + T'hw, C) for `grid` -> (1, 1 + t h' w', C) for `new`:
    the class position kept, the rest bicubic in space and linear in time."""
    if tuple(grid) == tuple(new):
        return table
    cls, rest = table[:, :1], table[:, 1:]
    t, h, w = grid
    C = table.shape[-1]
    rest = rest.reshape(t, h, w, C).permute(0, 3, 1, 2)  # (T', C, h, w)
    if (h, w) != new[1:]:
        rest = F.interpolate(rest, size=new[1:], mode="bicubic", align_corners=False)
    if t != new[0]:
        rest = rest.permute(1, 2, 3, 0).reshape(1, C * new[1] * new[2], t)  # (1, C h w, T')
        rest = F.interpolate(rest, size=new[0], mode="linear", align_corners=False)
        rest = rest.reshape(C, new[1], new[2], new[0]).permute(3, 0, 1, 2)  # (t, C, h, w)
    rest = rest.permute(0, 2, 3, 1).reshape(1, -1, C)  # (1, t h w, C), (T', h, w) order
    return torch.cat([cls, rest], dim=1)


def build_hf_model(hf_config: dict | None, *, num_classes: int | None = None,
                   pretrained: str = "") -> HFVideoClassifier:
    """A wrapped model from a config dict, randomly initialised, or filled with the weights
    of `pretrained` (a source, below; its config is used when `hf_config` is None; with
    neither, transformers' default VideoMAE config, VideoMAE-B 16x224). The
    classifier has `num_classes` outputs when given (else the config's); weights with another
    class count leave it initialised. A config of another input size or clip length than the
    weights' gets their position tables resized (`fit_hf_state`)."""
    if pretrained and not is_hf_source(pretrained):
        raise ValueError(f"model.pretrained={pretrained!r} for arch 'hf': give a folder written "
                         f"by save_pretrained (with config.json) or a hub id hf:ORG/NAME")
    source = None
    if pretrained:
        _, source, state = read_hf_source(pretrained)
        if hf_config is None:
            hf_config = config_dict(source)
    if hf_config is None:  # arch "hf" alone: the VideoMAE-B layout, randomly initialised
        hf_config = {"model_type": DEFAULT_FAMILY}
    if num_classes is not None:
        hf_config = with_num_classes(hf_config, num_classes)
    config = hf_config_from_dict(hf_config)
    model = HFVideoClassifier(getattr(_transformers(), FAMILIES[config.model_type])(config))
    if source is not None:
        if source.model_type != model.family:
            raise ValueError(f"model.pretrained={pretrained!r} holds {source.model_type} "
                             f"weights; hf_config is a {model.family}")
        model.report = fit_hf_state(model, state, pretrained, source)
    return model


# ---------------------------------------------------------------------------------------------
# Sources: a save_pretrained folder or a hub id through the cache


def is_hf_source(spec: str) -> bool:
    """`hf:ORG/NAME`, or a folder holding a transformers config.json."""
    spec = str(spec)
    return spec.startswith(HF_PREFIX) or (Path(spec).is_dir()
                                          and (Path(spec) / "config.json").is_file())


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time (HF_HUB_CACHE,
    else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface")
    return Path(home) / "hub"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


# the files a source needs: config, weights, preprocessing; never code
_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
          "preprocessor_config.json", "video_preprocessor_config.json"]


def hf_folder(spec: str, *, local_files_only: bool = False) -> Path:
    """The local folder of a source: the folder itself, or a hub id's snapshot in the HF
    cache. The hub is asked only when neither HF_HUB_OFFLINE nor `local_files_only` is set;
    missing files raise FileNotFoundError naming the id, the cache and how to fetch them."""
    spec = str(spec)
    if not spec.startswith(HF_PREFIX):
        folder = Path(spec)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no config.json; give a folder written by "
                                    f"save_pretrained, or a hub id as hf:ORG/NAME")
        return folder
    repo_id = spec[len(HF_PREFIX):]
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"{spec!r}: a hub model is written hf:ORG/NAME, e.g. "
                         f"hf:MCG-NJU/videomae-base-finetuned-kinetics")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:
        raise ImportError(f"{spec} needs huggingface_hub: {INSTALL_HINT}") from err
    cache = hub_cache_dir()
    offline = local_files_only or _offline()
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=offline,
                                      allow_patterns=_FILES))
    except Exception as err:  # huggingface_hub's not-found / offline / HTTP errors
        how = (f"fetch them once with network: `hf download {repo_id}` (or "
               f"huggingface_hub.snapshot_download({repo_id!r}))"
               + (", then keep HF_HUB_OFFLINE=1" if offline else ""))
        raise FileNotFoundError(
            f"Hugging Face model {repo_id!r} is not in the cache {cache}"
            f"{' (offline: HF_HUB_OFFLINE or local_files_only)' if offline else ''} and could "
            f"not be fetched ({type(err).__name__}: {err}); {how}; or give a local "
            f"save_pretrained folder") from err


def check_weights_file(folder: Path) -> bool:
    """Whether the folder's weights are safetensors (True) or a pytorch_model.bin (False)
    that torch.load(weights_only=True) reads; a .bin whose pickle needs more is refused with
    the reason, before transformers opens it."""
    if (folder / "model.safetensors").is_file() or (
            folder / "model.safetensors.index.json").is_file():
        return True
    binary = folder / "pytorch_model.bin"
    if not binary.is_file():
        raise FileNotFoundError(f"{folder}: no model.safetensors, safetensors index or "
                                f"pytorch_model.bin")
    try:
        torch.load(binary, map_location="meta", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{binary}: refused, it cannot be read with "
                         f"torch.load(weights_only=True): its pickle needs more than tensors "
                         f"({str(err).splitlines()[0]}); loading it would run code it names. "
                         f"Re-save it as safetensors (model.save_pretrained(folder)) from a "
                         f"source you trust") from err
    return False


def _resized_position(key: str, value: torch.Tensor, target: torch.Tensor, source_config,
                      config) -> torch.Tensor | None:
    """A position table of the source's grid made the target's, or None when `key` is none."""
    if key.endswith("vivit.embeddings.position_embeddings"):
        return vivit_positions(value, _vivit_grid(source_config), _vivit_grid(config))
    if key.endswith("timesformer.embeddings.position_embeddings"):
        n_old, n_new = value.shape[1] - 1, target.shape[1] - 1
        old, new = math.isqrt(n_old), math.isqrt(n_new)
        rest = value[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)  # (1, C, h, w)
        rest = F.interpolate(rest, size=(new, new), mode="bicubic", align_corners=False)
        return torch.cat([value[:, :1], rest.flatten(2).transpose(1, 2)], dim=1)
    if key.endswith("timesformer.embeddings.time_embeddings"):
        rest = F.interpolate(value.transpose(1, 2), size=target.shape[1], mode="linear",
                             align_corners=False)  # (1, C, T)
        return rest.transpose(1, 2)
    return None


def fit_hf_state(model: HFVideoClassifier, state: dict[str, torch.Tensor], source: str,
                 source_config) -> list[str]:
    """Loads a transformers state dict into the wrapped model. Position tables of another
    grid are resized (`_resized_position`); a classifier of another class count is left as
    initialised (new classes). Any other key missing, unexpected or of another shape is a
    ValueError naming it. Returns the report, one line per key that was not copied as is."""
    hf = model.hf
    own = hf.state_dict()
    new, report, unexpected, mismatched = {}, [], [], []
    for key, value in state.items():
        target = own.get(key)
        if target is None:
            unexpected.append(key)
        elif value.shape == target.shape:
            new[key] = value.to(target.dtype)
        elif key.startswith("classifier."):
            report.append(f"{key} {tuple(target.shape)} left as initialised: the weights have "
                          f"{value.shape[0]} classes, the model {target.shape[0]}")
        elif (resized := _resized_position(key, value, target, source_config,
                                           hf.config)) is not None and \
                resized.shape == target.shape:
            new[key] = resized.to(target.dtype)
            report.append(f"{key} {tuple(target.shape)} interpolated from {tuple(value.shape)}")
        else:
            mismatched.append(f"{key}: {tuple(value.shape)} vs the model's {tuple(target.shape)}")
    missing = [k for k in own if k not in new and not (
        k.startswith("classifier.") and any(r.startswith(k) for r in report))]
    if unexpected or mismatched or missing:
        raise ValueError(f"weights {source} do not fit this {FAMILIES[model.family]}: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} "
                         f"unexpected (e.g. {unexpected[:3]}), {len(mismatched)} of other shapes "
                         f"(e.g. {mismatched[:3]})")
    hf.load_state_dict(new, strict=False)
    return report


def _class_names(config) -> list[str] | None:
    """config.id2label in label order; None for transformers' placeholders LABEL_0...."""
    labels = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    names = [labels.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
    return None if all(n == f"LABEL_{i}" for i, n in enumerate(names)) else names


def _preprocessing(folder: Path, config) -> dict:
    """size, mean, std of the folder's (video) processor config; the model's input side and
    ImageNet's mean/std (transformers' default for these models) when it has none."""
    from reskd.config import IMAGENET_MEAN, IMAGENET_STD

    processor = {}
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        if (folder / name).is_file():
            processor = json.loads((folder / name).read_text())
            break
    size = processor.get("crop_size") or processor.get("size") or _side(config)
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or _side(config)
    mean = processor.get("image_mean") or list(IMAGENET_MEAN)
    std = processor.get("image_std") or list(IMAGENET_STD)
    return {"size": int(size), "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def hf_source_config(spec: str) -> dict:
    """The transformers config (as a dict, what model_kwargs["hf_config"] holds) of a source,
    without reading its weights: what a run records so its checkpoint rebuilds offline."""
    folder = hf_folder(spec)
    return config_dict(hf_config_from_dict(json.loads((folder / "config.json").read_text())))


def read_hf_source(spec: str, *, local_files_only: bool = False):
    """(folder, transformers config, state dict in the model's own key names) of a source
    (`hf_folder`). transformers reads the files (its key renames of older checkpoints
    included) with weights_only=True from the local folder, never running code from it; a
    key it would leave missing, unexpected or of another shape is a ValueError, where
    transformers would only warn."""
    folder = hf_folder(spec, local_files_only=local_files_only)
    config = hf_config_from_dict(json.loads((folder / "config.json").read_text()))
    safetensors = check_weights_file(folder)
    transformers = _transformers()
    cls = getattr(transformers, FAMILIES[config.model_type])
    bar = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # its per-tensor bar says nothing here
    try:
        model, info = cls.from_pretrained(folder, config=config, local_files_only=True,
                                          use_safetensors=safetensors, weights_only=True,
                                          output_loading_info=True)
    finally:
        if bar:
            transformers.utils.logging.enable_progress_bar()
    problems = {k: list(info.get(k) or []) for k in ("missing_keys", "unexpected_keys",
                                                      "mismatched_keys")}
    if any(problems.values()):
        shown = "; ".join(f"{len(v)} {k.replace('_', ' ')} (e.g. {v[:3]})"
                          for k, v in problems.items() if v)
        raise ValueError(f"weights {spec} do not fit {cls.__name__} of their own config: {shown}")
    return folder, config, model.state_dict()


def load_hf_source(spec: str, *, local_files_only: bool = False
                   ) -> tuple[HFVideoClassifier, dict]:
    """(model on CPU in eval mode, context as `reskd.models.imports` describes it) from a
    save_pretrained folder or `hf:ORG/NAME`: the processor's size and mean/std, frames =
    the config's clip length, class names from config.id2label."""
    folder, config, state = read_hf_source(spec, local_files_only=local_files_only)
    model = HFVideoClassifier(getattr(_transformers(), FAMILIES[config.model_type])(config))
    report = fit_hf_state(model, state, spec, config)
    frames = config_frames(config)
    kwargs = {"arch": "hf", "num_classes": model.num_classes, "hf_config": model.hf_config,
              "num_segments": frames}
    context = {**_preprocessing(folder, config), "frames": frames, "recipe_frames": frames,
               "classes": _class_names(config), "model_kwargs": kwargs, "report": report}
    return model.eval(), context

"""Records what real mmaction2 models output, for reskd's mmaction2 parity tests.

For each recognizer below, this builds the model with mmaction2 itself, fills its state dict
with deterministic stand-in weights (`fill`: seeded per key name, realistic scales; integer
buffers stay mmaction2's own), runs it in eval mode on one fixed clip batch and saves, under
tests/fixtures/mmaction2/:

- `input.pt`: the clips, (N, T, C, H, W) = (2, 4, 3, 64, 64), already normalised (mmaction2's
  data preprocessor is bypassed: reskd normalises in its data pipeline);
- `NAME.pt`: the mmaction2 config used, every state-dict key with its shape and dtype in
  mmaction2's order, the integer buffers (deduplicated, stored as int16 where they fit), and
  the class scores mmaction2's head computed (`model.extract_feat(inputs, stage="head")`,
  before any clip averaging).

Weights are not stored: `fill` regenerates them from the key names and shapes, in this file and
in tests/test_mmaction2_parity.py (which imports `fill` from here), so the fixtures stay well
under a megabyte each while the models are the real layouts (TSN-R18, TSM-R18, SlowOnly-R50
8x8 - reskd's only SlowOnly - and Video Swin-T). Two more are the authors' ResKD layout
(their RKD backbone: `backbone.high_res_path.*` teacher, `backbone.low_res_path.*` student),
assembled from two mmaction2 models as their fork saves them: a TSN one (teacher R34, student
R18, the student's `cls_head.fc_cls`) and a Swin one (teacher and student Swin-T, plus the
teacher's `cls_head.fc_cls_t`); their logits are each half's, run in mmaction2.

To re-record (mmaction2 is never a dependency of reskd; install it in a separate venv that
sees reskd's torch):

    python3.11 -m venv /tmp/mmvenv
    echo $PWD/.venv/lib/python3.11/site-packages > /tmp/mmvenv/lib/python3.11/site-packages/torch.pth
    /tmp/mmvenv/bin/pip install --no-deps mmaction2==1.2.0 mmengine==0.10.7 mmcv-lite==2.1.0 \\
        opencv-python-headless
    /tmp/mmvenv/bin/pip install addict yapf termcolor rich einops importlib_metadata
    D=/tmp/mmvenv/lib/python3.11/site-packages/mmaction/models/localizers/drn
    mkdir -p $D && echo "class DRN: pass" > $D/drn.py && echo "from .drn import DRN" > $D/__init__.py
    /tmp/mmvenv/bin/python scripts/record_mmaction2_fixtures.py

(the mmaction2 1.2.0 wheel lacks that `drn` package; a stub lets it import.) The script
overwrites the fixtures; commit them with a note of the torch version they were recorded with.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mmaction2"
NUM_CLASSES = 5
SEGMENTS = 4

# name -> mmaction2 1.x model config (data preprocessor left out: inputs come normalised)
MODELS = {
    "tsn_r18": dict(type="Recognizer2D",
                    backbone=dict(type="ResNet", depth=18, pretrained=None),
                    cls_head=dict(type="TSNHead", num_classes=NUM_CLASSES, in_channels=512)),
    "tsm_r18": dict(type="Recognizer2D",
                    backbone=dict(type="ResNetTSM", depth=18, pretrained=None,
                                  num_segments=SEGMENTS, shift_div=8),
                    cls_head=dict(type="TSMHead", num_classes=NUM_CLASSES, in_channels=512,
                                  num_segments=SEGMENTS)),
    "slowonly_r50": dict(type="Recognizer3D",
                         backbone=dict(type="ResNet3dSlowOnly", depth=50, pretrained=None,
                                       lateral=False, conv1_kernel=(1, 7, 7), conv1_stride_t=1,
                                       pool1_stride_t=1, inflate=(0, 0, 1, 1)),
                         cls_head=dict(type="I3DHead", num_classes=NUM_CLASSES,
                                       in_channels=2048)),
    "swin_t": dict(type="Recognizer3D",
                   backbone=dict(type="SwinTransformer3D", arch="tiny", pretrained=None,
                                 patch_size=(2, 4, 4), window_size=(8, 7, 7), drop_path_rate=0.0),
                   cls_head=dict(type="I3DHead", num_classes=NUM_CLASSES, in_channels=768)),
    "tsn_r34": dict(type="Recognizer2D",
                    backbone=dict(type="ResNet", depth=34, pretrained=None),
                    cls_head=dict(type="TSNHead", num_classes=NUM_CLASSES, in_channels=512)),
}
# the authors' ResKD checkpoints: name -> (teacher model, student model, teacher head saved)
RESKD = {"reskd_tsn": ("tsn_r34", "tsn_r18", False), "reskd_swin": ("swin_t", "swin_t", True)}


def fill(key: str, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Stand-in float weights for one state-dict entry, from its name and shape alone:
    seeded by the name (so the order of keys does not matter), scaled so activations stay of
    order one through any depth (He-like fan-in scaling for kernels, norm scales near 1,
    positive variances)."""
    g = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{key}".encode()))
    r = torch.randn(shape, generator=g)
    name = key.rsplit(".", 1)[-1]
    if name == "running_var":
        return 0.5 + 0.5 * r.abs()
    if name == "running_mean":
        return 0.1 * r
    if "relative_position_bias_table" in key or name.startswith(("rel_pos", "spatial_pos",
                                                                  "temporal_pos", "class_pos")):
        return 0.02 * r
    if len(shape) <= 1:
        return 1.0 + 0.1 * r if name == "weight" else 0.1 * r
    fan_in = math.prod(shape[1:])
    return r / math.sqrt(fan_in)


def filled(keys: list[tuple[str, tuple[int, ...], str]], ints: dict[str, torch.Tensor],
           seed: int = 0, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict a fixture describes: float entries from `fill`, integer ones from
    `ints` (key -> tensor). `prefix` is prepended to every key (a half of a ResKD file)."""
    out = {}
    for key, shape, dtype in keys:
        if dtype.startswith("torch.float"):
            out[prefix + key] = fill(key, tuple(shape), seed)
        else:
            out[prefix + key] = ints[key].to(getattr(torch, dtype.split(".")[1]))
    return out


def _build(name: str):
    from mmaction.registry import MODELS as REGISTRY
    from mmaction.utils import register_all_modules

    register_all_modules()
    return REGISTRY.build(MODELS[name]).eval()


def _describe(model, seed: int) -> tuple[list, dict, dict]:
    """(keys with shapes and dtypes, integer buffers, the filled state dict) of a model."""
    state = model.state_dict()
    keys = [(k, tuple(v.shape), str(v.dtype)) for k, v in state.items()]
    ints = {k: v.clone() for k, v in state.items() if not v.is_floating_point()}
    return keys, ints, filled(keys, ints, seed)


def fixture_ints(fixture: dict) -> dict[str, torch.Tensor]:
    """A fixture's integer buffers, key -> tensor (undoing `_dedupe_ints`)."""
    return {key: fixture["ints"][ref] for key, ref in fixture["int_refs"].items()}


def _logits(model, x: torch.Tensor, three_d: bool) -> torch.Tensor:
    inputs = x.transpose(1, 2).unsqueeze(1) if three_d else x  # 3D: (N, 1, C, T, H, W)
    with torch.no_grad():  # the head's class scores, before mmaction2 averages clips
        scores, _ = model.extract_feat(inputs, stage="head")
    return scores.detach().clone()  # (N, K)


def _dedupe_ints(ints: dict[str, torch.Tensor]) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Integer buffers stored once per distinct value (Swin repeats one index per block)."""
    refs, stored = {}, {}
    for key, value in ints.items():
        same = next((k for k, v in stored.items()
                     if v.shape == value.shape and torch.equal(v.to(value.dtype), value)), None)
        if same is None:  # small integers (indices, counters) kept as int16: a quarter the size
            small = value.numel() and value.abs().max() < 2 ** 15
            stored[key] = value.to(torch.int16) if small else value
            same = key
        refs[key] = same
    return refs, stored


def main() -> None:
    import mmaction

    OUT.mkdir(parents=True, exist_ok=True)
    x = torch.randn(2, SEGMENTS, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.save({"input": x, "layout": "(N, T, C, H, W), normalised"}, OUT / "input.pt")
    described = {}
    for name in MODELS:
        model = _build(name)
        keys, ints, state = _describe(model, seed=0)
        model.load_state_dict(state, strict=True)
        three_d = MODELS[name]["type"] == "Recognizer3D"
        described[name] = (keys, ints)
        refs, stored = _dedupe_ints(ints)
        logits = _logits(model, x, three_d)
        torch.save({"config": repr(MODELS[name]), "keys": keys, "int_refs": refs,
                    "ints": stored, "logits": logits, "seed": 0,
                    "mmaction2": mmaction.__version__, "torch": str(torch.__version__)},
                   OUT / f"{name}.pt")
        print(f"{name}: {len(keys)} keys, logits {tuple(logits.shape)}, "
              f"|logits| max {logits.abs().max():.3f}")
    for name, (teacher, student, teacher_head) in RESKD.items():
        halves = {}
        # a 2D ResKD file holds no teacher classifier: only its student half makes logits
        wanted = (("teacher", teacher, 1),) if teacher_head else ()
        for half, source, seed in (*wanted, ("student", student, 2)):
            model = _build(source)
            keys, ints = described[source]
            state = filled(keys, ints, seed)
            model.load_state_dict(state, strict=True)
            halves[half] = _logits(model, x, MODELS[source]["type"] == "Recognizer3D")
        torch.save({"teacher": teacher, "student": student, "teacher_seed": 1, "student_seed": 2,
                    "teacher_head": teacher_head, "logits": halves,
                    "mmaction2": mmaction.__version__, "torch": str(torch.__version__)},
                   OUT / f"{name}.pt")
        print(f"{name}: teacher {teacher}, student {student}, logits of {', '.join(halves)}")


if __name__ == "__main__":
    main()

"""Multiply-accumulate counting in the paper's convention (mmcv-hook style "GFLOPs").

The paper's "GFLOPs" are GMACs per video counted the way mmcv's ``get_model_complexity_info``
(a fork of ptflops) counts them: a forward hook on each leaf module of a known type adds a
closed-form count, and everything else (functional ops, tensor methods, unknown modules) is
free. :func:`count_macs` reproduces that convention exactly and, separately, also counts the
batched matrix products inside attention, which the paper leaves out.

Counting rules (all counts are per forward, then divided by ``per``):

========================================  ======================================================
module type (``isinstance``)              MACs added
========================================  ======================================================
``nn.Conv1d/2d/3d``                       ``out.numel() * in_channels / groups * prod(kernel)``,
                                          ``+ out.numel()`` if it has a bias
``nn.ConvTranspose1d/2d/3d``              ``in.numel() / in_channels * prod(kernel) * in_channels
                                          * out_channels / groups``, ``+ out.numel()`` if bias
``nn.Linear``                             ``in.numel() * out_features`` (bias is not counted)
``nn.BatchNorm*``, ``nn.SyncBatchNorm``,  ``in.numel()``, times 2 when the norm has an affine
``nn.GroupNorm``, ``nn.InstanceNorm*``,   transform (``affine`` / ``elementwise_affine``)
``nn.LayerNorm``
``nn.ReLU``, ``ReLU6``, ``PReLU``,        ``out.numel()``
``ELU``, ``LeakyReLU``
``nn.{Max,Avg}Pool*``,                    ``in.numel()``
``nn.Adaptive{Max,Avg}Pool*``
``nn.Upsample``                           ``out.numel()``
========================================  ======================================================

Not counted in ``gmacs`` (as in mmcv): GELU, SiLU, Sigmoid, Softmax, Dropout, residual adds,
attention biases and masks, and every functional op (``F.relu``, ``F.interpolate``,
``torch.matmul`` ...). Three deliberate departures from mmcv, none of which changes any
number the paper reports:

* Subclasses of the listed types are counted (mmcv matches ``type(m)`` exactly).
* A registered ``nn.Linear`` whose *weight* is passed to ``F.linear`` by its parent instead of
  being called (torchvision's ``ShiftedWindowAttention3d`` does this with ``qkv`` and
  ``proj``) is still counted as that Linear, on the tensor it was actually applied to. The
  original Video Swin code calls these layers as modules, so this is what mmcv saw there.
* mmcv's ``nn.Upsample`` count (per sample, a batch-size bug) and ``ConvTranspose2d`` bias
  count (``out_h * out_h``) are fixed.

Window padding in torchvision's Swin: feature maps are zero-padded up to a multiple of the
window before ``qkv`` and ``proj``, so those two Linears are counted on the padded tokens (the
original Video Swin code does the same, and mmcv's hooks saw the padded windows); the MLP runs
on unpadded tokens. A window larger than the map shrinks to the map, with no shift. Swin-S with
32 frames pads nothing at 224 (maps 56/28/14/7, window 8x7x7) or at 112 (maps 28/14/7/4, the
last window shrinks to 8x4x4); sizes such as 96 (map 24 -> 28) do pad.

``gmacs_with_matmul`` adds the functional products, captured with a ``TorchFunctionMode``:
``torch.matmul`` / ``@`` / ``mm`` / ``bmm`` / ``mv`` / ``baddbmm`` / ``addmm`` / ``addbmm``
(``out.numel() * k``), ``F.scaled_dot_product_attention`` (``QK^T`` plus ``AV``),
``torch.einsum`` (product of all index sizes, for two or more operands) and ``F.linear`` with a
weight that belongs to no ``nn.Linear`` (e.g. ``nn.MultiheadAttention``'s in-projection).

Why the paper's numbers need exactly this convention (see ``tests/test_flops.py``):
TSN ResNet-50 16x224^2 -> 65.9 and SlowOnly-R50 8x8 30 views -> 1260 include the small norm,
ReLU and pool terms, and TSN's fc is counted on every frame (counted once per video, 112
would round to 17.3, not 17.4). Video Swin-S 32 frames 12 views -> 1639 / 421 is hit only
without the attention matmuls (with them: 1990 / 507) and without GELU (with it: 1641 / 421.3;
mmcv has no hook for GELU or Softmax).

Counts depend only on shapes, so a model built on the ``meta`` device with a ``meta`` input
gives identical numbers without doing any arithmetic.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["MacCount", "count_macs", "FUNCTIONAL_PREFIX"]

# by_type keys for functional ops start with this; they feed only `gmacs_with_matmul`.
FUNCTIONAL_PREFIX = "fn."


@dataclass
class MacCount:
    """MACs (in G) and parameters (in M) of one forward, divided by ``per``.

    ``sum(v for k, v in by_type.items() if not k.startswith("fn."))`` equals ``gmacs``;
    the sum over all keys equals ``gmacs_with_matmul``.
    """

    gmacs: float  # paper convention: module hooks only, no batched matmul
    gmacs_with_matmul: float  # plus matmul / bmm / sdpa / einsum / unowned F.linear
    params_m: float  # parameters of the counted module, in millions
    by_type: dict[str, float] = field(default_factory=dict)  # GMACs per type name


# ---- per-module rules (hook signature: module, inputs tuple, output) -> MACs ----------------


def _conv_macs(m: nn.modules.conv._ConvNd, inputs: tuple, out: torch.Tensor) -> int:
    kernel = math.prod(m.kernel_size)
    macs = out.numel() * (m.in_channels // m.groups) * kernel
    return macs + (out.numel() if m.bias is not None else 0)


def _deconv_macs(m: nn.modules.conv._ConvTransposeNd, inputs: tuple, out: torch.Tensor) -> int:
    x = inputs[0]
    # every input element is scattered through the kernel into out_channels / groups outputs
    macs = x.numel() * math.prod(m.kernel_size) * (m.out_channels // m.groups)
    return macs + (out.numel() if m.bias is not None else 0)


def _linear_macs(m: nn.Linear, inputs: tuple, out: torch.Tensor) -> int:
    return inputs[0].numel() * m.out_features


def _norm_macs(m: nn.Module, inputs: tuple, out: torch.Tensor) -> int:
    affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
    return inputs[0].numel() * (2 if affine else 1)


def _act_macs(m: nn.Module, inputs: tuple, out: torch.Tensor) -> int:
    return out.numel()


def _pool_macs(m: nn.Module, inputs: tuple, out: torch.Tensor) -> int:
    return inputs[0].numel()


def _upsample_macs(m: nn.Module, inputs: tuple, out: torch.Tensor) -> int:
    return out.numel()


_Rule = Callable[[nn.Module, tuple, torch.Tensor], int]

# Order does not matter: lookup walks each module's MRO and takes the first listed base.
_MODULE_RULES: dict[type, _Rule] = {
    nn.Conv1d: _conv_macs,
    nn.Conv2d: _conv_macs,
    nn.Conv3d: _conv_macs,
    nn.ConvTranspose1d: _deconv_macs,
    nn.ConvTranspose2d: _deconv_macs,
    nn.ConvTranspose3d: _deconv_macs,
    nn.Linear: _linear_macs,
    nn.modules.batchnorm._BatchNorm: _norm_macs,  # BatchNorm1d/2d/3d, SyncBatchNorm
    nn.GroupNorm: _norm_macs,
    nn.modules.instancenorm._InstanceNorm: _norm_macs,
    nn.LayerNorm: _norm_macs,
    nn.ReLU: _act_macs,
    nn.ReLU6: _act_macs,
    nn.PReLU: _act_macs,
    nn.ELU: _act_macs,
    nn.LeakyReLU: _act_macs,
    nn.MaxPool1d: _pool_macs,
    nn.MaxPool2d: _pool_macs,
    nn.MaxPool3d: _pool_macs,
    nn.AvgPool1d: _pool_macs,
    nn.AvgPool2d: _pool_macs,
    nn.AvgPool3d: _pool_macs,
    nn.AdaptiveMaxPool1d: _pool_macs,
    nn.AdaptiveMaxPool2d: _pool_macs,
    nn.AdaptiveMaxPool3d: _pool_macs,
    nn.AdaptiveAvgPool1d: _pool_macs,
    nn.AdaptiveAvgPool2d: _pool_macs,
    nn.AdaptiveAvgPool3d: _pool_macs,
    nn.Upsample: _upsample_macs,
}


def _rule_for(module: nn.Module) -> _Rule | None:
    for cls in type(module).__mro__:
        rule = _MODULE_RULES.get(cls)
        if rule is not None:
            return rule
    return None


# ---- functional products (only for gmacs_with_matmul) ---------------------------------------


def _einsum_macs(args: tuple, out: torch.Tensor) -> int:
    """Product of every index size (naive contraction); 0 for a single operand."""
    equation, *operands = args
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    if len(operands) < 2:
        return 0
    lhs = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for spec, op in zip(lhs, operands):
        if "..." in spec:
            head, tail = spec.split("...")
            n_ell = op.dim() - len(head) - len(tail)
            # ellipsis dims are aligned from the right, as broadcasting does
            names = list(head) + [f"...{n_ell - i}" for i in range(n_ell)] + list(tail)
        else:
            names = list(spec)
        for name, size in zip(names, op.shape):
            sizes[name] = max(sizes.get(name, 1), int(size))
    return math.prod(sizes.values())


def _sdpa_macs(args: tuple, kwargs: dict, out: torch.Tensor) -> int:
    query = args[0] if args else kwargs["query"]
    key = args[1] if len(args) > 1 else kwargs["key"]
    rows = out.numel() // out.shape[-1]  # batch * heads * L
    s = key.shape[-2]
    return rows * s * query.shape[-1] + out.numel() * s  # QK^T + AV


_MATMULS: dict[Callable, tuple[str, Callable[[tuple, dict, torch.Tensor], int]]] = {}
for _f, _name in [
    (torch.matmul, "matmul"),
    (torch.Tensor.matmul, "matmul"),
    (torch.mm, "mm"),
    (torch.Tensor.mm, "mm"),
    (torch.bmm, "bmm"),
    (torch.Tensor.bmm, "bmm"),
    (torch.mv, "mv"),
    (torch.Tensor.mv, "mv"),
]:
    # out.numel() * contraction size, which also covers matmul's 1-D and broadcast cases
    _MATMULS[_f] = (_name, lambda a, k, out: out.numel() * a[0].shape[-1])
for _f, _name in [
    (torch.addmm, "addmm"),
    (torch.Tensor.addmm, "addmm"),
    (torch.baddbmm, "baddbmm"),
    (torch.Tensor.baddbmm, "baddbmm"),
]:
    # (input, mat1|batch1, mat2|batch2): contraction size is the second operand's last dim
    _MATMULS[_f] = (_name, lambda a, k, out: out.numel() * a[1].shape[-1])
for _f in (torch.addbmm, torch.Tensor.addbmm):
    # (input, batch1 (b, n, k), batch2 (b, k, m)) -> (n, m): b products summed
    _MATMULS[_f] = ("addbmm", lambda a, k, out: out.numel() * a[1].shape[0] * a[1].shape[-1])
_MATMULS[F.scaled_dot_product_attention] = ("scaled_dot_product_attention", _sdpa_macs)
_MATMULS[torch.einsum] = ("einsum", lambda a, k, out: _einsum_macs(a, out))


class _FunctionalCounter(TorchFunctionMode):
    """Counts functional products, and F.linear calls that use a Linear's weight outside it."""

    def __init__(
        self,
        linear_owner: dict[int, nn.Linear],
        active: dict[int, int],
        add: Callable[[str, int], None],
    ):
        super().__init__()
        self._linear_owner = linear_owner  # id(weight) -> its nn.Linear
        self._active = active  # id(module) -> how many of its forwards are running
        self._add = add

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is F.linear:
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            owner = self._linear_owner.get(id(weight))
            if owner is None:
                # in_features per output element, bias not counted (Linear convention)
                self._add(FUNCTIONAL_PREFIX + "linear", out.numel() * weight.shape[-1])
            elif not self._active.get(id(owner)):
                # the Linear's weight used by its parent (torchvision Swin qkv/proj)
                self._add(type(owner).__name__, _linear_macs(owner, (args[0],), out))
        elif func in _MATMULS:
            name, rule = _MATMULS[func]
            self._add(FUNCTIONAL_PREFIX + name, rule(args, kwargs, out))
        return out


def count_macs(model: nn.Module, inputs: torch.Tensor | tuple, *, per: int = 1) -> MacCount:
    """Runs one forward under ``torch.no_grad`` in eval mode and counts its MACs.

    ``inputs`` is one tensor or a tuple of positional arguments for ``model``. Totals are
    divided by ``per`` (e.g. the batch size, to get MACs per video). Every module's training
    flag is restored and every hook removed afterwards, also when the forward raises.
    Multiply by the number of test views yourself: views are separate forwards.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_macs: model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(inputs, torch.Tensor):
        args: tuple = (inputs,)
    elif isinstance(inputs, tuple):
        args = inputs
    else:
        raise TypeError(
            f"count_macs: inputs must be a Tensor or a tuple of positional arguments, "
            f"got {type(inputs).__name__}; wrap several inputs as a tuple"
        )
    if isinstance(per, bool) or not isinstance(per, int) or per < 1:
        raise ValueError(
            f"count_macs: per must be a positive int (e.g. the batch size), got {per!r}"
        )

    macs: dict[str, int] = defaultdict(int)

    def add(name: str, n: int) -> None:
        macs[name] += int(n)

    active: dict[int, int] = defaultdict(int)
    linear_owner: dict[int, nn.Linear] = {}
    handles = []
    for module in model.modules():
        rule = _rule_for(module)
        if rule is None:
            continue
        if isinstance(module, nn.Linear):
            linear_owner[id(module.weight)] = module

        def pre_hook(m, args, kwargs):
            active[id(m)] += 1

        def hook(m, args, kwargs, out, rule=rule):
            active[id(m)] -= 1
            inp = args if args else tuple(kwargs.values())  # a module called with keywords only
            out = out[0] if isinstance(out, (tuple, list)) else out  # e.g. (pooled, indices)
            add(type(m).__name__, rule(m, inp, out))

        handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        handles.append(module.register_forward_hook(hook, with_kwargs=True))

    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), _FunctionalCounter(linear_owner, active, add):
            model(*args)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training

    by_type = {name: n / per / 1e9 for name, n in sorted(macs.items())}
    paper = sum(n for name, n in macs.items() if not name.startswith(FUNCTIONAL_PREFIX))
    full = sum(macs.values())
    params = sum(p.numel() for p in model.parameters())
    return MacCount(
        gmacs=paper / per / 1e9,
        gmacs_with_matmul=full / per / 1e9,
        params_m=params / 1e6,
        by_type=by_type,
    )


def gmacs_per_video(model: torch.nn.Module, frames: int, size: int, views: int = 1) -> float:
    """GMACs per video as the paper counts them (per view x views)."""
    import copy

    m = copy.deepcopy(model).float().to("cpu", memory_format=torch.contiguous_format)
    if hasattr(m, "channels_last"):
        m.channels_last = False
    return count_macs(m, torch.zeros(1, frames, 3, size, size)).gmacs * views

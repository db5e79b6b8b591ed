"""BatchNorm folding: the inference fast path of the models in this package.

`fold_batchnorm` rewrites a model's torch.fx graph so that every BatchNorm that directly
follows a convolution is merged into it. On CPU in eager mode this removes the BatchNorm
passes (10-20% of TSN-R50's time; `bench/bench_default_mode.py`).
"""

from __future__ import annotations

import copy

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class NotFoldable(ValueError):
    """torch.fx cannot trace the model, so its BatchNorms cannot be folded."""


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())



class _ConvLeafTracer(fx.Tracer):
    """Keeps every convolution a leaf, also subclasses outside torch.nn (TSM's shifted conv)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, nn.modules.conv._ConvNd) or super().is_leaf_module(m, qualname)


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """(eval-mode copy of `model` with BatchNorms folded into the convolutions before them,
    number folded). For inference only: the copy has no BatchNorm left to train.

    A BatchNorm is folded when its input is the output of a convolution module used nowhere
    else (proved on the torch.fx graph of `model.backbone`, or of `model` without one), so
    w' = w * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta gives the
    same outputs up to float rounding. In eager mode on CPU this removes the BatchNorm passes
    (10-20% of TSN-R50's time); torch.compile does the same and more, but costs a compile per
    input shape. Raises `NotFoldable` naming the model when torch.fx cannot trace it.
    """
    model = copy.deepcopy(model).eval()
    owner, name = (model, "backbone") if hasattr(model, "backbone") else (None, None)
    root = getattr(model, "backbone", model)
    try:
        gm = fx.GraphModule(root, _ConvLeafTracer().trace(root))
    except (fx.proxy.TraceError, TypeError, NotImplementedError) as e:
        raise NotFoldable(f"fold_batchnorm: torch.fx cannot trace {type(root).__name__} "
                         f"({type(e).__name__}: {e}); run it unfolded") from e
    modules = dict(gm.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folded = 0
    for node in list(gm.graph.nodes):
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not node.args:
            continue
        prev = node.args[0]
        is_module_call = isinstance(prev, fx.Node) and prev.op == "call_module"
        conv = modules.get(prev.target) if is_module_call else None
        if (not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed
                or len(prev.users) != 1 or calls[prev.target] != 1 or calls[node.target] != 1
                or bn.running_mean is None or len(node.args) != 1 or node.kwargs):
            continue
        parent_name, _, child = prev.target.rpartition(".")
        parent = gm.get_submodule(parent_name) if parent_name else gm
        setattr(parent, child, fuse_conv_bn_eval(conv, bn))
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        folded += 1
    if not folded:
        return model, 0
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    if owner is None:
        return gm, folded
    setattr(owner, name, gm)
    return model, folded

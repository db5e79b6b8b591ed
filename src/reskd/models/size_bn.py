"""BatchNorm per input size: the private state of an any-resolution student.

One network trained at several input sizes (`distill.student_sizes`) shares every weight but
its BatchNorms: each size gets its own (statistics and affine), as resolution-switchable
networks do, because a feature map's statistics change with the input's scale and one set of
running statistics, averaged over sizes, fits none of them (measured in README, "One student
for every resolution"). A BatchNorm costs 2 x channels parameters per size.

`with_size_batchnorm` puts a `SizeBatchNorm` in place of every BatchNorm of a model;
`set_size` chooses which size's BatchNorm they run; `at_size` returns an ordinary model for one
size (every `SizeBatchNorm` replaced by that size's BatchNorm), which is what every deployed
use runs: testing, prediction, BatchNorm folding, FLOPs counting and export see a plain
network.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


class SizeBatchNorm(nn.Module):
    """One copy of a BatchNorm per input size; `size` chooses the one that runs."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, sizes: Sequence[int]):
        super().__init__()
        self.norms = nn.ModuleDict({str(s): copy.deepcopy(bn) for s in sizes})
        self.size = str(max(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norms[self.size](x)


def with_size_batchnorm(model: nn.Module, sizes: Sequence[int]) -> nn.Module:
    """`model` (changed in place) with each BatchNorm replaced by a `SizeBatchNorm` whose copies
    all start as that BatchNorm (pretrained statistics included)."""
    if len(sizes) < 2 or len(set(sizes)) != len(sizes):
        raise ValueError(f"a BatchNorm per size needs two or more distinct sizes, got {sizes}")
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, SizeBatchNorm(child, sizes))
    return model


def size_batchnorms(model: nn.Module) -> list[SizeBatchNorm]:
    return [m for m in model.modules() if isinstance(m, SizeBatchNorm)]


def set_size(model: nn.Module, size: int) -> None:
    """Every `SizeBatchNorm` of `model` runs its `size` copy from now on (none: no-op)."""
    for m in size_batchnorms(model):
        if str(size) not in m.norms:
            raise ValueError(f"the model has a BatchNorm per size for "
                             f"{', '.join(m.norms)} px, not {size}")
        m.size = str(size)


def at_size(model: nn.Module, size: int) -> nn.Module:
    """`model` (changed in place) as an ordinary network for inputs of `size`: each
    `SizeBatchNorm` replaced by its `size` BatchNorm. A model without any is returned as is."""
    set_size(model, size)  # validates the size
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, SizeBatchNorm):
                setattr(module, child_name, child.norms[str(size)])
    return model

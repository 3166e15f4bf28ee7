"""Multiply-add (MAC) and parameter counts with ``torch.utils.flop_counter``.

MACs are the convention of Swin, Video Swin and MViT papers (``GFLOPs`` there means GMACs). The
counter counts matmuls and convolutions; the shift, norms, activations and the element-wise affine
count as zero, the same for every model measured with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> tuple[float, int]:
    """``(GMACs, params)`` of one forward pass of ``model`` on a tensor of ``input_shape``.

    Runs on the device of the model's parameters (the ``meta`` device counts without computing),
    in eval mode and without gradients; the model's train/eval mode is restored afterwards.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(tuple(input_shape), device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return counter.get_total_flops() / 2 / 1e9, count_params(model)


def meta_flops(
    name: str, input_shape: Sequence[int], num_classes: int | None = None, **options: Any
) -> tuple[float, int]:
    """``(GMACs, params)`` of the registered model ``name`` with ``options``, built and counted on the
    ``meta`` device (shapes only: no memory, no arithmetic). The one way the library counts a model it
    has not built: peers sized to a budget, the study's records, the compute targets of a plan."""
    from vast.models.registry import get_entrypoint  # the registry is filled by vast.models

    kwargs = options if num_classes is None else {**options, "num_classes": num_classes}
    with torch.device("meta"):
        model = get_entrypoint(name)(**kwargs)
    return count_flops(model, input_shape)


"""Memory-lean training: cheap activations recomputed in the backward pass instead of stored.

Autograd keeps what each layer's backward pass needs. In an Affine-Shift block the largest of these are
outputs of cheap layers that the next linear layer saves as its input: the normalised tokens (C per
token, saved by the value and affine projections and by the MLP's first layer) and the GELU output
(4C, saved by the MLP's second layer). Their inputs are kept anyway (the norm and the GELU save them),
so storing the outputs as well doubles that memory.

:class:`ActivationRecompute` works with PyTorch's saved-tensor hooks
(``torch.autograd.graph.saved_tensors_hooks``), around the forward pass of chosen *scope* modules
(blocks, patch mergings). Inside a scope, the output of every norm and GELU layer is noted as it is
produced; when autograd then saves that output (or a view of it) for the backward pass, it stores a
recipe instead, the layer's function and its input, and the backward pass recomputes the output when it
needs it: one element-wise pass, never a matmul. Every layer still runs its own forward, so hooks,
parametrizations and wrappers see the real model; the recomputation is the same kernel on the same
input, so the gradients are those of plain autograd.

What is recomputed: ``nn.LayerNorm``, ``nn.GELU`` and a plain ``nn.BatchNorm1d`` (from the batch
statistics in training, the running ones in eval mode; not ``SyncBatchNorm``, whose statistics come from
every process). An output changed in place after it was made is stored as usual. The hooks do nothing
under ``torch.compile`` (inductor chooses what to recompute itself) and when no gradient is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

Recipe = Callable[[], torch.Tensor]


def recipe_for(module: nn.Module, inp: torch.Tensor) -> Recipe | None:
    """How to compute ``module(inp)`` again later, for the layers that are cheap to recompute."""
    if isinstance(module, nn.LayerNorm):
        shape, weight, bias, eps = module.normalized_shape, module.weight, module.bias, module.eps
        return lambda: F.layer_norm(inp, shape, weight, bias, eps)
    if type(module) is nn.GELU:
        approximate = module.approximate
        return lambda: F.gelu(inp, approximate=approximate)
    if type(module) is nn.BatchNorm1d:
        batch_stats = module.training or not module.track_running_stats
        mean = None if batch_stats else module.running_mean
        var = None if batch_stats else module.running_var
        weight, bias, eps = module.weight, module.bias, module.eps
        return lambda: F.batch_norm(inp, mean, var, weight, bias, batch_stats, 0.0, eps)
    return None


class _Saved:
    """A saved tensor replaced by its recipe: the view of the recomputed output autograd asked for."""

    def __init__(self, recomputed: _Recomputed, size: torch.Size, stride: tuple[int, ...], offset: int) -> None:
        self.recomputed, self.size, self.stride, self.offset = recomputed, size, stride, offset


class _Recomputed:
    """One noted output: its recipe, and the recomputed tensor while consumers still need it (the
    normalised tokens feed two projections; they are recomputed once for both)."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe, self.pending, self.value = recipe, 0, None

    def get(self) -> torch.Tensor:
        value = self.value
        if value is None:
            with torch.no_grad():
                value = self.recipe()
        self.pending -= 1
        self.value = value if self.pending > 0 else None
        return value


class ActivationRecompute:
    """Recompute the norm and GELU outputs of ``scopes`` in the backward pass (module docstring).

    Installs forward hooks on the scopes and on their norm and GELU layers; :meth:`remove` takes them
    off again. Scopes must not nest.
    """

    def __init__(self, scopes: Iterable[nn.Module]) -> None:
        self._handles: list[RemovableHandle] = []
        self._contexts: list[Any] = []
        self._noted: dict[int, tuple[torch.Tensor, int, _Recomputed]] = {}  # storage address -> output
        for scope in scopes:
            self._handles.append(scope.register_forward_pre_hook(self._enter))
            self._handles.append(scope.register_forward_hook(self._exit, always_call=True))
            for module in scope.modules():
                if isinstance(module, (nn.LayerNorm, nn.GELU, nn.BatchNorm1d)):
                    self._handles.append(module.register_forward_hook(self._note))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # ---- scope: saved-tensor hooks around the scope's forward ----------------------------------------

    def _enter(self, module: nn.Module, args: Any) -> None:
        context = None
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():
            context = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
            context.__enter__()
        self._contexts.append(context)

    def _exit(self, module: nn.Module, args: Any, output: Any) -> None:
        context = self._contexts.pop() if self._contexts else None
        if context is not None:
            context.__exit__(None, None, None)
            self._noted.clear()

    # ---- producers: note each output with its recipe ------------------------------------------------

    def _note(self, module: nn.Module, args: Any, output: Any) -> None:
        if not self._contexts or self._contexts[-1] is None:
            return
        if not (args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor)):
            return
        if not output.requires_grad or output.device.type == "meta" or output.numel() == 0:
            return
        if output.storage_offset() != 0 or not output.is_contiguous():
            return  # the recomputed tensor is contiguous: views of it must land where they did
        recipe = recipe_for(module, args[0])
        if recipe is not None:
            self._noted[output.untyped_storage().data_ptr()] = (output, output._version, _Recomputed(recipe))

    # ---- autograd: store recipes instead of noted outputs -------------------------------------------

    def _pack(self, tensor: torch.Tensor) -> Any:
        if tensor.layout != torch.strided or tensor.device.type == "meta" or tensor.numel() == 0:
            return tensor
        noted = self._noted.get(tensor.untyped_storage().data_ptr())
        if noted is None:
            return tensor
        output, version, recomputed = noted
        if output._version != version or tensor.dtype != output.dtype:
            return tensor  # changed in place since it was made: keep it as it is
        recomputed.pending += 1
        return _Saved(recomputed, tensor.size(), tensor.stride(), tensor.storage_offset())

    @staticmethod
    def _unpack(packed: Any) -> torch.Tensor:
        if not isinstance(packed, _Saved):
            return packed
        return packed.recomputed.get().as_strided(packed.size, packed.stride, packed.offset)


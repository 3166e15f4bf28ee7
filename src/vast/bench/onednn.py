"""The bench's one contact with VAST's oneDNN linear path, :mod:`vast.ops.linear`: the bytes of its
packed weight copies, and switching it off for a run (``vast bench --blas``).

No other module of the bench imports it, so moving that path elsewhere is an edit of this file only.
Where the module is absent there are no packed copies to count and no switch to turn.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from types import ModuleType

from torch import nn

_logger = logging.getLogger(__name__)
_MODULE = "vast.ops.linear"


def _linear_ops() -> ModuleType | None:
    try:
        return importlib.import_module(_MODULE)
    except ModuleNotFoundError as error:
        if error.name != _MODULE:
            raise
        return None


def packed_weight_bytes(model: nn.Module) -> int:
    """Bytes held now by the oneDNN-packed copies of ``model``'s weights that its earlier inference
    passes made (one more copy of every projection weight that ran)."""
    ops = _linear_ops()
    return 0 if ops is None else ops.packed_bytes([*model.parameters(), *model.buffers()])


@contextlib.contextmanager
def linear_backend(onednn: bool = True) -> Iterator[None]:
    """VAST's projections as the process has them (``onednn=True``: nothing is touched), or on
    ``F.linear`` (the BLAS) within the block (``onednn=False``) and switched back afterwards."""
    ops = _linear_ops()
    if onednn or ops is None:
        if not onednn:
            _logger.warning("%s is absent: VAST's projections have no oneDNN path to switch off", _MODULE)
        yield
        return
    enabled = ops.onednn_linear_enabled()
    ops.set_onednn_linear(False)
    try:
        yield
    finally:
        ops.set_onednn_linear(enabled)

"""Online recognition with causal VAST models: :class:`StreamingClassifier` (docs/streaming.md); its
step in int8: :mod:`vast.streaming.quantize`."""

from vast.streaming.classifier import (
    CarriedShift,
    NotStreamableError,
    StreamingClassifier,
    StreamingStep,
    check_streamable,
)

__all__ = ["CarriedShift", "NotStreamableError", "StreamingClassifier", "StreamingStep", "check_streamable"]

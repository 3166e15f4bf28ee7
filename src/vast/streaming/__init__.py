"""Online recognition with causal VAST models: :class:`StreamingClassifier` (docs/streaming.md)."""

from vast.streaming.classifier import (
    CarriedShift,
    NotStreamableError,
    StreamingClassifier,
    StreamingStep,
    check_streamable,
)

__all__ = ["CarriedShift", "NotStreamableError", "StreamingClassifier", "StreamingStep", "check_streamable"]

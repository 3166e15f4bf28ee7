"""The inference shift (one pass) against the slow loop reference, and its portable fallback."""

import pytest
import torch

from vast.ops import InferenceTokenShift, TokenShift, shift_tokens_reference

SHAPES = [(2, 3, 4, 5, 24), (1, 1, 5, 3, 36), (2, 4, 1, 1, 24), (1, 2, 3, 3, 7), (3, 5, 2, 7, 48)]
OPTIONS = [
    dict(),
    dict(temporal=False),
    dict(causal=True),
    dict(spatial_fraction=0.5, temporal_fraction=0.5),
    dict(spatial_fraction=0.0, temporal_fraction=0.25),
    dict(spatial_fraction=0.0, temporal_fraction=0.0),
    dict(temporal_offset=2),
    dict(temporal_offset=2, causal=True),
    dict(temporal_offset=6),  # further than any clip here
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("options", OPTIONS)
def test_matches_the_loop_reference(shape, options):
    x = torch.randn(shape, dtype=torch.float64)
    shift = InferenceTokenShift(
        TokenShift(
            shape[-1],
            options.get("spatial_fraction", 1 / 3),
            options.get("temporal_fraction", 1 / 4),
            options.get("temporal", True),
            options.get("causal", False),
            options.get("temporal_offset", 1),
        )
    )
    with torch.inference_mode():
        torch.testing.assert_close(shift(x), shift_tokens_reference(x, **options), rtol=0, atol=0)


def test_gradients_and_tracers_take_the_reference_form():
    shift = InferenceTokenShift(TokenShift(24))
    x = torch.randn(1, 2, 3, 3, 24, requires_grad=True)
    shift(x).sum().backward()  # the one-pass form has no backward: autograd gets the reference form
    assert x.grad is not None
    traced = torch.fx.symbolic_trace(shift)
    assert any(node.target is torch.cat for node in traced.graph.nodes)
    scripted = torch.jit.script(shift)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), shift_tokens_reference(x), rtol=0, atol=0)
        torch.testing.assert_close(traced(x), shift_tokens_reference(x), rtol=0, atol=0)

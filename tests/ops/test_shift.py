"""The shift against a slow loop reference, hand-checked values, borders and gradients."""

import pytest
import torch

from vast.errors import InputShapeError
from vast.ops import TokenShift, shift_group_sizes, shift_plan, shift_tokens, shift_tokens_reference

SHAPES = [
    (2, 3, 4, 5, 24),  # odd T and W
    (1, 1, 5, 3, 36),  # an image (T = 1)
    (2, 4, 1, 1, 24),  # H = W = 1: every spatial group only sees zero padding
    (1, 2, 3, 3, 7),  # too few channels for a full group of each kind
    (3, 5, 2, 7, 48),
]
OPTIONS = [
    dict(),
    dict(temporal=False),
    dict(causal=True),
    dict(spatial_fraction=0.5, temporal_fraction=0.5),
    dict(spatial_fraction=0.0, temporal_fraction=0.25),
    dict(temporal_offset=2),
    dict(temporal_offset=3, causal=True),
    dict(temporal_offset=9),  # further than any clip here: the temporal groups read only zeros
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("options", OPTIONS)
def test_forward_matches_loop_reference(shape, options):
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(
        shift_tokens(x, **options), shift_tokens_reference(x, **options), rtol=0, atol=0
    )


@pytest.mark.parametrize("shape", SHAPES[:3])
@pytest.mark.parametrize("options", [*OPTIONS[:3], OPTIONS[5]])
def test_backward_matches_loop_reference(shape, options):
    x_fast = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x_ref = x_fast.detach().clone().requires_grad_(True)
    grad_out = torch.randn(shape, dtype=torch.float64)
    shift_tokens(x_fast, **options).backward(grad_out)
    shift_tokens_reference(x_ref, **options).backward(grad_out)
    torch.testing.assert_close(x_fast.grad, x_ref.grad, rtol=0, atol=0)


def test_gradcheck():
    x = torch.randn(1, 3, 3, 4, 24, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: shift_tokens(t, causal=True), (x,))


def test_hand_computed_directions_and_borders():
    # C = 24: four spatial groups of 2 channels, two temporal groups of 3 channels, 7 unshifted.
    x = torch.arange(2 * 3 * 4 * 24, dtype=torch.float32).reshape(1, 2, 3, 4, 24)
    y = shift_tokens(x)
    t, h, w = 1, 1, 2
    assert torch.equal(y[0, t, h, w, 0:2], x[0, t, h, w - 1, 0:2])  # W-1: from the left neighbour
    assert torch.equal(y[0, t, h, w, 2:4], x[0, t, h, w + 1, 2:4])  # W+1: from the right neighbour
    assert torch.equal(y[0, t, h, w, 4:6], x[0, t, h - 1, w, 4:6])  # H-1: from above
    assert torch.equal(y[0, t, h, w, 6:8], x[0, t, h + 1, w, 6:8])  # H+1: from below
    assert torch.equal(y[0, 1, h, w, 8:11], x[0, 0, h, w, 8:11])  # T-1: from the previous frame
    assert torch.equal(y[0, 0, h, w, 11:14], x[0, 1, h, w, 11:14])  # T+1: from the next frame
    assert torch.equal(y[..., 14:], x[..., 14:])  # the rest is untouched
    # Borders read zeros.
    assert (y[0, :, :, 0, 0:2] == 0).all() and (y[0, :, :, -1, 2:4] == 0).all()
    assert (y[0, :, 0, :, 4:6] == 0).all() and (y[0, :, -1, :, 6:8] == 0).all()
    assert (y[0, 0, :, :, 8:11] == 0).all() and (y[0, -1, :, :, 11:14] == 0).all()


def test_causal_never_reads_the_future():
    x = torch.randn(1, 4, 3, 3, 24)
    changed = x.clone()
    changed[:, 2:] += 1.0  # alter frames 2 and 3 only
    y, y_changed = shift_tokens(x, causal=True), shift_tokens(changed, causal=True)
    assert torch.equal(y[:, :2], y_changed[:, :2])
    # ...whereas the non-causal shift lets frame 2 leak into frame 1.
    assert not torch.equal(shift_tokens(x)[:, :2], shift_tokens(changed)[:, :2])


def test_temporal_off_keeps_frames_apart():
    x = torch.randn(2, 5, 3, 3, 24)
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(
        shift_tokens(x[:, perm], temporal=False), shift_tokens(x, temporal=False)[:, perm]
    )


@pytest.mark.parametrize(
    ("channels", "expected"), [(96, (8, 12)), (32, (2, 4)), (12, (1, 1)), (768, (64, 96)), (5, (0, 0))]
)
def test_group_sizes(channels, expected):
    assert tuple(shift_group_sizes(channels)) == expected


def test_bad_fractions_and_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match="must be <= 1"):
        shift_group_sizes(96, 0.8, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        shift_group_sizes(96, -0.1, 0.25)
    with pytest.raises(InputShapeError, match=r"\(B, T, H, W, C\)"):
        shift_tokens(torch.randn(2, 8, 8, 24))


def test_module_has_no_parameters_and_no_flops():
    from torch.utils.flop_counter import FlopCounterMode

    shift = TokenShift(48)
    assert sum(p.numel() for p in shift.parameters()) == 0
    with FlopCounterMode(display=False) as counter:
        shift(torch.randn(1, 2, 4, 4, 48))
    assert counter.get_total_flops() == 0


def test_traced_and_exported_shift_match_the_reference():
    x = torch.randn(1, 2, 3, 3, 24)
    traced = torch.jit.trace(TokenShift(24), (x,))
    assert "aten::cat" in str(traced.graph)
    program = torch.export.export(TokenShift(24), (x,))
    assert "aten.cat" in str(program.graph)
    torch.testing.assert_close(program.module()(x), shift_tokens_reference(x), rtol=0, atol=0)


def test_hand_computed_offset_two():
    # C = 24 as above; the temporal groups move by 2 frames.
    x = torch.arange(4 * 2 * 2 * 24, dtype=torch.float32).reshape(1, 4, 2, 2, 24)
    y = shift_tokens(x, temporal_offset=2)
    assert torch.equal(y[0, 2:, :, :, 8:11], x[0, :2, :, :, 8:11])  # T-2: from two frames back
    assert torch.equal(y[0, :2, :, :, 11:14], x[0, 2:, :, :, 11:14])  # T+2: from two frames ahead
    assert (y[0, :2, :, :, 8:11] == 0).all() and (y[0, 2:, :, :, 11:14] == 0).all()
    assert torch.equal(y[..., 14:], x[..., 14:])


def test_plan_lists_each_group_once_in_channel_order():
    assert shift_plan(24, shift_group_sizes(24)) == [
        (0, 2, 3, -1), (2, 4, 3, 1), (4, 6, 2, -1), (6, 8, 2, 1), (8, 11, 1, -1), (11, 14, 1, 1), (14, 24, 1, 0)
    ]
    # causal, offset 3: the future group is left in place and merges with the unshifted rest
    assert shift_plan(24, shift_group_sizes(24), causal=True, temporal_offset=3)[4:] == [(8, 11, 1, -3), (11, 24, 1, 0)]
    with pytest.raises(ValueError, match="offset"):
        shift_plan(24, shift_group_sizes(24), temporal_offset=0)


def test_scripted_shift_with_an_offset_matches_the_reference():
    x = torch.randn(1, 5, 3, 3, 24)
    scripted = torch.jit.script(TokenShift(24, temporal_offset=2, causal=True))
    torch.testing.assert_close(scripted(x), shift_tokens_reference(x, temporal_offset=2, causal=True), rtol=0, atol=0)

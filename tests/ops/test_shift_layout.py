"""One shift layout: a change to it is one edit (``vast.ops.shift.shift_plan``), and the reference, the
inference and the streaming shift all follow it, checked against the slow loop reference of the plan."""

import copy

import pytest
import torch

import vast
from vast.ops import shift as shift_module
from vast.ops.shift import (
    CarriedShift,
    InferenceTokenShift,
    ShiftGroup,
    ShiftGroups,
    TokenShift,
    check_plan,
    plan_reference,
    shift_tokens_reference,
)
from vast.streaming import StreamingClassifier


def other_layout(channels: int, groups: ShiftGroups, causal: bool = False, temporal_offset: int = 1):
    """Another layout than the default one: the temporal groups first, the spatial groups in another order
    with a reach of 2 tokens in H, and a second past group reading ``d + 1`` frames back."""
    g, k, d = groups.spatial, groups.temporal, temporal_offset
    wanted = [
        (1, -d),  # T-d
        (1, 0 if causal else d),  # T+d
        (2, 2), (3, -1), (2, -2), (3, 1),  # H+2, W-1, H-2, W+1
        (1, -(d + 1)),  # T-(d+1): half of the temporal group's width again
    ]  # fmt: skip
    widths = [k, k, g, g, g, g, k // 2]
    plan, first = [], 0
    for (dim, step), wanted_width in zip(wanted, widths, strict=True):
        width = min(wanted_width, channels - first)
        if width > 0:
            plan.append(ShiftGroup(first, first + width, dim, step))
            first += width
    return [*plan, ShiftGroup(first, channels, 1, 0)] if first < channels else plan


@pytest.fixture
def changed_layout(monkeypatch):
    """The layout edited in its one place: every shift built from now on takes :func:`other_layout`."""
    monkeypatch.setattr(shift_module, "shift_plan", other_layout)


SHAPES = [(2, 5, 4, 3, 48), (1, 4, 5, 5, 24), (2, 3, 2, 6, 36)]
OPTIONS = [
    dict(),
    dict(causal=True),
    dict(temporal_offset=2, causal=True),
    dict(spatial_fraction=0.5, temporal_fraction=0.5),
]


def _shift(channels, options):
    """The TokenShift of ``options`` (the keyword arguments of ``shift_tokens_reference``)."""
    return TokenShift(
        channels,
        options.get("spatial_fraction", 1 / 3),
        options.get("temporal_fraction", 1 / 4),
        causal=options.get("causal", False),
        temporal_offset=options.get("temporal_offset", 1),
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("options", OPTIONS)
def test_reference_inference_and_streaming_shifts_follow_a_changed_layout(shape, options, changed_layout):
    channels = shape[-1]
    shift = _shift(channels, options)
    groups = shift_module.shift_group_sizes(
        channels, options.get("spatial_fraction", 1 / 3), options.get("temporal_fraction", 1 / 4)
    )
    assert shift.plan == other_layout(channels, groups, options.get("causal", False), options.get("temporal_offset", 1))
    x = torch.randn(shape, dtype=torch.float64)
    expected = plan_reference(x, shift.plan)
    assert not torch.equal(expected, shift_tokens_reference(x, **options))  # the layout did change
    torch.testing.assert_close(shift(x), expected, rtol=0, atol=0)
    with torch.inference_mode():
        torch.testing.assert_close(InferenceTokenShift(shift)(x), expected, rtol=0, atol=0)
    if not options.get("causal"):
        with pytest.raises(ValueError, match="later frames"):
            CarriedShift(shift)
        return
    carried = CarriedShift(shift)
    for t in range(shape[1]):
        torch.testing.assert_close(carried(x[:, t : t + 1]), expected[:, t : t + 1], rtol=0, atol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_a_model_with_a_changed_layout_fuses_and_streams_as_it_computes(causal, changed_layout, randomize):
    torch.manual_seed(0)
    options = dict(spatial_fraction=0.25, temporal_fraction=0.375, temporal_offsets=[1, 3, 2], causal=causal)
    model = randomize(vast.create_model("vast_nano", num_classes=5, **options)).eval()
    shifts = [m for m in model.modules() if isinstance(m, TokenShift)]
    for shift, offset in zip(shifts, [1, 3, 2, 1, 3, 2], strict=True):
        groups = shift_module.shift_group_sizes(shift.dim, 0.25, 0.375)
        assert shift.plan == other_layout(shift.dim, groups, causal, offset)
    video = torch.randn(2, 3, 6, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        offline = model(video)
        torch.testing.assert_close(copy.deepcopy(model).fuse_for_inference()(video), offline, rtol=0, atol=1e-4)
    if not causal:
        return
    stream = StreamingClassifier(model)
    for end in range(1, 7):
        online = stream.step(video[:, :, end - 1 : end])
        with torch.no_grad():
            torch.testing.assert_close(online, model(video[:, :, :end]), rtol=0, atol=1e-4)


def test_the_default_layout_is_the_table_and_its_plan_is_checked():
    x = torch.randn(1, 4, 3, 3, 24, dtype=torch.float64)
    for options in [dict(), dict(causal=True, temporal_offset=2), dict(spatial_fraction=0.5, temporal_fraction=0.0)]:
        shift = _shift(24, options)
        torch.testing.assert_close(plan_reference(x, shift.plan), shift_tokens_reference(x, **options), rtol=0, atol=0)
    with pytest.raises(ValueError, match="in order"):
        check_plan([(0, 4, 3, -1), (5, 24, 1, 0)], 24)  # a gap at channel 4
    with pytest.raises(ValueError, match="not all 24"):
        check_plan([(0, 4, 3, -1), (4, 20, 1, 0)], 24)
    with pytest.raises(ValueError, match="dim 1, 2 or 3"):
        check_plan([(0, 24, 4, 1)], 24)

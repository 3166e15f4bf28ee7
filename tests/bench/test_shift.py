"""The shift replay: every token shift of one forward pass, called again on its own."""

import torch
from torch import nn

from vast.bench.shift import shift_calls, shift_replay
from vast.ops.shift import TokenShift


class CountingShift(TokenShift):
    """A token shift that counts its calls and returns its input (its constructor needs no arguments)."""

    def __init__(self):
        nn.Module.__init__(self)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def test_every_shift_of_a_pass_is_recorded_and_replayed_once():
    first, second = CountingShift(), CountingShift()
    model = nn.Sequential(first, nn.Flatten(2), nn.Linear(16, 8), second)
    x = torch.randn(1, 3, 4, 4)
    calls = shift_calls(model, x)
    assert [module for module, _ in calls] == [first, second] and (first.calls, second.calls) == (1, 1)
    assert [tuple(t.shape) for _, t in calls] == [(1, 3, 4, 4), (1, 3, 8)]  # shaped like each input
    assert calls[0][1].data_ptr() != x.data_ptr()  # fresh data, not the pass's tensors
    shift_replay(calls)()
    assert (first.calls, second.calls) == (2, 2)
    assert not any(m._forward_pre_hooks for m in (first, second))  # the recording hooks are gone


def test_a_fused_models_shifts_are_found_too():
    import vast

    model = vast.create_model("vast_nano", num_classes=4).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    fused = vast.create_model("vast_nano", num_classes=4).eval().fuse_for_inference()
    assert len(shift_calls(fused, x)) == len(shift_calls(model, x)) == 6  # one per block

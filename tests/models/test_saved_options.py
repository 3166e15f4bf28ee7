"""Saved configurations name the temporal reach options, and ones saved before they were named rebuild
the architecture they were trained with."""

import torch

import vast
from vast.engine.checkpoint import load_checkpoint
from vast.engine.evaluate import load_run
from vast.models.affine_shift import TemporalContext
from vast.models.saved_options import REACH_DEFAULTS_BEFORE, pin_options, reach_defaults, saved_options


def test_pinning_names_todays_defaults_for_vast_only():
    pinned = pin_options("vast_nano", {"norm": "layernorm"})
    assert pinned == {"norm": "layernorm", **reach_defaults()}
    assert pin_options("vast_nano", {"temporal_offsets": 3}) == {**reach_defaults(), "temporal_offsets": 3}
    assert pin_options("tsm", {"width": 8}) == {"width": 8}
    assert pin_options("ast_nano", {}) == {}


def test_a_configuration_saved_without_them_gets_the_values_of_before():
    assert saved_options("vast_tiny", {"causal": True}) == {"causal": True, **REACH_DEFAULTS_BEFORE}
    named = {"temporal_offsets": [1, 2], "temporal_context": True}
    assert saved_options("vast_tiny", named) == named
    assert saved_options("mvit_v2", {"embed_dim": 8}) == {"embed_dim": 8}


def test_a_run_saves_them_and_an_earlier_checkpoint_loads_its_own_architecture(causal_run, tmp_path):
    state = load_checkpoint(causal_run / "last.pt")
    options = state["config"]["model"]["options"]
    assert {key: options[key] for key in reach_defaults()} == reach_defaults()
    # A checkpoint as written before the options were named: neither key, the architecture of then.
    earlier_options = {k: v for k, v in options.items() if k not in reach_defaults()}
    torch.manual_seed(0)
    classes = state["num_classes"]
    earlier = vast.create_model("vast_nano", num_classes=classes, **earlier_options, **REACH_DEFAULTS_BEFORE)
    state["model"] = earlier.state_dict()
    state["config"]["model"]["options"] = earlier_options
    torch.save(state, tmp_path / "earlier.pt")
    model = load_run(tmp_path / "earlier.pt").model
    assert {b.mixer.shift.offset for s in model.stages for b in s.blocks} == {1}
    assert not any(isinstance(m, TemporalContext) for m in model.modules())
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), earlier.eval()(x), rtol=0, atol=0)

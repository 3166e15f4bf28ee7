"""The mixer, block and AST/VAST models against hand-written references and invariances."""

import pytest
import torch
import torch.nn.functional as F

import vast
from vast.errors import ConfigError, InputShapeError
from vast.models.affine_shift import NORM_LAYERS, AffineShiftBlock, AffineShiftMixer, MixerConfig, TemporalContext
from vast.ops import shift_tokens_reference

torch.manual_seed(0)


# ---- mixer ------------------------------------------------------------------------------------------


def test_fresh_mixer_is_a_plain_shift_between_projections():
    mixer = AffineShiftMixer(24)
    u = torch.randn(2, 3, 4, 4, 24)
    v = u @ mixer.value.weight.T + mixer.value.bias
    expected = shift_tokens_reference(v) @ mixer.proj.weight.T + mixer.proj.bias
    torch.testing.assert_close(mixer(u), expected)


def test_dynamic_affine_matches_hand_written_formula(randomize):
    mixer = randomize(AffineShiftMixer(24, MixerConfig(affine="dynamic")))
    u = torch.randn(2, 2, 3, 5, 24)
    w_a, b_a = mixer.affine.proj.weight, mixer.affine.proj.bias
    g = u @ w_a[:24].T + b_a[:24]  # first half: scale
    b = u @ w_a[24:].T + b_a[24:]  # second half: bias
    s = shift_tokens_reference(u @ mixer.value.weight.T + mixer.value.bias)
    expected = (s * (1 + g) + b) @ mixer.proj.weight.T + mixer.proj.bias
    torch.testing.assert_close(mixer(u), expected)


def test_static_and_no_affine(randomize):
    u = torch.randn(1, 2, 3, 3, 24)
    static = randomize(AffineShiftMixer(24, MixerConfig(affine="static")))
    s = shift_tokens_reference(u @ static.value.weight.T + static.value.bias)
    z = s * (1 + static.affine.scale) + static.affine.bias
    torch.testing.assert_close(static(u), z @ static.proj.weight.T + static.proj.bias)
    plain = AffineShiftMixer(24, MixerConfig(affine="none"))
    s = shift_tokens_reference(u @ plain.value.weight.T + plain.value.bias)
    torch.testing.assert_close(plain(u), s @ plain.proj.weight.T + plain.proj.bias)
    assert sum(p.numel() for p in plain.parameters()) == 2 * (24 * 24 + 24)


def _context_by_loops(u, weight, bias, causal):
    """W_c of each position's mean over the frames (causal: over frames 0..t), one token at a time."""
    batch, frames, height, width, _ = u.shape
    out = torch.zeros(batch, frames, height, width, weight.shape[0])
    for t in range(frames):
        first_unseen = t + 1 if causal else frames
        for h in range(height):
            for w in range(width):
                mean = sum(u[:, s, h, w] for s in range(first_unseen)) / first_unseen
                out[:, t, h, w] = mean @ weight.T + bias
    return out


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("offset", [1, 2, 3])
def test_mixer_with_offset_and_temporal_context_matches_loops(causal, offset, randomize):
    config = MixerConfig(causal=causal, temporal_offset=offset, temporal_context=True)
    mixer = randomize(AffineShiftMixer(24, config))
    u = torch.randn(2, 5, 3, 2, 24)
    w_a, b_a = mixer.affine.proj.weight, mixer.affine.proj.bias
    g, b = u @ w_a[:24].T + b_a[:24], u @ w_a[24:].T + b_a[24:]
    v = u @ mixer.value.weight.T + mixer.value.bias
    s = shift_tokens_reference(v, causal=causal, temporal_offset=offset)
    context = _context_by_loops(u, mixer.context.proj.weight, mixer.context.proj.bias, causal)
    expected = (s * (1 + g) + b + context) @ mixer.proj.weight.T + mixer.proj.bias
    torch.testing.assert_close(mixer(u), expected)


def test_temporal_context_costs_c_squared_per_position_or_per_token_when_causal():
    from torch.utils.flop_counter import FlopCounterMode

    dim, frames, positions = 16, 4, 3 * 3
    for causal, expected in ((False, dim * dim * positions), (True, dim * dim * positions * frames)):
        u = torch.randn(1, frames, 3, 3, dim)
        with FlopCounterMode(display=False) as counter:
            TemporalContext(dim, causal)(u, u)
        assert counter.get_total_flops() // 2 == expected


def test_a_fresh_temporal_context_changes_nothing():
    torch.manual_seed(0)
    plain = vast.create_model("vast_nano", num_classes=5, temporal_context=False).eval()
    with_context = vast.create_model("vast_nano", num_classes=5, temporal_context=True).eval()
    missing, unexpected = with_context.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".context." in key for key in missing)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(with_context(x), plain(x), rtol=0, atol=0)


def test_temporal_offsets_schedule_repeats_over_blocks_in_depth_order():
    model = vast.create_model("vast_nano", temporal_offsets=[1, 2])  # depths 1, 1, 3, 1
    offsets = [block.mixer.shift.offset for stage in model.stages for block in stage.blocks]
    assert offsets == [1, 2, 1, 2, 1, 2]
    same = vast.create_model("vast_nano", temporal_offsets=3)
    assert {block.mixer.shift.offset for stage in same.stages for block in stage.blocks} == {3}


@pytest.mark.parametrize("bad", [0, -1, [], [1, 0], [1, "2"], 1.5, True])
def test_bad_temporal_offsets_are_one_clear_error(bad):
    with pytest.raises(ConfigError, match="temporal_offsets must be"):
        vast.create_model("vast_nano", temporal_offsets=bad)


def test_image_models_have_no_temporal_context():
    model = vast.create_model("ast_nano", temporal_context=True)
    assert not any(isinstance(m, TemporalContext) for m in model.modules())


def test_mixer_costs_four_c_squared_macs_per_token():
    from torch.utils.flop_counter import FlopCounterMode

    dim, tokens = 48, 2 * 4 * 4
    with FlopCounterMode(display=False) as counter:
        AffineShiftMixer(dim)(torch.randn(1, 2, 4, 4, dim))
    assert counter.get_total_flops() // 2 == 4 * dim * dim * tokens


def test_unknown_options_raise():
    with pytest.raises(ValueError, match="unknown affine"):
        AffineShiftMixer(24, MixerConfig(affine="quadratic"))
    with pytest.raises(ValueError, match="unknown norm"):
        vast.create_model("vast_nano", norm="instancenorm")


# ---- block --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["batchnorm", "layernorm", "groupnorm"])
def test_block_without_temporal_shift_commutes_with_frame_permutation(norm, randomize):
    block = randomize(AffineShiftBlock(24, MixerConfig(temporal_shift=False), norm_layer=NORM_LAYERS[norm])).eval()
    x = torch.randn(2, 5, 4, 4, 24)
    perm = torch.tensor([4, 2, 0, 1, 3])
    torch.testing.assert_close(block(x[:, perm]), block(x)[:, perm])


def test_block_with_temporal_shift_mixes_frames(randomize):
    block = randomize(AffineShiftBlock(24, MixerConfig(temporal_shift=True))).eval()
    x = torch.randn(2, 5, 4, 4, 24)
    perm = torch.tensor([4, 2, 0, 1, 3])
    assert not torch.allclose(block(x[:, perm]), block(x)[:, perm], atol=1e-4)


def test_block_is_pre_norm_residual(randomize):
    block = randomize(AffineShiftBlock(24, norm_layer=torch.nn.LayerNorm)).eval()
    x = torch.randn(1, 2, 3, 3, 24)
    y = x + block.mixer(F.layer_norm(x, (24,), block.norm1.weight, block.norm1.bias))
    fc1, fc2 = block.mlp.fc1, block.mlp.fc2
    h = F.layer_norm(y, (24,), block.norm2.weight, block.norm2.bias)
    expected = y + F.gelu(h @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias
    torch.testing.assert_close(block(x), expected)
    assert fc1.out_features == 4 * 24


@pytest.mark.parametrize("norm", ["batchnorm", "groupnorm"])
def test_channels_last_norms_match_torch_reference(norm):
    block = AffineShiftBlock(8, norm_layer=NORM_LAYERS[norm])
    x = torch.randn(2, 3, 4, 5, 8)
    channels_first = x.permute(0, 4, 1, 2, 3)
    if norm == "batchnorm":
        reference = F.batch_norm(channels_first, None, None, training=True)
    else:
        reference = F.group_norm(channels_first, 1)
    torch.testing.assert_close(block.norm1.train()(x), reference.permute(0, 2, 3, 4, 1), atol=1e-5, rtol=1e-5)


# ---- models ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", vast.list_models("*ast_*"))
def test_every_variant_builds_with_expected_shapes(name):
    with torch.device("meta"):  # shape inference only: cheap for the big variants
        model = vast.create_model(name, num_classes=7)
        shape = (2, 3, 8, 224, 224) if name.startswith("vast") else (2, 3, 224, 224)
        assert model(torch.empty(shape)).shape == (2, 7)
        features = model.forward_features(torch.empty(shape))
    expected = (2, 8, 7, 7, model.num_features) if name.startswith("vast") else (2, 7, 7, model.num_features)
    assert features.shape == expected


@pytest.mark.parametrize(
    ("shape", "t_patch", "features"),
    [
        ((1, 3, 4, 112, 112), 1, (1, 4, 4, 4, 256)),  # 112 / 32 = 3.5: odd maps are padded
        ((2, 3, 4, 96, 160), 1, (2, 4, 3, 5, 256)),  # odd multiples of 32
        ((1, 3, 4, 64, 64), 2, (1, 2, 2, 2, 256)),
        ((1, 3, 1, 32, 32), 1, (1, 1, 1, 1, 256)),
        ((1, 3, 6, 36, 44), 2, (1, 3, 2, 2, 256)),
    ],
)
def test_vast_accepts_any_size_its_strides_allow(shape, t_patch, features):
    model = vast.create_model("vast_nano", num_classes=5, t_patch=t_patch).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(shape)).shape == features
        assert model(torch.randn(shape)).shape == (shape[0], 5)


@pytest.mark.parametrize(
    ("name", "shape", "match"),
    [
        ("vast_nano", (1, 3, 112, 112), "add a time axis"),
        ("vast_nano", (1, 1, 4, 64, 64), r"\(B, 3, T, H, W\)"),
        ("vast_nano", (1, 3, 4, 66, 64), "multiples of 4"),
        ("ast_nano", (1, 3, 4, 64, 64), r"\(B, 3, H, W\)"),
    ],
)
def test_wrong_input_shapes_give_one_clear_error(name, shape, match):
    model = vast.create_model(name)
    with pytest.raises(InputShapeError, match=match):
        model(torch.randn(shape))


def test_t_patch_must_divide_frames():
    model = vast.create_model("vast_nano", t_patch=2)
    with pytest.raises(InputShapeError, match="t_patch=2"):
        model(torch.randn(1, 3, 5, 64, 64))


def test_forward_is_head_of_features_and_pooling_is_a_mean(randomize):
    model = randomize(vast.create_model("vast_nano", num_classes=6)).eval()
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        torch.testing.assert_close(model(x), model.forward_head(features))
        pooled = model.forward_head(features, pre_logits=True)
        torch.testing.assert_close(pooled, features.mean(dim=(1, 2, 3)))
        torch.testing.assert_close(model(x), pooled @ model.head.weight.T + model.head.bias)


def test_reset_classifier_and_get_classifier():
    model = vast.create_model("vast_nano").eval()
    assert model.get_classifier().out_features == 400
    x = torch.randn(1, 3, 4, 64, 64)
    model.reset_classifier(0)
    assert model(x).shape == (1, model.num_features)
    model.reset_classifier(0, "")
    assert model(x).shape == (1, 4, 2, 2, model.num_features)
    model.reset_classifier(11, "avg")
    assert model(x).shape == (1, 11)


def test_feature_info_and_intermediates():
    model = vast.create_model("vast_nano").eval()
    assert [f["num_chs"] for f in model.feature_info] == [32, 64, 128, 256]
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    x = torch.randn(1, 3, 4, 64, 64)
    feats = model.forward_intermediates(x, intermediates_only=True)
    assert [tuple(f.shape) for f in feats] == [
        (1, 32, 4, 16, 16),
        (1, 64, 4, 8, 8),
        (1, 128, 4, 4, 4),
        (1, 256, 4, 2, 2),
    ]
    last, feats_nhwc = model.forward_intermediates(x, indices=[1], output_fmt="NHWC")
    assert feats_nhwc[0].shape == (1, 4, 8, 8, 64)
    torch.testing.assert_close(last, model.forward_features(x))


def test_video_features_only_with_out_indices():
    model = vast.create_model("vast_nano", features_only=True, out_indices=(1, 3)).eval()
    feats = model(torch.randn(2, 3, 4, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 4, 8, 8), (2, 256, 4, 2, 2)]
    assert model.feature_info.channels() == [64, 256]


def test_backward_reaches_every_parameter():
    model = vast.create_model("vast_nano", num_classes=3, drop_path_rate=0.1).train()
    model(torch.randn(2, 3, 4, 64, 64)).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_gradient_checkpointing_gives_same_values_and_gradients(randomize):
    x = torch.randn(2, 3, 4, 64, 64)
    outputs, grads = [], []
    for enable in (False, True):
        torch.manual_seed(0)
        model = randomize(vast.create_model("vast_nano", num_classes=3, drop_path_rate=0.0)).train()
        model.set_grad_checkpointing(enable)
        out = model(x)
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(outputs[0], outputs[1])
    torch.testing.assert_close(grads[0], grads[1])


def test_initialisation():
    model = vast.create_model("vast_tiny", num_classes=10)
    stds = [
        m.weight.std().item()
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "affine" not in n and "context" not in n
    ]
    assert all(0.015 < s < 0.025 for s in stds)  # truncated normal, std 0.02
    affines = [p for n, p in model.named_parameters() if ".mixer.affine." in n or ".mixer.context." in n]
    assert affines and all(torch.count_nonzero(p) == 0 for p in affines)
    rates = [getattr(b.drop_path1, "drop_prob", 0.0) for s in model.stages for b in s.blocks]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.1) and rates == sorted(rates)


def test_image_model_has_no_temporal_shift_and_video_model_does():
    ast_model, vast_model = vast.create_model("ast_nano"), vast.create_model("vast_nano")
    assert all(b.mixer.shift.temporal == 0 for s in ast_model.stages for b in s.blocks)
    assert all(b.mixer.shift.temporal > 0 for s in vast_model.stages for b in s.blocks)
    off = vast.create_model("vast_nano", temporal_shift=False)
    assert all(b.mixer.shift.temporal == 0 for s in off.stages for b in s.blocks)


def test_vast_without_temporal_shift_is_blind_to_frame_order(randomize):
    model = randomize(vast.create_model("vast_nano", temporal_shift=False)).eval()
    x = torch.randn(1, 3, 4, 64, 64)
    reversed_x = x.flip(2)
    with torch.no_grad():
        torch.testing.assert_close(model(reversed_x), model(x), atol=1e-5, rtol=1e-5)
        on = randomize(vast.create_model("vast_nano")).eval()
        assert not torch.allclose(on(reversed_x), on(x), atol=1e-4)


@pytest.mark.parametrize(
    "options",
    [{}, {"temporal_offsets": [1, 2]}, {"temporal_context": True}, {"temporal_offsets": 2, "temporal_context": True}],
)
def test_causal_model_features_never_depend_on_future_frames(options, randomize):
    model = randomize(vast.create_model("vast_nano", causal=True, **options)).eval()
    x = torch.randn(1, 3, 4, 64, 64)
    changed = x.clone()
    changed[:, :, 3] = torch.randn(3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(changed)[:, :3], model.forward_features(x)[:, :3])


def test_norm_option_is_applied():
    expected = {"layernorm": torch.nn.LayerNorm, "batchnorm": torch.nn.BatchNorm1d, "groupnorm": None}
    for norm, cls in expected.items():
        block = vast.create_model("vast_nano", norm=norm).stages[2].blocks[1]
        if cls is None:
            assert type(block.norm1).__name__ == "ChannelsLastGroupNorm"
        else:
            assert isinstance(block.norm1, cls) or isinstance(block.norm1.bn, cls)

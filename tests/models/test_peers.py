"""The study's peers (Video Swin, MViTv2, TSM, TSN) against independent references: torchvision's own
models and published multiply-add counts, hand counts, a slow loop for TSM's shift."""

import json

import pytest
import timm
import torch
from torchvision.models import ResNet18_Weights, resnet18
from torchvision.models.video import MViT_V2_S_Weights, Swin3D_T_Weights, mvit_v2_s, swin3d_t
from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d, SwinTransformer3d

import vast
from vast.engine.config import load_config
from vast.engine.train import train
from vast.errors import ConfigError, InputShapeError
from vast.models.peer_sizing import options_for_gmacs
from vast.models.peers import STUDY_PEERS, WindowAttention3d, temporal_shift

CLIP = (2, 3, 4, 32, 32)
SMALL = {  # small options for fast tests on CLIP-sized inputs
    "video_swin": dict(embed_dim=8),
    "mvit_v2": dict(embed_dim=8, num_frames=4, image_size=32),
    "tsm": dict(width=8),
    "tsn": dict(width=8),
}
STUDY_INPUT = (1, 3, 8, 32, 32)
SWIN_T = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), patch_size=(2, 4, 4), window_size=(8, 7, 7))
MVIT_V2_S = dict(num_frames=16, image_size=224, embed_dim=96, depths=(1, 2, 11, 2), kv_stride=(1, 8, 8))


@pytest.fixture(scope="module")
def vast_nano_gmacs():
    return vast.count_flops(vast.create_model("vast_nano"), STUDY_INPUT)[0]


def _meta(name, **options):
    with torch.device("meta"):
        return vast.create_model(name, **options)


def _shapes(model):
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def test_peers_are_in_vasts_registry_and_not_timms():
    assert set(STUDY_PEERS) <= set(vast.list_models())
    assert not any(timm.is_model(name) for name in STUDY_PEERS)


@pytest.mark.parametrize("name", STUDY_PEERS)
def test_forward_gives_logits_per_clip(name):
    model = vast.create_model(name, num_classes=5, **SMALL[name]).eval()
    with torch.no_grad():
        out = model(torch.randn(CLIP))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", STUDY_PEERS)
def test_backward_reaches_every_parameter(name):
    model = vast.create_model(name, num_classes=5, **SMALL[name]).train()
    model(torch.randn(CLIP)).logsumexp(dim=1).mean().backward()
    missing = [key for key, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("name", STUDY_PEERS)
def test_options_rebuild_the_same_architecture(name, vast_nano_gmacs):
    options = json.loads(json.dumps(options_for_gmacs(name, vast_nano_gmacs, STUDY_INPUT)))  # as a record stores them
    torch.manual_seed(0)
    first = vast.create_model(name, num_classes=7, **options)
    torch.manual_seed(0)
    again = vast.create_model(name, num_classes=7, **options)
    assert _shapes(first) == _shapes(again)
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


@pytest.mark.parametrize("name", STUDY_PEERS)
def test_inputs_are_checked_and_the_default_input_is_the_study_clip(name):
    model = _meta(name)
    assert model.pretrained_cfg["input_size"] == STUDY_INPUT[1:]
    with pytest.raises(InputShapeError, match=rf"{name} takes clips \(B, 3, "):
        model(torch.zeros(1, 3, 32, 32, device="meta"))


@pytest.mark.parametrize("name", STUDY_PEERS)
def test_unknown_options_name_close_ones(name):
    with pytest.raises(ConfigError, match=r"has no option 'depth'; did you mean depths"):
        vast.create_model(name, depth=(1, 1))


# ---- torchvision's own models and published counts ------------------------------------------------


def test_video_swin_with_swin_t_options_is_torchvisions_swin3d_t():
    model = _meta("video_swin", **SWIN_T, drop_path_rate=0.1)
    assert _shapes(model) == _shapes(swin3d_t())
    # torchvision publishes 43.882 GFLOPs (multiply-adds) for Swin3D-T on 16 x 224^2 clips
    gmacs, params = vast.count_flops(model, (1, 3, 16, 224, 224))
    assert gmacs == pytest.approx(Swin3D_T_Weights.KINETICS400_V1.meta["_ops"], abs=5e-4)
    assert params == Swin3D_T_Weights.KINETICS400_V1.meta["num_params"]


def test_mvit_v2_with_s_options_is_torchvisions_mvit_v2_s():
    model = _meta("mvit_v2", **MVIT_V2_S)
    reference = mvit_v2_s()
    assert _shapes(model) == _shapes(reference)
    for ours, theirs in zip(model.blocks, reference.blocks):
        assert ours.attn.pool_k.pool.stride == theirs.attn.pool_k.pool.stride
        assert (ours.pool_skip is None) == (theirs.pool_skip is None)
    gmacs, params = vast.count_flops(model, (1, 3, 16, 224, 224))
    assert gmacs == pytest.approx(MViT_V2_S_Weights.KINETICS400_V1.meta["_ops"], abs=5e-4)
    assert params == MViT_V2_S_Weights.KINETICS400_V1.meta["num_params"]


def test_tsn_at_resnet18_options_averages_resnet18_logits_over_frames():
    model = vast.create_model("tsn", num_classes=10, width=64, depths=(2, 2, 2, 2)).eval()
    reference = resnet18(num_classes=10).eval()
    reference.load_state_dict(model.state_dict())  # the same names and shapes, strictly
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        expected = torch.stack([reference(x[:, :, t]) for t in range(3)]).mean(dim=0)
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
    gmacs, params = vast.count_flops(_meta("tsn", num_classes=1000, width=64), (1, 3, 1, 224, 224))
    assert gmacs == pytest.approx(ResNet18_Weights.IMAGENET1K_V1.meta["_ops"], abs=5e-4)
    assert params == ResNet18_Weights.IMAGENET1K_V1.meta["num_params"]


def _slow_shift(x, frames, shift_div):
    """TSM's shift written out: channel c of frame t of clip b, one at a time."""
    clips = x.unflatten(0, (-1, frames))
    out = torch.zeros_like(clips)
    fold = clips.shape[2] // shift_div
    for b in range(clips.shape[0]):
        for t in range(frames):
            for c in range(clips.shape[2]):
                source = t + 1 if c < fold else t - 1 if c < 2 * fold else t
                if 0 <= source < frames:
                    out[b, t, c] = clips[b, source, c]
    return out.flatten(0, 1)


@pytest.mark.parametrize("shift_div", [8, 4])
def test_temporal_shift_matches_a_slow_loop(shift_div):
    x = torch.randn(2 * 5, 16, 3, 3)
    torch.testing.assert_close(temporal_shift(x, 5, shift_div), _slow_shift(x, 5, shift_div), rtol=0, atol=0)


def test_tsm_is_resnet18_with_the_shift_before_every_residual_branch():
    """The reference: torchvision's resnet18 on every frame, each BasicBlock's first conv fed the slowly
    shifted input (its identity path keeps the unshifted one), logits averaged over frames."""
    frames = 3
    model = vast.create_model("tsm", num_classes=10, width=64).eval()
    reference = resnet18(num_classes=10).eval()
    reference.load_state_dict(model.state_dict())
    for layer in (reference.layer1, reference.layer2, reference.layer3, reference.layer4):
        for block in layer:
            block.conv1.register_forward_pre_hook(lambda module, args: (_slow_shift(args[0], frames, 8),))
    x = torch.randn(2, 3, frames, 32, 32)
    with torch.no_grad():
        expected = reference(x.transpose(1, 2).flatten(0, 1)).unflatten(0, (2, frames)).mean(dim=1)
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_tsn_is_blind_to_frame_order_and_tsm_is_not():
    x = torch.randn(1, 3, 4, 32, 32)
    shuffled = x[:, :, [2, 0, 3, 1]]
    with torch.no_grad():
        tsn = vast.create_model("tsn", num_classes=5, width=16).eval()
        torch.testing.assert_close(tsn(shuffled), tsn(x), atol=1e-5, rtol=1e-5)
        tsm = vast.create_model("tsm", num_classes=5, width=16).eval()
        assert not torch.allclose(tsm(shuffled), tsm(x), atol=1e-4, rtol=1e-3)


# ---- Video Swin's relative position bias in windows shrunk to small maps --------------------------


def _offset_index(full, window):
    """The table row of every token pair (p, q) of ``window``, written out: the offset p - q in the
    full window's numbering, ``(dt + Wt-1) (2Wh-1) (2Ww-1) + (dh + Wh-1) (2Ww-1) + (dw + Ww-1)``."""
    tokens = [(t, h, w) for t in range(window[0]) for h in range(window[1]) for w in range(window[2])]
    rows = []
    for p in tokens:
        row = []
        for q in tokens:
            dt, dh, dw = (a - b for a, b in zip(p, q))
            row.append(
                (dt + full[0] - 1) * (2 * full[1] - 1) * (2 * full[2] - 1)
                + (dh + full[1] - 1) * (2 * full[2] - 1)
                + (dw + full[2] - 1)
            )
        rows.append(row)
    return torch.tensor(rows)


def _used_index(layer, window):
    """The table rows ``layer`` adds to its attention in ``window``: each row of its table holds its number."""
    with torch.no_grad():
        rows = torch.arange(layer.relative_position_bias_table.shape[0], dtype=torch.float32)
        layer.relative_position_bias_table.copy_(rows[:, None].expand_as(layer.relative_position_bias_table))
        bias = layer.get_relative_position_bias(list(window))  # (1, heads, vol, vol)
    assert (bias == bias[:, :1]).all()  # every head the same
    return bias[0, 0].long()


FULL = (2, 3, 3)


@pytest.mark.parametrize(
    ("window", "torchvision_right"),
    [((2, 2, 2), False), ((2, 3, 1), False), ((1, 2, 3), True), (FULL, True)],
)
def test_window_attention_uses_each_pairs_own_offset(window, torchvision_right):
    """Ours is the offset formula for every window; torchvision's ``index[:vol, :vol]`` is only where the
    window shrinks in the leading dimensions alone (its tokens are then a prefix of the full window's)."""
    expected = _offset_index(FULL, window)
    ours = WindowAttention3d(8, list(FULL), [0, 0, 0], num_heads=2)
    assert torch.equal(_used_index(ours, window), expected)
    theirs = ShiftedWindowAttention3d(8, list(FULL), [0, 0, 0], num_heads=2)
    assert torch.equal(_used_index(theirs, window), expected) == torchvision_right


def _biases_by_offset(layer, window):
    """The biases (one per head) ``layer`` adds to the token pairs of ``window``, grouped by their offset p - q."""
    with torch.no_grad():
        bias = layer.get_relative_position_bias(list(window))[0]  # (heads, vol, vol)
    tokens = [(t, h, w) for t in range(window[0]) for h in range(window[1]) for w in range(window[2])]
    groups = {}
    for i, p in enumerate(tokens):
        for j, q in enumerate(tokens):
            groups.setdefault(tuple(a - b for a, b in zip(p, q)), []).append(bias[:, i, j])
    return groups


def _one_bias_per_offset(groups):
    """Whether pairs at one offset share one bias and pairs at different offsets have different ones."""
    same = all(torch.equal(b, biases[0]) for biases in groups.values() for b in biases)
    return same and len(torch.stack([biases[0] for biases in groups.values()]).unique(dim=0)) == len(groups)


@pytest.mark.parametrize(("full", "window"), [((4, 4, 4), (4, 2, 2)), ((2, 3, 3), (2, 2, 2))])
def test_window_attention_gives_pairs_at_one_offset_one_bias_in_a_shrunk_window(full, window):
    """(4, 2, 2) of (4, 4, 4) is video_swin's stage 3 at 8 x 32^2, where torchvision gives the offsets
    (0, 0, 1) and (0, 1, -1) one table row; in (2, 2, 2) of (2, 3, 3) it gives one offset several rows."""
    torch.manual_seed(0)
    ours = WindowAttention3d(8, list(full), [0, 0, 0], num_heads=2)
    assert _one_bias_per_offset(_biases_by_offset(ours, window))
    theirs = ShiftedWindowAttention3d(8, list(full), [0, 0, 0], num_heads=2)
    theirs.load_state_dict(ours.state_dict())
    assert not _one_bias_per_offset(_biases_by_offset(theirs, window))  # torchvision's bug


SWIN_SMALL = dict(
    patch_size=[2, 4, 4], embed_dim=8, depths=[1, 1, 1], num_heads=[1, 1, 2], window_size=[2, 4, 4], num_classes=5
)


def _last_tokens(swin, x):
    """The last stage's tokens of a ``SwinTransformer3d``, before its norm and head."""
    return swin.features(swin.patch_embed(x))


def test_video_swin_keeps_torchvisions_state_dict_and_differs_only_in_shrunk_windows():
    torch.manual_seed(0)
    options = {key: tuple(v) if isinstance(v, list) else v for key, v in SWIN_SMALL.items()}
    ours = vast.create_model("video_swin", **options).eval()
    theirs = SwinTransformer3d(**SWIN_SMALL, stochastic_depth_prob=0.0).eval()
    assert _shapes(ours) == _shapes(theirs) and list(ours.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():  # biases that matter (initialised at std 0.02 they barely move the logits)
        for key, value in ours.named_parameters():
            if key.endswith("relative_position_bias_table"):
                value.normal_()
    theirs.load_state_dict(ours.state_dict())  # strictly
    assert all(isinstance(block.attn, WindowAttention3d) for stage in ours.features[::2] for block in stage)
    with torch.no_grad():
        # 4 x 32^2 clips: token maps 2 x 8^2, 2 x 4^2, 2 x 2^2; only the last one shrinks the (2, 4, 4) window in H, W
        x = torch.randn(1, 3, 4, 32, 32)
        assert (_last_tokens(ours, x) - _last_tokens(theirs, x)).abs().max() > 1e-3
        # 4 x 64^2 clips: maps 2 x 16^2, 2 x 8^2, 2 x 4^2; no window shrinks in H or W
        x = torch.randn(1, 3, 4, 64, 64)
        torch.testing.assert_close(ours(x), theirs(x), atol=0, rtol=0)
        # 2 x 64^2 clips: maps 1 x 16^2, ...; windows shrink in T alone, where torchvision is right
        x = torch.randn(1, 3, 2, 64, 64)
        torch.testing.assert_close(ours(x), theirs(x), atol=0, rtol=0)


# ---- hand counts -------------------------------------------------------------------------------------


def test_tsm_and_tsn_flops_match_a_hand_count():
    # width 8, depths (1, 1), 2 frames of 16 x 16, per frame: stem 7x7 conv 3 -> 8 at 8 x 8; max pool to 4 x 4;
    # block 1: two 3x3 convs 8 -> 8 at 4 x 4; block 2 at 2 x 2: 3x3 8 -> 16, 3x3 16 -> 16, 1x1 shortcut 8 -> 16.
    per_frame = 64 * 8 * 3 * 49 + 2 * 16 * 8 * 8 * 9 + 4 * 16 * 8 * 9 + 4 * 16 * 16 * 9 + 4 * 16 * 8
    expected = (2 * per_frame + 16 * 5) / 1e9  # the head once, on the averaged features
    for name in ("tsm", "tsn"):
        model = vast.create_model(name, num_classes=5, width=8, depths=(1, 1))
        assert vast.count_flops(model, (1, 3, 2, 16, 16))[0] == pytest.approx(expected, rel=1e-12)


def test_video_swin_flops_match_a_hand_count():
    # one stage of 2 blocks, C = 8, patches (2, 4, 4) of a 4 x 8 x 8 clip: N = 8 tokens in one window
    n, c, classes = 8, 8, 5
    block = n * c * 3 * c + 2 * n * n * c + n * c * c + 2 * n * c * 4 * c  # qkv, QK^T and AV, proj, MLP
    expected = (n * c * 3 * 2 * 4 * 4 + 2 * block + c * classes) / 1e9  # patch embedding, blocks, head
    model = vast.create_model(
        "video_swin", num_classes=classes, embed_dim=c, depths=(2,), num_heads=(2,), window_size=(2, 2, 2)
    )
    assert vast.count_flops(model, (1, 3, 4, 8, 8))[0] == pytest.approx(expected, rel=1e-12)


# ---- sizing to a compute budget ---------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1, 4])
@pytest.mark.parametrize("name", STUDY_PEERS)
def test_options_for_gmacs_lands_within_15_percent(name, factor, vast_nano_gmacs):
    target = factor * vast_nano_gmacs
    options = options_for_gmacs(name, target, STUDY_INPUT)
    model = vast.create_model(name, num_classes=400, **options)
    gmacs = vast.count_flops(model, STUDY_INPUT)[0]
    assert abs(gmacs - target) <= 0.15 * target
    assert model(torch.randn(STUDY_INPUT)).shape == (1, 400)


def test_options_for_gmacs_builds_mvit_for_the_input_shape():
    options = options_for_gmacs("mvit_v2", 0.05, (1, 3, 4, 64, 32))
    assert options["num_frames"] == 4 and options["image_size"] == [64, 32]
    model = _meta("mvit_v2", **options)
    assert vast.count_flops(model, (1, 3, 4, 64, 32))[0] == pytest.approx(0.05, rel=0.15)
    with pytest.raises(InputShapeError, match=r"takes clips \(B, 3, 4, 64, 32\) \(it is built for one"):
        model(torch.zeros(1, 3, 8, 64, 32, device="meta"))


def test_options_for_gmacs_keeps_fixed_options_and_refuses_the_impossible():
    options = options_for_gmacs("tsm", 0.1, STUDY_INPUT, depths=[1, 1, 1, 1], shift_div=4)
    assert options["depths"] == [1, 1, 1, 1] and options["shift_div"] == 4
    with pytest.raises(ConfigError, match=r"no tsm lands within 15% of 1e-07 GMACs"):
        options_for_gmacs("tsm", 1e-7, STUDY_INPUT)
    with pytest.raises(ConfigError, match="searches tsm's width"):
        options_for_gmacs("tsm", 0.1, STUDY_INPUT, width=16)
    with pytest.raises(ConfigError, match="sizes the peers"):
        options_for_gmacs("vast_nano", 0.1, STUDY_INPUT)


def test_mvit_refuses_clips_it_cannot_pool():
    with pytest.raises(ConfigError, match="cannot be pooled"):
        vast.create_model("mvit_v2", image_size=16)  # 4 x 4 tokens pooled three times


# ---- the trainer -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDY_PEERS)
def test_vast_train_trains_each_peer(name, tiny_overrides, tmp_path):
    options = [f"model.options.{key}={json.dumps(value)}" for key, value in SMALL[name].items()]
    config = load_config(
        "demo",
        [
            *tiny_overrides,
            f"model.name={name}",
            "model.options={}",
            *options,
            "train.memory_lean=false",
            "train.epochs=1",
            f"train.output_dir={tmp_path / name}",
        ],
    )
    result = train(config, quiet=True)
    assert result.epochs_done == 1 and result.steps_done == 4  # 16 videos / batch 4
    assert (tmp_path / name / "last.pt").is_file()

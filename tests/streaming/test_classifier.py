"""StreamingClassifier against the offline model on every prefix of a clip."""

import pytest
import torch

from vast import create_model
from vast.streaming import NotStreamableError, StreamingClassifier, StreamingStep


def _causal(name, randomize, **options):
    torch.manual_seed(0)
    return randomize(create_model(name, num_classes=7, causal=True, **options)).eval()


@pytest.mark.parametrize(
    ("name", "t_patch", "batch"),
    [("vast_nano", 1, 1), ("vast_nano", 1, 3), ("vast_nano", 2, 3), ("vast_tiny", 1, 1), ("vast_tiny", 2, 3)],
)
def test_every_prefix_equals_the_offline_model(name, t_patch, batch, randomize):
    model = _causal(name, randomize, t_patch=t_patch)
    video = torch.randn(batch, 3, 16, 32, 32, generator=torch.Generator().manual_seed(1))
    stream = StreamingClassifier(model)
    for end in range(t_patch, 17, t_patch):
        online = stream.step(video[:, :, end - t_patch : end])
        with torch.no_grad():
            offline = model(video[:, :, :end])
        torch.testing.assert_close(online, offline, rtol=0, atol=1e-4)
    stream.reset()  # a new stream starts from nothing
    with torch.no_grad():
        torch.testing.assert_close(stream.step(video[:, :, :t_patch]), model(video[:, :, :t_patch]), rtol=0, atol=1e-4)


REACH = [
    dict(temporal_offsets=[1, 2]),
    dict(temporal_offsets=[2, 1, 3]),
    dict(temporal_context=True),
    dict(temporal_offsets=[1, 2], temporal_context=True, norm="layernorm"),
]


@pytest.mark.parametrize("t_patch", [1, 2])
@pytest.mark.parametrize("options", REACH)
def test_every_prefix_equals_the_offline_model_with_temporal_reach(options, t_patch, randomize):
    model = _causal("vast_nano", randomize, t_patch=t_patch, **options)
    video = torch.randn(2, 3, 12, 32, 32, generator=torch.Generator().manual_seed(4))
    stream = StreamingClassifier(model)
    for end in range(t_patch, 13, t_patch):
        online = stream.step(video[:, :, end - t_patch : end])
        with torch.no_grad():
            offline = model(video[:, :, :end])
        torch.testing.assert_close(online, offline, rtol=0, atol=1e-4)


def test_an_offset_carries_that_many_frames_and_a_context_its_sum():
    # vast_nano: widths 32, 64, 128, 256 on 8x8, 4x4, 2x2, 1x1 tokens, depths 1, 1, 3, 1; k = C/8 channels
    tokens_and_k = [(64, 4), (16, 8), (4, 16), (4, 16), (4, 16), (1, 32)]
    offsets = [2, 3, 2, 3, 2, 3]
    options = dict(causal=True, temporal_context=False)
    stream = StreamingClassifier(create_model("vast_nano", temporal_offsets=[2, 3], **options).eval())
    stream.step(torch.randn(1, 3, 1, 32, 32))
    assert stream.carried_elements() == sum(d * n * k for d, (n, k) in zip(offsets, tokens_and_k, strict=True))
    with_context = StreamingClassifier(create_model("vast_nano", causal=True, temporal_offsets=1).eval())
    with_context.step(torch.randn(1, 3, 1, 32, 32))
    sums = sum(n * 8 * k for n, k in tokens_and_k)  # a running sum of all C = 8 k channels per position
    assert with_context.carried_elements() == sum(n * k for n, k in tokens_and_k) + sums + 6  # + a count each


def test_layernorm_models_stream_and_the_model_given_is_untouched(randomize):
    model = _causal("vast_nano", randomize, norm="layernorm")
    video = torch.randn(2, 3, 6, 32, 32)
    stream = StreamingClassifier(model)
    online = [stream.step(video[:, :, t : t + 1]) for t in range(6)]
    with torch.no_grad():
        torch.testing.assert_close(online[-1], model(video), rtol=0, atol=1e-4)
    assert model.stages[0].blocks[0].mixer.shift.__class__.__name__ == "TokenShift"


def test_a_window_averages_the_last_steps(randomize):
    model = _causal("vast_nano", randomize)
    video = torch.randn(1, 3, 8, 32, 32)
    stream = StreamingClassifier(model, window=3)
    for t in range(8):
        windowed = stream.step(video[:, :, t : t + 1])
    # the head on the mean of the last 3 steps' pooled features, those taken from the offline model's
    # features of the whole clip (the causal state still reaches back to frame 0)
    with torch.no_grad():
        features = model.forward_features(video)  # (1, 8, H, W, C)
        expected = model.head(features[:, -3:].flatten(1, -2).mean(1))
    torch.testing.assert_close(windowed, expected, rtol=0, atol=1e-4)


def test_only_the_shifted_channels_are_carried(randomize):
    model = _causal("vast_nano", randomize, temporal_offsets=1, temporal_context=False)
    stream = StreamingClassifier(model)
    stream.step(torch.randn(1, 3, 1, 32, 32))
    # vast_nano: widths 32, 64, 128, 256 on 8x8, 4x4, 2x2, 1x1 tokens, depths 1, 1, 3, 1; k = C/8 channels
    expected = 1 * 4 * 64 + 1 * 8 * 16 + 3 * 16 * 4 + 1 * 32 * 1
    assert stream.carried_elements() == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "reads the next frame.*causal=true"),
        ({"causal": True, "norm": "groupnorm"}, "GroupNorm pools"),
        ({"temporal_context": True}, "reads the next frame.*causal=true"),
    ],
)
def test_models_that_need_later_frames_are_refused(options, message):
    with pytest.raises(NotStreamableError, match=message):
        StreamingClassifier(create_model("vast_nano", **options))


def test_a_step_of_the_wrong_shape_is_one_clear_error(randomize):
    stream = StreamingClassifier(_causal("vast_nano", randomize, t_patch=2))
    with pytest.raises(Exception, match=r"next 2 frame\(s\)"):
        stream.step(torch.randn(1, 3, 1, 32, 32))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("t_patch", "options"), [(1, {}), (2, {}), (1, dict(temporal_offsets=[1, 2], temporal_context=True))]
)
def test_the_exported_step_runs_a_whole_video_in_onnx_runtime_as_the_stream_does(t_patch, options, randomize, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from vast.streaming.export import export_streaming_step, state_names

    model = _causal("vast_nano", randomize, t_patch=t_patch, **options)
    video = torch.randn(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(2))
    path = export_streaming_step(model, (2, 3, t_patch, 32, 32), tmp_path / "step.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    step = StreamingStep(model)
    inputs, _ = state_names(step)
    state = [t.numpy() for t in step.initial_state(video[:, :, :t_patch])]
    stream = StreamingClassifier(model)
    for end in range(t_patch, 17, t_patch):
        frames = video[:, :, end - t_patch : end]
        logits, *state = session.run(None, dict(zip(inputs, [frames.numpy(), *state], strict=True)))
        torch.testing.assert_close(torch.from_numpy(logits), stream.step(frames), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_the_exported_program_runs_a_whole_video_as_the_stream_does(randomize, tmp_path):
    from vast.streaming.export import export_streaming_step

    model = _causal("vast_nano", randomize)
    video = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(3))
    program = torch.export.load(str(export_streaming_step(model, (1, 3, 1, 32, 32), tmp_path / "s.pt2", "exported")))
    run = program.module()
    state = StreamingStep(model).initial_state(video[:, :, :1])
    stream = StreamingClassifier(model)
    for t in range(8):
        frames = video[:, :, t : t + 1]
        logits, *state = run(frames, *state)
        torch.testing.assert_close(logits, stream.step(frames), rtol=0, atol=1e-4)

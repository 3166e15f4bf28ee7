"""The streaming step in int8 (`vast.streaming.quantize`) on a causal model trained in the test, against
the int8 offline model on the whole clip and the fp32 offline model on every prefix, on real clips."""

import pytest
import torch

from vast.deploy import quantize
from vast.errors import ConfigError, InputShapeError
from vast.streaming import StreamingClassifier
from vast.streaming.quantize import quantize_streaming_step, quantized_stream


@pytest.fixture(scope="module")
def causal(causal_run, model_and_clips):
    return model_and_clips(causal_run)


def _stream(stream, clip):
    stream.reset()
    return [stream.step(clip[:, :, t : t + 1]) for t in range(clip.shape[2])]


@pytest.fixture(scope="module", params=["static", "dynamic"])
def int8_pair(causal, request):
    """The int8 stream and the int8 offline model of one mode. The same 8 training clips calibrate both
    (static): as 8 streams of one clip, and as 2 batches of 4 clips."""
    model, val, train = causal
    static = request.param == "static"
    stream = quantized_stream(model, request.param, (1, 3, 1, 32, 32),
                              calibration=list(train[::2].split(1)) if static else None, compile=False)  # fmt: skip
    offline = quantize(model, request.param, example=val[:1],
                       calibration=list(train[::2].split(4)) if static else None, compile=False)  # fmt: skip
    return request.param, stream, offline


def test_the_int8_stream_keeps_prefix_parity_with_the_offline_models(causal, int8_pair):
    model, val, _ = causal
    mode, stream, offline = int8_pair
    assert stream.core.info.calibration_clips == (8 if mode == "static" else 0)
    scale = float(model(val).std())
    for clip in val.split(1):
        steps = _stream(stream, clip)
        with torch.no_grad():
            # Each prefix against the fp32 offline model on those frames (the stream's reference), and
            # the whole clip against the int8 offline model: within a tenth of the logits' spread.
            for t, logits in enumerate(steps, 1):
                assert float((logits - model(clip[:, :, :t])).abs().max()) < 0.1 * scale, t
            assert float((steps[-1] - offline(clip)).abs().max()) < 0.1 * scale
    assert all(state.dtype == torch.float32 for state in stream.state)  # the carried state stays fp32


def test_refusals_of_the_int8_stream(causal, int8_pair):
    model, _, _ = causal
    step = int8_pair[1].core
    with pytest.raises(ConfigError, match="windowed stream"):
        StreamingClassifier(model, window=2, core=step)
    stream = StreamingClassifier(model, core=step)
    with pytest.raises(InputShapeError, match=r"quantised for steps of \(1, 3, 1, 32, 32\)"):
        stream.step(torch.zeros(2, 3, 1, 32, 32))
    with pytest.raises(ConfigError, match="static quantisation needs calibration"):
        quantize_streaming_step(model, "static", (1, 3, 1, 32, 32))

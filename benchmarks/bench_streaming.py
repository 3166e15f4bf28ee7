"""Online recognition's cost per new frame, in one run: a causal VAST stepped one frame at a time
(``StreamingClassifier``) against re-running the model on a sliding window of the last K frames at
every frame (what a clip model must do online, and what mmaction2 users are told to do).

Times batch-1 inference, interleaved (one timed frame of each form per round, medians over rounds), on
random frames, and reports the state a stream carries from one frame to the next in bytes.

Usage::

    python benchmarks/bench_streaming.py [--model vast_tiny] [--size 224] [--window 8] [--threads 2]
        [--device cpu] [--dtype fp32] [--rounds 15]

``--model`` takes VAST options as ``vast bench`` does, e.g. the block before the temporal-reach default:
``--model vast_tiny:temporal_offsets=1,temporal_context=False``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import vast
from vast.bench import machine_info
from vast.bench.specs import parse_model_arg
from vast.streaming import StreamingClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description="streaming against a sliding window, per new frame")
    parser.add_argument("--model", default="vast_tiny", help="a VAST model, with options: vast_tiny:t_patch=2")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--window", type=int, default=8, help="frames the sliding window re-runs at every frame")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    device = torch.device(args.device)
    name, options = parse_model_arg(args.model)
    model = vast.create_model(name, **{**dict(options), "causal": True}).eval().to(device, dtype)
    stream = StreamingClassifier(model)
    t_patch = stream.t_patch
    window = torch.randn(1, 3, args.window, args.size, args.size, device=device, dtype=dtype)
    step = window[:, :, :t_patch]

    def one_stream_step() -> None:
        stream.step(step)

    def one_window() -> None:
        model(window)

    forms = {f"stream step ({t_patch} new frame{'s' if t_patch > 1 else ''})": one_stream_step,
             f"sliding window ({args.window} frames)": one_window}  # fmt: skip
    times = {name: [] for name in forms}
    with torch.inference_mode():
        for _ in range(args.window):  # warm-up; fills the stream's state
            for form in forms.values():
                form()
        for _ in range(args.rounds):
            for name, form in forms.items():
                _sync(device)
                start = time.perf_counter()
                form()
                _sync(device)
                times[name].append(time.perf_counter() - start)
    _report(args, model, stream, times, t_patch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _report(args: argparse.Namespace, model: torch.nn.Module, stream: StreamingClassifier, times: dict,
            t_patch: int) -> None:  # fmt: skip
    info = machine_info(torch.device(args.device))
    where = info.get("gpu", f"{info['cpu']}, {args.threads} threads")
    print(f"machine: {where}, torch {torch.__version__}")
    print(f"model: {args.model} (causal), {args.size} x {args.size}, batch 1, {args.dtype}; "
          f"medians of {args.rounds} interleaved rounds\n")  # fmt: skip
    per_frame = {}
    print("| form | ms per call | ms per new frame |")
    print("|---|---|---|")
    for name, values in times.items():
        ms = 1000 * statistics.median(values)
        per_frame[name] = ms / t_patch if name.startswith("stream") else ms
        print(f"| {name} | {ms:.2f} | {per_frame[name]:.2f} |")
    stream_ms, window_ms = per_frame.values()
    carried = stream.carried_elements()
    element = torch.finfo(next(model.parameters()).dtype).bits // 8
    pooled = stream.state[0].numel()
    print(f"\nstreaming is {window_ms / stream_ms:.1f}x cheaper per new frame than a {args.window}-frame window")
    print(f"state per stream: {carried} numbers carried by the blocks (shifted channels, context sums) + "
          f"{pooled} pooled sums + 1 step count = "
          f"{(carried + pooled + 1) * element} bytes ({element}-byte numbers)")  # fmt: skip


if __name__ == "__main__":
    main()

"""oneDNN against the BLAS for VAST's projections, eager and compiled, in one run.

Times batch-1 inference of one model four ways, interleaved (one pass of each per round, medians):

* eager with ``vast.ops.linear``'s oneDNN path (the default on the CPU);
* eager with it switched off (``set_onednn_linear(False)``): every projection is ``F.linear``, which
  PyTorch's CPU wheels run on MKL;
* ``torch.compile`` (inductor, frozen weights) with the oneDNN path: the projections are the custom
  op ``vast::onednn_linear`` and inductor fuses the rest;
* ``torch.compile`` with it switched off: inductor packs the fp32 weights for MKL itself.

Usage::

    python benchmarks/bench_linear_backends.py [--threads 2] [--model vast_tiny] [--options t_patch=2]

It sets torch's thread count and opts in to the tuned glibc malloc (:func:`vast.bench.tuned_malloc`,
as ``vast bench --malloc tuned``) for its own process.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import time
from collections.abc import Callable

import torch
from torch._inductor import config as inductor_config

import vast
from vast.bench import tuned_malloc
from vast.ops.linear import onednn_linear_available, set_onednn_linear


def runner(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, onednn: bool) -> Callable[[], None]:
    def run() -> None:
        set_onednn_linear(onednn)
        try:
            with inductor_config.patch(freezing=True):
                fn(x)
        finally:
            set_onednn_linear(True)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description="oneDNN against the BLAS for VAST's projections")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="vast_tiny")
    parser.add_argument("--options", nargs="*", default=[], help="model options, e.g. t_patch=2")
    parser.add_argument("--input", default="1,3,8,224,224")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if not onednn_linear_available():
        raise SystemExit("this PyTorch build has no oneDNN linear ops: nothing to compare")
    torch.set_num_threads(args.threads)
    options = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.options)}
    model = vast.create_model(args.model, **options).eval()
    x = torch.randn(*(int(s) for s in args.input.split(",")))
    compiled = torch.compile(model, dynamic=False)  # one wrapper: dynamo keeps a graph per setting
    runs = {
        "eager, oneDNN": runner(model, x, True),
        "eager, F.linear (BLAS)": runner(model, x, False),
        "compiled, oneDNN custom op": runner(compiled, x, True),
        "compiled, inductor's own packing": runner(compiled, x, False),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with tuned_malloc(), torch.inference_mode():  # opted in: glibc keeps large freed blocks for reuse
        for run in runs.values():  # warm-up; the compiled rows compile here
            run()
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["eager, oneDNN"])
    label = args.model + "".join(f":{k}={v}" for k, v in options.items())
    print(f"{label} at {tuple(x.shape)}, {args.threads} threads, fp32")
    print("| run | ms (median) | time / eager oneDNN |")
    print("|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1e3:.1f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()

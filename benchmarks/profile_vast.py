"""Where vast_tiny's forward time goes: torch.profiler's top operators and the rate of every matmul shape.

For the eager model and the fused one (``fuse_for_inference``), batch 1, 1x3x8x224x224 by default:

* the top operators by self CPU time (the share that is not matmul is what fusing can remove);
* each matmul shape (tokens x in -> out features) with its achieved GMAC/s, which shows how the
  narrow stage-1 matmuls (96 input channels) cap the model below the machine's matmul rate.

Usage::

    python benchmarks/profile_vast.py [--threads 2] [--frames 8] [--size 224] [--options t_patch=2]

It sets torch's thread count and opts in to the tuned glibc malloc (:func:`vast.bench.tuned_malloc`,
as ``vast bench --malloc tuned``) for its own process.
"""

from __future__ import annotations

import argparse
import ast
import collections

import torch
from torch.profiler import ProfilerActivity, profile

import vast
from vast.bench import tuned_malloc

MATMULS = ("aten::addmm", "aten::mm", "mkldnn::_linear_pointwise")


def main() -> None:
    parser = argparse.ArgumentParser(description="profile vast_tiny's forward pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--options", nargs="*", default=[], help="model options, e.g. t_patch=2")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in args.options)}
    x = torch.randn(1, 3, args.frames, args.size, args.size)
    with tuned_malloc():  # opted in: glibc keeps large freed blocks for reuse during the run
        for fused in (False, True):
            model = vast.create_model("vast_tiny", **options).eval()
            if fused:
                model.fuse_for_inference()
            print(f"\n### vast_tiny{' (fused)' if fused else ''}, {'x'.join(map(str, x.shape))}, "
                  f"{args.threads} threads\n")  # fmt: skip
            report(model, x, args.passes)


def report(model: torch.nn.Module, x: torch.Tensor, passes: int) -> None:
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(passes):
                model(x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print("| operator | self CPU % | ms per pass | calls per pass |\n|---|---:|---:|---:|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]:
        share = 100 * e.self_cpu_time_total / total
        print(f"| {e.key} | {share:.1f} | {e.self_cpu_time_total / 1e3 / passes:.1f} | {e.count // passes} |")
    print(f"\ntotal {total / 1e3 / passes:.0f} ms per pass (profiler on)\n")
    shapes: dict[tuple[int, int, int], list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key not in MATMULS or not e.input_shapes:
            continue
        dims = [s for s in e.input_shapes if len(s) == 2]
        if len(dims) < 2:
            continue
        (m, k), w = dims[0], dims[-1]  # the weight comes last (after the residual of a fused add)
        n = w[0] if e.key == "mkldnn::_linear_pointwise" else w[1]
        shapes[(m, k, n)][0] += e.self_cpu_time_total
        shapes[(m, k, n)][1] += e.count
    print("| matmul (tokens x in -> out) | GMAC per pass | ms per pass | GMAC/s |\n|---|---:|---:|---:|")
    for (m, k, n), (us, count) in sorted(shapes.items(), key=lambda item: -item[1][0]):
        gmacs = m * k * n * count / passes / 1e9
        ms = us / 1e3 / passes
        print(f"| {m} x {k} -> {n} | {gmacs:.2f} | {ms:.1f} | {gmacs / ms * 1e3:.0f} |")


if __name__ == "__main__":
    main()

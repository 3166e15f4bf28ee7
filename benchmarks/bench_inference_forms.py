"""The inference forms of one model side by side, in one run: is the hand-written packed path needed?

Times batch-1 inference, interleaved (one pass of each form per round, medians), of:

* the reference model, eager (every projection ``F.linear``, which PyTorch's CPU wheels run on MKL);
* ``fuse_for_inference()``, eager, projections on oneDNN with packed weights (``vast.deploy``);
* the same fused model with ``onednn=False`` (``F.linear``);
* ``torch.compile`` (inductor, ``freezing=True``: inductor folds the frozen weights and prepacks them
  itself) of the reference model, and of the fused model.

Usage::

    python benchmarks/bench_inference_forms.py [--threads 2] [--model vast_tiny] [--dtype fp32]

It sets torch's thread count and opts in to the tuned glibc malloc (:func:`vast.bench.tuned_malloc`,
as ``vast bench --malloc tuned``) for its own process; ``--malloc default`` leaves glibc alone.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch._inductor import config as inductor_config

import vast
from vast.bench import machine_info, tuned_malloc
from vast.deploy import fuse_for_inference


def main() -> None:
    parser = argparse.ArgumentParser(description="VAST's inference forms, eager and compiled, in one run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default="vast_tiny")
    parser.add_argument("--input", default="1,3,8,224,224")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--malloc", choices=("tuned", "default"), default="tuned")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    reference = vast.create_model(args.model).eval().to(dtype)
    fused = fuse_for_inference(copy.deepcopy(reference))
    fused_blas = fuse_for_inference(copy.deepcopy(reference), onednn=False)
    x = torch.randn(*(int(s) for s in args.input.split(",")), dtype=dtype)
    forms = {
        "reference, eager (F.linear)": reference,
        "fused, eager, oneDNN packed": fused,
        "fused, eager, F.linear": fused_blas,
        "reference, compiled (freezing)": torch.compile(reference, dynamic=False),
        "fused, compiled (freezing)": torch.compile(fused_blas, dynamic=False),
    }
    times: dict[str, list[float]] = {name: [] for name in forms}
    compile_s: dict[str, float] = {}
    with tuned_malloc(args.malloc == "tuned"), torch.inference_mode(), inductor_config.patch(freezing=True):
        for name, form in forms.items():  # warm-up; the compiled forms compile here
            start = time.perf_counter()
            form(x)
            compile_s[name] = time.perf_counter() - start
            form(x)
        for _ in range(args.repeats):
            for name, form in forms.items():
                start = time.perf_counter()
                form(x)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["fused, eager, oneDNN packed"])
    cpu = machine_info(torch.device("cpu"))
    print(f"{args.model} at {tuple(x.shape)}, {args.dtype}, {args.threads} threads, {args.repeats} rounds")
    print(f"machine: {cpu.get('cpu', '?')}, torch {torch.__version__}, malloc {args.malloc}\n")
    print("| form | ms (median) | time / fused eager oneDNN | first call s |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1e3:.1f} | {median / base:.2f} | {compile_s[name]:.1f} |")


if __name__ == "__main__":
    main()

"""Int8 inference side by side, in one run: which maintained stack, and how far from the fused fp32 form.

Times batch-1 inference (interleaved round robin, medians) and clips/s at a larger batch of:

* the reference model, eager; ``fuse_for_inference()``, eager (oneDNN packed weights); the reference
  compiled by inductor (``freezing``), so that the int8 rows are also compared with a compiled fp32 one;
* bf16: the fused model under CPU autocast, where the CPU has AVX512-BF16 or AMX;
* PyTorch's eager ``quantize_dynamic`` of the Linear layers (``torch.ao``, deprecated: the floor to beat);
* ``vast.deploy.quantize``, dynamic and static: torchao's PT2E flow lowered by inductor to oneDNN int8;
* ONNX Runtime on the exported graph: fp32, int8 dynamic (``quantize_dynamic``) and int8 static (QDQ,
  ``quantize_static``, per-channel weights);
* the peer ``swin3d_t`` (torchvision) in the same forms where they apply;
* the streaming step of the causal model (``--stream``, one new frame per step at the clip's size, the
  state fp32 in every form): fp32 eager and compiled, bf16, and ``vast.streaming.quantize`` dynamic and
  static (calibrated on random streams). ``fuse_for_inference`` has no streaming form, so the step's
  base is its eager fp32 form.

Static quantisation is calibrated on random clips here: the speed of an int8 graph does not depend on
its scales. Accuracy is measured on trained models, not here. It also reports weight bytes and the
peak tensor memory of one batch-1 pass (PyTorch forms; ONNX Runtime's allocations are not PyTorch's).

Usage::

    python benchmarks/bench_quantize.py [--model vast_tiny] [--input 1,3,8,224,224] [--threads 2] [--stream]
"""

from __future__ import annotations

import argparse
import copy
import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch._inductor import config as inductor_config

import vast
from vast.bench import machine_info, tuned_malloc
from vast.bench.memory import MB, peak_memory, tensor_bytes
from vast.bench.timing import interleaved_times
from vast.deploy import fuse_for_inference, packed_bytes, quantize
from vast.streaming.classifier import StreamingStep
from vast.streaming.quantize import quantize_streaming_step

CPU_FLAGS = ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


def cpu_flags() -> list[str]:
    """The int8 / bf16 instruction sets of this CPU that decide which kernels oneDNN can use."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split("\nflags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return []
    return [flag for flag in CPU_FLAGS if flag in flags]


class Form:
    """One way of running the model: a call on a batch, its weight bytes (counted after the first calls,
    which make oneDNN's packed copies), and its first call's seconds."""

    def __init__(
        self, call: Callable[[torch.Tensor], object], weight_bytes: Callable[[], int], torch_memory: bool = True
    ) -> None:
        self.call, self.weight_bytes, self.torch_memory, self.first_s = call, weight_bytes, torch_memory, 0.0


def torch_forms(
    model: nn.Module, example: torch.Tensor, calibration: list[torch.Tensor], bf16: bool
) -> dict[str, Form]:
    def weights(m: nn.Module = model) -> int:
        return tensor_bytes([*m.parameters(), *m.buffers()])

    fused = fuse_for_inference(copy.deepcopy(model)) if hasattr(model, "fuse_for_inference") else None
    forms = {"fp32 eager": Form(model, weights)}
    if fused is not None:
        forms["fp32 fused, eager"] = Form(fused, lambda: weights(fused) + packed_bytes(fused))
    forms["fp32 compiled (inductor, freezing)"] = Form(torch.compile(copy.deepcopy(model)), weights)
    if bf16:
        base = fused if fused is not None else model

        def bf16_call(x: torch.Tensor, base: nn.Module = base) -> object:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return base(x)

        forms["bf16 autocast" + (" fused" if fused is not None else "") + ", eager"] = Form(
            bf16_call, forms["fp32 fused, eager" if fused is not None else "fp32 eager"].weight_bytes
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice: this row is the floor, kept on purpose
        eager_dynamic = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    forms["int8 dynamic, torch.ao eager (the floor)"] = Form(eager_dynamic, lambda: _saved_bytes(eager_dynamic))
    for mode in ("dynamic", "static"):
        quantized = quantize(model, mode, example=example, calibration=calibration if mode == "static" else None)
        forms[f"int8 {mode}, vast.deploy.quantize (torchao PT2E, inductor)"] = Form(quantized, quantized.weight_bytes)
    return forms


def stream_forms(model: nn.Module, frame_shape: tuple[int, ...], calibration: list[torch.Tensor],
                 bf16: bool) -> dict[str, Form]:  # fmt: skip
    """One step of the causal ``model``'s stream in each form, called as ``form(frames)`` with a fixed state
    (the values of the state do not change the work of a step)."""
    step = StreamingStep(model)
    state = step.initial_state(torch.zeros(frame_shape))

    def weights() -> int:
        return tensor_bytes([*model.parameters(), *model.buffers()])

    def stepped(core: nn.Module) -> Callable[[torch.Tensor], object]:
        return lambda x: core(x, *state)

    forms = {"fp32 step, eager": Form(stepped(step), weights)}
    forms["fp32 step compiled (inductor, freezing)"] = Form(stepped(torch.compile(StreamingStep(model))), weights)
    if bf16:

        def bf16_call(x: torch.Tensor) -> object:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return step(x, *state)

        forms["bf16 autocast step, eager"] = Form(bf16_call, weights)
    for mode in ("dynamic", "static"):
        quantized = quantize_streaming_step(model, mode, frame_shape, calibration if mode == "static" else None)
        forms[f"int8 {mode} step, vast.streaming.quantize"] = Form(stepped(quantized), quantized.weight_bytes)
    return forms


def run_stream(name: str, shape: tuple[int, ...], args: argparse.Namespace, bf16: bool) -> None:
    model = vast.create_model(name, causal=True).eval()
    t_patch = StreamingStep(model).t_patch
    frame_shape = (1, shape[1], t_patch, *shape[3:])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(frame_shape, generator=gen)
    calibration = [torch.randn((1, *shape[1:]), generator=gen) for _ in range(max(1, args.calibration // 2))]
    with torch.no_grad():
        forms = stream_forms(model, frame_shape, calibration, bf16)
        failed = drop_failing(forms, x)
        one = measure(forms, x, args.repeats * 3)  # a step is short: more rounds for a steady median
    title = f"{name} (causal) streaming step, {t_patch} new frame(s) of {shape[3]} x {shape[4]}"
    print_table(title, forms, one, None, 1, "fp32 step, eager", x)
    for form, reason in failed.items():
        print(f"| {form} | fails on this model: {reason} | | | | | |")


def _saved_bytes(model: nn.Module) -> int:
    """Bytes of the saved state dict (an eager-quantised model keeps its int8 weights packed, out of sight
    of ``parameters()``)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def onnx_forms(
    model: nn.Module, example: torch.Tensor, calibration: list[torch.Tensor], folder: Path, threads: int
) -> dict[str, Form]:
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, pre = folder / "model.onnx", folder / "model-pre.onnx"
    batch = torch.export.Dim("batch", max=4096)
    torch.onnx.export(model, (example,), str(fp32), input_names=["video"], output_names=["logits"],
                      dynamic_shapes=({0: batch},), dynamo=True, external_data=False)  # fmt: skip
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)

    class Clips(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"video": c.numpy()} for c in calibration])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    files = {
        "fp32": fp32,
        "int8 dynamic": folder / "model-dynamic.onnx",
        "int8 static (QDQ)": folder / "model-qdq.onnx",
    }
    quantize_dynamic(str(pre), str(files["int8 dynamic"]), weight_type=QuantType.QInt8)
    quantize_static(str(pre), str(files["int8 static (QDQ)"]), Clips(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # ORT's threads spin after each run by default, which would take the cores from the next form timed.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    forms = {}
    for name, path in files.items():
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def call(x: torch.Tensor, session: ort.InferenceSession = session) -> object:
            return session.run(None, {"video": x.numpy()})[0]

        forms[f"{name}, ONNX Runtime"] = Form(call, path.stat().st_size.__int__, torch_memory=False)
    return forms


def drop_failing(forms: dict[str, Form], x: torch.Tensor) -> dict[str, str]:
    """Call each form once (its compile, timed); a form that fails on this model is dropped, its error kept."""
    failed = {}
    for name, form in list(forms.items()):
        start = time.perf_counter()
        try:
            form.call(x)
        except Exception as exc:  # a table row, not a crash: e.g. torch.ao on torchvision's Swin
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
            del forms[name]
            continue
        form.first_s = time.perf_counter() - start
    return failed


def measure(forms: dict[str, Form], x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds per batch, every form timed in each round (after a warm-up call of each)."""
    for form in forms.values():
        form.call(x)
    runners = {name: (lambda f=form: f.call(x)) for name, form in forms.items()}
    times = interleaved_times(runners, dict.fromkeys(forms, repeats))
    return {name: statistics.median(values) for name, values in times.items()}


def print_table(title: str, forms: dict[str, Form], one: dict[str, float], many: dict[str, float] | None, batch: int,
                base: str, x: torch.Tensor) -> None:  # fmt: skip
    print(f"\n### {title}\n")
    unit = "clips" if many else "steps"
    columns = f"batch 1 ms | speed-up over {base} | {unit}/s at batch {batch} | weight MB | peak MB, batch 1"
    print(f"| form | {columns} | first call s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, form in forms.items():
        peak = "n/a"
        if form.torch_memory:
            peak = (
                f"{peak_memory(lambda f=form: f.call(x), x.device, form.weight_bytes() + tensor_bytes([x])) / MB:.0f}"
            )
        rate = f"{batch / (many or one)[name]:.2f}"
        print(f"| {name} | {one[name] * 1e3:.1f} | {one[base] / one[name]:.2f}x | {rate} | "
              f"{form.weight_bytes() / MB:.1f} | {peak} | {form.first_s:.0f} |")  # fmt: skip


def run_model(title: str, model: nn.Module, shape: tuple[int, ...], args: argparse.Namespace, bf16: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    batch = torch.randn((args.batch, *shape[1:]), generator=gen)
    calibration = [torch.randn((2, *shape[1:]), generator=gen) for _ in range(args.calibration // 2)]
    with torch.no_grad():
        forms = torch_forms(model, x, calibration, bf16)
        with tempfile.TemporaryDirectory() as folder:
            forms.update(onnx_forms(model, batch, calibration, Path(folder), args.threads))
            failed = drop_failing(forms, x)
            one = measure(forms, x, args.repeats)
            many = measure(forms, batch, max(3, args.repeats // 3))
    base = next(name for name in forms if "fused" in name) if any("fused" in n for n in forms) else "fp32 eager"
    print_table(title, forms, one, many, args.batch, base, x)
    for name, reason in failed.items():
        print(f"| {name} | fails on this model: {reason} | | | | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description="int8 inference stacks side by side, in one run")
    parser.add_argument("--model", default="vast_tiny", help="a VAST / AST model ('none': the peer only)")
    parser.add_argument("--input", default="1,3,8,224,224")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4, help="batch of the clips/s column")
    parser.add_argument("--calibration", type=int, default=8, help="random clips that calibrate the static forms")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--stream", action="store_true", help="also time the causal model's streaming step")
    parser.add_argument("--peer", default="swin3d_t", help="a torchvision video model in the same run ('' for none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = tuple(int(s) for s in args.input.split(","))
    flags = cpu_flags()
    bf16 = any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    print(f"machine: {machine_info(torch.device('cpu'))['cpu']}, {args.threads} threads; int8 / bf16 flags: "
          f"{', '.join(flags) or 'none'}; torch {torch.__version__}")  # fmt: skip
    with tuned_malloc(True), inductor_config.patch(freezing=True):
        if args.model != "none":
            run_model(f"{args.model} at {shape}", vast.create_model(args.model).eval(), shape, args, bf16)
            if args.stream:
                run_stream(args.model, shape, args, bf16)
        if args.peer:
            import torchvision

            peer = getattr(torchvision.models.video, args.peer)().eval()
            run_model(f"{args.peer} (torchvision) at {shape}", peer, shape, args, bf16)


if __name__ == "__main__":
    main()

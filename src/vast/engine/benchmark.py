"""Side-by-side speed and memory of video models: the measuring code behind ``vast bench``.

Every figure of one report comes from one process, with the same input, dtype and thread settings:

* **GMACs**: :func:`vast.count_flops` (``torch.utils.flop_counter``, multiply-adds) for VAST and the
  torchvision peers alike, counted once per input on the ``meta`` device.
* **latency**: batch 1, the median of timed forward passes after untimed warm-up passes.
* **throughput**: clips per second at a larger batch, timed the same way.
* **achieved GMAC/s** = GMACs / latency, and its share of the machine's matmul rate, a square
  ``torch.mm`` of the same dtype timed in the same run (the practical peak of the machine).
* **peak memory** of inference and of one training step (forward, backward, optimiser step), see
  :func:`peak_memory`.

The machines this runs on are often shared, so timed passes are *interleaved*: one pass of every model
(and of the matmul) per round, rounds repeated, medians taken. A slow phase of the machine then slows
every model alike instead of one of them, and ratios between rows stay meaningful.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import dataclasses
import difflib
import gc
import json
import logging
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from vast.errors import ConfigError, InputShapeError, UnknownModelError
from vast.models import count_flops, create_model, list_models
from vast.ops.linear import onednn_linear_available, onednn_linear_enabled, packed_bytes, set_onednn_linear

_logger = logging.getLogger(__name__)

PEERS = ("swin3d_t", "mvit_v2_s", "r2plus1d_18", "s3d")
COMMON_INPUT = (1, 3, 8, 224, 224)
# As trained, as deployed (``fuse_for_inference``), and as deployed at about swin3d_t's compute.
DEFAULT_MODELS = ("vast_tiny", "vast_tiny:fused=True", "vast_tiny:t_patch=2,fused=True")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SCALING_FRAMES = (4, 8, 16, 32)
SCALING_SIZES = (112, 160, 224, 320)
RESULT_COLUMNS = (
    "model",
    "input",
    "params_m",
    "gmacs",
    "latency_ms",
    "latency_min_ms",
    "latency_max_ms",
    "repeats",
    "gmacs_per_s",
    "pct_matmul_peak",
    "throughput_batch",
    "throughput_clips_s",
    "infer_peak_mb",
    "train_peak_mb",
    "train_mb_per_gmac",
    "compile_s",
    "shift_pct",
)
SCALING_COLUMNS = (
    "model",
    "axis",
    "frames",
    "size",
    "tokens",
    "gmacs",
    "latency_ms",
    "time_ratio",
    "token_ratio",
    "growth",
    "infer_peak_mb",
    "memory_ratio",
)
_MB = 2**20


# --------------------------------------------------------------------------------------------------
# What to measure
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One row of a benchmark: a model (with options) at one input.

    ``name`` is a VAST model (``vast_tiny``) or a torchvision video model (``swin3d_t``); ``options`` are
    VAST constructor options (``t_patch=2``); ``input_shape`` is one clip, ``(1, 3, T, H, W)``; ``note``
    says where the input comes from (``common``, ``weights``).
    """

    name: str
    input_shape: tuple[int, ...]
    options: tuple[tuple[str, Any], ...] = ()
    note: str = ""

    @property
    def is_vast(self) -> bool:
        return self.name in list_models()

    @property
    def fused(self) -> bool:
        """A VAST model rebuilt with ``fuse_for_inference`` (option ``fused=True``): inference only."""
        return bool(dict(self.options).get("fused", False))

    @property
    def unfused(self) -> ModelSpec:
        """The same row without ``fused`` (the trained model: its params and GMACs)."""
        options = tuple((k, v) for k, v in self.options if k != "fused")
        return dataclasses.replace(self, options=options)

    @property
    def model_label(self) -> str:
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.options)

    @property
    def input_label(self) -> str:
        return "x".join(str(d) for d in self.input_shape[2:])

    @property
    def key(self) -> str:
        return f"{self.model_label} @ {self.input_label}"


@dataclass
class BenchSettings:
    """How to measure. ``threads=None`` keeps torch's current setting."""

    device: str = "cpu"
    dtype: str = "fp32"
    threads: int | None = None
    compile: bool = False  # torch.compile (inductor, frozen weights) for the timed passes
    onednn: bool = True  # VAST's projections on oneDNN in inference (vast.ops.linear); False: F.linear
    channels_last: bool = False
    warmup: int = 2
    repeats: int = 5
    row_budget_s: float = 8.0  # seconds per row and phase: heavy rows get fewer repeats (at least 3)
    throughput_batch: int = 4
    throughput_gmacs_budget: float = 160.0  # a row of more GMACs per clip is timed at a batch of 2
    throughput_repeats: int = 3
    memory: bool = True
    train_memory: bool = True
    matmul_size: int = 4096
    progress: bool = True


@dataclass
class BenchResult:
    """The measured figures of one :class:`ModelSpec` (memory in MiB, ``None`` where not measured)."""

    model: str
    input: str
    params_m: float
    gmacs: float
    latency_ms: float
    latency_min_ms: float
    latency_max_ms: float
    repeats: int
    gmacs_per_s: float
    pct_matmul_peak: float
    throughput_batch: int | None = None
    throughput_clips_s: float | None = None
    infer_peak_mb: float | None = None
    train_peak_mb: float | None = None
    train_mb_per_gmac: float | None = None
    compile_s: float | None = None
    shift_pct: float | None = None

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in RESULT_COLUMNS}


@dataclass
class BenchReport:
    """Results of one run with the machine, settings and the matmul rate they are relative to."""

    results: list[BenchResult]
    matmul_gmacs_per_s: float
    settings: dict[str, Any]
    machine: dict[str, Any]
    scaling: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # rows that cannot run here, with the reason

    def to_json(self) -> dict[str, Any]:
        return dict(
            machine=self.machine,
            settings=self.settings,
            matmul_gmacs_per_s=self.matmul_gmacs_per_s,
            results=[r.row() for r in self.results],
            scaling=self.scaling,
            skipped=self.skipped,
        )


# --------------------------------------------------------------------------------------------------
# Names, inputs, devices
# --------------------------------------------------------------------------------------------------


def peer_names() -> list[str]:
    """The torchvision video models that can be benchmarked by name."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models.video))


def parse_model_arg(text: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``"vast_tiny:t_patch=2,norm=layernorm"`` -> ``("vast_tiny", (("t_patch", 2), ("norm", "layernorm")))``.

    Raises :class:`UnknownModelError` for a name that is neither a VAST nor a torchvision video model.
    """
    name, _, rest = text.partition(":")
    known = list_models() + peer_names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise UnknownModelError(f"unknown model {name!r}; {hint}")
    options = []
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"model options are KEY=VALUE, got {item!r} in {text!r}; e.g. vast_tiny:t_patch=2")
        if name not in list_models():
            raise ConfigError(f"options ({item!r}) apply to VAST models only, not to {name}")
        try:
            options.append((key, ast.literal_eval(value)))
        except (ValueError, SyntaxError):
            options.append((key, value))
    return name, tuple(options)


def weights_input(name: str) -> tuple[int, ...]:
    """The clip a torchvision video model's default weights were evaluated with, ``(1, 3, T, S, S)``.

    The crop size comes from the weights' eval transforms and the clip length from their documented
    ``clip_len`` (falling back to ``min_temporal_size``); nothing is downloaded.
    """
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    crop = weights.transforms().crop_size
    match = re.search(r"clip_len=(\d+)", weights.meta.get("_docs", ""))
    frames = int(match.group(1)) if match else int(weights.meta.get("min_temporal_size", COMMON_INPUT[2]))
    return (1, 3, frames, int(crop[0]), int(crop[-1]))


def _accepts(name: str, shape: tuple[int, ...]) -> bool:
    """Whether the torchvision model ``name`` runs on ``shape`` (tried on the meta device)."""
    try:
        with torch.device("meta"):
            model = _build(ModelSpec(name, shape)).eval()
            with torch.no_grad():
                model(torch.empty(shape))
    except (RuntimeError, ValueError, AssertionError):
        return False
    return True


def common_input(name: str, shape: tuple[int, ...] = COMMON_INPUT) -> tuple[int, ...]:
    """``shape``, or for a model that cannot take it the same clip with 2x, 4x ... the frames
    (``mvit_v2_s`` needs 16 frames, ``s3d`` at least 14)."""
    for factor in (1, 2, 4, 8):
        candidate = (*shape[:2], shape[2] * factor, *shape[3:])
        if _accepts(name, candidate):
            return candidate
    raise InputShapeError(f"{name} accepts none of the clips {shape} with 1x to 8x the frames")


def default_specs(
    models: Sequence[str] = (), peers: bool = False, shape: tuple[int, ...] = COMMON_INPUT, quick: bool = False
) -> list[ModelSpec]:
    """The rows of ``vast bench``: ``models`` (default :data:`DEFAULT_MODELS`) at ``shape`` and, with
    ``peers``, every peer at ``shape`` (or the nearest clip it accepts) and at its weights' input
    (unless ``quick``)."""
    specs = []
    for text in models or DEFAULT_MODELS:
        name, options = parse_model_arg(text)
        note = "common" if name in list_models() else "given"
        specs.append(ModelSpec(name, shape, options, note))
    if peers:
        for name in PEERS:
            common = common_input(name, shape)
            specs.append(ModelSpec(name, common, (), "common" if common == shape else "nearest accepted"))
            native = weights_input(name)
            if not quick and native != common:
                specs.append(ModelSpec(name, native, (), "weights"))
    return specs


def resolve_device(name: str) -> torch.device:
    """``cpu`` or ``cuda[:N]``; anything else, or CUDA on a machine without it, is a :class:`ConfigError`."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu or cuda (cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported by the benchmark; use cpu or cuda (cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but no CUDA GPU is visible on this machine; use --device cpu")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU / GPU model, core count, library versions: the context every table must state."""
    import os

    import torchvision

    cpu = platform.processor() or platform.machine()
    cpuinfo: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor's block is enough
            cpuinfo.setdefault(key.strip(), value.strip())
    cpu = cpuinfo.get("model name", cpu)
    # The model name alone can hide the generation ("AMD EPYC" under KVM), which decides how fast MKL
    # and oneDNN run: keep the family and model numbers and the widest vector extension.
    if "cpu family" in cpuinfo and "model" in cpuinfo:
        cpu += f", family {cpuinfo['cpu family']} model {cpuinfo['model']}"
    if "avx512f" in cpuinfo.get("flags", "").split():
        cpu += ", AVX-512"
    info: dict[str, Any] = dict(
        cpu=cpu,
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        torchvision=torchvision.__version__,
        python=platform.python_version(),
        platform=platform.platform(),
    )
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


# --------------------------------------------------------------------------------------------------
# Building and timing
# --------------------------------------------------------------------------------------------------


def _build(spec: ModelSpec) -> nn.Module:
    if spec.is_vast:
        options = dict(spec.options)
        fused = bool(options.pop("fused", False))
        model = create_model(spec.name, num_classes=400, **options)
        return model.eval().fuse_for_inference() if fused else model
    import torchvision

    return torchvision.models.get_model(spec.name, weights=None, num_classes=400)


def build_model(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype = torch.float32, channels_last: bool = False
) -> nn.Module:
    """The model of ``spec`` in eval mode on ``device`` / ``dtype``; ``channels_last`` stores its 5-D
    (Conv3d) weights channels-last (NDHWC)."""
    model = _build(spec).to(device=device, dtype=dtype).eval()
    return model.to(memory_format=torch.channels_last_3d) if channels_last else model


def make_input(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype = torch.float32, batch: int = 1,
    channels_last: bool = False,
) -> torch.Tensor:  # fmt: skip
    """A seeded random input of ``batch`` clips of ``spec``'s shape (channels-last if asked)."""
    x = torch.randn((batch, *spec.input_shape[1:]), generator=torch.Generator().manual_seed(0))
    x = x.to(device=device, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x


def compile_model(model: nn.Module, example: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.compile`` for inference, with inductor's weight ``freezing`` (weights become constants
    that it can fold and pre-pack), set around every call since compilation happens on the first one.

    ``example``, if given, is run once in eager mode first (one-time work of the eager model, such as
    packing a fused VAST model's oneDNN weights, is then not mistaken for compiled time).
    """
    from torch._inductor import config

    if example is not None:
        _inference(model, example)()
    compiled = torch.compile(model)

    def run(x: torch.Tensor) -> torch.Tensor:
        with config.patch(freezing=True):
            return compiled(x)

    return run


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _inference(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return fn(x)

    return run


def interleaved_times(
    runners: dict[str, Callable[[], Any]],
    counts: dict[str, int],
    sync: Callable[[], None] = lambda: None,
    on_pass: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds of ``counts[key]`` timed calls of each runner, interleaved round robin (A B C A B C ...)
    so that a slow phase of a shared machine affects every runner alike."""
    times: dict[str, list[float]] = {key: [] for key in runners}
    while any(len(times[k]) < counts[k] for k in runners):
        for key, fn in runners.items():
            if len(times[key]) >= counts[key]:
                continue
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[key].append(time.perf_counter() - start)
            if on_pass is not None:
                on_pass(key)
    return times


def matmul_runners(device: torch.device, dtype: torch.dtype, size: int) -> tuple[dict[str, Callable[[], Any]], float]:
    """Square ``size`` matmuls and their multiply-adds (in G): ``torch.mm`` into a preallocated output
    (the BLAS: MKL on x86 CPUs, cuBLAS on GPUs) and, on a CPU with oneDNN, oneDNN's inner product with
    a pre-packed weight. The faster one is the machine's matmul rate that models are compared with."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    runners: dict[str, Callable[[], Any]] = {"matmul blas": lambda: torch.mm(a, b, out=out)}
    if device.type == "cpu" and onednn_linear_available():
        packed = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous())
        runners["matmul onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
    return runners, size**3 / 1e9


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views of one storage count once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if t is None or t.device.type == "meta":
            continue
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def peak_memory(fn: Callable[[], Any], device: torch.device, resident: int) -> int:
    """Peak bytes held by tensors while ``fn()`` runs: ``resident`` (what was allocated before, e.g. the
    weights, the optimiser state and the input) plus the highest the allocator's live total rises.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset of the peak (``resident`` is then read from
    the allocator instead). CPU: PyTorch keeps no allocator statistics there, so the profiler records
    every allocation and free of the CPU allocator (``profile_memory=True``, sizes in bytes) and the
    peak of their running sum is taken. This is the tensor memory, the same quantity on both devices;
    not the process RSS, which also holds the interpreter, the libraries and whatever glibc keeps cached,
    and whose peak (``ru_maxrss``) never goes down, so it cannot tell models in one process apart.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [
        e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() == DeviceType.CPU
    ]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        peak = max(peak, running)
    return resident + peak


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what the profiler's C++ side writes straight to file descriptor 2 (start/stop notes, and a
    CUDA-device error on CUDA builds without a GPU); Python's own errors still propagate as exceptions."""
    import os
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def inference_peak(model: nn.Module, x: torch.Tensor, fn: Callable[[torch.Tensor], Any] | None = None) -> int:
    """Peak tensor bytes of one inference pass of ``fn`` (default ``model``), weights and input included,
    and the oneDNN-packed copies of the weights that earlier passes made (``vast.ops.linear``)."""
    weights = [*model.parameters(), *model.buffers()]
    resident = tensor_bytes([*weights, x]) + packed_bytes(weights)
    return peak_memory(_inference(fn or model, x), x.device, resident)


def training_peak(spec: ModelSpec, device: torch.device, dtype: torch.dtype, channels_last: bool = False) -> int:
    """Peak tensor bytes of one training step (forward, backward, AdamW step) on one clip, eager.

    Weights stay fp32; ``bf16`` trains under autocast, as mixed precision is used in practice. The first
    step (which creates the optimiser state) is not measured; the second is, with the gradients freed
    in between (``zero_grad(set_to_none=True)``), so the gradients count as part of the step.
    """
    model = build_model(spec, device, torch.float32, channels_last).train()
    x = make_input(spec, device, torch.float32, channels_last=channels_last)
    target = torch.zeros(x.shape[0], dtype=torch.long, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(model(x).float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    resident = tensor_bytes([*model.parameters(), *model.buffers(), *state, x])
    return peak_memory(step, device, resident)


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _applied(settings: BenchSettings) -> Iterator[None]:
    """The thread count and VAST's linear backend that ``settings`` ask for, restored afterwards."""
    threads, onednn = torch.get_num_threads(), onednn_linear_enabled()
    if settings.threads is not None:
        if settings.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {settings.threads}")
        torch.set_num_threads(settings.threads)
    set_onednn_linear(settings.onednn and onednn)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        set_onednn_linear(onednn)


def _repeat_counts(first: dict[str, float], settings: BenchSettings) -> dict[str, int]:
    """Repeats per row: ``settings.repeats``, fewer for rows so slow that they would exceed
    ``row_budget_s`` (at least 3, so a median exists)."""
    return {
        key: max(min(3, settings.repeats), min(settings.repeats, int(settings.row_budget_s / max(sec, 1e-9))))
        for key, sec in first.items()
    }


class _Runners:
    """The models of a run (one per model and options, shared by its inputs), compiled once if asked."""

    def __init__(self, settings: BenchSettings, device: torch.device, dtype: torch.dtype) -> None:
        self.settings, self.device, self.dtype = settings, device, dtype
        self.models: dict[str, nn.Module] = {}
        self.callables: dict[str, Callable[[torch.Tensor], Any]] = {}

    def model(self, spec: ModelSpec) -> nn.Module:
        if spec.model_label not in self.models:
            model = build_model(spec, self.device, self.dtype, self.settings.channels_last)
            self.models[spec.model_label] = model
            example = make_input(spec, self.device, self.dtype, channels_last=self.settings.channels_last)
            self.callables[spec.model_label] = compile_model(model, example) if self.settings.compile else model
        return self.models[spec.model_label]

    def runner(self, spec: ModelSpec, batch: int = 1) -> Callable[[], Any]:
        self.model(spec)
        x = make_input(spec, self.device, self.dtype, batch, self.settings.channels_last)
        return _inference(self.callables[spec.model_label], x)


def _first_round(
    runners: dict[str, Callable[[], Any]], sync: Callable[[], None], advance: Callable[[str], None]
) -> tuple[dict[str, float], dict[str, str]]:
    """One untimed-for-the-median pass of every runner (it also compiles): the seconds of each, and the
    runners that cannot run here (e.g. an operator without a bf16 CPU kernel) with the reason, one line."""
    first: dict[str, float] = {}
    failed: dict[str, str] = {}
    for key, fn in runners.items():
        try:
            first[key] = interleaved_times({key: fn}, {key: 1}, sync, advance)[key][0]
        except (NotImplementedError, RuntimeError) as error:
            failed[key] = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            advance(key)
    for key in failed:
        del runners[key]
    return first, failed


def _warm_and_time(
    runners: dict[str, Callable[[], Any]],
    settings: BenchSettings,
    sync: Callable[[], None],
    bar: tqdm,
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, str]]:
    """Warm-up rounds (the first also compiles), then the timed rounds; returns the times, the seconds of
    each runner's first call, and the runners that failed on their first call (removed from ``runners``)."""

    def advance(key: str) -> None:
        bar.set_postfix_str(key, refresh=False)
        bar.update()

    first_call, failed = _first_round(runners, sync, advance)
    last = first_call
    for _ in range(settings.warmup - 1):
        last = {k: v[0] for k, v in interleaved_times(runners, dict.fromkeys(runners, 1), sync, advance).items()}
    counts = _repeat_counts(last, settings)
    bar.total = bar.n + sum(counts.values()) + (bar.total - bar.n - len(runners) * settings.repeats)
    return interleaved_times(runners, counts, sync, advance), first_call, failed


def run_benchmark(specs: Sequence[ModelSpec], settings: BenchSettings) -> BenchReport:
    """Measure every spec (see the module docstring) and return the report."""
    device, dtype = resolve_device(settings.device), resolve_dtype(settings.dtype)
    if not specs:
        raise ConfigError("nothing to benchmark: give at least one model")
    with _applied(settings):
        sync = _sync(device)
        flops = {spec.key: count_flops(_meta_model(spec.unfused), spec.input_shape) for spec in specs}
        bar = tqdm(total=_total_passes(specs, settings), desc="bench", unit="pass", disable=not settings.progress)
        pool = _Runners(settings, device, dtype)
        runners = {spec.key: pool.runner(spec) for spec in specs}
        matmuls, matmul_gmacs = matmul_runners(device, dtype, settings.matmul_size)
        runners.update(matmuls)
        shift_runners = {} if settings.compile else _shift_runners(specs, pool, device, dtype, settings)
        runners.update(shift_runners)
        times, first_call, failed = _warm_and_time(runners, settings, sync, bar)
        skipped = {spec.key: failed[spec.key] for spec in specs if spec.key in failed}
        for key in set(failed) - set(skipped):  # a shift replay of a row that runs cannot fail alone
            raise RuntimeError(f"{key}: {failed[key]}")
        specs = [spec for spec in specs if spec.key not in skipped]
        if not specs:
            raise ConfigError(f"no model can run on {settings.device} {settings.dtype}: " + "; ".join(
                f"{key}: {reason}" for key, reason in skipped.items()))  # fmt: skip
        matmul_rates = {key: matmul_gmacs / statistics.median(times.pop(key)) for key in matmuls}
        matmul_rate = max(matmul_rates.values())
        shift_s = {key: statistics.median(times.pop(key)) for key in shift_runners if key in times}
        throughput = _throughput(specs, settings, pool, flops, sync, bar)
        results = [
            _result(spec, flops[spec.key], times[spec.key], matmul_rate, throughput.get(spec.key)) for spec in specs
        ]
        for spec, result in zip(specs, results):
            if settings.compile:
                result.compile_s = first_call[spec.key]
            if f"shift {spec.key}" in shift_s:
                result.shift_pct = 100.0 * shift_s[f"shift {spec.key}"] / (result.latency_ms / 1e3)
        del runners, pool
        _release(device)
        if settings.memory:
            _measure_memory(specs, results, settings, device, dtype, bar)
        bar.close()
    return BenchReport(
        results=results,
        matmul_gmacs_per_s=matmul_rate,
        settings=dict(dataclasses.asdict(settings), matmul_gmacs=matmul_gmacs, matmul_rates=matmul_rates),
        machine=machine_info(device),
        skipped=skipped,
    )


def _shift_runners(
    specs: Sequence[ModelSpec], pool: _Runners, device: torch.device, dtype: torch.dtype, settings: BenchSettings
) -> dict[str, Callable[[], Any]]:
    """For each VAST row, every token shift of one forward pass replayed on its own (same shapes and
    strides, fresh data): its time over the forward's is the shift's share of the forward pass."""
    runners = {}
    for spec in specs:
        if not spec.is_vast:
            continue
        x = make_input(spec, device, dtype, channels_last=settings.channels_last)
        calls = _shift_calls(pool.model(spec), x)
        runners[f"shift {spec.key}"] = _shift_replay(calls)
    return runners


def _shift_calls(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
    """The token-shift modules called in one forward pass, each with a fresh tensor shaped and
    strided like its input."""
    from vast.ops.shift import TokenShift

    calls: list[tuple[nn.Module, torch.Tensor]] = []

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        t = args[0]
        calls.append((module, torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device).normal_()))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, TokenShift)]
    try:
        _inference(model, x)()
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def _shift_replay(calls: list[tuple[nn.Module, torch.Tensor]]) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            for module, x in calls:
                module(x)

    return run


def _result(
    spec: ModelSpec,
    flops: tuple[float, int],
    times: list[float],
    matmul_rate: float,
    throughput: tuple[int, float] | None,
) -> BenchResult:
    gmacs, params = flops
    latency = statistics.median(times)
    rate = gmacs / latency
    batch, clips = throughput if throughput is not None else (None, None)
    return BenchResult(
        model=spec.model_label,
        input=spec.input_label,
        params_m=params / 1e6,
        gmacs=gmacs,
        latency_ms=latency * 1e3,
        latency_min_ms=min(times) * 1e3,
        latency_max_ms=max(times) * 1e3,
        repeats=len(times),
        gmacs_per_s=rate,
        pct_matmul_peak=100.0 * rate / matmul_rate,
        throughput_batch=batch,
        throughput_clips_s=clips,
    )


def _meta_model(spec: ModelSpec) -> nn.Module:
    with torch.device("meta"):
        return _build(spec)


def _throughput_batch(gmacs: float, settings: BenchSettings) -> int:
    if gmacs * settings.throughput_batch <= settings.throughput_gmacs_budget:
        return settings.throughput_batch
    return min(settings.throughput_batch, 2)


def _throughput(
    specs: Sequence[ModelSpec],
    settings: BenchSettings,
    pool: _Runners,
    flops: dict[str, tuple[float, int]],
    sync: Callable[[], None],
    bar: tqdm,
) -> dict[str, tuple[int, float]]:
    """Clips per second at the throughput batch, interleaved like the latency (eager or compiled as set)."""
    if settings.throughput_batch <= 1 or settings.throughput_repeats < 1:
        return {}
    batches = {spec.key: _throughput_batch(flops[spec.key][0], settings) for spec in specs}
    runners = {spec.key: pool.runner(spec, batches[spec.key]) for spec in specs}

    def advance(key: str) -> None:
        bar.set_postfix_str(f"batch {batches[key]} {key}", refresh=False)
        bar.update()

    for _ in range(max(1, settings.warmup - 1, 2 if settings.compile else 1)):  # warm-up (and recompiles)
        first = interleaved_times(runners, dict.fromkeys(runners, 1), sync, advance)
    counts = {  # as many timed passes as the row budget allows, at least one
        key: max(1, min(settings.throughput_repeats, int(settings.row_budget_s / max(t[0], 1e-9))))
        for key, t in first.items()
    }
    times = interleaved_times(runners, counts, sync, advance)
    return {key: (batches[key], batches[key] / statistics.median(t)) for key, t in times.items()}


def _measure_memory(
    specs: Sequence[ModelSpec],
    results: list[BenchResult],
    settings: BenchSettings,
    device: torch.device,
    dtype: torch.dtype,
    bar: tqdm,
) -> None:
    """Inference and training peaks, one model at a time, eager (what a user's training loop runs).
    Training is measured at the inputs of the comparison (``note != "weights"``): a step of the heavy
    weights-input clips (s3d's 128 frames) would take most of the run's time and many GB."""
    for spec, result in zip(specs, results):
        bar.set_postfix_str(f"memory {spec.key}", refresh=False)
        model = build_model(spec, device, dtype, settings.channels_last)
        x = make_input(spec, device, dtype, channels_last=settings.channels_last)
        _inference(model, x)()  # the first pass may allocate one-time workspaces
        result.infer_peak_mb = inference_peak(model, x) / _MB
        del model, x
        _release(device)
        bar.update()
        if settings.train_memory and not spec.fused and spec.note != "weights":
            result.train_peak_mb = training_peak(spec, device, dtype, settings.channels_last) / _MB
            result.train_mb_per_gmac = result.train_peak_mb / result.gmacs
            bar.update()


def _total_passes(specs: Sequence[ModelSpec], settings: BenchSettings) -> int:
    passes = (len(specs) + 1) * (max(settings.warmup, 1) + settings.repeats)
    if settings.throughput_batch > 1:
        passes += len(specs) * (1 + settings.throughput_repeats)
    if settings.memory:
        passes += len(specs) * (2 if settings.train_memory else 1)
    return passes


# --------------------------------------------------------------------------------------------------
# Scaling with frames and resolution
# --------------------------------------------------------------------------------------------------


def tokens_of(spec: ModelSpec) -> int:
    """Input voxels (T * H * W): proportional to every model's token count at a fixed patch size."""
    _, _, frames, height, width = spec.input_shape
    return frames * height * width


def scaling_specs(
    models: Sequence[str] = ("vast_tiny",),
    frames: Sequence[int] = SCALING_FRAMES,
    sizes: Sequence[int] = SCALING_SIZES,
    base: tuple[int, ...] = COMMON_INPUT,
) -> list[tuple[str, ModelSpec]]:
    """``(axis, spec)`` pairs: each model over ``frames`` at the base size, then over ``sizes`` at the base
    frame count."""
    out = []
    for text in models:
        name, options = parse_model_arg(text)
        for t in frames:
            out.append(("frames", ModelSpec(name, (*base[:2], t, base[3], base[4]), options, "scaling")))
        for s in sizes:
            out.append(("size", ModelSpec(name, (*base[:3], s, s), options, "scaling")))
    return out


def run_scaling(points: Sequence[tuple[str, ModelSpec]], settings: BenchSettings) -> list[dict[str, Any]]:
    """Latency and inference peak memory along each sweep, with the growth from one point to the next:
    ``growth = time_ratio / token_ratio`` is 1 for a cost exactly linear in the number of tokens."""
    device, dtype = resolve_device(settings.device), resolve_dtype(settings.dtype)
    rows: list[dict[str, Any]] = []
    with _applied(settings):
        sync = _sync(device)
        total = len(points) * (max(settings.warmup, 1) + settings.repeats + int(settings.memory))
        bar = tqdm(total=total, desc="scaling", unit="pass", disable=not settings.progress)
        pool = _Runners(settings, device, dtype)
        keys = [f"{axis} {spec.key}" for axis, spec in points]
        runners = {key: pool.runner(spec) for key, (_, spec) in zip(keys, points)}
        times, _, failed = _warm_and_time(runners, settings, sync, bar)
        if failed:
            raise ConfigError(f"cannot run the sweep on {settings.device} {settings.dtype}: " + "; ".join(
                f"{key}: {reason}" for key, reason in failed.items()))  # fmt: skip
        del runners
        previous: dict[tuple[str, str], dict[str, Any]] = {}
        for key, (axis, spec) in zip(keys, points):
            gmacs, _ = count_flops(_meta_model(spec), spec.input_shape)
            row: dict[str, Any] = dict.fromkeys(SCALING_COLUMNS)
            row.update(
                model=spec.model_label,
                axis=axis,
                frames=spec.input_shape[2],
                size=spec.input_shape[3],
                tokens=tokens_of(spec),
                gmacs=gmacs,
                latency_ms=statistics.median(times[key]) * 1e3,
            )
            if settings.memory:
                bar.set_postfix_str(f"memory {key}", refresh=False)
                x = make_input(spec, device, dtype, channels_last=settings.channels_last)
                row["infer_peak_mb"] = inference_peak(pool.model(spec), x) / _MB
                bar.update()
            before = previous.get((spec.model_label, axis))
            if before is not None:
                row["time_ratio"] = row["latency_ms"] / before["latency_ms"]
                row["token_ratio"] = row["tokens"] / before["tokens"]
                row["growth"] = row["time_ratio"] / row["token_ratio"]
                if row["infer_peak_mb"] is not None:
                    row["memory_ratio"] = row["infer_peak_mb"] / before["infer_peak_mb"]
            previous[(spec.model_label, axis)] = row
            rows.append(row)
        bar.close()
    return rows


# --------------------------------------------------------------------------------------------------
# torch.compile against eager
# --------------------------------------------------------------------------------------------------


COMPILE_COLUMNS = ("model", "input", "eager_ms", "compiled_ms", "speedup", "max_abs_diff", "compile_s")


def run_compile_comparison(specs: Sequence[ModelSpec], settings: BenchSettings) -> list[dict[str, Any]]:
    """Eager and ``torch.compile`` (see :func:`compile_model`) latency of each spec, interleaved in one
    loop, with the largest absolute difference between their outputs."""
    device, dtype = resolve_device(settings.device), resolve_dtype(settings.dtype)
    rows = []
    with _applied(settings):
        sync = _sync(device)
        bar = tqdm(total=len(specs) * 2 * (settings.warmup + settings.repeats), desc="compile", unit="pass",
                   disable=not settings.progress)  # fmt: skip
        runners, diffs, compile_s = {}, {}, {}
        for spec in specs:
            bar.set_postfix_str(f"compile {spec.key}", refresh=True)
            model = build_model(spec, device, dtype, settings.channels_last)
            x = make_input(spec, device, dtype, channels_last=settings.channels_last)
            compiled = compile_model(model, x)
            start = time.perf_counter()
            with torch.inference_mode():
                out = compiled(x)
                sync()
                compile_s[spec.key] = time.perf_counter() - start
                diffs[spec.key] = float((out.float() - model(x).float()).abs().max())
            runners[f"eager {spec.key}"] = _inference(model, x)
            runners[f"compiled {spec.key}"] = _inference(compiled, x)
        times, _, failed = _warm_and_time(runners, settings, sync, bar)
        bar.close()
    if failed:
        raise ConfigError("cannot run: " + "; ".join(f"{key}: {reason}" for key, reason in failed.items()))
    for spec in specs:
        eager, compiled = (statistics.median(times[f"{kind} {spec.key}"]) for kind in ("eager", "compiled"))
        rows.append(
            dict(
                model=spec.model_label,
                input=spec.input_label,
                eager_ms=eager * 1e3,
                compiled_ms=compiled * 1e3,
                speedup=eager / compiled,
                max_abs_diff=diffs[spec.key],
                compile_s=compile_s[spec.key],
            )
        )
    return rows


def format_compile(rows: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    header = ("model", "input TxHxW", "eager ms", "compiled ms", "speedup", "max |diff|", "compile s")
    lines = [
        (r["model"], r["input"], _fmt(r["eager_ms"], 0), _fmt(r["compiled_ms"], 0), _fmt(r["speedup"], 2),
         f"{r['max_abs_diff']:.1e}", _fmt(r["compile_s"], 0))
        for r in rows
    ]  # fmt: skip
    return _table(header, lines, markdown)


# --------------------------------------------------------------------------------------------------
# Tables and files
# --------------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_results(report: BenchReport, markdown: bool = False) -> str:
    """The result table (one row per model and input), plus the matmul reference row."""
    header = (
        "model",
        "input TxHxW",
        "params M",
        "GMACs",
        "latency ms",
        "GMAC/s",
        "% matmul",
        "clips/s (batch)",
        "infer MiB",
        "train MiB",
        "train MiB/GMAC",
        "shift %",
    )
    lines = []
    for r in report.results:
        tput = "-" if r.throughput_clips_s is None else f"{r.throughput_clips_s:.2f} ({r.throughput_batch})"
        lines.append(
            (
                r.model,
                r.input,
                _fmt(r.params_m),
                _fmt(r.gmacs, 2),
                _fmt(r.latency_ms, 0),
                _fmt(r.gmacs_per_s),
                _fmt(r.pct_matmul_peak, 0),
                tput,
                _fmt(r.infer_peak_mb, 0),
                _fmt(r.train_peak_mb, 0),
                _fmt(r.train_mb_per_gmac),
                _fmt(r.shift_pct),
            )
        )
    size, gmacs = report.settings.get("matmul_size"), report.settings.get("matmul_gmacs")
    for name, rate in (report.settings.get("matmul_rates") or {"matmul": report.matmul_gmacs_per_s}).items():
        pct = 100.0 * rate / report.matmul_gmacs_per_s
        lines.append((f"{name} {size}^3", "-", "-", _fmt(gmacs), "-", _fmt(rate), _fmt(pct, 0), *["-"] * 5))
    return _table(header, lines, markdown)


def format_comparison(report: BenchReport, reference: str = "swin3d_t") -> str:
    """Each VAST row against ``reference`` at the same input, as ratios of this run's figures (empty when
    the reference did not run): what a reader of the table would otherwise work out by hand."""
    rows = {(r.model, r.input): r for r in report.results}
    lines = []
    for r in report.results:
        ref = rows.get((reference, r.input))
        if ref is None or not r.model.startswith(("vast_", "ast_")):
            continue
        parts = [
            f"{r.gmacs / ref.gmacs:.2f}x the GMACs",
            f"{r.latency_ms / ref.latency_ms:.2f}x the latency",
            f"{r.gmacs_per_s / ref.gmacs_per_s:.2f}x the GMAC/s",
        ]
        if r.throughput_clips_s and ref.throughput_clips_s and r.throughput_batch == ref.throughput_batch:
            parts.append(f"{r.throughput_clips_s / ref.throughput_clips_s:.2f}x the clips/s")
        if r.train_peak_mb and ref.train_peak_mb:
            parts.append(f"{r.train_peak_mb / ref.train_peak_mb:.2f}x the training memory")
            parts.append(f"{r.train_mb_per_gmac / ref.train_mb_per_gmac:.2f}x per GMAC")
        lines.append(f"{r.model} vs {reference} @ {r.input}: " + ", ".join(parts))
    return "\n".join(lines)


def format_scaling(rows: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    header = ("model", "axis", "T", "HxW", "GMACs", "latency ms", "x time", "x tokens", "growth", "infer MiB", "x mem")
    lines = [
        (
            r["model"],
            r["axis"],
            str(r["frames"]),
            f"{r['size']}",
            _fmt(r["gmacs"], 2),
            _fmt(r["latency_ms"], 0),
            _fmt(r["time_ratio"], 2),
            _fmt(r["token_ratio"], 2),
            _fmt(r["growth"], 2),
            _fmt(r["infer_peak_mb"], 0),
            _fmt(r["memory_ratio"], 2),
        )
        for r in rows
    ]
    return _table(header, lines, markdown)


def _table(header: Sequence[str], lines: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    rule = fmt.format(*("-" * w for w in widths))
    return "\n".join([fmt.format(*header), rule] + [fmt.format(*line) for line in lines])


def write_report(report: BenchReport, out_dir: str | Path, stem: str = "bench") -> list[Path]:
    """``<stem>.json`` (everything), ``<stem>.csv`` (one row per model) and ``<stem>.png`` (latency
    against GMACs), plus ``scaling.csv`` / ``scaling.png`` when the report has a scaling sweep."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json"]
    paths[0].write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
    if report.results:
        paths.append(_write_csv(out / f"{stem}.csv", RESULT_COLUMNS, [r.row() for r in report.results]))
        paths.append(plot_latency_vs_gmacs(report, out / f"{stem}.png"))
    if report.scaling:
        paths.append(_write_csv(out / "scaling.csv", SCALING_COLUMNS, report.scaling))
        paths.append(plot_scaling(report.scaling, out / "scaling.png"))
    return paths


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c) for c in columns})
    return path


def plot_latency_vs_gmacs(report: BenchReport, path: str | Path) -> Path:
    """One point per model and input, named in the legend (labels written beside the points collide when
    models share a GMAC count); the dashed line is the latency at the machine's matmul rate
    (``GMACs / matmul GMAC/s``), a floor for dense models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    vast_colours = plt.get_cmap("Reds")
    peer_colours = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:cyan", "tab:olive")
    vast_rows = [r for r in report.results if r.model.startswith(("vast_", "ast_"))]
    peers = sorted({r.model for r in report.results} - {r.model for r in vast_rows})
    markers = "o^sDvP*X"
    for r in report.results:
        if r in vast_rows:
            i = vast_rows.index(r)
            colour, marker = vast_colours(0.45 + 0.5 * i / max(len(vast_rows) - 1, 1)), markers[i % len(markers)]
        else:
            i = peers.index(r.model)
            colour = peer_colours[i % len(peer_colours)]
            marker = "o" if r.input == report.results[0].input else "s"  # square: another input than row 1
        ax.scatter(r.gmacs, r.latency_ms, color=colour, marker=marker, s=60, zorder=3, edgecolors="black",
                   linewidths=0.5, label=f"{r.model} @ {r.input} ({r.latency_ms:.0f} ms)")  # fmt: skip
    gmacs = [r.gmacs for r in report.results]
    span = [min(gmacs) / 1.5, max(gmacs) * 1.5]
    ax.plot(span, [g / report.matmul_gmacs_per_s * 1e3 for g in span], "--", color="grey",
            label=f"at the matmul rate, {report.matmul_gmacs_per_s:.0f} GMAC/s")  # fmt: skip
    settings = report.settings
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("GMACs per clip (torch.utils.flop_counter)")
    ax.set_ylabel("latency at batch 1 (ms)")
    compiled = ", compiled" if settings.get("compile") else ""
    threads = settings.get("threads") or "default"
    title = f"{settings['device']} {settings['dtype']}, threads={threads}{compiled}; red: VAST, others: torchvision"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_scaling(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Latency against input voxels (log-log) for each model and sweep; a slope of 1 is linear."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["axis"]), []).append(row)
    for (model, axis), group in groups.items():
        ax.plot([g["tokens"] for g in group], [g["latency_ms"] for g in group], "o-", label=f"{model} ({axis})")
    first = rows[0]
    xs = sorted({r["tokens"] for r in rows})
    ax.plot(xs, [first["latency_ms"] * x / first["tokens"] for x in xs], ":", color="grey", label="linear")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input voxels T x H x W")
    ax.set_ylabel("latency at batch 1 (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)

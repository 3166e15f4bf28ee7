"""Side-by-side speed and memory of video models: the measuring code behind ``vast bench``.

Every figure of one report comes from one process, with the same input, dtype and thread settings.
One concern per module:

* :mod:`~vast.bench.specs`: what a row is (model, options, input), the peers, building a row's model;
* :mod:`~vast.bench.machine`: the device and dtype accepted, the machine a report states;
* :mod:`~vast.bench.settings`: how to measure, and the process settings a run asks for (restored after);
* :mod:`~vast.bench.timing`: interleaved timing, the matmul rate, clips per second;
* :mod:`~vast.bench.memory`: peak tensor memory of inference and of a training step;
* :mod:`~vast.bench.shift`: the token shift's share of a forward pass;
* :mod:`~vast.bench.runner`: one benchmark run and its results;
* :mod:`~vast.bench.scaling`: sweeps over frames and resolution;
* :mod:`~vast.bench.compiled`: ``torch.compile`` against eager;
* :mod:`~vast.bench.report` and :mod:`~vast.bench.plots`: tables, JSON, CSV and figures;
* :mod:`~vast.bench.allocator`: glibc's malloc setting that ``--malloc tuned`` opts in to;

Nothing here changes process-wide settings unless asked: threads only with ``BenchSettings.threads``
(restored afterwards), glibc's malloc only inside :func:`tuned_malloc`. Fused rows are built with
:func:`vast.deploy.fuse_for_inference`; ``--blas`` builds them with ``onednn=False`` (:func:`on_blas`).
"""

from vast.bench.allocator import tuned_malloc
from vast.bench.compiled import COMPILE_COLUMNS, compile_model, run_compile_comparison
from vast.bench.machine import DTYPES, machine_info, parse_device, parse_dtype
from vast.bench.memory import inference_peak, peak_memory, tensor_bytes, training_peak
from vast.bench.report import (
    format_comparison,
    format_compile,
    format_results,
    format_scaling,
    write_report,
)
from vast.bench.runner import RESULT_COLUMNS, BenchReport, BenchResult, run_benchmark
from vast.bench.scaling import SCALING_COLUMNS, SCALING_FRAMES, SCALING_SIZES, run_scaling, scaling_specs
from vast.bench.settings import BenchSettings
from vast.bench.specs import (
    COMMON_INPUT,
    DEFAULT_MODELS,
    TORCHVISION_PEERS,
    ModelSpec,
    build_model,
    common_input,
    default_specs,
    make_input,
    on_blas,
    parse_model_arg,
    weights_input,
)
from vast.bench.timing import interleaved_times

__all__ = [
    "COMMON_INPUT",
    "COMPILE_COLUMNS",
    "DEFAULT_MODELS",
    "DTYPES",
    "RESULT_COLUMNS",
    "SCALING_COLUMNS",
    "SCALING_FRAMES",
    "SCALING_SIZES",
    "TORCHVISION_PEERS",
    "BenchReport",
    "BenchResult",
    "BenchSettings",
    "ModelSpec",
    "build_model",
    "common_input",
    "compile_model",
    "default_specs",
    "format_comparison",
    "format_compile",
    "format_results",
    "format_scaling",
    "inference_peak",
    "interleaved_times",
    "machine_info",
    "make_input",
    "on_blas",
    "parse_device",
    "parse_dtype",
    "parse_model_arg",
    "peak_memory",
    "run_benchmark",
    "run_compile_comparison",
    "run_scaling",
    "scaling_specs",
    "tensor_bytes",
    "training_peak",
    "tuned_malloc",
    "weights_input",
    "write_report",
]

"""Where a benchmark runs: the ``--device`` and ``--dtype`` it accepts, and the machine every table states."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import torch

from vast.errors import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def parse_device(name: str) -> torch.device:
    """``cpu`` or ``cuda[:N]`` as a device; anything else, or CUDA on a machine without it, is a
    :class:`ConfigError`. Unlike ``vast.engine.distributed.resolve_device`` it takes no ``auto``, picks
    no rank's GPU and makes no device current: it only checks the name."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu or cuda (cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is not supported by the benchmark; use cpu or cuda (cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but no CUDA GPU is visible on this machine; use --device cpu")
    return device


def parse_dtype(name: str) -> torch.dtype:
    """``fp32`` or ``bf16`` as a dtype; anything else is a :class:`ConfigError`."""
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU / GPU model, core count, library versions: the context every table must state."""
    import torchvision

    info: dict[str, Any] = dict(
        cpu=_cpu_name(),
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


def _cpu_name() -> str:
    """The CPU's model name with, where ``/proc/cpuinfo`` has them, its family and model numbers and
    whether it has AVX-512."""
    cpuinfo = _first_cpuinfo_block()
    cpu = cpuinfo.get("model name", platform.processor() or platform.machine())
    # The model name alone can hide the generation ("AMD EPYC" under KVM), which decides how fast MKL
    # and oneDNN run: keep the family and model numbers and the widest vector extension.
    if "cpu family" in cpuinfo and "model" in cpuinfo:
        cpu += f", family {cpuinfo['cpu family']} model {cpuinfo['model']}"
    if "avx512f" in cpuinfo.get("flags", "").split():
        cpu += ", AVX-512"
    return cpu


def _first_cpuinfo_block() -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty where there is none)."""
    cpuinfo: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor's block is enough
            cpuinfo.setdefault(key.strip(), value.strip())
    return cpuinfo

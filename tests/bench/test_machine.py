"""The devices and dtypes a benchmark accepts, and the machine it states."""

import os

import pytest
import torch

from vast import bench
from vast.errors import ConfigError


def test_devices_and_dtypes_parse_or_raise_clear_errors():
    assert bench.parse_device("cpu") == torch.device("cpu")
    assert bench.parse_dtype("fp32") is torch.float32 and bench.parse_dtype("bf16") is torch.bfloat16
    with pytest.raises(ConfigError, match="unknown dtype 'fp8'"):
        bench.parse_dtype("fp8")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        bench.parse_device("tpu")
    with pytest.raises(ConfigError, match="not supported by the benchmark"):
        bench.parse_device("meta")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        bench.parse_device("cuda:0")


def test_machine_names_the_cpu_and_the_libraries():
    info = bench.machine_info(torch.device("cpu"))
    assert info["cpu_count"] == os.cpu_count() and info["torch"] == torch.__version__
    assert info["cpu"] and "gpu" not in info

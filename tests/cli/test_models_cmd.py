"""`vast models` and `vast flops` from the command line."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from vast.cli.main import main

README = Path(__file__).resolve().parents[2] / "README.md"


def test_models_table_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("ast_nano", "ast_tiny", "vast_nano", "vast_tiny", "vast_small", "vast_base"):
        assert re.search(rf"^{name}\s+\d+\.\d+\s+\d+\.\d+", out, re.M), name


def test_readme_model_table_is_the_tools_output(capsys):
    assert main(["models", "--markdown"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].strip()
    readme = README.read_text()
    block = readme.split("<!-- model-table:start -->")[1].split("<!-- model-table:end -->")[0].strip()
    assert block == table, "README model table is stale: paste `vast models --markdown` into it"


def test_flops_for_vast_tiny(capsys):
    assert main(["flops", "vast_tiny", "--input", "1,3,8,224,224"]) == 0
    out = capsys.readouterr().out
    gmacs = float(re.search(r"GMACs\s+([\d.]+)", out).group(1))
    params = float(re.search(r"params\s+([\d.]+) M", out).group(1))
    assert 30 < gmacs < 40 and 25 < params < 30


def test_flops_with_option_halves_compute(capsys):
    main(["flops", "vast_tiny"])
    full = float(re.search(r"GMACs\s+([\d.]+)", capsys.readouterr().out).group(1))
    main(["flops", "vast_tiny", "--set", "t_patch=2"])
    half = float(re.search(r"GMACs\s+([\d.]+)", capsys.readouterr().out).group(1))
    assert half == pytest.approx(full / 2, rel=0.02)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["flops", "vast_tnyi"], "unknown model 'vast_tnyi'; did you mean vast_tiny"),
        (["flops", "vast_tiny", "--input", "1,3,8,225,224"], "multiples of 4"),
        (["flops", "vast_tiny", "--set", "norml=layernorm"], "did you mean norm"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_console_script_unknown_model_exit_code():
    result = subprocess.run(
        [sys.executable, "-m", "vast", "flops", "no_such_model"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "unknown model 'no_such_model'" in result.stderr

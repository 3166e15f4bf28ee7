"""The package's imports run one way, and no private name crosses a package line.

The direction is the ``layers`` contract of ``[tool.importlinter]`` in pyproject.toml (checked here with
import-linter, the ``lint-imports`` command, where it is installed: the ``dev`` extra). A private name
(one leading underscore) may be used inside the package that defines it (``vast.ops``, ``vast.models``,
...) and nowhere else; that is checked here from the source.
"""

import ast
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "vast"


def _module_name(path: Path, source: Path) -> str:
    parts = path.relative_to(source.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    """``vast.models.folder`` -> ``models``; ``vast`` itself -> ``vast``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def private_imports_across_packages(path: Path, source: Path = SOURCE) -> list[str]:
    """``module: what`` for each private name that ``path`` (a module of the package folder ``source``)
    takes from another vast package."""
    importer = _module_name(path, source)
    tree = ast.parse(path.read_text(), str(path))
    found, modules = [], {}  # modules: local name -> the vast module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vast":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if _package(full) == _package(importer):
                    continue
                if _private(alias.name) or any(_private(p) for p in node.module.split(".")):
                    found.append(f"{importer}: from {node.module} import {alias.name}")
                elif _is_module(full):
                    modules[alias.asname or alias.name] = full
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "vast" and _package(alias.name) != _package(importer):
                    modules[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        named = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        if named and _private(node.attr) and node.value.id in modules:
            found.append(f"{importer}: {modules[node.value.id]}.{node.attr} (line {node.lineno})")
    return found


def test_no_private_name_is_imported_across_packages():
    found = [line for path in sorted(SOURCE.rglob("*.py")) for line in private_imports_across_packages(path)]
    assert not found, "private names used outside their package:\n" + "\n".join(found)


def test_the_check_sees_a_private_name_taken_from_another_package(tmp_path):
    module = SOURCE / "streaming" / "classifier.py"
    fake = tmp_path / "vast" / "streaming" / "classifier.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(module.read_text() + "\nfrom vast.ops.shift import _portable\nfrom vast.ops import fuse\nfuse._x\n")
    assert private_imports_across_packages(fake, tmp_path / "vast") == [
        "vast.streaming.classifier: from vast.ops.shift import _portable",
        f"vast.streaming.classifier: vast.ops.fuse._x (line {len(module.read_text().splitlines()) + 4})",
    ]


def test_imports_keep_the_layers_contract():
    pytest.importorskip("importlinter", reason="import-linter (the dev extra) checks the contract")
    command = shutil.which("lint-imports")
    assert command is not None, "import-linter is installed but its lint-imports command is not on PATH"
    result = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

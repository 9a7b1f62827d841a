"""`sam build` of LibLayer ships the runtime (core + jobs) and Powertools, not ops/, cli/, local/ or dashboard/.

Marked `build`: it downloads wheels from the package index and takes a while, so `make test` leaves it out
(pyproject addopts) and `make lint` runs it (`pytest -m build tests/build`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sqsloops.local.provision import layer_files

pytestmark = pytest.mark.build

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LibLayer built by `sam build` (as `make build` runs it) into a build directory of its own; its python/."""
    build_dir = tmp_path_factory.mktemp("sam") / "build"
    sam = VENV_BIN / "sam"
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "SAM_CLI_TELEMETRY": "0"}
    command = [str(sam), "build", "LibLayer", "--template", "template.yaml", "--build-dir", str(build_dir)]
    done = subprocess.run(
        [*command, "--no-cached"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"sam build failed:\n{done.stdout}\n{done.stderr}"
    return build_dir / "LibLayer" / "python"


def files_under(directory: Path) -> list[str]:
    return sorted(path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file())


def test_the_runtime_is_in_the_layer(layer: Path) -> None:
    for module in ("__init__", "loop", "tokens", "settle", "dispatch", "settings", "root"):
        assert (layer / "sqsloops" / f"{module}.py").is_file(), f"sqsloops/{module}.py is missing from the layer"
    for path in (LIB / "sqsloops").glob("*.py"):
        assert (layer / "sqsloops" / path.name).is_file(), f"sqsloops/{path.name} is missing from the layer"
    if (LIB / "sqsloops" / "jobs").is_dir():
        assert (layer / "sqsloops" / "jobs" / "__init__.py").is_file()


def test_operator_tools_and_the_embedded_aws_are_not(layer: Path) -> None:
    for wing in ("ops", "cli", "local", "dashboard"):
        assert not (layer / "sqsloops" / wing).exists(), f"sqsloops/{wing}/ is in the layer"
    shipped = files_under(layer / "sqsloops")
    assert not [f for f in shipped if "__pycache__" in f or f.endswith(".pyc")]
    assert not list(layer.glob("*.egg-info"))
    for name in ("layer.txt", "Makefile", "requirements.txt", "bin"):
        assert not (layer / name).exists(), f"{name} is in the layer"


def test_the_sam_build_and_the_embedded_aws_ship_the_same_runtime_files(layer: Path) -> None:
    listed = layer_files(LIB)
    assert listed is not None
    built = [f"sqsloops/{f}" for f in files_under(layer / "sqsloops")]
    assert built == [f for f in listed if f.startswith("sqsloops/")]


def test_the_dependencies_are_in_the_layer(layer: Path) -> None:
    assert (layer / "aws_lambda_powertools" / "__init__.py").is_file()
    assert list(layer.glob("aws_lambda_powertools-3.*.dist-info"))


def test_every_runtime_module_imports_from_the_layer_alone(layer: Path) -> None:
    """With the layer first on sys.path (as /opt/python is), every shipped module imports: none needs a wing."""
    modules = [
        ".".join(Path(f).with_suffix("").parts).removesuffix(".__init__")
        for f in files_under(layer)
        if f.startswith("sqsloops/") and f.endswith(".py")
    ]
    script = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(layer)!r})\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(layer)!r}), (name, module.__file__)\n"
        "import aws_lambda_powertools\n"
        f"assert aws_lambda_powertools.__file__.startswith({str(layer)!r}), aws_lambda_powertools.__file__\n"
    )
    # -I: no user site, no PYTHONPATH, not the repository's lib/; the venv's site-packages (boto3, as in the
    # Lambda runtime) stay, behind the layer. The editable install of sqsloops is shadowed by the layer's copy.
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=layer, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr

"""The embedded AWS's layer zip ships the runtime only (lib/layer.txt), by the rule lib/Makefile applies for sam build.

tests/build/test_sam_build.py checks the layer `sam build` makes (it needs the package index); these run offline.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import aws_lambda_powertools
import boto3
import pytest
from moto import mock_aws

from sqsloops.errors import DeployError
from sqsloops.local.provision import LAYER_MANIFEST, layer_files, load_template, package, zip_layer

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib"
PACKAGE = LIB / "sqsloops"
OFF_LAYER = ("ops", "cli", "local", "dashboard")


def runtime_sources() -> set[str]:
    """What the layer must carry, from the source tree: sqsloops/*.py and everything under sqsloops/jobs/."""
    top = {f"sqsloops/{path.name}" for path in PACKAGE.glob("*.py")}
    jobs = {
        path.relative_to(LIB).as_posix()
        for path in (PACKAGE / "jobs").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    return top | jobs


@pytest.fixture(scope="module")
def layer_names() -> list[str]:
    """The names in LibLayer's zip as `deploy` packages it (template.yaml through provision.package, into moto S3)."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        packaged = package(load_template(ROOT / "template.yaml"), base_dir=ROOT, s3=s3, bucket="artifacts")
        location = packaged["Resources"]["LibLayer"]["Properties"]["ContentUri"]
        key = location.removeprefix("s3://artifacts/")
        body = s3.get_object(Bucket="artifacts", Key=key)["Body"].read()
    return zipfile.ZipFile(io.BytesIO(body)).namelist()


def test_the_layer_zip_carries_every_runtime_file_under_python(layer_names: list[str]) -> None:
    expected = {f"python/{name}" for name in runtime_sources()}
    assert {"python/sqsloops/__init__.py", "python/sqsloops/loop.py", "python/sqsloops/tokens.py"} <= expected
    missing = sorted(expected - set(layer_names))
    assert not missing, f"runtime files missing from the layer zip: {missing}"


def test_the_layer_zip_carries_nothing_but_the_runtime_and_its_installed_packages(layer_names: list[str]) -> None:
    extra = sorted(set(layer_names) - {f"python/{name}" for name in runtime_sources()})
    assert not [n for n in extra if n.startswith("python/sqsloops/")], "non-runtime sqsloops files in the layer"
    site_packages = Path(aws_lambda_powertools.__file__).resolve().parents[1]
    foreign = [n for n in extra if not (site_packages / n.removeprefix("python/")).is_file()]
    assert not foreign, f"the layer zip ships files that are neither runtime nor installed packages: {foreign}"
    for wing in OFF_LAYER:
        assert not [n for n in layer_names if n.startswith(f"python/sqsloops/{wing}/")], f"{wing}/ is in the layer"
    assert not [n for n in layer_names if "__pycache__" in n or n.endswith(".pyc") or ".egg-info" in n]
    for name in ("python/layer.txt", "python/Makefile", "python/requirements.txt"):
        assert name not in layer_names


def test_the_layer_zip_bundles_its_requirements_and_theirs_as_sam_build_does(layer_names: list[str]) -> None:
    """lib/Makefile pip-installs requirements.txt into the layer; the embedded AWS copies the same distributions
    from this virtualenv (workers no longer fall back to it), so a Powertools import works from the layer alone."""
    names = set(layer_names)
    for name in ("aws_lambda_powertools", "croniter", "tzdata", "jmespath", "dateutil"):  # required, or theirs
        assert f"python/{name}/__init__.py" in names, f"{name} is not in the layer"
    for module in ("typing_extensions.py", "six.py"):
        assert f"python/{module}" in names
    dist_infos = {n.split("/")[1] for n in names if n.split("/")[1].endswith(".dist-info")}
    assert any(d.startswith("aws_lambda_powertools-3.") for d in dist_infos)
    assert not [n for n in names if n.split("/")[1] in ("boto3", "botocore", "bin")], "not required by the layer"


def test_function_code_is_still_zipped_whole() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="artifacts")
        packaged = package(load_template(ROOT / "template.yaml"), base_dir=ROOT, s3=s3, bucket="artifacts")
        key = packaged["Resources"]["ProcessFunction"]["Properties"]["CodeUri"].removeprefix("s3://artifacts/")
        names = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket="artifacts", Key=key)["Body"].read())).namelist()
    assert "lambda_function.py" in names


# ---------------------------------------------------------------- the rule, on a made-up layer directory


def write(directory: Path, *paths: str) -> None:
    for relative in paths:
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {relative}\n")


@pytest.fixture
def layer_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "lib"
    write(
        directory,
        "requirements.txt",
        "pkg.egg-info/PKG-INFO",
        "sqsloops/__init__.py",
        "sqsloops/loop.py",
        "sqsloops/notes.txt",
        "sqsloops/__pycache__/loop.cpython-311.pyc",
        "sqsloops/stale.pyc",
        "sqsloops/jobs/__init__.py",
        "sqsloops/jobs/runner/__init__.py",
        "sqsloops/jobs/runner/data.json",
        "sqsloops/jobs/__pycache__/x.pyc",
        "sqsloops/ops/watch.py",
        "sqsloops/local/provision.py",
        "extra/one.py",
    )
    (directory / LAYER_MANIFEST).write_text(
        "# comment\n\n  sqsloops/*.py  \nsqsloops/jobs\nsqsloops/not_there\nextra/one.py\nnothing/*.py\n"
    )
    return directory


EXPECTED = [
    "extra/one.py",
    "sqsloops/__init__.py",
    "sqsloops/jobs/__init__.py",
    "sqsloops/jobs/runner/__init__.py",
    "sqsloops/jobs/runner/data.json",
    "sqsloops/loop.py",
]


def test_the_manifest_ships_globbed_files_and_whole_directories_without_caches(layer_dir: Path) -> None:
    assert layer_files(layer_dir) == EXPECTED
    names = zipfile.ZipFile(io.BytesIO(zip_layer(layer_dir))).namelist()
    assert sorted(names) == [f"python/{name}" for name in EXPECTED]


def test_a_layer_without_a_manifest_is_zipped_whole(layer_dir: Path) -> None:
    (layer_dir / LAYER_MANIFEST).unlink()
    assert layer_files(layer_dir) is None
    names = zipfile.ZipFile(io.BytesIO(zip_layer(layer_dir))).namelist()
    assert "python/sqsloops/ops/watch.py" in names
    assert "python/requirements.txt" in names
    assert not [n for n in names if n.endswith(".pyc")]


@pytest.mark.parametrize("entry", ["../outside.py", "/etc/passwd", "sqsloops/**/*.py"])
def test_a_manifest_entry_outside_the_directory_or_recursive_glob_is_refused(layer_dir: Path, entry: str) -> None:
    (layer_dir / LAYER_MANIFEST).write_text(f"sqsloops/*.py\n{entry}\n")
    with pytest.raises(DeployError, match=r"layer\.txt"):
        layer_files(layer_dir)


def make_layer_files(directory: Path, artifacts: Path) -> list[str]:
    """lib/Makefile's build-LibLayer run on `directory` with pip stubbed out (PYTHON=true): the files it copies."""
    shutil.copy(LIB / "Makefile", directory / "Makefile")
    env: dict[str, Any] = {**os.environ, "ARTIFACTS_DIR": str(artifacts)}
    subprocess.run(
        ["make", "--no-print-directory", "-s", "build-LibLayer", "PYTHON=true"],
        cwd=directory,
        env=env,
        check=True,
        capture_output=True,
    )
    python = artifacts / "python"
    return sorted(path.relative_to(python).as_posix() for path in python.rglob("*") if path.is_file())


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_the_makefile_applies_the_same_rule(layer_dir: Path, tmp_path: Path) -> None:
    assert make_layer_files(layer_dir, tmp_path / "artifacts") == EXPECTED


@needs_make
def test_the_makefile_and_the_embedded_aws_ship_the_same_runtime_files(tmp_path: Path) -> None:
    source = tmp_path / "lib"
    shutil.copytree(LIB, source, ignore=shutil.ignore_patterns("*.egg-info"))
    expected = layer_files(source)
    assert expected is not None
    assert "sqsloops/loop.py" in expected
    assert make_layer_files(source, tmp_path / "artifacts") == expected


@pytest.mark.parametrize(
    ("requirement", "fragment"),
    [
        ("no-such-distribution-xyz>=1", "not installed in this virtualenv"),
        ("croniter<1", "but 7"),
    ],
)
def test_a_requirement_this_virtualenv_cannot_satisfy_is_a_deploy_error(
    layer_dir: Path, requirement: str, fragment: str
) -> None:
    """Nothing is downloaded: a layer requirement that is missing here, or at another version, stops the deploy."""
    (layer_dir / "requirements.txt").write_text(f"# the layer's packages\n{requirement}\n")
    with pytest.raises(DeployError) as caught:
        zip_layer(layer_dir)
    assert fragment in str(caught.value)
    assert requirement in str(caught.value)


def test_a_requirement_and_what_it_requires_go_in_the_layer_zip(layer_dir: Path) -> None:
    (layer_dir / "requirements.txt").write_text("croniter\n")
    names = set(zipfile.ZipFile(io.BytesIO(zip_layer(layer_dir))).namelist())
    assert {"python/croniter/__init__.py", "python/dateutil/__init__.py", "python/six.py"} <= names
    assert not [n for n in names if n.endswith(".pyc") or "/__pycache__/" in n or n.startswith("python/bin/")]

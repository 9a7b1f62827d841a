"""Installed distributions of this virtualenv as files: what `pip install --target` would put in a directory.

The embedded AWS never downloads: a layer's requirements.txt is "installed" into its zip by copying the installed
distributions (and what they require, markers evaluated) file by file from their RECORD, and the Lambda runtime's
own packages (boto3 and what it needs) are laid out the same way for the workers (worker_spawner).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from sqsloops.errors import DeployError

# What the AWS Lambda Python runtime has beside the standard library: the SDK and its dependencies.
LAMBDA_RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "jmespath", "urllib3", "python-dateutil", "s3transfer", "six")


def read_requirements(path: Path) -> list[str]:
    """The requirement lines of a requirements.txt (comments, blank lines and pip options left out)."""
    lines = []
    for line in path.read_text().splitlines():
        entry = line.split(" #", 1)[0].strip()
        if entry and not entry.startswith(("#", "-")):
            lines.append(entry)
    return lines


def closure(requirements: Iterable[str], *, where: str) -> list[metadata.Distribution]:
    """The installed distributions `requirements` need, theirs included (as pip resolves them); DeployError when one
    is missing or at a version the requirement excludes, naming `where` the requirement came from."""
    found: dict[str, metadata.Distribution] = {}
    pending: list[tuple[Requirement, str]] = [(_requirement(line, where), where) for line in requirements]
    while pending:
        requirement, wanted_by = pending.pop()
        name = canonicalize_name(requirement.name)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            raise DeployError(
                f"{requirement} (required by {wanted_by}) is not installed in this virtualenv: the embedded AWS "
                "bundles installed packages and never downloads (pip install it, or the `local` extra)"
            ) from None
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise DeployError(f"{requirement} (required by {wanted_by}) but {dist.version} is installed")
        if name in found:
            continue
        found[name] = dist
        for line in dist.requires or []:
            nested = _requirement(line, name)
            environments = [{"extra": extra} for extra in requirement.extras] or [{"extra": ""}]
            if nested.marker is None or any(nested.marker.evaluate(env) for env in environments):
                pending.append((nested, name))
    return sorted(found.values(), key=lambda d: canonicalize_name(d.metadata["Name"]))


def _requirement(line: str, where: str) -> Requirement:
    try:
        return Requirement(line)
    except InvalidRequirement as exc:
        raise DeployError(f"{where}: {line!r} is not a requirement: {exc}") from exc


def installed_files(dist: metadata.Distribution) -> list[tuple[str, Path]]:
    """(path relative to site-packages, absolute path) of every file the distribution installed there, from its
    RECORD: scripts outside site-packages (bin/), caches and bytecode left out, as `pip --no-compile` leaves them."""
    files = []
    for entry in dist.files or []:
        relative = PurePosixPath(str(entry))
        if ".." in relative.parts or "__pycache__" in relative.parts or relative.suffix == ".pyc":
            continue
        located = Path(str(dist.locate_file(entry)))
        if located.is_file():
            files.append((relative.as_posix(), located))
    return sorted(files)


def top_level_entries(dist: metadata.Distribution) -> dict[str, Path]:
    """The distribution's top-level names in site-packages (packages, modules, its .dist-info) and their paths."""
    entries: dict[str, Path] = {}
    for relative, located in installed_files(dist):
        top = relative.split("/", 1)[0]
        depth = relative.count("/")
        path = located
        for _ in range(depth):
            path = path.parent
        entries[top] = path
    return entries

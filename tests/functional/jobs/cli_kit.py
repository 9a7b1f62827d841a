"""Running `sqsloops jobs ...` in-process and reading what it printed (the CLI tests of the job layer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqsloops.cli import main

ROOT = str(Path(__file__).resolve().parents[3])  # where app/ is


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str, *fragments: str) -> None:
    """stderr is the CLI's one error line, holding each fragment."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sqsloops: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

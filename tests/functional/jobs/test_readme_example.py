"""The README's worked job example (section "Jobs", the block after "This example is run by") runs as printed, in the
eager mode, with no AWS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"


def example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Jobs\n") :]
    after = section[section.index("This example is run by") :]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match is not None, "the README's Jobs section lost its worked example"
    return match.group(1)


def test_the_readme_example_prints_what_its_comments_say(capsys: pytest.CaptureFixture[str]) -> None:
    code = example()
    namespace: dict[str, object] = {"__name__": "readme_example"}

    exec(compile(code, str(README), "exec"), namespace)

    # the job layer's JSON log lines (two failed attempts) share stdout with the example's prints
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith('{"level"')]
    assert printed == [
        "succeeded {'n': 7, 'attempts': 3}",
        "['retry', 'retry', 'succeeded']",
        "70.0",
        "charged 42 True True",
    ]
    # and each line is the one its comment in the README promises
    promised = [line.split("# ", 1)[1].split(":")[0] for line in code.splitlines() if line.startswith("    print(")]
    assert [line[: len(p)] for line, p in zip(printed, promised, strict=True)] == promised

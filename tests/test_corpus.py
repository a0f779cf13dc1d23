"""The corpus of broken configs: each file says, in its comment header, where the mistake is
and what the message must say, e.g.

    # expect: line 24, column 5, field callbacks[0].patiance, message "did you mean 'patience'"

Every file goes through `cbrun validate --json` (exact problems: one per expect line, at
that line, column and field) and through `cbrun train` (exit 2, no traceback, the same
positions in the text, and TensorFlow never imported: a bad config fails before any TF work).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import cli_output

from tests.helpers.light import run_cbrun

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.yaml"))
_EXPECT = re.compile(
    r'^# expect: line (?P<line>\d+)(?:, column (?P<column>\d+))?, field (?P<field>.+?), '
    r'message "(?P<fragment>[^"]*)"$')


@dataclass(frozen=True)
class Expect:
    line: int
    column: int | None
    field: str
    fragment: str


def expectations(path: Path) -> list[Expect]:
    found = []
    for raw in path.read_bytes().decode("utf-8", "replace").splitlines():
        match = _EXPECT.match(raw)
        if match:
            column = match["column"]
            found.append(Expect(int(match["line"]), int(column) if column else None,
                                match["field"], match["fragment"]))
    return found


def test_corpus_is_large_and_every_file_has_expectations():
    assert len(FILES) >= 40
    for path in FILES:
        assert expectations(path), f"{path.name} has no '# expect:' line"


def _matches(problem: dict, expect: Expect) -> bool:
    text = problem["message"] + " " + problem.get("hint", "")
    return (problem["line"] == expect.line
            and (expect.column is None or problem["column"] == expect.column)
            and problem["field"] == expect.field
            and expect.fragment in text)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_validate_reports_each_expected_problem(path, capsys):
    code, out, _ = cli_output(capsys, "validate", "--json", path)  # fails on a traceback
    assert code == 2
    doc = json.loads(out)
    problems = doc["files"][0]["problems"]
    expects = expectations(path)
    unmatched = [e for e in expects if not any(_matches(p, e) for p in problems)]
    assert not unmatched, f"not reported: {unmatched}\nreported: {problems}"
    assert len(problems) == len(expects), f"extra problems: {problems}"
    for problem in problems:
        assert problem["file"] == str(path)


def _problem_blocks(output: str) -> list[str]:
    """The rendered problems: each `file:line:col: field: message` line with the indented
    `hint:` lines under it."""
    blocks: list[str] = []
    for line in output.splitlines():
        if line.startswith("    ") and blocks:
            blocks[-1] += "\n" + line
        else:
            blocks.append(line)
    return blocks


def test_train_refuses_every_corpus_file_before_tensorflow(tmp_path):
    # All files through `cbrun train` in one fresh process (no 4 s TensorFlow import per
    # file, and "never imported" is a real check whatever other tests imported before).
    runs = tmp_path / "runs"
    result = run_cbrun(*(["train", path, "--runs-dir", runs] for path in FILES), cwd=tmp_path)
    assert result.heavy == []
    for command in result.commands:
        path, output = command.argv[1], command.out + command.err
        assert command.code == 2, (path, output)
        assert "Traceback" not in output, output
        blocks = _problem_blocks(output)
        for expect in expectations(Path(path)):
            where = f"{path}:{expect.line}:" if expect.column is None else \
                f"{path}:{expect.line}:{expect.column}:"
            # The fragment must be in the problem reported at that position and field (its
            # line or its hint), not merely somewhere in the output.
            assert any(block.startswith(where) and f" {expect.field}: " in block.split("\n")[0]
                       and expect.fragment in block for block in blocks), (path, expect, output)
    assert not runs.exists() or not any(runs.iterdir()), "a refused config made a run dir"
